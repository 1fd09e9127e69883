//! What both hooks learn from a segment that is not a RST: the flow tables
//! and how a segment updates them (with `rstguard_common::state::track`).
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "passing keys and flows by value would copy them onto the 512-byte BPF stack"
)]

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, macros::map, maps::LruHashMap};
use rstguard_common::{
    clock::{seen, Clock, Lazy},
    judge::cause,
    layout::{DEFAULT_EMBRYONIC, DEFAULT_FLOWS},
    state::{
        track::{self, Origin, Step},
        FLOW_RST_SEEN,
    },
    Counter, Counters, Flow, FlowKey, FlowState,
};

use crate::{act::policy, count::bump, judge::injection_proven, parse::Packet};

/// Flows that have proven themselves ([`Flow::assured`]: handshake done,
/// both sides seen), shared by every hook and interface. Only such flows
/// enter it, so a flood of new flows cannot flush it; when it is full, a
/// new assured flow takes the place of the least recently used one. User
/// space sets the capacity at load time (`--flows`).
#[map]
pub static FLOWS: LruHashMap<FlowKey, Flow> = LruHashMap::with_max_entries(DEFAULT_FLOWS, 0);

/// Flows that have not proven themselves yet: SYN_SENT and SYN_RECV, and
/// flows picked up from one side. A flood of SYNs or mid-stream segments
/// churns this table, not [`FLOWS`] (`--new-flows`). On the kernel's
/// common LRU list, which hands each CPU free entries in batches: per-CPU
/// lists (`BPF_F_NO_COMMON_LRU`) cost more a creation (BENCHMARKS.md).
#[map]
pub static EMBRYONIC: LruHashMap<FlowKey, Flow> =
    LruHashMap::with_max_entries(DEFAULT_EMBRYONIC, 0);

/// Which table a flow was found in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Assured,
    Embryonic,
}

/// The flow of `key`, and the table it lives in: the assured table first
/// (where nearly every packet's flow is), then the embryonic one.
#[inline(always)]
pub fn find_flow(key: &FlowKey) -> Option<(*mut Flow, Table)> {
    if let Some(p) = FLOWS.get_ptr_mut(key) {
        return Some((p, Table::Assured));
    }
    EMBRYONIC.get_ptr_mut(key).map(|p| (p, Table::Embryonic))
}

/// The clock, read only when tracking or judgement needs it.
#[inline(always)]
pub fn clock() -> Lazy<impl Fn() -> u64> {
    // SAFETY: a helper with no arguments and no side effects.
    Lazy(|| unsafe { bpf_ktime_get_coarse_ns() })
}

/// Learns from a non-RST segment seen as `origin`: updates the flow (or
/// counts why the segment taught nothing), creates it on a SYN, on this
/// host's own SYN-ACK, or (when the policy allows) on pickup, and builds it
/// afresh when the segment starts a new incarnation.
#[inline(always)]
pub fn learn(
    pkt: &Packet,
    origin: Origin,
    new_flow: &mut Flow,
    ifindex: u32,
    slot: u32,
    c: &mut Counters,
) {
    let (key, sender_is_lo, seg) = (&pkt.key, pkt.sender_is_lo, &pkt.seg);
    let found = find_flow(key);
    // SAFETY: a map value, valid while this program runs. Concurrent
    // updates from other CPUs can interleave; every field stays a value
    // some packet of this flow produced.
    let flow = found.map(|(f, _)| unsafe { &mut *f });
    let closed = flow
        .as_ref()
        .is_some_and(|f| f.state() == FlowState::Closed);
    // New data from a side after its RST passed: that RST was forged. Read
    // before the segment is learned; rare enough to read the policy for.
    let injected = flow.as_ref().is_some_and(|f| {
        f.has(FLOW_RST_SEEN)
            && cause::proves_injection(
                f,
                sender_is_lo,
                seg,
                policy(slot).map_or(0, |p| p.ttl_slack),
            )
    });
    let pickup = || policy(slot).is_some_and(|p| p.pickup != 0);
    match track::learn(flow, sender_is_lo, seg, origin, pickup, clock()) {
        Step::Create => {
            if let Some((_, Table::Assured)) = found {
                // A new incarnation starts out unproven, like any new flow.
                let _ = FLOWS.remove(key);
                bump(c, Counter::AssuredRestarted);
            }
            return create(pkt, origin, new_flow, c);
        }
        Step::Ignored(why) => bump(c, Counter::ignored(why)),
        Step::Learned if injected => {
            if let Some((f, _)) = found {
                // SAFETY: as above.
                let flow = unsafe { &mut *f };
                cause::clear_rst(flow, seen(clock().now()));
                injection_proven(pkt, flow, ifindex, c);
            }
        }
        Step::Learned | Step::Untracked => {}
    }
    if closed {
        bump(c, Counter::ClosedFlowPackets);
    }
    if let Some((f, Table::Embryonic)) = found {
        // SAFETY: as above.
        let flow = unsafe { &*f };
        if flow.assured() {
            promote(key, flow, c);
        }
    }
}

/// Moves a flow that has just proven itself into the assured table.
#[inline(always)]
fn promote(key: &FlowKey, flow: &Flow, c: &mut Counters) {
    match FLOWS.insert(key, flow, 0) {
        Ok(()) => {
            bump(c, Counter::FlowsAssured);
            let _ = EMBRYONIC.remove(key);
        }
        Err(_) => bump(c, Counter::FlowCreateFailed),
    }
}

/// Builds a flow from `pkt` in `flow` (scratch memory) and inserts it in
/// the embryonic table, replacing any entry under the same key.
#[inline(always)]
fn create(pkt: &Packet, origin: Origin, flow: &mut Flow, c: &mut Counters) {
    track::init(flow, &pkt.seg, pkt.sender_is_lo, origin, clock());
    match EMBRYONIC.insert(&pkt.key, &*flow, 0) {
        Ok(()) => bump(c, Counter::FlowsCreated),
        Err(_) => bump(c, Counter::FlowCreateFailed),
    }
}
