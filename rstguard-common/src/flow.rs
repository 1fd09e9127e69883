//! The flow table's key and value.

/// `FlowHalf::wscale` when the endpoint's SYN carried no window scale option.
pub const WSCALE_NONE: u8 = 0x80;
/// `FlowHalf::wscale` when the endpoint's SYN was never seen.
pub const WSCALE_UNKNOWN: u8 = 0xff;

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

/// `Flow::flags`: the flow was picked up mid-stream (no SYN seen).
pub const FLOW_PICKED_UP: u8 = 1 << 0;
/// `Flow::flags`: the `hi` endpoint sent the first SYN (else `lo` did).
pub const FLOW_HI_INITIATOR: u8 = 1 << 1;

/// Canonical flow key: the smaller `(address, port)` endpoint first. IPv4
/// addresses are stored IPv4-mapped (`::ffff:a.b.c.d`), so one map serves
/// both families. Addresses are in network byte order (as on the wire),
/// ports in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo_addr: [u8; 16],
    pub hi_addr: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 36);

impl FlowKey {
    /// Builds the canonical key for a segment from `src` to `dst`, and says
    /// whether the sender is the `lo` endpoint.
    #[inline(always)]
    pub fn new(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> (FlowKey, bool) {
        let mut key = FlowKey::default();
        let src_is_lo = FlowKey::fill(&mut key, src, sport, dst, dport);
        (key, src_is_lo)
    }

    /// [`FlowKey::new`] in place (the eBPF program keeps keys off its small
    /// stack). Returns whether the sender is the `lo` endpoint.
    #[inline(always)]
    pub fn fill(key: &mut FlowKey, src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> bool {
        let src_is_lo = endpoint_le(&src, sport, &dst, dport);
        if src_is_lo {
            key.lo_addr = src;
            key.hi_addr = dst;
            key.lo_port = sport;
            key.hi_port = dport;
        } else {
            key.lo_addr = dst;
            key.hi_addr = src;
            key.lo_port = dport;
            key.hi_port = sport;
        }
        src_is_lo
    }
}

/// `(a, ap) <= (b, bp)`, addresses compared byte by byte.
#[inline(always)]
fn endpoint_le(a: &[u8; 16], ap: u16, b: &[u8; 16], bp: u16) -> bool {
    let mut i = 0;
    while i < 16 {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    ap <= bp
}

/// IPv4 address (network byte order bytes) as IPv4-mapped IPv6.
#[inline(always)]
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// What one endpoint has been seen to send. Every value here that can make
/// a RST exact (`snd_nxt`, `ack`, `sack_right`, a confirmed FIN) comes from
/// evidence a blind attacker cannot fabricate cheaply: see [`crate::track`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowHalf {
    /// Where its next new byte starts, as far as it is known to be
    /// contiguous: advanced by segments that start inside what is already
    /// known (never across a gap), and by the other side's ACKs.
    pub snd_nxt: u32,
    /// Highest `seq + payload (+1 SYN, +1 FIN)` sent inside the window
    /// (in SYN_SENT: ISN + 1 + any Fast Open data). Bounds the ACKs the
    /// other side can plausibly send; never itself an exact value.
    pub max_end: u32,
    /// Highest ACK number sent: the endpoint's RCV.NXT as last announced.
    pub ack: u32,
    /// Last advertised window, already shifted by the endpoint's scale.
    pub win: u32,
    /// Right edge of the highest SACK block in its latest segment
    /// (`HALF_SACK`).
    pub sack_right: u32,
    /// Window scale from its SYN, or `WSCALE_NONE` / `WSCALE_UNKNOWN`.
    pub wscale: u8,
    /// IPv4 TTL / IPv6 hop limit of its last packet.
    pub ttl: u8,
    /// `HALF_*` bits.
    pub flags: u8,
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<FlowHalf>() == 24);

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
    /// From the raw byte stored in [`Flow::state`]; unknown values read as
    /// `Established` (the most liberal judgement).
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

/// The flow table's value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// The endpoint with the smaller `(address, port)`.
    pub lo: FlowHalf,
    /// The other endpoint.
    pub hi: FlowHalf,
    /// When the flow was created or last changed state (CLOCK_MONOTONIC,
    /// ns). Not updated on every packet: the LRU keeps its own recency, and
    /// the sweep needs only how long a flow has been closed or in TIME_WAIT.
    pub state_since_ns: u64,
    /// Theoretical arrival time of the per-flow inexact-RST budget (GCRA).
    pub rst_tat_ns: u64,
    /// [`FlowState`] as a raw byte.
    pub state: u8,
    /// `FLOW_*` bits.
    pub flags: u8,
    pub _pad: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<Flow>() == 72);

impl Flow {
    #[inline(always)]
    pub const fn state(&self) -> FlowState {
        FlowState::from_raw(self.state)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_canonical() {
        let a = v4_mapped([10, 0, 0, 1]);
        let b = v4_mapped([10, 0, 0, 2]);
        let (k1, lo1) = FlowKey::new(a, 4000, b, 80);
        let (k2, lo2) = FlowKey::new(b, 80, a, 4000);
        assert_eq!(k1, k2);
        assert!(lo1);
        assert!(!lo2);
        // Same address: the port decides.
        let (k3, lo3) = FlowKey::new(a, 80, a, 4000);
        let (k4, lo4) = FlowKey::new(a, 4000, a, 80);
        assert_eq!(k3, k4);
        assert!(lo3 && !lo4);
    }
}
