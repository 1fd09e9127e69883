//! Learning a flow's sequence state from the segments its endpoints send,
//! believing only what a blind attacker cannot fabricate cheaply.
//!
//! Two kinds of segment reach this code:
//!
//! * [`Origin::Local`]: this host's own segments, seen at TC egress before
//!   they leave (the kernel wrote them). Authentic: learned without doubt.
//! * [`Origin::Claim`]: everything else (XDP ingress on any interface, and
//!   segments the host forwards, seen again at TC egress). Anything there
//!   may be forged, so a claim teaches only when it fits what the other
//!   side makes plausible, with the bounds of netfilter's `tcp_in_window`
//!   (`nf_conntrack_proto_tcp.c`) and pf's `pf_tcp_track_full`:
//!   - its ACK may not acknowledge what the other side never sent
//!     (`max_end`), nor lag what it sent by more than a window;
//!   - its sequence number must lie inside the receiver's window;
//!   - data advances the sender's `snd_nxt` (an exact value) only where it
//!     overlaps what is already known: never across a gap. A forgery must
//!     land its bytes across the receiver's real RCV.NXT (with nothing in
//!     flight) with an acceptable ACK: the receiver itself would then take
//!     it as data, and its RCV.NXT really moves;
//!   - a SYN on an open flow does not restart it (the real endpoint answers
//!     it with a challenge ACK, and a real new incarnation then resets the
//!     old flow with an exact RST); a SYN-ACK counts only as the answer to
//!     the SYN it acknowledges.
//!
//! A claim that does not fit teaches nothing, and says why ([`Ignore`]), so
//! that the attempt is counted. The segment itself always passes: rstguard
//! drops only RSTs.

use crate::{
    clock::{seen, units, Clock, Seen, Units},
    parse::{Segment, ACK, FIN, SYN},
    seq::{after, before},
    state::{
        Flow, FlowHalf, FlowState, FLOW_HI_INITIATOR, FLOW_PICKED_UP, FLOW_RST_SEEN,
        FLOW_STATE_SHIFT, FLOW_WOKE, HALF_ACK, HALF_DATA_LAST, HALF_FIN, HALF_LOCAL, HALF_SACK,
        HALF_SEEN, HALF_SYN, HALF_SYN_WIN, WSCALE_NONE, WSCALE_UNKNOWN,
    },
};

mod claim;

pub use claim::acks_syn;
use claim::{bare_syn, plausible, syn_ack};

/// How much an ACK may lag what the other side sent when its window is
/// smaller (netfilter's `MAXACKWINCONST`).
pub const MIN_ACK_WINDOW: u32 = 66_000;

/// Linux's initial retransmission timeout for a SYN (1 s): a connection
/// attempt on the same four-tuple with another ISN before it is suspect.
pub const SYN_RETRY_NS: u64 = 1_000_000_000;
const SYN_RETRY: Units = units(SYN_RETRY_NS);

/// Where a segment was seen, which decides how far it is believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This host's own segment, at TC egress: authentic.
    Local,
    /// Anything else: what it claims must fit the flow.
    Claim,
}

/// Why a segment taught nothing. Counted, and counted toward auto mode's
/// escalation: these are what forged segments look like.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignore {
    /// A SYN or SYN-ACK that does not fit the flow's state (a SYN on an
    /// open flow, a SYN-ACK that answers no SYN seen).
    Syn = 0,
    /// The sequence number lies outside the receiver's window.
    SeqOutOfWindow = 1,
    /// The ACK acknowledges what the other side never sent, or lags far
    /// behind it.
    AckOutOfRange = 2,
    /// A FIN that is not contiguous with the sender's known data: held until
    /// the gap is filled or acknowledged.
    FinOutOfOrder = 3,
    /// A segment arriving from outside that claims to come from this host.
    LocalSpoof = 4,
}

impl Ignore {
    pub const COUNT: usize = 5;
    pub const ALL: [Ignore; Ignore::COUNT] = [
        Ignore::Syn,
        Ignore::SeqOutOfWindow,
        Ignore::AckOutOfRange,
        Ignore::FinOutOfOrder,
        Ignore::LocalSpoof,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Ignore::Syn => "syn",
            Ignore::SeqOutOfWindow => "seq_out_of_window",
            Ignore::AckOutOfRange => "ack_out_of_range",
            Ignore::FinOutOfOrder => "fin_out_of_order",
            Ignore::LocalSpoof => "local_spoof",
        }
    }
}

/// What [`learn`] did with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Learned from it (or it held nothing new).
    Learned,
    /// Taught nothing, for this reason.
    Ignored(Ignore),
    /// It starts a flow, or a new incarnation of one: the caller builds the
    /// flow afresh from it with [`init`] (replacing any entry).
    Create,
    /// No flow, and it starts none (pickup is off).
    Untracked,
}

/// Learns from a non-RST segment from the `sender_is_lo` side, seen as
/// `origin`, on `flow` (None: not tracked). A flow starts on a bare SYN,
/// on this host's own SYN-ACK, or, when `pickup` says so (asked only
/// then), on anything.
#[inline(always)]
pub fn learn(
    flow: Option<&mut Flow>,
    sender_is_lo: bool,
    seg: &Segment,
    origin: Origin,
    pickup: impl FnOnce() -> bool,
    now: impl Clock,
) -> Step {
    match flow {
        Some(flow) => update(flow, sender_is_lo, seg, origin, now),
        None if (seg.has(SYN) && (!seg.has(ACK) || origin == Origin::Local)) || pickup() => {
            Step::Create
        }
        None => Step::Untracked,
    }
}

/// The shift that applies to the windows `S` advertises in non-SYN
/// segments. Scaling is in force only when both SYNs carried the option;
/// when either SYN lacked it, none. A SYN never seen counts as the largest
/// scale (14, [`WSCALE_UNKNOWN`]), the liberal bound conntrack takes on
/// pickup.
#[inline(always)]
pub const fn window_shift(s_wscale: u8, r_wscale: u8) -> u8 {
    if s_wscale == WSCALE_NONE || r_wscale == WSCALE_NONE {
        0
    } else {
        s_wscale
    }
}

/// Builds `flow` afresh from a segment that starts it (in place: the eBPF
/// program fills a per-CPU scratch slot, not its 512-byte stack):
///
/// * a bare SYN: SYN_SENT, the sender is the initiator;
/// * a SYN-ACK: SYN_RECV, the sender is the responder, and its ACK tells
///   the initiator's ISN (a SYN-ACK of this host's own answering a SYN that
///   arrived on a stale entry: the kernel accepted a new incarnation; or a
///   SYN-ACK picked up on a path that never saw the SYN);
/// * anything else (pickup): ESTABLISHED, both window scales unknown.
#[inline(always)]
pub fn init(flow: &mut Flow, seg: &Segment, sender_is_lo: bool, origin: Origin, now: impl Clock) {
    let local = if origin == Origin::Local {
        HALF_LOCAL
    } else {
        0
    };
    let (state, flags) = if !seg.has(SYN) {
        (FlowState::Established, FLOW_PICKED_UP)
    } else if seg.has(ACK) {
        (FlowState::SynRecv, initiator_flag(!sender_is_lo))
    } else {
        (FlowState::SynSent, initiator_flag(sender_is_lo))
    };
    let t = now.now();
    *flow = Flow {
        flags: flags | (state as u8) << FLOW_STATE_SHIFT,
        seen: seen(t),
        ..Flow::default()
    };
    start_timer(flow, t);
    let (s, r) = flow.halves_mut(sender_is_lo);
    if !seg.has(SYN) {
        anchor(s, seg);
        learn_ack(s, r, seg);
        s.flags |= local;
        flow.set_wscale(sender_is_lo, WSCALE_UNKNOWN);
        flow.set_wscale(!sender_is_lo, WSCALE_UNKNOWN);
        return;
    }
    learn_syn(s, seg);
    s.flags |= local;
    if seg.has(ACK) {
        // The SYN-ACK acknowledges the initiator's ISN (and any Fast Open
        // data it accepted).
        r.snd_nxt = seg.ack;
        r.max_end = seg.ack;
        r.flags = HALF_SYN | if local != 0 { HALF_SEEN } else { 0 };
    }
    flow.set_wscale(sender_is_lo, seg.wscale);
    // The responder sends a window scale only when the initiator's SYN
    // offered one: a SYN-ACK without it turns scaling off both ways.
    let other = if seg.has(ACK) && seg.wscale == WSCALE_NONE {
        WSCALE_NONE
    } else {
        WSCALE_UNKNOWN
    };
    flow.set_wscale(!sender_is_lo, other);
}

/// A flow's timer on entering a state: the time, in the states whose age
/// matters (SYN_SENT, CLOSED, TIME_WAIT); a full inexact-RST budget in the
/// others.
#[inline(always)]
fn start_timer(flow: &mut Flow, now: impl Clock) {
    flow.timer = if timed(flow.state()) {
        units(now.now())
    } else {
        0
    };
}

/// The states whose [`Flow::timer`] holds when they began.
#[inline(always)]
pub const fn timed(state: FlowState) -> bool {
    matches!(
        state,
        FlowState::SynSent | FlowState::Closed | FlowState::TimeWait
    )
}

#[inline(always)]
const fn initiator_flag(initiator_is_lo: bool) -> u8 {
    if initiator_is_lo {
        0
    } else {
        FLOW_HI_INITIATOR
    }
}

/// [`init`] into a new value (host tests).
pub fn new_flow(seg: &Segment, sender_is_lo: bool, origin: Origin, now: u64) -> Flow {
    let mut flow = Flow::default();
    init(&mut flow, seg, sender_is_lo, origin, now);
    flow
}

/// A SYN's own fields (its window scale the caller keeps). The window in
/// a SYN is never scaled.
#[inline(always)]
fn learn_syn(s: &mut FlowHalf, syn: &Segment) {
    s.snd_nxt = syn.seq.wrapping_add(1);
    s.max_end = if syn.first_fragment {
        s.snd_nxt
    } else {
        syn.end_seq()
    };
    s.win = syn.win;
    s.ttl = syn.ttl;
    s.flags = HALF_SEEN | HALF_SYN | HALF_SYN_WIN;
    if syn.has(ACK) {
        s.ack = syn.ack;
        s.flags |= HALF_ACK;
    }
}

/// The first segment seen from an endpoint mid-stream: where it ends is
/// all that is known of its data.
#[inline(always)]
fn anchor(s: &mut FlowHalf, seg: &Segment) {
    let end = data_end(seg);
    s.snd_nxt = end;
    s.max_end = end;
    if seg.has(FIN) && !seg.first_fragment {
        s.flags |= HALF_FIN;
    }
    s.ttl = seg.ttl;
    s.flags |= HALF_SEEN;
}

/// Where the segment's data ends; for a first fragment (length unknown),
/// where it starts.
#[inline(always)]
fn data_end(seg: &Segment) -> u32 {
    if seg.first_fragment {
        seg.seq
    } else {
        seg.end_seq()
    }
}

/// `S` acknowledges `seg.ack`: its own ACK and window, and, since what it
/// acknowledges it has received in order, `R`'s data up to there.
#[inline(always)]
fn learn_ack(s: &mut FlowHalf, r: &mut FlowHalf, seg: &Segment) {
    if !seg.has(ACK) {
        return;
    }
    if !s.has(HALF_ACK) || after(seg.ack, s.ack) {
        s.ack = seg.ack;
    }
    s.flags = (s.flags | HALF_ACK) & !HALF_SYN_WIN;
    s.win = seg.win;
    if r.has(HALF_SEEN) && after(seg.ack, r.snd_nxt) {
        r.snd_nxt = seg.ack;
        if after(seg.ack, r.max_end) {
            r.max_end = seg.ack;
        }
    }
}

/// [`learn`] on a tracked flow.
#[inline(always)]
fn update(
    flow: &mut Flow,
    sender_is_lo: bool,
    seg: &Segment,
    origin: Origin,
    now: impl Clock,
) -> Step {
    let state = flow.state();
    let initiator = flow.is_initiator(sender_is_lo);
    let both_seen = flow.both_seen();
    let picked_up = flow.has(FLOW_PICKED_UP);
    let timer = flow.timer;
    // The windows the claim is checked against, before the halves are
    // borrowed.
    let s_win = flow.window(sender_is_lo);
    let r_win = flow.window(!sender_is_lo);
    let (s, r) = flow.halves_mut(sender_is_lo);
    let local = origin == Origin::Local;

    if !local && s.has(HALF_LOCAL) {
        return Step::Ignored(Ignore::LocalSpoof);
    }
    if seg.has(SYN) {
        let step = if seg.has(ACK) {
            syn_ack(s, r, seg, state, initiator, local)
        } else {
            bare_syn(s, seg, state, initiator, both_seen, local, || {
                units(now.now()).wrapping_sub(timer)
            })
        };
        if step == Step::Learned && state == FlowState::SynSent && !initiator && seg.has(ACK) {
            flow.set_wscale(sender_is_lo, seg.wscale);
            if seg.wscale == WSCALE_NONE {
                flow.set_wscale(!sender_is_lo, WSCALE_NONE);
            }
            set_state(flow, FlowState::SynRecv, now);
        }
        return step;
    }

    if !local {
        if let Err(why) = plausible(s, r, s_win, r_win, seg) {
            // An endpoint never seen that does not fit a flow picked up
            // from the other side alone: that pickup may have come from a
            // forgery, and no RST on it was judged yet (one-sided). Start
            // over from this segment rather than hold on to it.
            if picked_up && !both_seen && !s.has(HALF_SEEN) {
                return Step::Create;
            }
            return Step::Ignored(why);
        }
    }

    let mut step = Step::Learned;
    if !s.has(HALF_SEEN) {
        anchor(s, seg);
    } else if !seg.first_fragment {
        let end = seg.end_seq();
        // Contiguous: it overlaps the sender's known end (a retransmission
        // may start anywhere before it), never starts after it. A blind
        // forgery must land within one segment's length below that point,
        // and carry an acceptable ACK: the receiver would take it as data
        // too.
        if (local || !after(seg.seq, s.snd_nxt)) && after(end, s.snd_nxt) {
            s.snd_nxt = end;
        }
        // Only data (or a FIN) shows where the sender's bytes end: a bare
        // ACK's sequence number may lie past data lost on the way here.
        if end != seg.seq && after(end, s.max_end) {
            // Data past a FIN: that FIN was not the end (a forgery, or a
            // reordering we cannot resolve). Forget it.
            s.flags &= !HALF_FIN;
            s.max_end = end;
        }
        if seg.has(FIN) {
            if end == s.max_end {
                s.flags |= HALF_FIN;
            }
            if !local && s.snd_nxt != end {
                step = Step::Ignored(Ignore::FinOutOfOrder);
            }
        }
    }
    learn_ack(s, r, seg);
    learn_sack(s, r, seg, local);
    s.ttl = seg.ttl;
    s.flags |= HALF_SEEN;
    if seg.payload_len != 0 && !seg.first_fragment {
        s.flags |= HALF_DATA_LAST;
        r.flags &= !HALF_DATA_LAST;
    }

    let t = now.now();
    touch(flow, seen(t));
    let next = next_state(flow, state, initiator, seg);
    if next != state {
        set_state(flow, next, t);
    }
    step
}

/// A gap this long (in [`Seen`] units, over 2 s) wakes a flow: see
/// [`touch`].
pub const IDLE_WAKE: Seen = 2;

/// Records that the flow carried a segment at `now`. The first segment
/// after a gap of [`IDLE_WAKE`] or more leaves `seen` where it was (and
/// sets `FLOW_WOKE`): a RST answering it (a NAT that forgot the flow)
/// then sees the whole gap. The next segment moves it on.
#[inline(always)]
pub fn touch(flow: &mut Flow, now: Seen) {
    if flow.has(FLOW_RST_SEEN) {
        // `seen` holds the TTL of the RST on record (see `cause::note_rst`).
        return;
    }
    if now.wrapping_sub(flow.seen) >= IDLE_WAKE && !flow.has(FLOW_WOKE) {
        flow.flags |= FLOW_WOKE;
    } else {
        flow.flags &= !FLOW_WOKE;
        flow.seen = now;
    }
}

/// SACK: the right edge of the highest block in the sender's latest
/// segment; a claimed block must lie inside what the receiver sent.
#[inline(always)]
fn learn_sack(s: &mut FlowHalf, r: &FlowHalf, seg: &Segment, local: bool) {
    let plausible = local
        || (r.has(HALF_SEEN)
            && !after(seg.sack_right, r.max_end)
            && after(seg.sack_right, seg.ack));
    if seg.has_sack && seg.has(ACK) && plausible {
        s.sack_right = seg.sack_right;
        s.flags |= HALF_SACK;
    } else {
        s.flags &= !HALF_SACK;
    }
}

#[inline(always)]
pub fn set_state(flow: &mut Flow, state: FlowState, now: impl Clock) {
    flow.put_state(state);
    start_timer(flow, now);
}

#[inline(always)]
fn next_state(flow: &Flow, state: FlowState, initiator: bool, seg: &Segment) -> FlowState {
    let fin = flow.lo.fin_confirmed() || flow.hi.fin_confirmed();
    match state {
        // The initiator acknowledges the SYN-ACK (or, where the SYN-ACK
        // took another path, sends its first ACK).
        FlowState::SynSent | FlowState::SynRecv if initiator && seg.has(ACK) && !fin => {
            FlowState::Established
        }
        FlowState::SynRecv | FlowState::Established if fin => FlowState::FinSeen,
        FlowState::FinSeen if both_fins_acked(flow) => FlowState::TimeWait,
        other => other,
    }
}

/// Both endpoints sent a confirmed FIN and each acknowledged the other's.
#[inline(always)]
fn both_fins_acked(flow: &Flow) -> bool {
    let (lo, hi) = (&flow.lo, &flow.hi);
    lo.fin_confirmed()
        && hi.fin_confirmed()
        && lo.has(HALF_ACK)
        && hi.has(HALF_ACK)
        && !before(lo.ack, hi.max_end)
        && !before(hi.ack, lo.max_end)
}

/// The host itself sent a RST (seen at TC egress): the flow is closed.
#[inline(always)]
pub fn close(flow: &mut Flow, now: impl Clock) {
    if flow.state() != FlowState::Closed {
        set_state(flow, FlowState::Closed, now);
    }
}
