//! Judging a RST, as DESIGN.md ("Judging a RST sent by endpoint S to
//! endpoint R") sets out. Pure arithmetic: the XDP program and the host
//! tests run this same code.

pub mod cause;
pub mod socket;
pub mod verdict;

use crate::{
    act::{Action, Level, Policy},
    clock::{units, Clock, Units, UNIT_SHIFT},
    judge::cause::{note_rst, of_rst, ttl_differs, Cause, Facts, Thresholds},
    parse::{Segment, ACK},
    seq::in_range,
    state::track::{acks_syn, set_state, timed},
    state::{Flow, FlowState, HALF_ACK, HALF_FIN, HALF_SACK},
};
pub use verdict::Verdict;

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
        | Verdict::TtlMismatch
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

/// What the judgement of one RST came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub action: Action,
    /// Its likely cause.
    pub cause: Cause,
    /// What the cause rests on (default without a flow).
    pub facts: Facts,
}

impl Judgement {
    /// The verdict and the action.
    pub const fn outcome(&self) -> (Verdict, Action) {
        (self.verdict, self.action)
    }

    #[inline(always)]
    fn without_flow(verdict: Verdict, action: Action, cause: Cause) -> Judgement {
        Judgement {
            verdict,
            action,
            cause,
            facts: Facts::default(),
        }
    }
}

/// The whole judgement of a RST from `S` (the `sender_is_lo` side of
/// `flow`, when there is one), and its cause. Updates the flow: the
/// inexact budget, CLOSED when a RST that the endpoint will accept passes,
/// and the record of that RST (see [`crate::judge::cause`]).
#[inline(always)]
pub fn judge(
    flow: Option<&mut Flow>,
    sender_is_lo: bool,
    rst: &Segment,
    trusted: bool,
    policy: &Policy,
    now: impl Clock,
) -> Judgement {
    if trusted {
        return Judgement::without_flow(Verdict::Trusted, Action::Pass, Cause::Unknown);
    }
    if rst.first_fragment {
        let v = Verdict::FragmentedRst;
        return Judgement::without_flow(v, action_for(v, policy), Cause::Hidden);
    }
    let Some(flow) = flow else {
        let v = Verdict::NoFlow;
        return Judgement::without_flow(v, action_for(v, policy), Cause::Unknown);
    };
    let facts = Facts::of_flow(flow, sender_is_lo, rst);
    let thresholds = Thresholds::of(policy);
    let mut verdict = classify(flow, sender_is_lo, rst);
    // `--drop-injected`: the right sequence number from the wrong distance.
    if verdict == Verdict::Exact
        && policy.drop_injected != 0
        && ttl_differs(facts.peer_ttl, rst.ttl, thresholds.ttl_slack)
    {
        verdict = Verdict::TtlMismatch;
    }
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
    let cause = of_rst(verdict, &facts, &thresholds, &now);
    if action == Action::Pass
        && matches!(verdict, Verdict::Exact | Verdict::TimeWait)
        && flow.state() != FlowState::Closed
    {
        set_state(flow, FlowState::Closed, &now);
    }
    if (verdict == Verdict::Exact && action == Action::Pass) || verdict == Verdict::TtlMismatch {
        note_rst(flow, sender_is_lo, rst.ttl);
    }
    Judgement {
        verdict,
        action,
        cause,
        facts,
    }
}
