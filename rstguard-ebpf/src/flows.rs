//! What both hooks do with a parsed TCP segment: learn from it, or (at XDP
//! only) judge it when it is a RST.
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "passing keys and flows by value would copy them onto the 512-byte BPF stack"
)]

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use rstguard_common::{
    counter::rst_slot,
    judge::{self, Action},
    tcp::{ACK, RST, SYN},
    track, Counter, Counters, Flow, FlowState,
};

use crate::{
    maps::{bump, bump_slot, is_trusted, policy, FLOWS},
    parse::Packet,
};

#[inline(always)]
fn now() -> u64 {
    // SAFETY: a helper with no arguments and no side effects.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Learns from a non-RST segment: updates the sender's half, creates the
/// flow on a SYN or (when the policy allows) on pickup.
#[inline(always)]
pub fn learn(pkt: &Packet, new_flow: &mut Flow, c: &mut Counters) {
    let (key, sender_is_lo, seg) = (&pkt.key, pkt.sender_is_lo, &pkt.seg);
    let now = now();
    let existing = FLOWS.get_ptr_mut(key);
    if let Some(flow) = existing {
        // SAFETY: a map value, valid while this program runs. Concurrent
        // updates from other CPUs can interleave; every field stays a value
        // some packet of this flow produced.
        let flow = unsafe { &mut *flow };
        let bare_syn = seg.has(SYN) && !seg.has(ACK);
        if !bare_syn || !track::syn_restarts(flow, sender_is_lo, seg) {
            if flow.state() == FlowState::Closed {
                bump(c, Counter::ClosedFlowPackets);
            }
            track::update(flow, sender_is_lo, seg, now);
            return;
        }
    }
    let flow = new_flow;
    if seg.has(SYN) && !seg.has(ACK) {
        track::init_from_syn(flow, seg, sender_is_lo, now);
    } else if policy().pickup != 0 {
        track::init_from_pickup(flow, seg, sender_is_lo, now);
    } else {
        return;
    }
    match FLOWS.insert(key, &*flow, 0) {
        Ok(()) => bump(c, Counter::FlowsCreated),
        Err(_) => bump(c, Counter::FlowCreateFailed),
    }
}

/// Judges a RST that arrived at XDP ingress; counts it by verdict and
/// action and returns the action.
#[inline(always)]
pub fn judge_rst(pkt: &Packet, c: &mut Counters) -> Action {
    let policy = policy();
    let trusted = is_trusted(pkt.src());
    // SAFETY: as in `learn`.
    let flow = FLOWS.get_ptr_mut(&pkt.key).map(|f| unsafe { &mut *f });
    let (verdict, action) = judge::judge(flow, pkt.sender_is_lo, &pkt.seg, trusted, &policy, now());
    bump_slot(c, rst_slot(verdict, action));
    action
}

/// The host sent a RST (TC egress): its flow is closed. Never judged.
#[inline(always)]
pub fn own_rst(pkt: &Packet) {
    debug_assert!(pkt.seg.has(RST));
    if let Some(flow) = FLOWS.get_ptr_mut(&pkt.key) {
        // SAFETY: as in `learn`.
        track::close(unsafe { &mut *flow }, now());
    }
}
