//! rstguard's network lab. Everything runs in network namespaces this code
//! creates (addresses in 10.200-10.205.x.x and fd00:200::/64, fd01::/16)
//! and removes on drop, so a failing test cleans up too; every loop is
//! bounded in packets and time.
//!
//! * [`netns`]: namespaces, veth pairs, a private BPF filesystem each;
//! * [`daemon`]: a running `rstguard attach`, and the CLI beside it;
//! * [`traffic`]: live transfers, HTTP scrapes, socket helpers;
//! * [`spoof`]: RSTs from raw sockets, as a blind attacker sends them;
//! * [`fragments`]: forged segments cut into IP fragments (tiny ones, and
//!   RSTs in first fragments);
//! * [`routed`]: client, router, server and attacker, IPv4 and IPv6;
//! * [`legacy`]: a smoltcp peer on a TAP device (accepts any in-window RST);
//! * [`tunnel`]: two namespaces joined by tun devices (no link-layer header);
//! * [`resets`]: `rstguard resets --follow`, to wait for and read the RSTs
//!   a daemon records;
//! * [`nft`]: firewalls, a NAT gateway that forgets idle flows, a host
//!   whose RSTs are kept in;
//! * [`sockets`]: what an application sees of a reset (errno, socket
//!   state), and a socket that vanishes without a word;
//! * [`injector`]: an on-path injector copying live sequence numbers from
//!   a capture, and segments forged from a chosen distance (TTL).

pub mod attack;
pub mod daemon;
pub mod fragments;
pub mod injector;
pub mod kernel_tcp;
pub mod legacy;
pub mod netns;
pub mod nft;
pub mod resets;
pub mod routed;
pub mod sockets;
pub mod spoof;
pub mod traffic;
pub mod tunnel;

use std::{path::PathBuf, process::Command, time::Duration};

pub use daemon::Daemon;
pub use netns::{Netns, Pair, CLIENT4, CLIENT6, SERVER4, SERVER6};
pub use traffic::{http_get, sockaddr, LiveTransfer, Outcome};

/// How many times slower than this machine the lab's machine runs:
/// `RSTGUARD_TEST_TIME_SCALE`, 1 when unset. The kernel matrix sets it for
/// its guests (QEMU's TCG emulates every instruction). The lab then waits
/// that many times longer for anything to happen, and paces its live
/// transfers that many times slower (so that a window moves as far while
/// the slower machine reads it); what the tests assert stays the same.
pub fn time_scale() -> u32 {
    std::env::var("RSTGUARD_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s >= 1)
        .unwrap_or(1)
}

/// `d`, stretched by [`time_scale`]: a deadline for something to happen.
pub fn patience(d: Duration) -> Duration {
    d * time_scale()
}

/// The `rstguard` binary the lab runs: `RSTGUARD_BIN`, else the one built
/// next to the running executable (test binaries live in `deps/` below it).
pub fn rstguard_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RSTGUARD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the current executable");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("rstguard")
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "the network lab creates namespaces and loads eBPF programs: run it as root \
             (`sudo -E cargo xtask test`)"
        );
    }
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A JSON number as u64.
pub fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}
