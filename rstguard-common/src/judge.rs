//! Judging a RST, as DESIGN.md ("Judging a RST sent by endpoint S to
//! endpoint R") sets out. Pure arithmetic: the XDP program and the host
//! tests run this same code.

use crate::{
    clock::{units, Clock, Units, UNIT_SHIFT},
    flow::{Flow, FlowState, HALF_ACK, HALF_FIN, HALF_SACK},
    policy::{Level, Policy},
    seq::in_range,
    tcp::{Segment, ACK},
    track::{acks_syn, set_state, timed},
};

/// What rstguard concluded about a RST.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// No entry for the flow.
    NoFlow = 0,
    /// The source is in the trusted prefix list.
    Trusted = 1,
    /// RST at a flow in SYN_SENT without the ACK of the SYN.
    BadSynAck = 2,
    /// RST at a flow in TIME_WAIT (RFC 1337).
    TimeWait = 3,
    /// The sequence number is one a real peer uses.
    Exact = 4,
    /// Inside the receiver's window but not exact.
    InWindow = 5,
    /// Outside the receiver's window.
    OutOfWindow = 6,
    /// In window, but the flow's inexact-RST budget is spent.
    RateLimited = 7,
    /// One endpoint of the flow was never seen (asymmetric routing, or a
    /// flow picked up from one side): no ground to call the RST out of
    /// window. Never dropped.
    OneSided = 8,
    /// The first fragment of a TCP segment without the whole TCP header:
    /// the flags may sit in a later fragment (RFC 1858's tiny fragments).
    /// Judged whatever its flags.
    TinyFragment = 9,
    /// An IPv4 TCP fragment at offset 8 bytes: it overwrites the flags of
    /// the first fragment on reassembly (RFC 3128).
    FragmentOverlap = 10,
    /// A RST in the first fragment of a fragmented segment: no real stack
    /// fragments a RST (40 to 60 bytes; the smallest IPv4 MTU is 68).
    FragmentedRst = 11,
    /// A frame whose TCP header rstguard cannot reach: more VLAN tags or
    /// IPv6 extension headers than the parser follows. It may hide a RST.
    HeaderUnreachable = 12,
}

impl Verdict {
    pub const COUNT: usize = 13;
    pub const ALL: [Verdict; Verdict::COUNT] = [
        Verdict::NoFlow,
        Verdict::Trusted,
        Verdict::BadSynAck,
        Verdict::TimeWait,
        Verdict::Exact,
        Verdict::InWindow,
        Verdict::OutOfWindow,
        Verdict::RateLimited,
        Verdict::OneSided,
        Verdict::TinyFragment,
        Verdict::FragmentOverlap,
        Verdict::FragmentedRst,
        Verdict::HeaderUnreachable,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Verdict::NoFlow => "no_flow",
            Verdict::Trusted => "trusted",
            Verdict::BadSynAck => "bad_syn_ack",
            Verdict::TimeWait => "time_wait",
            Verdict::Exact => "exact",
            Verdict::InWindow => "in_window",
            Verdict::OutOfWindow => "out_of_window",
            Verdict::RateLimited => "rate_limited",
            Verdict::OneSided => "one_sided",
            Verdict::TinyFragment => "tiny_fragment",
            Verdict::FragmentOverlap => "fragment_overlap",
            Verdict::FragmentedRst => "fragmented_rst",
            Verdict::HeaderUnreachable => "header_unreachable",
        }
    }

    /// Verdicts no real peer could have earned (the controller's "invalid").
    pub const fn is_invalid(self) -> bool {
        matches!(
            self,
            Verdict::BadSynAck
                | Verdict::InWindow
                | Verdict::OutOfWindow
                | Verdict::RateLimited
                | Verdict::TinyFragment
                | Verdict::FragmentOverlap
                | Verdict::FragmentedRst
        )
    }
}

/// What happens to the packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Pass = 0,
    Drop = 1,
}

impl Action {
    /// From the raw byte stored in [`Policy`]; unknown values pass.
    #[inline(always)]
    pub const fn from_raw(v: u8) -> Action {
        if v == Action::Drop as u8 {
            Action::Drop
        } else {
            Action::Pass
        }
    }

    /// Past-tense name, as in counters and metrics (`passed`, `dropped`).
    pub const fn past(self) -> &'static str {
        match self {
            Action::Pass => "passed",
            Action::Drop => "dropped",
        }
    }

    /// Imperative name, as in the policy (`pass`, `drop`).
    pub const fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
        }
    }
}

/// Steps 3 to 7: the verdict on a RST that `S` (the `sender_is_lo` side)
/// sent to `R`, from the flow's state alone (no budget, no policy).
#[inline(always)]
pub fn classify(flow: &Flow, sender_is_lo: bool, rst: &Segment) -> Verdict {
    let (s, r) = flow.halves(sender_is_lo);
    let state = flow.state();
    // 3. R sent a SYN and nothing came back yet: only an answer to that SYN
    //    may reset it: an ACK in (ISN, ISN + 1 + Fast Open data], as Linux
    //    checks.
    if state == FlowState::SynSent && flow.is_initiator(!sender_is_lo) {
        return if rst.has(ACK) && acks_syn(r, rst.ack) {
            Verdict::Exact
        } else {
            Verdict::BadSynAck
        };
    }
    // 4.
    if state == FlowState::TimeWait {
        return Verdict::TimeWait;
    }
    // Without both endpoints seen there is no window to judge against.
    if !flow.both_seen() {
        return Verdict::OneSided;
    }
    // 5. What a real peer would use: R's RCV.NXT as R announced it, S's own
    //    next sequence number (where its contiguous data ends, or the end
    //    of everything it sent, which R holds as its highest SACK edge as
    //    soon as it arrives after a gap), S's FIN (RCV.NXT - 1 once R has
    //    it, which may be before R acknowledges it), R's highest SACK edge
    //    as R announced it.
    let seq = rst.seq;
    if (r.has(HALF_ACK) && seq == r.ack)
        || seq == s.snd_nxt
        || seq == s.max_end
        || (s.has(HALF_FIN) && seq == s.max_end.wrapping_sub(1))
        || (r.has(HALF_SACK) && seq == r.sack_right)
    {
        return Verdict::Exact;
    }
    // 6./7. R's receive window starts at what R last acknowledged; when R
    //       never acknowledged anything, at what S sent.
    let base = if r.has(HALF_ACK) { r.ack } else { s.snd_nxt };
    if in_range(seq, base, flow.window(!sender_is_lo)) {
        Verdict::InWindow
    } else {
        Verdict::OutOfWindow
    }
}

/// What a policy does with a verdict.
#[inline(always)]
pub fn action_for(verdict: Verdict, policy: &Policy) -> Action {
    let level = policy.level();
    if level == Level::Monitor {
        return Action::Pass;
    }
    match verdict {
        Verdict::Exact | Verdict::Trusted | Verdict::OneSided => Action::Pass,
        Verdict::NoFlow => Action::from_raw(policy.no_flow),
        Verdict::TimeWait => Action::from_raw(policy.time_wait),
        Verdict::InWindow => {
            if level == Level::Strict {
                Action::Drop
            } else {
                Action::Pass
            }
        }
        Verdict::HeaderUnreachable => {
            if level == Level::Strict {
                Action::Drop
            } else {
                Action::from_raw(policy.unparsed)
            }
        }
        Verdict::OutOfWindow
        | Verdict::BadSynAck
        | Verdict::RateLimited
        | Verdict::TinyFragment
        | Verdict::FragmentOverlap
        | Verdict::FragmentedRst => Action::Drop,
    }
}

/// GCRA token bucket: takes one token if the budget allows. `tat` is the
/// theoretical arrival time (per flow), `interval` the time one token
/// takes to come back, `burst` the bucket's size, all in the flows'
/// wrapping 32-bit [`Units`]. A `tat` is never legitimately further ahead
/// of `now` than a burst; one that looks further ahead is from before the
/// clock wrapped, and counts as long past.
#[inline(always)]
pub fn take_token(tat: &mut Units, now: Units, interval: Units, burst: u32) -> bool {
    if burst == 0 {
        return false;
    }
    let tolerance = interval.saturating_mul(burst - 1);
    let ahead = tat.wrapping_sub(now);
    let t = if ahead != 0 && ahead <= tolerance.saturating_add(interval) {
        *tat
    } else {
        now
    };
    if t.wrapping_sub(now) > tolerance {
        return false;
    }
    *tat = t.wrapping_add(interval);
    true
}

/// A policy's budget interval (ns) in [`Units`], at least one.
#[inline(always)]
const fn interval_units(ns: u64) -> Units {
    let u = ns >> UNIT_SHIFT;
    if u == 0 {
        1
    } else {
        u as Units
    }
}

/// The whole judgement of a RST from `S` (the `sender_is_lo` side of
/// `flow`, when there is one). Updates the flow: the inexact budget, and
/// CLOSED when a RST that the endpoint will accept passes.
#[inline(always)]
pub fn judge(
    flow: Option<&mut Flow>,
    sender_is_lo: bool,
    rst: &Segment,
    trusted: bool,
    policy: &Policy,
    now: impl Clock,
) -> (Verdict, Action) {
    if trusted {
        return (Verdict::Trusted, Action::Pass);
    }
    if rst.first_fragment {
        return (
            Verdict::FragmentedRst,
            action_for(Verdict::FragmentedRst, policy),
        );
    }
    let Some(flow) = flow else {
        return (Verdict::NoFlow, action_for(Verdict::NoFlow, policy));
    };
    let mut verdict = classify(flow, sender_is_lo, rst);
    // The budget caps inexact RSTs at every level that lets them through.
    // (A flow in a timed state keeps its timer for the sweep: its RSTs are
    // judged without a budget.)
    if verdict == Verdict::InWindow
        && policy.level() != Level::Strict
        && !timed(flow.state())
        && !take_token(
            &mut flow.timer,
            units(now.now()),
            interval_units(policy.inexact_interval_ns),
            policy.inexact_burst,
        )
    {
        verdict = Verdict::RateLimited;
    }
    let action = action_for(verdict, policy);
    if action == Action::Pass
        && matches!(verdict, Verdict::Exact | Verdict::TimeWait)
        && flow.state() != FlowState::Closed
    {
        set_state(flow, FlowState::Closed, now);
    }
    (verdict, action)
}
