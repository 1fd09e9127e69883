//! The signals the daemon handles: SIGINT and SIGTERM stop it, SIGHUP
//! reloads its config.

use anyhow::Context as _;
use nix::sys::signal::{SigSet, Signal};
use tokio::signal::unix::{signal, SignalKind};

/// What a signal asks of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// SIGINT or SIGTERM (named): detach everything and exit.
    Stop(&'static str),
    /// SIGHUP: re-read the config file.
    Reload,
}

/// The daemon's signal handlers, registered before anything is attached
/// so that a SIGTERM at any moment detaches cleanly.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Unblocks and registers the handled signals, inside `runtime`.
    pub fn install(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Signals> {
        // A parent may have left these blocked (a blocked mask survives
        // exec): the daemon must see them whatever started it.
        let mut handled = SigSet::empty();
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            handled.add(sig);
        }
        handled
            .thread_unblock()
            .context("unblocking SIGINT, SIGTERM and SIGHUP")?;
        let _in_runtime = runtime.enter();
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// The next signal's request.
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.int.recv() => Request::Stop("SIGINT"),
            _ = self.term.recv() => Request::Stop("SIGTERM"),
            _ = self.hup.recv() => Request::Reload,
        }
    }
}
