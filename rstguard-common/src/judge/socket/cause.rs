//! What socket mode keeps beside the kernel's sockets for the causes of
//! RSTs (see `crate::judge::cause`): the peer's distance from its
//! handshake, how long the socket idled, and the RST on record that the
//! peer's later data proves injected.

use super::{tcp_state, Kind, Sock};
use crate::{
    clock::{seen, Clock},
    judge::cause::{of_rst, ttl_differs, Cause, Facts, Thresholds},
    judge::Verdict,
    key::FlowKey,
    parse::{Segment, ACK, SYN},
    seq::after,
};

/// The likely cause of a RST judged against a socket (see
/// `crate::judge::cause`): an exact one from the facts socket mode keeps
/// beside the socket ([`facts`]: the peer's TTL from the handshake, how
/// long the socket idled), as tracking names it from its flow; the rest
/// from the verdict.
#[inline(always)]
pub fn cause(verdict: Verdict, facts: &Facts, t: &Thresholds, now: impl Clock) -> Cause {
    match verdict {
        Verdict::Exact | Verdict::TtlMismatch => of_rst(verdict, facts, t, now),
        Verdict::TimeWait => Cause::TimeWait,
        Verdict::InWindow | Verdict::OutOfWindow | Verdict::BadSynAck | Verdict::RateLimited => {
            Cause::Blind
        }
        Verdict::FragmentedRst
        | Verdict::TinyFragment
        | Verdict::FragmentOverlap
        | Verdict::HeaderUnreachable => Cause::Hidden,
        _ => Cause::Unknown,
    }
}

/// What socket mode keeps of a connection beside the kernel's socket,
/// learned only from the few segments that matter (never on the path of
/// every packet): the peer's TTL / hop limit from its handshake segment,
/// and the RST that passed, to tell an injected one by the data the real
/// peer sends after it. An LRU map, [`PEERS`], keyed like the flow tables.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// The TTL / hop limit of the peer's SYN or SYN-ACK (0: unknown).
    pub ttl: u8,
    /// `PEER_*` bits.
    pub flags: u8,
    /// The TTL / hop limit of the RST on record.
    pub rst_ttl: u8,
    pub _pad: u8,
    /// The sequence number of the RST on record: a peer that reset the
    /// connection sends no data past it.
    pub rst_seq: u32,
    /// The receive window the socket offered when the RST came: data past
    /// it is no segment the real peer could have sent.
    pub rst_wnd: u32,
}

const _: () = assert!(core::mem::size_of::<Peer>() == 12);

/// `Peer::flags`: a RST passed that the socket accepted (it reset the
/// connection); `rst_ttl` and `rst_seq` hold it.
pub const PEER_RST: u8 = 1 << 0;

/// The LRU map of [`Peer`]s.
pub const PEERS: &str = "PEERS";
/// Its capacity: connections whose handshake was seen (an LRU: the oldest
/// are forgotten first, and only their causes grow vaguer).
pub const PEERS_MAX: u32 = 1 << 16;

/// Whether a segment that is not a RST is one whose TTL socket mode learns
/// as the peer's: a SYN that finds only a listener (a new connection: a
/// SYN for a connection that exists teaches nothing, so a forged one
/// cannot overwrite a live peer's TTL), or a SYN-ACK that acknowledges
/// exactly what a SYN_SENT socket sent (which a blind sender cannot know).
#[inline(always)]
pub fn teaches_ttl(sock: Option<&Sock>, seg: &Segment) -> bool {
    let Some(s) = sock else {
        return false;
    };
    if s.kind != Kind::Full || !seg.has(SYN) {
        return false;
    }
    if seg.has(ACK) {
        s.state == tcp_state::SYN_SENT && seg.ack == s.snd_nxt
    } else {
        s.state == tcp_state::LISTEN
    }
}

/// How long a socket that last received an ACK at `rcv_tstamp` (jiffies,
/// 32 bits) has idled at `now_jiffies`, in ns; 0 when `hz` is unknown.
#[inline(always)]
pub fn idle_ns(now_jiffies: u64, rcv_tstamp: u32, hz: u32) -> u64 {
    if hz == 0 {
        return 0;
    }
    let ticks = (now_jiffies as u32).wrapping_sub(rcv_tstamp) as u64;
    ticks * 1_000_000_000 / hz as u64
}

/// The facts a RST's cause rests on in socket mode, from the socket, the
/// [`Peer`] record and how long the socket idled (`idle_ns`, at `now` ns).
#[inline(always)]
pub fn facts(
    sock: Option<&Sock>,
    peer: Option<&Peer>,
    rst: &Segment,
    idle_ns: u64,
    now: u64,
) -> Facts {
    let full = sock.filter(|s| s.kind == Kind::Full);
    let state = full.map_or(0, |s| s.state);
    Facts {
        rst_ack: rst.has(ACK),
        rst_ttl: rst.ttl,
        answers_syn: state == tcp_state::SYN_SENT,
        // The sender had sent its FIN: it closed, the host wrote on.
        sender_closed: matches!(
            state,
            tcp_state::CLOSE_WAIT | tcp_state::LAST_ACK | tcp_state::CLOSING
        ),
        peer_ttl: peer.map_or(0, |p| p.ttl),
        last_seen: seen(now.saturating_sub(idle_ns)),
        data_unread: false,
        after_rst: peer.is_some_and(|p| p.flags & PEER_RST != 0),
        first_rst_ttl: peer.map_or(0, |p| p.rst_ttl),
        rst_on_record: false,
    }
}

/// How many buckets the injection watch has (a power of two): an array of
/// when a RST last went on record for any flow in each bucket, so that a
/// data segment is looked for in [`PEERS`] only when its own bucket saw a
/// RST recently. 8 KiB whatever the number of flows.
pub const WATCH_BUCKETS: u32 = 1 << 10;

/// The injection watch's bucket of `key`: a multiplicative hash of its
/// words. It needs no secret: a collision (one aimed by someone who can
/// make a RST go on record, which takes the right sequence number) costs
/// the other flow one lookup of [`PEERS`] per data segment for the watch's
/// length, and decides nothing.
#[inline(always)]
pub fn watch_bucket(key: &FlowKey) -> u32 {
    let ports = (u32::from(key.lo_port) << 16) | u32::from(key.hi_port);
    (key.addrs[0] ^ key.addrs[1] ^ ports).wrapping_mul(0x9E37_79B1)
        >> (32 - WATCH_BUCKETS.trailing_zeros())
}

/// Records in `peer` the RST that the socket accepts (an exact one that
/// passes), with the receive window the socket offered: the evidence
/// [`proves_injection`] weighs later segments against.
#[inline(always)]
pub fn note_rst(peer: &mut Peer, rst: &Segment, window: u32) {
    peer.flags |= PEER_RST;
    peer.rst_ttl = rst.ttl;
    peer.rst_seq = rst.seq;
    peer.rst_wnd = window;
}

/// Whether `seg`, a segment that is not a RST from the peer of `peer`,
/// proves the RST on record forged: it carries data past that RST's
/// sequence number (a peer that reset sends none; data it sent before the
/// RST and that arrives late ends at or before it), starting inside the
/// window the socket offered then (what the real peer could send: data
/// forged anywhere else proves nothing), from the peer's own distance when
/// that is known.
#[inline(always)]
pub fn proves_injection(peer: &Peer, seg: &Segment, ttl_slack: u8) -> bool {
    peer.flags & PEER_RST != 0
        && seg.payload_len != 0
        && after(seg.end_seq(), peer.rst_seq)
        && seg.seq.wrapping_sub(peer.rst_seq) <= peer.rst_wnd
        && !ttl_differs(peer.ttl, seg.ttl, ttl_slack)
}
