//! Socket mode: a RST addressed to this host judged against the local
//! socket the kernel holds for its four-tuple, as the kernel itself will
//! judge it a moment later, with no state of rstguard's own.
//!
//! The XDP program looks the socket up (`bpf_skc_lookup_tcp`), casts it
//! (`bpf_skc_to_tcp_sock` and its TIME_WAIT and request siblings), copies a
//! few fields into a [`Sock`] and calls [`classify`]. What the kernel does
//! with a RST, and therefore what this module does (Linux 6.18):
//!
//! * a full socket in a synchronized state (`tcp_validate_incoming`,
//!   net/ipv4/tcp_input.c): step 1, `tcp_sequence`: the segment must end
//!   at or after RCV.WUP and start no later than RCV.NXT plus the receive
//!   window (a segment running past the window is accepted only when the
//!   receive queue is empty, or when only its FIN runs past); when that
//!   fails, only a RST at RCV.NXT - 1 in CLOSE_WAIT, LAST_ACK or CLOSING
//!   resets (`tcp_reset_check`), anything else is dropped silently.
//!   Step 2: RCV.NXT, RCV.NXT - 1 after a FIN (those three states) and the
//!   right edge of the highest SACK block the socket holds reset; anything
//!   else earns a challenge ACK (RFC 5961 3.2);
//! * SYN_SENT (`tcp_rcv_synsent_state_process`): only a RST whose ACK lies
//!   in (SND.UNA, SND.NXT] resets; the sequence number is not looked at;
//! * a request socket, NEW_SYN_RECV (`tcp_check_req`,
//!   net/ipv4/tcp_minisocks.c): the 6.18.19 source drops the request on
//!   any RST inside [RCV.NXT, RCV.NXT + window] (the SYN-ACK's window, at
//!   most 65535) whose ACK, if any, is ISN + 1 of the SYN-ACK; but Linux
//!   6.18.44, measured by the differential test, checks a RST on its
//!   sequence number alone, as RFC 5961 has it: RCV.NXT drops the request,
//!   the rest of that window earns a challenge ACK, whatever the ACK field.
//!   This module follows the kernel as measured (on kernels that still drop
//!   the request on any in-window RST, `in_window` resets it, and strict
//!   is what stops a blind one);
//! * a TIME_WAIT socket (`tcp_timewait_state_process`): in TIME_WAIT
//!   proper, a RST at RCV.NXT ends it (TIME_WAIT assassination, RFC 1337)
//!   unless `net.ipv4.tcp_rfc1337` is 1; in its FIN_WAIT2 flavour (an
//!   orphaned socket whose peer has not closed yet) any RST inside the
//!   window ends it; anything else is ignored (FIN_WAIT2 ACKs it);
//! * a listener only, or no socket: there is no connection to reset.
//!
//! The verdicts are rstguard's usual ones, and in socket mode `exact`
//! means exactly "the kernel resets the connection on it":
//!
//! | socket | RST | verdict | the kernel |
//! | --- | --- | --- | --- |
//! | none, or a listener | any | `no_flow` | ignores it |
//! | SYN_SENT | ACK in (SND.UNA, SND.NXT] | `exact` | resets |
//! | SYN_SENT | any other | `bad_syn_ack` | ignores it |
//! | request | RCV.NXT | `exact` | drops the request |
//! | request | in its window, not RCV.NXT | `in_window` | challenge ACK |
//! | TIME_WAIT | accepted as above | `time_wait` | ends TIME_WAIT |
//! | synchronized | RCV.NXT, RCV.NXT - 1 after FIN, SACK edge | `exact` | resets |
//! | synchronized | in window, not exact | `in_window` | challenge ACK |
//! | any | anything else | `out_of_window` | drops it silently |
//!
//! `time_wait` is the policy's to decide, as in tracking mode
//! (`--time-wait drop` is RFC 1337's protection, at XDP): the application
//! closed such a socket already, nothing it holds is reset.
//!
//! One race is inherent to judging before the stack: when a task holds the
//! socket's lock, segments that arrived before this RST wait in its
//! backlog and may move RCV.NXT between this judgement and the kernel's.
//! A RST can then be judged against the numbers of a moment earlier.

use crate::{
    act::{Action, Policy},
    judge::cause::ttl_differs,
    judge::{action_for, Verdict},
    parse::{Segment, ACK, FIN},
    seq::{after, before},
};

/// Name of the read-only global holding [`SockFields`] in the object.
pub const SOCK_FIELDS: &str = "SOCK_FIELDS";
/// Hash map of this host's own addresses (IPv4 as IPv4-mapped IPv6) ->
/// 1: under `--state auto`, RSTs addressed to them are judged by socket
/// and their flows are not tracked.
pub const LOCAL_ADDRS: &str = "LOCAL_ADDRS";
/// Addresses [`LOCAL_ADDRS`] holds.
pub const LOCAL_ADDRS_MAX: u32 = 4096;

/// TCP states, as `sk_state` and `bpf_sock.state` hold them
/// (include/net/tcp_states.h, a stable ABI).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
    pub const NEW_SYN_RECV: u8 = 12;

    /// A name for status lines and events.
    pub const fn name(state: u8) -> &'static str {
        match state {
            ESTABLISHED => "established",
            SYN_SENT => "syn_sent",
            SYN_RECV => "syn_recv",
            FIN_WAIT1 => "fin_wait1",
            FIN_WAIT2 => "fin_wait2",
            TIME_WAIT => "time_wait",
            CLOSE => "close",
            CLOSE_WAIT => "close_wait",
            LAST_ACK => "last_ack",
            LISTEN => "listen",
            CLOSING => "closing",
            NEW_SYN_RECV => "new_syn_recv",
            _ => "unknown",
        }
    }
}

/// Where the state source of an interface sits in its `IFACE_SLOTS` word.
pub const SLOT_SOURCE_SHIFT: u32 = 17;
pub const SLOT_SOURCE_MASK: u32 = 0b11 << SLOT_SOURCE_SHIFT;

/// Where an interface's RSTs are judged from.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The flow table (the behaviour of an interface with no source set).
    Track = 0,
    /// The local sockets, for every RST; nothing is tracked.
    Socket = 1,
    /// The local sockets for RSTs addressed to this host's own addresses
    /// ([`LOCAL_ADDRS`]), the flow table for the rest (forwarded traffic).
    Auto = 2,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Auto, Source::Socket, Source::Track];

    /// From the raw bits (`IFACE_SLOTS`, `IfaceStatus::source`); unknown
    /// values read as `Track`, today's behaviour.
    #[inline(always)]
    pub const fn from_raw(v: u32) -> Source {
        match v {
            1 => Source::Socket,
            2 => Source::Auto,
            _ => Source::Track,
        }
    }

    /// The source held in an `IFACE_SLOTS` word.
    #[inline(always)]
    pub const fn from_slot_word(word: u32) -> Source {
        Source::from_raw((word & SLOT_SOURCE_MASK) >> SLOT_SOURCE_SHIFT)
    }

    /// This source's bits in an `IFACE_SLOTS` word.
    #[inline(always)]
    pub const fn slot_bits(self) -> u32 {
        (self as u32) << SLOT_SOURCE_SHIFT
    }

    pub const fn name(self) -> &'static str {
        match self {
            Source::Track => "track",
            Source::Socket => "socket",
            Source::Auto => "auto",
        }
    }
}

/// A field held in one byte of a kernel struct, possibly a bitfield: read
/// the byte at `byte`, shift right by `shift`, and with `mask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteField {
    pub byte: u32,
    pub shift: u8,
    pub mask: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<ByteField>() == 8);

/// Byte offsets of the fields socket mode reads, in the running kernel's
/// structs, resolved from its BTF at load time and handed to the XDP
/// program as a read-only global (the verifier then knows every offset, and
/// checks each load against the struct's BTF, as it would a CO-RE one).
/// `enabled` = 0 leaves the socket code dead: the verifier never walks it,
/// and the program loads where socket mode cannot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockFields {
    pub enabled: u32,
    /// `struct tcp_sock`.
    pub rcv_nxt: u32,
    pub rcv_wup: u32,
    pub rcv_wnd: u32,
    pub snd_una: u32,
    /// `write_seq`: SND.NXT once connect() has sent the SYN (see
    /// [`Sock::snd_nxt`]).
    pub write_seq: u32,
    /// `sk_receive_queue.qlen`.
    pub rcv_queue_len: u32,
    /// `selective_acks[0].end_seq`, and the size of one block.
    pub sack_end: u32,
    pub sack_stride: u32,
    /// `rx_opt.num_sacks`, `rx_opt.sack_ok`.
    pub num_sacks: ByteField,
    pub sack_ok: ByteField,
    /// `struct tcp_timewait_sock`: `tw_rcv_nxt`, `tw_rcv_wnd`,
    /// `tw_sk.tw_substate`.
    pub tw_rcv_nxt: u32,
    pub tw_rcv_wnd: u32,
    pub tw_substate: ByteField,
    /// `struct tcp_request_sock`: `rcv_nxt`, `snt_isn`,
    /// `req.req.rsk_rcv_wnd`.
    pub req_rcv_nxt: u32,
    pub req_snt_isn: u32,
    pub req_rcv_wnd: u32,
    /// `struct tcp_sock`: `rcv_tstamp`, when the socket last received an
    /// ACK, in jiffies (how long the connection has idled).
    pub rcv_tstamp: u32,
    /// The kernel's jiffies per second (`CONFIG_HZ`), measured by user
    /// space; 0: unknown, and no idle time is read.
    pub hz: u32,
}

const _: () = assert!(core::mem::size_of::<SockFields>() == 88);

impl SockFields {
    /// Socket mode off: what the object is built with.
    pub const DISABLED: SockFields = SockFields {
        enabled: 0,
        rcv_nxt: 0,
        rcv_wup: 0,
        rcv_wnd: 0,
        snd_una: 0,
        write_seq: 0,
        rcv_queue_len: 0,
        sack_end: 0,
        sack_stride: 0,
        num_sacks: ByteField {
            byte: 0,
            shift: 0,
            mask: 0,
            _pad: [0; 2],
        },
        sack_ok: ByteField {
            byte: 0,
            shift: 0,
            mask: 0,
            _pad: [0; 2],
        },
        tw_rcv_nxt: 0,
        tw_rcv_wnd: 0,
        tw_substate: ByteField {
            byte: 0,
            shift: 0,
            mask: 0,
            _pad: [0; 2],
        },
        req_rcv_nxt: 0,
        req_snt_isn: 0,
        req_rcv_wnd: 0,
        rcv_tstamp: 0,
        hz: 0,
    };
}

/// Which kind of socket the lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A full socket (`struct tcp_sock`), listeners included.
    Full,
    /// A TIME_WAIT socket (`struct tcp_timewait_sock`); `state` holds its
    /// substate (TIME_WAIT, or FIN_WAIT2 for an orphan).
    TimeWait,
    /// A request socket (NEW_SYN_RECV, `struct tcp_request_sock`).
    Request,
}

/// What socket mode reads of a socket: the receive side, and for
/// SYN_SENT and request sockets the send side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sock {
    pub kind: Kind,
    /// The TCP state (for TIME_WAIT sockets, the substate).
    pub state: u8,
    pub rcv_nxt: u32,
    /// RCV.WUP: RCV.NXT when the last window update was sent (full
    /// sockets).
    pub rcv_wup: u32,
    /// The receive window offered at RCV.WUP (full and TIME_WAIT sockets);
    /// for a request socket, the window of its SYN-ACK.
    pub rcv_wnd: u32,
    /// SYN_SENT: SND.UNA (the ISN) and SND.NXT, read as `write_seq`: the
    /// kernel sets SND.NXT only after the SYN has left, and a RST|ACK fast
    /// enough to arrive before that (a peer on the same host) waits in the
    /// socket's backlog until connect() lets go of the socket, to be judged
    /// against the SND.NXT set by then, which is `write_seq`. A request
    /// socket: its SYN-ACK's ISN + 1.
    pub snd_una: u32,
    pub snd_nxt: u32,
    /// Segments in the receive queue (full sockets).
    pub rcv_queue_len: u32,
    /// SACK in use on the connection (`rx_opt.sack_ok`), the number of
    /// SACK blocks held (`rx_opt.num_sacks`), and their right edges.
    pub sack_ok: bool,
    pub num_sacks: u8,
    pub sack_ends: [u32; 4],
}

impl Sock {
    /// A full socket in `state` with RCV.NXT `rcv_nxt` and window `wnd`,
    /// nothing else held (for tests).
    pub const fn full(state: u8, rcv_nxt: u32, wnd: u32) -> Sock {
        Sock {
            kind: Kind::Full,
            state,
            rcv_nxt,
            rcv_wup: rcv_nxt,
            rcv_wnd: wnd,
            snd_una: 0,
            snd_nxt: 0,
            rcv_queue_len: 0,
            sack_ok: false,
            num_sacks: 0,
            sack_ends: [0; 4],
        }
    }

    /// `tcp_receive_window`: what is left of the window offered at
    /// RCV.WUP, never below 0.
    #[inline(always)]
    pub const fn receive_window(&self) -> u32 {
        let win = self
            .rcv_wup
            .wrapping_add(self.rcv_wnd)
            .wrapping_sub(self.rcv_nxt) as i32;
        if win < 0 {
            0
        } else {
            win as u32
        }
    }

    /// The right edge of the highest SACK block held, as
    /// `tcp_validate_incoming` finds it (none without SACK, or without
    /// blocks).
    #[inline(always)]
    pub fn max_sack(&self) -> Option<u32> {
        if !self.sack_ok || self.num_sacks == 0 {
            return None;
        }
        let mut max = self.sack_ends[0];
        let mut i = 1;
        while i < 4 {
            if i < self.num_sacks as usize && after(self.sack_ends[i], max) {
                max = self.sack_ends[i];
            }
            i += 1;
        }
        Some(max)
    }

    /// What a RST should carry to be accepted (the event's `expected`):
    /// the ACK of SYN_SENT's SYN, RCV.NXT otherwise.
    #[inline(always)]
    pub const fn expected(&self) -> u32 {
        if matches!(self.kind, Kind::Full) && self.state == tcp_state::SYN_SENT {
            self.snd_nxt
        } else {
            self.rcv_nxt
        }
    }

    /// The window a RST is judged against (the event's `window`).
    #[inline(always)]
    pub const fn window(&self) -> u32 {
        match self.kind {
            Kind::Full => self.receive_window(),
            Kind::TimeWait | Kind::Request => self.rcv_wnd,
        }
    }
}

/// `tcp_in_window` (net/ipv4/tcp_minisocks.c): the check request and
/// FIN_WAIT2 TIME_WAIT sockets make.
#[inline(always)]
pub const fn tcp_in_window(seq: u32, end_seq: u32, s_win: u32, e_win: u32) -> bool {
    if seq == s_win {
        return true;
    }
    if after(end_seq, s_win) && before(seq, e_win) {
        return true;
    }
    seq == e_win && seq == end_seq
}

/// `tcp_sequence` (net/ipv4/tcp_input.c, Linux 6.18): whether a segment
/// passes step 1 of `tcp_validate_incoming`.
#[inline(always)]
pub fn sequence_ok(sock: &Sock, rst: &Segment) -> bool {
    let seq = rst.seq;
    let end_seq = rst.end_seq();
    if before(end_seq, sock.rcv_wup) {
        return false;
    }
    let limit = sock.rcv_nxt.wrapping_add(sock.receive_window());
    if after(end_seq, limit) {
        // A FIN may run past the window.
        if !after(end_seq.wrapping_sub(rst.has(FIN) as u32), limit) {
            return true;
        }
        if after(seq, limit) {
            return false;
        }
        // Only accepted when the receive queue is empty.
        if sock.rcv_queue_len != 0 {
            return false;
        }
    }
    true
}

/// The verdict on `rst` from the socket it is addressed to, as the kernel
/// will treat it (see the module's table). `None`: no socket.
#[inline(always)]
pub fn classify(sock: Option<&Sock>, rst: &Segment) -> Verdict {
    let Some(sock) = sock else {
        return Verdict::NoFlow;
    };
    let seq = rst.seq;
    match sock.kind {
        Kind::Request => {
            let win = if sock.rcv_wnd > 65535 {
                65535
            } else {
                sock.rcv_wnd
            };
            if seq == sock.rcv_nxt {
                Verdict::Exact
            } else if tcp_in_window(
                seq,
                rst.end_seq(),
                sock.rcv_nxt,
                sock.rcv_nxt.wrapping_add(win),
            ) {
                Verdict::InWindow
            } else {
                Verdict::OutOfWindow
            }
        }
        Kind::TimeWait => {
            let accepted = if sock.state == tcp_state::FIN_WAIT2 {
                tcp_in_window(
                    seq,
                    rst.end_seq(),
                    sock.rcv_nxt,
                    sock.rcv_nxt.wrapping_add(sock.rcv_wnd),
                )
            } else {
                seq == sock.rcv_nxt
            };
            if accepted {
                Verdict::TimeWait
            } else {
                Verdict::OutOfWindow
            }
        }
        Kind::Full => match sock.state {
            tcp_state::LISTEN | tcp_state::CLOSE => Verdict::NoFlow,
            tcp_state::SYN_SENT => {
                if rst.has(ACK) && after(rst.ack, sock.snd_una) && !after(rst.ack, sock.snd_nxt) {
                    Verdict::Exact
                } else {
                    Verdict::BadSynAck
                }
            }
            state => {
                let after_fin = seq == sock.rcv_nxt.wrapping_sub(1)
                    && matches!(
                        state,
                        tcp_state::CLOSE_WAIT | tcp_state::LAST_ACK | tcp_state::CLOSING
                    );
                if !sequence_ok(sock, rst) {
                    return if after_fin {
                        Verdict::Exact
                    } else {
                        Verdict::OutOfWindow
                    };
                }
                if seq == sock.rcv_nxt || after_fin || sock.max_sack() == Some(seq) {
                    Verdict::Exact
                } else {
                    Verdict::InWindow
                }
            }
        },
    }
}

/// The whole judgement in socket mode: trusted sources and RSTs in first
/// fragments first, as in tracking mode, then the socket. No budget: the
/// kernel answers in-window RSTs with challenge ACKs at its own per-socket
/// rate (`net.ipv4.tcp_invalid_ratelimit`), so `rate_limited` never comes
/// from here.
#[inline(always)]
pub fn judge(
    sock: Option<&Sock>,
    rst: &Segment,
    trusted: bool,
    peer_ttl: u8,
    policy: &Policy,
) -> (Verdict, Action) {
    let mut verdict = if trusted {
        Verdict::Trusted
    } else if rst.first_fragment {
        Verdict::FragmentedRst
    } else {
        classify(sock, rst)
    };
    // `--drop-injected`: the right sequence number from the wrong distance.
    if verdict == Verdict::Exact
        && policy.drop_injected != 0
        && ttl_differs(peer_ttl, rst.ttl, policy.ttl_slack)
    {
        verdict = Verdict::TtlMismatch;
    }
    (verdict, action_for(verdict, policy))
}

pub mod cause;
#[cfg(test)]
mod tests;
