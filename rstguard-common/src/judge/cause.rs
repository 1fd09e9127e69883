//! Why was this connection reset? The likely cause of a RST, named from
//! the flow's state and the packet: the evidence an operator would
//! otherwise dig out of a capture by hand.
//!
//! The verdict ([`crate::judge`]) says whether a real peer could have sent
//! the RST; the cause says, for one that could, what made it: nobody
//! listening, a peer that had closed, an abort, a middlebox on the way, a
//! forgery from the path. Pure functions: the programs and the host tests
//! run the same code. README ("Why was my connection reset?") documents
//! each cause with the evidence it rests on and how it can be wrong.

use crate::{
    act::Policy,
    clock::{seen, seen_to_secs, Clock, Seen},
    judge::verdict::Verdict,
    parse::{Segment, ACK},
    seq::after,
    state::track::acks_syn,
    state::{
        Flow, FlowState, FLOW_RST_FROM_HI, FLOW_RST_SEEN, HALF_DATA_LAST, HALF_FIN, HALF_SEEN,
    },
};

/// The likely cause of a RST. Named from the side that received it: for a
/// RST this host sent (egress), `peer_closed` means this host had closed.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// No evidence: the flow is not tracked, was seen in one direction
    /// only, or its source is trusted.
    Unknown = 0,
    /// It answers a SYN: nobody listens on the port (or a firewall rejects
    /// the connection).
    Refused = 1,
    /// An exact RST without ACK, answering the receiver's segment: the
    /// sender has no such connection (it closed long ago, rebooted, or its
    /// socket was destroyed: a half-open connection).
    NoSocket = 2,
    /// As `NoSocket`, after the sender's FIN: it had closed, and the
    /// receiver kept writing.
    PeerClosed = 3,
    /// An exact RST with ACK from an established peer: it aborted (closed
    /// with data unread, `SO_LINGER` 0, an application abort).
    Abort = 4,
    /// Exact, from another distance than the peer's own segments, on a
    /// flow idle longer than the threshold: a NAT, load balancer or
    /// firewall on the way forgot the flow and answers for the peer.
    IdleExpired = 5,
    /// Exact, from another distance than the peer's own segments: a hop on
    /// the way sent it (a firewall's reject, a proxy), or an injector.
    Middlebox = 6,
    /// Forged on the path: the real peer went on sending after it, or a
    /// second RST followed from another distance with another sequence
    /// number (Weaver, Sommer and Paxson, NDSS 2009).
    Injected = 7,
    /// A sequence number no real peer would use: a blind guess
    /// (`in_window`, `out_of_window`, `rate_limited`, `bad_syn_ack`).
    Blind = 8,
    /// Hidden from the parser: in a fragment, or behind more headers than
    /// it follows.
    Hidden = 9,
    /// At a flow in TIME_WAIT: a late RST, or an attempt at RFC 1337's
    /// TIME_WAIT assassination.
    TimeWait = 10,
}

impl Cause {
    pub const COUNT: usize = 11;
    pub const ALL: [Cause; Cause::COUNT] = [
        Cause::Unknown,
        Cause::Refused,
        Cause::NoSocket,
        Cause::PeerClosed,
        Cause::Abort,
        Cause::IdleExpired,
        Cause::Middlebox,
        Cause::Injected,
        Cause::Blind,
        Cause::Hidden,
        Cause::TimeWait,
    ];

    /// From the raw byte in an event; unknown values read as `Unknown`.
    pub const fn from_raw(v: u8) -> Cause {
        if (v as usize) < Cause::COUNT {
            Cause::ALL[v as usize]
        } else {
            Cause::Unknown
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Cause::Unknown => "unknown",
            Cause::Refused => "refused",
            Cause::NoSocket => "no_socket",
            Cause::PeerClosed => "peer_closed",
            Cause::Abort => "abort",
            Cause::IdleExpired => "idle_expired",
            Cause::Middlebox => "middlebox",
            Cause::Injected => "injected",
            Cause::Blind => "blind",
            Cause::Hidden => "hidden",
            Cause::TimeWait => "time_wait",
        }
    }
}

/// Where the RST went: into this host or through it (judged at XDP), or
/// out of this host, which sent it (seen at TC egress, never judged).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress = 0,
    Egress = 1,
}

impl Direction {
    pub const COUNT: usize = 2;
    pub const ALL: [Direction; Direction::COUNT] = [Direction::Ingress, Direction::Egress];

    pub const fn from_raw(v: u8) -> Direction {
        if v == Direction::Egress as u8 {
            Direction::Egress
        } else {
            Direction::Ingress
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// What the cause of a RST rests on, read from the flow (or, in socket
/// mode, the socket) beside the RST before the judgement changes anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The RST carries an ACK.
    pub rst_ack: bool,
    /// The RST's TTL / hop limit.
    pub rst_ttl: u8,
    /// It answers the receiver's SYN (the receiver sent a SYN and nothing
    /// came back yet; the RST acknowledges it).
    pub answers_syn: bool,
    /// The sender had sent a FIN.
    pub sender_closed: bool,
    /// The TTL / hop limit of the sender's own segments (0: none seen).
    pub peer_ttl: u8,
    /// When the flow last carried a segment (see [`Flow::seen`]).
    pub last_seen: Seen,
    /// The latest data on the flow went from the receiver to the sender:
    /// it may lie unread there.
    pub data_unread: bool,
    /// A RST from the same sender already passed (or was dropped for its
    /// TTL) on this flow...
    pub after_rst: bool,
    /// ...with this TTL / hop limit.
    pub first_rst_ttl: u8,
    /// A RST (from either side) is on record: `last_seen` holds its TTL,
    /// not a time (see [`note_rst`]).
    pub rst_on_record: bool,
}

impl Facts {
    /// The facts about a RST from the `sender_is_lo` side of `flow`.
    #[inline(always)]
    pub fn of_flow(flow: &Flow, sender_is_lo: bool, rst: &Segment) -> Facts {
        let (s, r) = flow.halves(sender_is_lo);
        Facts {
            rst_ack: rst.has(ACK),
            rst_ttl: rst.ttl,
            answers_syn: flow.state() == FlowState::SynSent
                && flow.is_initiator(!sender_is_lo)
                && rst.has(ACK)
                && acks_syn(r, rst.ack),
            sender_closed: s.has(HALF_FIN),
            peer_ttl: if s.has(HALF_SEEN) { s.ttl } else { 0 },
            last_seen: flow.seen,
            data_unread: r.has(HALF_DATA_LAST),
            after_rst: flow.has(FLOW_RST_SEEN) && flow.has(FLOW_RST_FROM_HI) != sender_is_lo,
            first_rst_ttl: flow.seen as u8,
            rst_on_record: flow.has(FLOW_RST_SEEN),
        }
    }

    /// What a RST this host sends says by itself, where no flow is
    /// tracked: Linux answers a SYN with RST|ACK and sequence number 0, a
    /// segment for no socket (or for a socket that stopped reading) with a
    /// RST without ACK, and aborts with RST|ACK from SND.NXT.
    #[inline(always)]
    pub fn of_own_rst(rst: &Segment) -> Facts {
        Facts {
            rst_ack: rst.has(ACK),
            rst_ttl: rst.ttl,
            answers_syn: rst.has(ACK) && rst.seq == 0,
            ..Facts::default()
        }
    }
}

/// The thresholds the causes use (from the policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// How far a RST's TTL may be from the peer's before it comes from
    /// another distance.
    pub ttl_slack: u8,
    /// Idle time, in seconds, after which a middlebox may have forgotten
    /// the flow.
    pub idle_secs: u16,
}

impl Thresholds {
    #[inline(always)]
    pub const fn of(policy: &Policy) -> Thresholds {
        Thresholds {
            ttl_slack: policy.ttl_slack,
            idle_secs: policy.idle_after_secs,
        }
    }
}

impl Facts {
    /// How long the flow had carried nothing at `now`, in [`Seen`] units
    /// (0 while a RST is on record: then nobody asks).
    #[inline(always)]
    pub fn idle(&self, now: impl Clock) -> Seen {
        if self.rst_on_record {
            return 0;
        }
        seen(now.now()).wrapping_sub(self.last_seen)
    }
}

/// Whether a TTL differs from the peer's learned one by more than `slack`
/// (never when the peer's is unknown).
#[inline(always)]
pub const fn ttl_differs(peer_ttl: u8, ttl: u8, slack: u8) -> bool {
    peer_ttl != 0 && peer_ttl.abs_diff(ttl) > slack
}

/// The cause of a RST that arrived (XDP), given its verdict. The clock is
/// read only for an exact RST from another distance.
#[inline(always)]
pub fn of_rst(verdict: Verdict, f: &Facts, t: &Thresholds, now: impl Clock) -> Cause {
    match verdict {
        Verdict::NoFlow | Verdict::OneSided | Verdict::Trusted => Cause::Unknown,
        Verdict::TimeWait => Cause::TimeWait,
        Verdict::TinyFragment
        | Verdict::FragmentOverlap
        | Verdict::FragmentedRst
        | Verdict::HeaderUnreachable => Cause::Hidden,
        Verdict::InWindow | Verdict::OutOfWindow | Verdict::RateLimited | Verdict::BadSynAck => {
            // After a RST from the same sender from another distance,
            // another one with another sequence number, from another
            // distance again: an injector's burst (a real stack answers
            // every later segment from RCV.NXT, exactly, from its own
            // distance). After the peer's own RST, a blind guess stays one.
            if f.after_rst
                && ttl_differs(f.peer_ttl, f.first_rst_ttl, t.ttl_slack)
                && ttl_differs(f.peer_ttl, f.rst_ttl, t.ttl_slack)
            {
                Cause::Injected
            } else {
                Cause::Blind
            }
        }
        Verdict::Exact | Verdict::TtlMismatch => {
            if ttl_differs(f.peer_ttl, f.rst_ttl, t.ttl_slack) {
                if seen_to_secs(f.idle(now)) >= t.idle_secs as u32 {
                    Cause::IdleExpired
                } else {
                    Cause::Middlebox
                }
            } else {
                of_exact(f)
            }
        }
    }
}

/// The cause of a RST this host sent (TC egress): authentic, so its
/// sequence number and distance need no judging.
#[inline(always)]
pub fn of_own_rst(f: &Facts) -> Cause {
    of_exact(f)
}

/// An exact RST from the peer's own distance.
#[inline(always)]
const fn of_exact(f: &Facts) -> Cause {
    if f.answers_syn {
        Cause::Refused
    } else if !f.rst_ack {
        // Linux answers a segment it has no socket for, and data arriving
        // at a socket that stopped reading, with the segment's ACK as its
        // sequence number and no ACK of its own.
        if f.sender_closed {
            Cause::PeerClosed
        } else {
            Cause::NoSocket
        }
    } else {
        Cause::Abort
    }
}

/// Whether `seg`, from the `sender_is_lo` side of `flow`, proves the RST
/// that side supposedly sent forged: it carries new data (past everything
/// the side had sent when the RST came, which a stack that had reset the
/// connection never sends) from the side's own distance. Read before the
/// segment is learned.
#[inline(always)]
pub fn proves_injection(flow: &Flow, sender_is_lo: bool, seg: &Segment, ttl_slack: u8) -> bool {
    if !flow.has(FLOW_RST_SEEN) || flow.has(FLOW_RST_FROM_HI) == sender_is_lo {
        return false;
    }
    let (s, _) = flow.halves(sender_is_lo);
    seg.payload_len != 0
        && after(seg.end_seq(), s.max_end)
        && !ttl_differs(s.ttl, seg.ttl, ttl_slack)
}

/// Records that a RST from the `sender_is_lo` side, with TTL / hop limit
/// `ttl`, passed (or was dropped for its distance): the evidence
/// [`proves_injection`] and a second RST are weighed against. The TTL
/// takes the place of `seen` until [`clear_rst`] (the flow is closed, or
/// its RST suspect: how long it idled matters no more).
#[inline(always)]
pub fn note_rst(flow: &mut Flow, sender_is_lo: bool, ttl: u8) {
    flow.seen = ttl as u16;
    flow.flags |= FLOW_RST_SEEN;
    if sender_is_lo {
        flow.flags &= !FLOW_RST_FROM_HI;
    } else {
        flow.flags |= FLOW_RST_FROM_HI;
    }
}

/// Clears the record of [`note_rst`] once the injection is proven (it is
/// counted once); the flow carried a segment at `now`.
#[inline(always)]
pub fn clear_rst(flow: &mut Flow, now: Seen) {
    flow.flags &= !(FLOW_RST_SEEN | FLOW_RST_FROM_HI);
    flow.seen = now;
}

/// `RstEvent::evidence` bits: what the cause rests on, for the one-line
/// explanation `rstguard resets` prints.
pub const EVIDENCE_TTL_KNOWN: u8 = 1 << 0;
/// The latest data went to the sender and may lie unread there.
pub const EVIDENCE_DATA_UNREAD: u8 = 1 << 1;
/// The sender had sent a FIN.
pub const EVIDENCE_SENDER_CLOSED: u8 = 1 << 2;
/// A RST from the same sender came before.
pub const EVIDENCE_AFTER_RST: u8 = 1 << 3;
/// Judged from the socket (socket mode), not the flow table.
pub const EVIDENCE_SOCKET: u8 = 1 << 4;
/// Found after the RST: the peer's data went on (a late event).
pub const EVIDENCE_DATA_AFTER: u8 = 1 << 5;

impl Facts {
    /// The evidence bits of these facts.
    #[inline(always)]
    pub const fn evidence(&self) -> u8 {
        (if self.peer_ttl != 0 {
            EVIDENCE_TTL_KNOWN
        } else {
            0
        }) | (if self.data_unread {
            EVIDENCE_DATA_UNREAD
        } else {
            0
        }) | (if self.sender_closed {
            EVIDENCE_SENDER_CLOSED
        } else {
            0
        }) | (if self.after_rst {
            EVIDENCE_AFTER_RST
        } else {
            0
        })
    }
}
