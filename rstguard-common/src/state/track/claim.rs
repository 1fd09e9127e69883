//! Whether a claimed segment fits what the other side makes plausible:
//! the bounds a blind sender cannot meet (netfilter's `tcp_in_window`,
//! pf's `pf_tcp_track_full`), and the two handshake segments a claim may
//! be (a bare SYN, a SYN-ACK that answers the SYN it acknowledges).

use super::{data_end, learn_syn, Ignore, Step, MIN_ACK_WINDOW, SYN_RETRY};
use crate::{
    clock::Units,
    parse::{Segment, ACK},
    seq::{after, before},
    state::{FlowHalf, FlowState, HALF_ACK, HALF_LOCAL, HALF_SEEN},
};

/// Whether a claimed non-SYN segment from `S` fits what `R` makes
/// plausible (netfilter's `tcp_in_window` bounds). Where `R` was never
/// seen there is nothing to check against.
#[inline(always)]
pub(super) fn plausible(
    s: &FlowHalf,
    r: &FlowHalf,
    s_win: u32,
    r_win: u32,
    seg: &Segment,
) -> Result<(), Ignore> {
    if !r.has(HALF_SEEN) {
        return Ok(());
    }
    // The ACK: every segment of a synchronized flow carries one (Linux
    // discards those that do not); not past what R sent, not further
    // behind it than a window of S's.
    if !seg.has(ACK) {
        return Err(Ignore::AckOutOfRange);
    }
    {
        let lag = if s_win > MIN_ACK_WINDOW {
            s_win
        } else {
            MIN_ACK_WINDOW
        };
        if after(seg.ack, r.max_end) || before(seg.ack, r.snd_nxt.wrapping_sub(lag)) {
            return Err(Ignore::AckOutOfRange);
        }
    }
    // The sequence number: inside R's window, which starts at what R
    // acknowledged (or, before R acknowledged anything, at what S is known
    // to have sent). A little slack below it for retransmissions and
    // zero-window probes, as conntrack allows.
    let base = if r.has(HALF_ACK) {
        r.ack
    } else if s.has(HALF_SEEN) {
        s.snd_nxt
    } else {
        return Ok(());
    };
    let slack = if r_win > MIN_ACK_WINDOW {
        r_win
    } else {
        MIN_ACK_WINDOW
    };
    if after(seg.seq, base.wrapping_add(r_win)) || before(data_end(seg), base.wrapping_sub(slack)) {
        return Err(Ignore::SeqOutOfWindow);
    }
    Ok(())
}

/// A bare SYN on an existing flow. `age` tells how long the flow has been
/// in SYN_SENT.
#[inline(always)]
pub(super) fn bare_syn(
    s: &FlowHalf,
    seg: &Segment,
    state: FlowState,
    initiator: bool,
    both_seen: bool,
    local: bool,
    age: impl Fn() -> Units,
) -> Step {
    let starting = matches!(state, FlowState::SynSent | FlowState::SynRecv);
    if starting && initiator && s.snd_nxt == seg.seq.wrapping_add(1) {
        // A retransmission (the SYN-ACK may have been lost).
        return Step::Learned;
    }
    if state == FlowState::SynSent && initiator {
        // Another ISN for a connection attempt. This host's own SYN, or one
        // after the attempt went unanswered past the first retransmission
        // timeout, starts over; one sooner is as likely an attacker's (a
        // real initiator retransmits the same ISN, and a new attempt on the
        // same four-tuple comes only after the old one failed).
        return if local || age() > SYN_RETRY {
            Step::Create
        } else {
            Step::Ignored(Ignore::Syn)
        };
    }
    // Closed or TIME_WAIT: a new incarnation. A flow seen from one side
    // only was never judged, so nothing is lost by starting over. This
    // host's own SYN always starts a new connection.
    if local
        || !both_seen && state != FlowState::SynSent
        || matches!(state, FlowState::Closed | FlowState::TimeWait)
    {
        return Step::Create;
    }
    // An open flow: Linux answers such a SYN with a challenge ACK, and a
    // real new incarnation then resets the old flow with an exact RST.
    Step::Ignored(Ignore::Syn)
}

/// A SYN-ACK on an existing flow.
#[inline(always)]
pub(super) fn syn_ack(
    s: &mut FlowHalf,
    r: &mut FlowHalf,
    seg: &Segment,
    state: FlowState,
    initiator: bool,
    local: bool,
) -> Step {
    if initiator {
        // A SYN-ACK from the side that sent the first SYN (simultaneous
        // open): nothing rstguard follows. This host's own: a new
        // incarnation.
        return if local {
            Step::Create
        } else {
            Step::Ignored(Ignore::Syn)
        };
    }
    match state {
        FlowState::SynSent => {
            // The answer to the SYN: it acknowledges the ISN, and perhaps
            // Fast Open data ((ISN, ISN + 1 + data], as Linux checks).
            if !acks_syn(r, seg.ack) {
                return if local {
                    Step::Create
                } else {
                    Step::Ignored(Ignore::Syn)
                };
            }
            // What the responder accepted of any Fast Open data.
            r.snd_nxt = seg.ack;
            learn_syn(s, seg);
            if local {
                s.flags |= HALF_LOCAL;
            }
            Step::Learned
        }
        // A retransmitted SYN-ACK.
        FlowState::SynRecv if s.snd_nxt == seg.seq.wrapping_add(1) => Step::Learned,
        // This host answering a SYN with a SYN-ACK on a flow that is not
        // starting: its kernel accepted a new incarnation.
        _ if local => Step::Create,
        _ => Step::Ignored(Ignore::Syn),
    }
}

/// Whether `ack` acknowledges the SYN the initiator `i` sent (ISN + 1, up
/// to any Fast Open data), as Linux's SYN_SENT checks it.
#[inline(always)]
pub fn acks_syn(i: &FlowHalf, ack: u32) -> bool {
    !before(ack, i.snd_nxt) && !after(ack, i.max_end)
}
