//! Learning a flow's sequence state from the segments its endpoints send.
//! Every non-RST segment, on any hook, updates the sender's half.

use crate::{
    clock::Clock,
    flow::{
        Flow, FlowHalf, FlowState, FLOW_HI_INITIATOR, FLOW_PICKED_UP, HALF_ACK, HALF_FIN,
        HALF_SACK, HALF_SEEN, HALF_SYN, WSCALE_NONE, WSCALE_UNKNOWN,
    },
    seq::{after, before},
    tcp::{Segment, ACK, FIN, MAX_WSCALE, SYN},
};

/// The shift that applies to the windows `S` advertises in non-SYN
/// segments. Scaling is in force only when both SYNs carried the option.
/// When either SYN was never seen, the liberal bound (14) is taken, as
/// conntrack does on pickup; when either SYN lacked the option, none.
#[inline(always)]
pub const fn window_shift(s_wscale: u8, r_wscale: u8) -> u8 {
    if s_wscale <= MAX_WSCALE && r_wscale <= MAX_WSCALE {
        s_wscale
    } else if s_wscale == WSCALE_NONE || r_wscale == WSCALE_NONE {
        0
    } else {
        MAX_WSCALE
    }
}

/// Whether a bare SYN (no ACK) should start the flow afresh: always, except
/// for a retransmission of the SYN that started it.
#[inline(always)]
pub fn syn_restarts(flow: &Flow, sender_is_lo: bool, syn: &Segment) -> bool {
    let (s, _) = flow.halves(sender_is_lo);
    !(flow.state() == FlowState::SynSent
        && flow.is_initiator(sender_is_lo)
        && s.snd_nxt == syn.end_seq())
}

/// Starts `flow` afresh from a bare SYN sent by the `sender_is_lo` side.
/// (In place: the eBPF program fills a per-CPU scratch slot, not its
/// 512-byte stack.)
#[inline(always)]
pub fn init_from_syn(flow: &mut Flow, syn: &Segment, sender_is_lo: bool, now: impl Clock) {
    *flow = Flow {
        state: FlowState::SynSent as u8,
        flags: if sender_is_lo { 0 } else { FLOW_HI_INITIATOR },
        state_since_ns: now.now(),
        ..Flow::default()
    };
    let (s, r) = flow.halves_mut(sender_is_lo);
    r.wscale = WSCALE_UNKNOWN;
    learn_syn(s, syn);
}

/// Starts `flow` from a mid-stream segment (pickup): neither SYN was seen,
/// so both window scales are unknown.
#[inline(always)]
pub fn init_from_pickup(flow: &mut Flow, seg: &Segment, sender_is_lo: bool, now: impl Clock) {
    *flow = Flow {
        state: FlowState::Established as u8,
        flags: FLOW_PICKED_UP,
        ..Flow::default()
    };
    flow.lo.wscale = WSCALE_UNKNOWN;
    flow.hi.wscale = WSCALE_UNKNOWN;
    flow.state_since_ns = now.now();
    update(flow, sender_is_lo, seg, flow.state_since_ns);
}

/// [`init_from_syn`] into a new value.
pub fn new_from_syn(syn: &Segment, sender_is_lo: bool, now: u64) -> Flow {
    let mut flow = Flow::default();
    init_from_syn(&mut flow, syn, sender_is_lo, now);
    flow
}

/// [`init_from_pickup`] into a new value.
pub fn new_from_pickup(seg: &Segment, sender_is_lo: bool, now: u64) -> Flow {
    let mut flow = Flow::default();
    init_from_pickup(&mut flow, seg, sender_is_lo, now);
    flow
}

#[inline(always)]
fn learn_syn(s: &mut FlowHalf, syn: &Segment) {
    s.snd_nxt = syn.end_seq();
    s.wscale = syn.wscale;
    // The window in a SYN is never scaled.
    s.win = syn.win as u32;
    s.ttl = syn.ttl;
    s.flags |= HALF_SEEN | HALF_SYN;
    if syn.has(ACK) {
        s.ack = syn.ack;
        s.flags |= HALF_ACK;
    }
}

/// Updates a tracked flow with a non-RST segment from the `sender_is_lo`
/// side. A bare SYN that [`syn_restarts`] the flow is handled by the caller
/// with [`new_from_syn`].
#[inline(always)]
pub fn update(flow: &mut Flow, sender_is_lo: bool, seg: &Segment, now: impl Clock) {
    let state = flow.state();
    let initiator = flow.is_initiator(sender_is_lo);
    let (s, r) = flow.halves_mut(sender_is_lo);

    if seg.has(SYN) {
        // A SYN-ACK (or a retransmitted SYN).
        learn_syn(s, seg);
        if state == FlowState::SynSent && !initiator && seg.has(ACK) {
            flow.state = FlowState::SynRecv as u8;
            flow.state_since_ns = now.now();
        }
        return;
    }

    let shift = window_shift(s.wscale, r.wscale);
    let end = seg.end_seq();
    if !s.has(HALF_SEEN) || after(end, s.snd_nxt) {
        s.snd_nxt = end;
    }
    if seg.has(ACK) {
        if !s.has(HALF_ACK) || after(seg.ack, s.ack) {
            s.ack = seg.ack;
        }
        s.win = (seg.win as u32) << shift;
        s.flags |= HALF_ACK;
    }
    if seg.has(FIN) {
        s.fin_seq = seg.seq.wrapping_add(seg.payload_len);
        s.flags |= HALF_FIN;
    }
    if seg.has_sack && (!s.has(HALF_SACK) || after(seg.sack_right, s.sack_right)) {
        s.sack_right = seg.sack_right;
        s.flags |= HALF_SACK;
    }
    s.ttl = seg.ttl;
    s.flags |= HALF_SEEN;

    let next = next_state(flow, state, initiator, seg);
    if next != state {
        flow.state = next as u8;
        flow.state_since_ns = now.now();
    }
}

#[inline(always)]
fn next_state(flow: &Flow, state: FlowState, initiator: bool, seg: &Segment) -> FlowState {
    match state {
        FlowState::SynRecv if initiator && seg.has(ACK) && !seg.has(FIN) => FlowState::Established,
        FlowState::SynRecv | FlowState::Established if seg.has(FIN) => FlowState::FinSeen,
        FlowState::FinSeen if both_fins_acked(flow) => FlowState::TimeWait,
        other => other,
    }
}

/// Both endpoints sent a FIN and each acknowledged the other's.
#[inline(always)]
fn both_fins_acked(flow: &Flow) -> bool {
    let (lo, hi) = (&flow.lo, &flow.hi);
    let all = HALF_FIN | HALF_ACK;
    lo.flags & all == all
        && hi.flags & all == all
        && !before(lo.ack, hi.fin_seq.wrapping_add(1))
        && !before(hi.ack, lo.fin_seq.wrapping_add(1))
}

/// The host itself sent a RST (seen at TC egress): the flow is closed.
#[inline(always)]
pub fn close(flow: &mut Flow, now: impl Clock) {
    if flow.state() != FlowState::Closed {
        flow.state = FlowState::Closed as u8;
        flow.state_since_ns = now.now();
    }
}
