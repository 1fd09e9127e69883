//! What the programs tell the daemon about each RST ([`RstEvent`], through
//! the ring buffer), and how the daemon keeps it for `rstguard resets`
//! ([`ResetRecord`], in a pinned array).

use crate::key::Endpoints;

/// An event about a RST, sent through the ring buffer: every RST a real
/// peer could have sent, and a sample of the suspicious ones (within the
/// event budget), with its verdict, action and likely cause.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RstEvent {
    pub ends: Endpoints,
    /// Non-zero: the RST's sender is the key's `lo` endpoint.
    pub sender_is_lo: u8,
    /// `Verdict` and `Action` as raw values.
    pub verdict: u8,
    pub action: u8,
    pub ttl: u8,
    pub ifindex: u32,
    pub seq: u32,
    pub ack: u32,
    /// What a real peer would use (the receiver's last ACK, or the
    /// sender's next sequence number; in socket mode what the socket
    /// expects), and the receiver's window; 0 when neither a flow nor a
    /// socket was found (`has_flow` = 0).
    pub expected: u32,
    pub window: u32,
    pub tcp_flags: u8,
    /// 0: no state; 1: judged against a tracked flow; [`RstEvent::FROM_SOCKET`]:
    /// against the local socket, whose TCP state is `socket_state`.
    pub has_flow: u8,
    /// [`crate::Cause`] and [`crate::Direction`] as raw values.
    pub cause: u8,
    pub direction: u8,
    pub ts_ns: u64,
    /// The TTL / hop limit of the sender's own segments (0: unknown).
    pub peer_ttl: u8,
    /// `cause::EVIDENCE_*` bits.
    pub evidence: u8,
    /// How long the flow had been idle, in [`crate::clock::Seen`] units.
    pub idle: u16,
    /// Judged against the local socket (`has_flow` =
    /// [`RstEvent::FROM_SOCKET`]): its TCP state.
    pub socket_state: u8,
    pub _pad2: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<RstEvent>() == 80);

/// One RST as `rstguard resets` lists it: the event, numbered, with the
/// wall-clock time the daemon gave it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetRecord {
    pub event: RstEvent,
    /// 1, 2, ...: which record this is (0: the slot was never written).
    pub number: u64,
    /// When the RST was seen, in ns since the Unix epoch.
    pub unix_ns: u64,
}

const _: () = assert!(core::mem::size_of::<ResetRecord>() == 96);

impl RstEvent {
    /// `has_flow`: judged against the local socket.
    pub const FROM_SOCKET: u8 = 2;
}
