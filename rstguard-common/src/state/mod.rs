//! A flow's state: the flow table's value ([`Flow`], its two
//! [`FlowHalf`]s and [`FlowState`]), and how segments update it ([`track`]).

pub mod track;

/// A window scale nibble (see [`Flow::wscale`]): the endpoint's SYN carried
/// no window scale option.
pub const WSCALE_NONE: u8 = 15;
/// The endpoint's SYN was never seen: its scale is taken as the largest
/// (14), the liberal bound conntrack takes on pickup.
pub const WSCALE_UNKNOWN: u8 = crate::parse::MAX_WSCALE;

/// `FlowHalf::flags`: the endpoint has been seen to send a segment that
/// taught something (a half never seen has no ground for a judgement).
pub const HALF_SEEN: u8 = 1 << 0;
/// `FlowHalf::flags`: `ack` holds an ACK number it sent.
pub const HALF_ACK: u8 = 1 << 1;
/// `FlowHalf::flags`: it sent a FIN, ending at `max_end`. The FIN is
/// confirmed (the peer's RCV.NXT - 1 after it is an exact RST sequence)
/// once `snd_nxt` reaches `max_end`: contiguous with everything before it.
pub const HALF_FIN: u8 = 1 << 2;
/// `FlowHalf::flags`: `sack_right` holds the right edge of the highest SACK
/// block in its latest segment (cleared by a segment without SACK).
pub const HALF_SACK: u8 = 1 << 3;
/// `FlowHalf::flags`: it sent a SYN (it is the flow's initiator, or the
/// responder once its SYN-ACK is accepted).
pub const HALF_SYN: u8 = 1 << 4;
/// `FlowHalf::flags`: learned from this host's own segments at TC egress,
/// which the kernel wrote: authentic. A segment arriving at XDP that claims
/// to come from such an endpoint is a spoof and teaches nothing.
pub const HALF_LOCAL: u8 = 1 << 5;
/// `FlowHalf::flags`: `win` came from a SYN, whose window is never scaled.
pub const HALF_SYN_WIN: u8 = 1 << 6;
/// `FlowHalf::flags`: the flow's latest data came from this endpoint (the
/// other one may not have read it yet).
pub const HALF_DATA_LAST: u8 = 1 << 7;

/// `Flow::flags`: the flow was picked up mid-stream (no SYN seen).
pub const FLOW_PICKED_UP: u8 = 1 << 0;
/// `Flow::flags`: the `hi` endpoint sent the first SYN (else `lo` did).
pub const FLOW_HI_INITIATOR: u8 = 1 << 1;
/// `Flow::flags`: a RST passed (or was dropped for its distance), from the
/// side `FLOW_RST_FROM_HI` says: new data from that side afterwards proves
/// it forged (see [`crate::judge::cause`]).
pub const FLOW_RST_SEEN: u8 = 1 << 2;
/// `Flow::flags`: with `FLOW_RST_SEEN`, the RST came from `hi`.
pub const FLOW_RST_FROM_HI: u8 = 1 << 3;
/// `Flow::flags`: the latest segment came after an idle gap, and `seen`
/// still holds when the flow carried its segment before the gap: a RST
/// answering the segment that woke the flow sees how long it had slept.
pub const FLOW_WOKE: u8 = 1 << 4;
/// `Flow::flags` holds the `FLOW_*` bits below this shift and the
/// [`FlowState`] above it.
pub const FLOW_STATE_SHIFT: u8 = 5;
/// `Flow::flags`: the `FLOW_*` bits.
pub const FLOW_BITS: u8 = (1 << FLOW_STATE_SHIFT) - 1;

/// What one endpoint has been seen to send. Every value here that can make
/// a RST exact (`snd_nxt`, `max_end`, `ack`, `sack_right`, a FIN) comes
/// from evidence a blind attacker cannot fabricate cheaply: see
/// [`crate::state::track`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowHalf {
    /// Where its next new byte starts, as far as it is known to be
    /// contiguous: advanced by segments that overlap what is already known
    /// (never across a gap), and by the other side's ACKs.
    pub snd_nxt: u32,
    /// Highest end of data (or FIN) it sent inside the window (in
    /// SYN_SENT: ISN + 1 + any Fast Open data). Bounds the ACKs the other
    /// side can plausibly send.
    pub max_end: u32,
    /// Highest ACK number sent: the endpoint's RCV.NXT as last announced.
    pub ack: u32,
    /// Right edge of the highest SACK block in its latest segment
    /// (`HALF_SACK`).
    pub sack_right: u32,
    /// Last advertised window as sent (unscaled; see [`Flow::window`]).
    pub win: u16,
    /// IPv4 TTL / IPv6 hop limit of its last packet.
    pub ttl: u8,
    /// `HALF_*` bits.
    pub flags: u8,
}

const _: () = assert!(core::mem::size_of::<FlowHalf>() == 20);

impl FlowHalf {
    #[inline(always)]
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// It sent a FIN and everything before it is known: the peer's
    /// RCV.NXT - 1 (`snd_nxt - 1`) is then the FIN's own sequence number.
    #[inline(always)]
    pub const fn fin_confirmed(&self) -> bool {
        self.has(HALF_FIN) && self.snd_nxt == self.max_end
    }
}

/// Flow-wide state.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FlowState {
    /// The initiator sent a SYN; nothing back yet.
    SynSent = 1,
    /// The responder answered with a SYN-ACK.
    SynRecv = 2,
    Established = 3,
    /// At least one endpoint sent a FIN.
    FinSeen = 4,
    /// Both FINs sent and acknowledged.
    TimeWait = 5,
    /// An exact RST passed (or the host sent one).
    Closed = 6,
}

impl FlowState {
    /// From the raw value stored in [`Flow::flags`]; unknown values read
    /// as `Established` (the most liberal judgement).
    #[inline(always)]
    pub const fn from_raw(v: u8) -> FlowState {
        match v {
            1 => FlowState::SynSent,
            2 => FlowState::SynRecv,
            4 => FlowState::FinSeen,
            5 => FlowState::TimeWait,
            6 => FlowState::Closed,
            _ => FlowState::Established,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            FlowState::SynSent => "syn_sent",
            FlowState::SynRecv => "syn_recv",
            FlowState::Established => "established",
            FlowState::FinSeen => "fin_seen",
            FlowState::TimeWait => "time_wait",
            FlowState::Closed => "closed",
        }
    }
}

/// The flow table's value: 48 bytes (with the 16-byte key and the
/// kernel's 48-byte element header and 16-byte bucket, 128 bytes a flow).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// The endpoint with the smaller `(address, port)`.
    pub lo: FlowHalf,
    /// The other endpoint.
    pub hi: FlowHalf,
    /// In SYN_SENT, CLOSED and TIME_WAIT: when the flow entered that state
    /// (the sweep and a SYN's retry need it). Otherwise: the theoretical
    /// arrival time of its inexact-RST budget (GCRA). Both in
    /// [`crate::clock::Units`].
    pub timer: u32,
    /// `FLOW_*` bits, and the [`FlowState`] above [`FLOW_STATE_SHIFT`].
    pub flags: u8,
    /// Window scales: `lo`'s in the low nibble, `hi`'s in the high one
    /// (0 to 14, [`WSCALE_NONE`]).
    pub wscales: u8,
    /// When the flow last carried a segment, in [`crate::clock::Seen`]
    /// units (about 2 s), or, just after an idle gap (`FLOW_WOKE`), the
    /// segment before the gap: how long it had been idle when a RST came.
    pub seen: u16,
}

const _: () = assert!(core::mem::size_of::<Flow>() == 48);

impl Flow {
    #[inline(always)]
    pub const fn state(&self) -> FlowState {
        FlowState::from_raw(self.flags >> FLOW_STATE_SHIFT)
    }

    /// Sets the state, keeping the `FLOW_*` bits.
    #[inline(always)]
    pub fn put_state(&mut self, state: FlowState) {
        self.flags = (self.flags & FLOW_BITS) | ((state as u8) << FLOW_STATE_SHIFT);
    }

    #[inline(always)]
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The half of the endpoint that sent a segment, and the other one.
    #[inline(always)]
    pub fn halves_mut(&mut self, sender_is_lo: bool) -> (&mut FlowHalf, &mut FlowHalf) {
        if sender_is_lo {
            (&mut self.lo, &mut self.hi)
        } else {
            (&mut self.hi, &mut self.lo)
        }
    }

    #[inline(always)]
    pub fn halves(&self, sender_is_lo: bool) -> (&FlowHalf, &FlowHalf) {
        if sender_is_lo {
            (&self.lo, &self.hi)
        } else {
            (&self.hi, &self.lo)
        }
    }

    /// Whether the endpoint on side `is_lo` sent the flow's first SYN.
    #[inline(always)]
    pub const fn is_initiator(&self, is_lo: bool) -> bool {
        self.has(FLOW_HI_INITIATOR) != is_lo
    }

    /// Both endpoints have been seen. Until then rstguard has no ground to
    /// call a RST out of window (one direction may take another path).
    #[inline(always)]
    pub const fn both_seen(&self) -> bool {
        self.lo.has(HALF_SEEN) && self.hi.has(HALF_SEEN)
    }

    /// The window scale of the endpoint on side `is_lo`.
    #[inline(always)]
    pub const fn wscale(&self, is_lo: bool) -> u8 {
        if is_lo {
            self.wscales & 0x0f
        } else {
            self.wscales >> 4
        }
    }

    #[inline(always)]
    pub fn set_wscale(&mut self, is_lo: bool, ws: u8) {
        let ws = ws & 0x0f;
        self.wscales = if is_lo {
            (self.wscales & 0xf0) | ws
        } else {
            (self.wscales & 0x0f) | (ws << 4)
        };
    }

    /// The window the endpoint on side `is_lo` last advertised, in bytes:
    /// scaled when both SYNs offered scaling (or either was not seen), as
    /// [`crate::state::track::window_shift`] decides; a SYN's window never is.
    #[inline(always)]
    pub fn window(&self, is_lo: bool) -> u32 {
        let (h, _) = self.halves(is_lo);
        if h.has(HALF_SYN_WIN) {
            return h.win as u32;
        }
        let shift = crate::state::track::window_shift(self.wscale(is_lo), self.wscale(!is_lo));
        (h.win as u32) << shift
    }

    /// It has proven itself: both endpoints seen, the handshake completed
    /// (or, picked up, each side's segments fit the other's). Such flows
    /// live in the table a flood of new flows cannot flush.
    #[inline(always)]
    pub fn assured(&self) -> bool {
        self.both_seen()
            && matches!(
                self.state(),
                FlowState::Established | FlowState::FinSeen | FlowState::TimeWait
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_scales_share_a_byte() {
        let mut f = Flow::default();
        f.set_wscale(true, 7);
        f.set_wscale(false, WSCALE_NONE);
        assert_eq!((f.wscale(true), f.wscale(false)), (7, WSCALE_NONE));
        f.set_wscale(true, 14);
        assert_eq!((f.wscale(true), f.wscale(false)), (14, WSCALE_NONE));
    }
}
