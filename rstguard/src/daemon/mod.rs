//! The daemon behind `rstguard attach`: start-up (`startup`), the serving
//! loop and its supervised tasks (`serve`), auto mode and operator pinning
//! (`auto`), SIGHUP reloads (`reload`), the flow sweeper (`sweep`), counter
//! summaries (`summary`), `/metrics` (`metrics`), events (`events`) and
//! causes (`causes`); signals in `signals`.
//!
//! Start-up, in an order that leaves nothing half-done on failure: lock the
//! pin directory (one daemon per directory), bind the metrics socket, load
//! the object, write the policy and trusted prefixes, attach to every
//! interface (undone on any failure), pin the maps, publish the state.
//! Then it serves: counter summaries, `/metrics`, events, flow sweeps, and
//! SIGHUP reloads. SIGINT and SIGTERM detach everything, remove the pins,
//! and exit 0; a task that dies does the same, and exits non-zero.
//!
//! What happens when it dies without that (kill -9, a crash): the kernel
//! closes its file descriptors, and with them the XDP and TCX links, so the
//! programs detach at once: filtering stops, traffic flows unfiltered (fail
//! open), and nothing is left that only rstguard could remove. The pinned
//! maps stay, so `rstguard stats` still shows the last counters;
//! `rstguard detach --all` (or the next daemon) removes them.

mod auto;
pub mod causes;
pub mod events;
pub mod metrics;
mod reload;
mod serve;
mod shared;
mod signals;
mod startup;
mod summary;
mod sweep;

use anyhow::Context as _;
use rstguard_common::status::MAX_IFACES;
use tracing::warn;

pub use self::{
    auto::AutoIface,
    shared::{lock, AttachedView, Shared},
    startup::copy_str,
    sweep::assured_evicted,
};
use self::{serve::Context, signals::Signals, startup::Started, summary::report};
use crate::{
    attach::detach_all,
    cli::AttachArgs,
    config::{self, Settings},
    host::iface::Iface,
    host::paths::PinDir,
    host::privileges::{self, ATTACH},
};

pub fn run(args: AttachArgs, pins: PinDir) -> anyhow::Result<()> {
    privileges::require("rstguard attach", ATTACH)?;
    let settings = config::load(&args)?;
    let ifaces = Iface::resolve_all(&settings.interfaces)?;
    if ifaces.len() > MAX_IFACES {
        anyhow::bail!("at most {MAX_IFACES} interfaces per daemon");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let signals = Signals::install(&runtime)?;
    let lock = pins.claim()?;
    let result = run_claimed(&args, settings, &ifaces, &pins, &runtime, signals);
    if let Err(e) = pins.remove() {
        warn!(error = %e, "removing the pinned maps failed");
    }
    drop(lock);
    result
}

/// Build, serve until a signal or a dead task, then drain: the last
/// summary, and every program detached.
fn run_claimed(
    args: &AttachArgs,
    settings: Settings,
    ifaces: &[Iface],
    pins: &PinDir,
    runtime: &tokio::runtime::Runtime,
    signals: Signals,
) -> anyhow::Result<()> {
    let Started {
        mut loaded,
        attachments,
        shared,
        metrics,
        ring,
    } = startup::start(&settings, ifaces, pins)?;
    let json = settings.json;
    let cx = Context {
        args,
        pins,
        shared: &shared,
        attachments: &attachments,
    };
    let result = runtime.block_on(serve::serve(cx, settings, metrics, ring, signals));
    report(&self::lock(&shared).maps, &attachments, json);
    detach_all(&mut loaded, attachments);
    result
}
