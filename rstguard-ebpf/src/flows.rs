//! What both hooks do with a parsed TCP segment: learn from it, or (at XDP
//! only) judge it when it is a RST.
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "passing keys and flows by value would copy them onto the 512-byte BPF stack"
)]

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use rstguard_common::{
    clock::{Clock, Lazy},
    counter::rst_slot,
    flow::HALF_ACK,
    judge::{self, Action, Verdict},
    policy::POLICY_HAS_TRUSTED,
    tcp::RST,
    track::{self, Origin, Step},
    Counter, Counters, Flow, FlowKey, FlowState, Policy, RstEvent,
};

use crate::{
    maps::{
        bump, bump_slot, find_flow, is_trusted, policy, take_event, Table, EMBRYONIC, EVENTS, FLOWS,
    },
    parse::Packet,
};

/// The clock, read only when tracking or judgement needs it.
#[inline(always)]
fn clock() -> Lazy<impl Fn() -> u64> {
    // SAFETY: a helper with no arguments and no side effects.
    Lazy(|| unsafe { bpf_ktime_get_coarse_ns() })
}

/// Learns from a non-RST segment seen as `origin`: updates the flow (or
/// counts why the segment taught nothing), creates it on a SYN, on this
/// host's own SYN-ACK, or (when the policy allows) on pickup, and builds it
/// afresh when the segment starts a new incarnation.
#[inline(always)]
pub fn learn(pkt: &Packet, origin: Origin, new_flow: &mut Flow, slot: u32, c: &mut Counters) {
    let (key, sender_is_lo, seg) = (&pkt.key, pkt.sender_is_lo, &pkt.seg);
    let found = find_flow(key);
    // SAFETY: a map value, valid while this program runs. Concurrent
    // updates from other CPUs can interleave; every field stays a value
    // some packet of this flow produced.
    let flow = found.map(|(f, _)| unsafe { &mut *f });
    let closed = flow
        .as_ref()
        .is_some_and(|f| f.state() == FlowState::Closed);
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

/// Judges a RST that arrived at XDP ingress; counts it by verdict and
/// action, reports it when suspicious, and returns the action.
#[inline(always)]
pub fn judge_rst(pkt: &Packet, ifindex: u32, slot: u32, c: &mut Counters) -> Action {
    let fail_open = Policy::FAIL_OPEN;
    let policy = policy(slot).unwrap_or(&fail_open);
    let trusted = policy.flags & POLICY_HAS_TRUSTED != 0 && is_trusted(pkt.src());
    let flow_ptr = find_flow(&pkt.key).map(|(f, _)| f);
    // SAFETY: as in `learn`.
    let flow = flow_ptr.map(|f| unsafe { &mut *f });
    let (verdict, action) =
        judge::judge(flow, pkt.sender_is_lo, &pkt.seg, trusted, policy, clock());
    bump_slot(c, rst_slot(verdict, action));
    if !matches!(verdict, Verdict::Exact | Verdict::Trusted)
        && sampled(c, policy.event_sample)
        && take_event()
    {
        // SAFETY: as in `learn`.
        let flow = flow_ptr.map(|f| unsafe { &*f });
        report(pkt, flow, ifindex, verdict, action, clock().now(), c);
    }
    action
}

/// Judges a frame that may hide a RST without showing its flags (a tiny or
/// overlapping fragment, a header past the parser's bounds); counts it by
/// verdict and action, and returns the action.
#[inline(always)]
pub fn judge_unparsed(verdict: Verdict, slot: u32, c: &mut Counters) -> Action {
    let fail_open = Policy::FAIL_OPEN;
    let action = judge::action_for(verdict, policy(slot).unwrap_or(&fail_open));
    bump_slot(c, rst_slot(verdict, action));
    action
}

/// One RST in `every` (0: never), counted on this CPU's RST counter: no
/// helper call on the per-RST path.
#[inline(always)]
fn sampled(c: &Counters, every: u32) -> bool {
    every == 1 || (every > 1 && c.get(Counter::XdpRst).is_multiple_of(u64::from(every)))
}

/// Sends an event to the daemon; counts it as lost when the ring is full.
#[inline(always)]
fn report(
    pkt: &Packet,
    flow: Option<&Flow>,
    ifindex: u32,
    verdict: Verdict,
    action: Action,
    now: u64,
    c: &mut Counters,
) {
    let Some(mut entry) = EVENTS.reserve::<RstEvent>(0) else {
        bump(c, Counter::EventsLost);
        return;
    };
    let e = entry.as_mut_ptr();
    let (expected, window, has_flow) = match flow {
        Some(f) => {
            let (s, r) = f.halves(pkt.sender_is_lo);
            let expected = if r.has(HALF_ACK) { r.ack } else { s.snd_nxt };
            (expected, f.window(!pkt.sender_is_lo), 1)
        }
        None => (0, 0, 0),
    };
    // SAFETY: `e` points at reserved ring-buffer memory of RstEvent's size;
    // every field is written before the submit.
    unsafe {
        (*e).ends = pkt.ends;
        (*e).sender_is_lo = pkt.sender_is_lo as u8;
        (*e).verdict = verdict as u8;
        (*e).action = action as u8;
        (*e).ttl = pkt.seg.ttl;
        (*e).ifindex = ifindex;
        (*e).seq = pkt.seg.seq;
        (*e).ack = pkt.seg.ack;
        (*e).expected = expected;
        (*e).window = window;
        (*e).tcp_flags = pkt.seg.flags;
        (*e).has_flow = has_flow;
        (*e)._pad = [0; 2];
        (*e).ts_ns = now;
    }
    // No wake-up: the daemon drains the ring on a timer. A wake-up is an
    // irq_work (a self-IPI), which under a flood costs more than the rest
    // of the program, on a VM above all.
    entry.submit(BPF_RB_NO_WAKEUP);
}

/// `bpf_ringbuf_submit` flag: do not wake the consumer.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// The host itself sent a RST (TC egress): its flow is closed. Never
/// judged.
#[inline(always)]
pub fn own_rst(pkt: &Packet) {
    debug_assert!(pkt.seg.has(RST));
    if let Some((flow, _)) = find_flow(&pkt.key) {
        // SAFETY: as in `learn`.
        track::close(unsafe { &mut *flow }, clock());
    }
}
