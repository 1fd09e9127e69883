//! Acting on a verdict: the policy that turns it into an action, and the
//! event that tells the daemon about the RST.

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::bpf_ktime_get_coarse_ns,
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use rstguard_common::{
    judge::Judgement,
    layout::{EVENTS_BYTES, SLOTS},
    Counter, Counters, Direction, Policy, RstEvent,
};

use crate::{count::bump, parse::Packet};

/// The live policy per slot; slot 0 is the default.
#[map]
pub static POLICY: Array<Policy> = Array::with_max_entries(SLOTS, 0);

/// Sampled events about dropped and suspicious RSTs, for the daemon.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Events this CPU may still send until the daemon refills the budget.
#[map]
pub static EVENT_BUDGET: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Takes one event from this CPU's budget, if any is left.
#[inline(always)]
pub fn take_event() -> bool {
    match EVENT_BUDGET.get_ptr_mut(0) {
        // SAFETY: a per-CPU value: this CPU is its only writer (the daemon
        // only ever replaces it whole).
        Some(p) if unsafe { *p } > 0 => {
            unsafe { *p -= 1 };
            true
        }
        _ => false,
    }
}

/// The policy of `slot`. `None` only for an impossible slot: callers then
/// drop nothing and create no pickup flows. (An entry user space never
/// wrote is all zero: monitor, which drops nothing.)
#[inline(always)]
pub fn policy(slot: u32) -> Option<&'static Policy> {
    POLICY.get(slot)
}

/// One RST in `every` (0: never), counted on this CPU's RST counter: no
/// helper call on the per-RST path.
#[inline(always)]
pub fn sampled(c: &Counters, every: u32) -> bool {
    every == 1 || (every > 1 && c.get(Counter::XdpRst).is_multiple_of(u64::from(every)))
}

/// What a RST was judged against, for its event.
#[derive(Clone, Copy, Default)]
pub struct Against {
    /// What a real peer would use, and the receiver's window (0 without
    /// state).
    pub expected: u32,
    pub window: u32,
    /// [`RstEvent::has_flow`]: 0, 1 (a tracked flow) or
    /// [`RstEvent::FROM_SOCKET`].
    pub has_flow: u8,
    /// The local socket's TCP state (socket mode).
    pub socket_state: u8,
    /// `EVIDENCE_*` bits beyond what the judgement's facts say.
    pub evidence: u8,
}

/// Sends an event about a RST to the daemon; counts it as lost when the
/// ring is full.
#[inline(always)]
pub fn report(
    pkt: &Packet,
    ifindex: u32,
    j: &Judgement,
    direction: Direction,
    against: &Against,
    c: &mut Counters,
) {
    // SAFETY: a helper with no arguments and no side effects.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let Some(mut entry) = EVENTS.reserve::<RstEvent>(0) else {
        bump(c, Counter::EventsLost);
        return;
    };
    let e = entry.as_mut_ptr();
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
        (*e).evidence = j.facts.evidence() | against.evidence;
        // Only a flow or a socket keeps when it was last seen.
        (*e).idle = if against.has_flow != 0 {
            j.facts.idle(now)
        } else {
            0
        };
        (*e).socket_state = against.socket_state;
        (*e)._pad2 = [0; 3];
        (*e).ttl = pkt.seg.ttl;
        (*e).ifindex = ifindex;
        (*e).seq = pkt.seg.seq;
        (*e).ack = pkt.seg.ack;
        (*e).expected = against.expected;
        (*e).window = against.window;
        (*e).tcp_flags = pkt.seg.flags;
        (*e).has_flow = against.has_flow;
        (*e).ts_ns = now;
    }
    // No wake-up: the daemon drains the ring on a timer. A wake-up is an
    // irq_work (a self-IPI), which under a flood costs more than the rest
    // of the program, on a VM above all.
    entry.submit(BPF_RB_NO_WAKEUP as u64);
}
