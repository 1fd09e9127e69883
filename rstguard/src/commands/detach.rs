//! `rstguard detach`: stops the daemon (it detaches everything it holds) and
//! removes its pinned state; after a crash, removes what it left.
//!
//! The daemon holds its XDP and TCX links through file descriptors, so a
//! crashed daemon's programs are already detached by the kernel (fail
//! open). What can be left: the pinned maps, and, on kernels without TCX
//! (before 6.6), a clsact filter of rstguard's; both are removed here.

use std::{thread, time::Duration};

use aya::programs::{tc, TcAttachType};
use nix::{sys::signal, unistd::Pid};
use rstguard_common::layout::PROG_TC;

use super::cstr;
use crate::{attach::link_exists, cli::DetachArgs, host::paths::PinDir, maps::Maps};

pub fn run(pins: &PinDir, args: &DetachArgs) -> anyhow::Result<()> {
    if !args.all && args.ifaces.is_empty() {
        anyhow::bail!("say what to detach: `rstguard detach --all`, or `rstguard detach IFACE...`");
    }
    let state = Maps::open(pins).ok().and_then(|m| m.state().ok());
    let running = pins.is_locked();
    if !args.all {
        if running {
            let pid = state.map_or(0, |s| s.pid);
            anyhow::bail!(
                "the daemon (pid {pid}) is running and holds its interfaces: stop it with \
                 `rstguard detach --all` (or SIGTERM), or restart it without {}",
                args.ifaces.join(" ")
            );
        }
        for iface in &args.ifaces {
            remove_leftovers(iface);
        }
        return Ok(());
    }
    if running {
        let pid = state.map_or(0, |s| s.pid);
        if pid == 0 {
            anyhow::bail!(
                "a daemon holds {} but published no pid",
                pins.dir().display()
            );
        }
        println!("stopping the daemon (pid {pid})");
        signal::kill(Pid::from_raw(pid as i32), signal::SIGTERM)
            .map_err(|e| anyhow::anyhow!("cannot signal pid {pid}: {e}"))?;
        for _ in 0..200 {
            if !pins.is_locked() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if pins.is_locked() {
            anyhow::bail!("the daemon (pid {pid}) did not stop within 10 s of SIGTERM");
        }
        println!("the daemon stopped and detached everything");
    }
    if let Some(s) = state {
        for i in s.ifaces.iter().take(s.n_ifaces as usize) {
            let name = cstr(&i.name);
            for (what, id) in [("XDP", i.xdp_link_id), ("egress", i.tc_link_id)] {
                if link_exists(id) {
                    println!("warning: {name}: the {what} link {id} still exists (held by another process?)");
                }
            }
            remove_leftovers(&name);
        }
    }
    if pins.exists() || pins.dir().exists() {
        pins.remove()?;
        println!("removed {}", pins.dir().display());
    } else {
        println!("no pinned state left under {}", pins.root().display());
    }
    Ok(())
}

/// Removes an rstguard clsact filter from `iface` (older kernels).
fn remove_leftovers(iface: &str) {
    match tc::qdisc_detach_program(iface, TcAttachType::Egress, PROG_TC) {
        Ok(()) => println!("{iface}: removed a leftover egress filter"),
        Err(_) => println!("{iface}: no leftover egress filter"),
    }
}
