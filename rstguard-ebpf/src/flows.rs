//! What both hooks do with a parsed TCP segment: learn from it, or (at XDP
//! only) judge it when it is a RST.
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "passing keys and flows by value would copy them onto the 512-byte BPF stack"
)]

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use rstguard_common::{
    cause::{self, Facts, EVIDENCE_DATA_AFTER},
    clock::{seen, Clock, Lazy},
    counter::{cause_slot, rst_slot},
    flow::{FLOW_RST_SEEN, HALF_ACK},
    judge::{self, Judgement},
    policy::POLICY_HAS_TRUSTED,
    tcp::RST,
    track::{self, Origin, Step},
    Action, Cause, Counter, Counters, Direction, Flow, FlowKey, FlowState, Policy, RstEvent,
    Verdict,
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
    let j = judge::judge(flow, pkt.sender_is_lo, &pkt.seg, trusted, policy, clock());
    bump_slot(c, rst_slot(j.verdict, j.action));
    bump_slot(c, cause_slot(Direction::Ingress, j.cause));
    // Every RST a real peer could have sent is reported (within the event
    // budget): they are what `rstguard resets` explains. Suspicious ones
    // are sampled as the policy says.
    let legitimate = matches!(j.verdict, Verdict::Exact | Verdict::Trusted);
    if (legitimate || sampled(c, policy.event_sample)) && take_event() {
        // SAFETY: as in `learn`.
        let flow = flow_ptr.map(|f| unsafe { &*f });
        report(pkt, flow, ifindex, &j, Direction::Ingress, c);
    }
    j.action
}

/// Counts and reports a RST proven forged by the data its supposed sender
/// sent after it.
#[inline(always)]
fn injection_proven(pkt: &Packet, flow: &Flow, ifindex: u32, c: &mut Counters) {
    bump_slot(c, cause_slot(Direction::Ingress, Cause::Injected));
    if take_event() {
        let mut facts = Facts::of_flow(flow, pkt.sender_is_lo, &pkt.seg);
        facts.rst_ttl = pkt.seg.ttl;
        let j = Judgement {
            verdict: Verdict::Exact,
            action: Action::Pass,
            cause: Cause::Injected,
            facts,
        };
        report_with(
            pkt,
            Some(flow),
            ifindex,
            &j,
            Direction::Ingress,
            EVIDENCE_DATA_AFTER,
            c,
        );
    }
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

/// Sends an event about a RST to the daemon; counts it as lost when the
/// ring is full.
#[inline(always)]
fn report(
    pkt: &Packet,
    flow: Option<&Flow>,
    ifindex: u32,
    j: &Judgement,
    direction: Direction,
    c: &mut Counters,
) {
    report_with(pkt, flow, ifindex, j, direction, 0, c)
}

#[inline(always)]
fn report_with(
    pkt: &Packet,
    flow: Option<&Flow>,
    ifindex: u32,
    j: &Judgement,
    direction: Direction,
    evidence: u8,
    c: &mut Counters,
) {
    let now = clock().now();
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
        (*e).verdict = j.verdict as u8;
        (*e).action = j.action as u8;
        (*e).cause = j.cause as u8;
        (*e).direction = direction as u8;
        (*e).peer_ttl = j.facts.peer_ttl;
        (*e).evidence = j.facts.evidence() | evidence;
        (*e).idle = if has_flow != 0 { j.facts.idle(now) } else { 0 };
        (*e).socket_state = 0;
        (*e)._pad2 = [0; 3];
        (*e).ttl = pkt.seg.ttl;
        (*e).ifindex = ifindex;
        (*e).seq = pkt.seg.seq;
        (*e).ack = pkt.seg.ack;
        (*e).expected = expected;
        (*e).window = window;
        (*e).tcp_flags = pkt.seg.flags;
        (*e).has_flow = has_flow;
        (*e).ts_ns = now;
    }
    // No wake-up: the daemon drains the ring on a timer. A wake-up is an
    // irq_work (a self-IPI), which under a flood costs more than the rest
    // of the program, on a VM above all.
    entry.submit(BPF_RB_NO_WAKEUP);
}

/// `bpf_ringbuf_submit` flag: do not wake the consumer.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// The host itself sent a RST (TC egress): never judged, but its cause
/// counted and reported, and its flow closed.
#[inline(always)]
pub fn own_rst(pkt: &Packet, ifindex: u32, c: &mut Counters) {
    debug_assert!(pkt.seg.has(RST));
    let found = find_flow(&pkt.key).map(|(f, _)| f);
    // SAFETY: as in `learn`.
    let flow = found.map(|f| unsafe { &mut *f });
    let facts = match &flow {
        Some(f) => Facts::of_flow(f, pkt.sender_is_lo, &pkt.seg),
        None => Facts::of_own_rst(&pkt.seg),
    };
    let j = Judgement {
        verdict: Verdict::Exact,
        action: Action::Pass,
        cause: cause::of_own_rst(&facts),
        facts,
    };
    bump_slot(c, cause_slot(Direction::Egress, j.cause));
    if let Some(flow) = flow {
        track::close(flow, clock());
    }
    if take_event() {
        // SAFETY: as in `learn`.
        let flow = found.map(|f| unsafe { &*f });
        report(pkt, flow, ifindex, &j, Direction::Egress, c);
    }
}
