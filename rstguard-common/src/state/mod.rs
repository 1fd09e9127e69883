//! The flow table's key and value.

/// A window scale nibble (see [`Flow::wscale`]): the endpoint's SYN carried
/// no window scale option.
pub const WSCALE_NONE: u8 = 15;
/// The endpoint's SYN was never seen: its scale is taken as the largest
/// (14), the liberal bound conntrack takes on pickup.
pub const WSCALE_UNKNOWN: u8 = crate::tcp::MAX_WSCALE;

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
/// it forged (see [`crate::cause`]).
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

/// A flow's two endpoints in canonical order: the smaller `(address,
/// port)` first. IPv4 addresses are IPv4-mapped (`::ffff:a.b.c.d`).
/// Addresses are in network byte order (as on the wire), ports in host
/// byte order. Events carry this; the flow table is keyed by its compact
/// form, [`FlowKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Endpoints {
    pub lo_addr: [u8; 16],
    pub hi_addr: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
}

const _: () = assert!(core::mem::size_of::<Endpoints>() == 36);

impl Endpoints {
    /// The endpoints of a segment from `src` to `dst`, and whether the
    /// sender is the `lo` endpoint.
    #[inline(always)]
    pub fn new(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> (Endpoints, bool) {
        let mut e = Endpoints::default();
        let src_is_lo = Endpoints::fill(&mut e, src, sport, dst, dport);
        (e, src_is_lo)
    }

    /// [`Endpoints::new`] in place (the eBPF program keeps them off its
    /// small stack). Returns whether the sender is the `lo` endpoint.
    #[inline(always)]
    pub fn fill(e: &mut Endpoints, src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> bool {
        let src_is_lo = endpoint_le(&src, sport, &dst, dport);
        if src_is_lo {
            e.lo_addr = src;
            e.hi_addr = dst;
            e.lo_port = sport;
            e.hi_port = dport;
        } else {
            e.lo_addr = dst;
            e.hi_addr = src;
            e.lo_port = dport;
            e.hi_port = sport;
        }
        src_is_lo
    }

    /// Whether both addresses are IPv4 (IPv4-mapped).
    #[inline(always)]
    pub fn is_v4(&self) -> bool {
        is_v4_mapped(&self.lo_addr) && is_v4_mapped(&self.hi_addr)
    }
}

/// The flow table's key: 16 bytes (the kernel rounds a key to 8 bytes;
/// the old 36-byte key cost 40). For IPv4 it holds both addresses; for
/// IPv6, a 64-bit keyed hash of both (SipHash-1-3 with a secret chosen at
/// load time, so that no one outside can aim two flows at one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IPv4: the `lo` and `hi` addresses as on the wire. IPv6: the hash.
    pub addrs: [u32; 2],
    pub lo_port: u16,
    pub hi_port: u16,
    /// 4 or 6: the families never share an entry.
    pub family: u32,
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 16);

impl FlowKey {
    /// The table key of `e`; IPv6 addresses are hashed with `secret`.
    /// `v6`: the segment came in an IPv6 packet (an IPv4-mapped address
    /// inside IPv6 is still IPv6: it never shares an IPv4 flow's entry).
    #[inline(always)]
    pub fn of(e: &Endpoints, v6: bool, secret: &[u64; 2]) -> FlowKey {
        let (addrs, family) = if v6 {
            let h = crate::siphash::hash_32(secret, &e.lo_addr, &e.hi_addr);
            ([h as u32, (h >> 32) as u32], 6)
        } else {
            (
                [
                    u32::from_ne_bytes([
                        e.lo_addr[12],
                        e.lo_addr[13],
                        e.lo_addr[14],
                        e.lo_addr[15],
                    ]),
                    u32::from_ne_bytes([
                        e.hi_addr[12],
                        e.hi_addr[13],
                        e.hi_addr[14],
                        e.hi_addr[15],
                    ]),
                ],
                4,
            )
        };
        FlowKey {
            addrs,
            lo_port: e.lo_port,
            hi_port: e.hi_port,
            family,
        }
    }

    /// The IPv4 endpoints of an IPv4 key (None for IPv6: its addresses
    /// are hashed).
    pub fn v4_endpoints(&self) -> Option<Endpoints> {
        (self.family == 4).then(|| Endpoints {
            lo_addr: v4_mapped(self.addrs[0].to_ne_bytes()),
            hi_addr: v4_mapped(self.addrs[1].to_ne_bytes()),
            lo_port: self.lo_port,
            hi_port: self.hi_port,
        })
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

/// Whether an address is IPv4-mapped.
#[inline(always)]
pub fn is_v4_mapped(a: &[u8; 16]) -> bool {
    a[..10].iter().all(|b| *b == 0) && a[10] == 0xff && a[11] == 0xff
}

/// What one endpoint has been seen to send. Every value here that can make
/// a RST exact (`snd_nxt`, `max_end`, `ack`, `sack_right`, a FIN) comes
/// from evidence a blind attacker cannot fabricate cheaply: see
/// [`crate::track`].
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
    /// [`crate::track::window_shift`] decides; a SYN's window never is.
    #[inline(always)]
    pub fn window(&self, is_lo: bool) -> u32 {
        let (h, _) = self.halves(is_lo);
        if h.has(HALF_SYN_WIN) {
            return h.win as u32;
        }
        let shift = crate::track::window_shift(self.wscale(is_lo), self.wscale(!is_lo));
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
    fn endpoints_are_canonical() {
        let a = v4_mapped([10, 0, 0, 1]);
        let b = v4_mapped([10, 0, 0, 2]);
        let (k1, lo1) = Endpoints::new(a, 4000, b, 80);
        let (k2, lo2) = Endpoints::new(b, 80, a, 4000);
        assert_eq!(k1, k2);
        assert!(lo1);
        assert!(!lo2);
        // Same address: the port decides.
        let (k3, lo3) = Endpoints::new(a, 80, a, 4000);
        let (k4, lo4) = Endpoints::new(a, 4000, a, 80);
        assert_eq!(k3, k4);
        assert!(lo3 && !lo4);
    }

    #[test]
    fn keys_keep_ipv4_addresses_and_hash_ipv6_ones_under_a_secret() {
        let secret = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        let (e, _) = Endpoints::new(v4_mapped([10, 0, 0, 1]), 4000, v4_mapped([10, 0, 0, 2]), 80);
        let k = FlowKey::of(&e, false, &secret);
        assert_eq!(k.family, 4);
        assert_eq!(k.v4_endpoints(), Some(e));
        // The same addresses in an IPv6 packet are another flow.
        let k6 = FlowKey::of(&e, true, &secret);
        assert_eq!(k6.family, 6);
        assert_ne!(k6.addrs, k.addrs);
        assert_eq!(k6.v4_endpoints(), None);
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        let mut b = a;
        b[15] = 2;
        let (e6, _) = Endpoints::new(a, 1, b, 2);
        let other = [secret[0] ^ 1, secret[1]];
        assert_ne!(
            FlowKey::of(&e6, true, &secret),
            FlowKey::of(&e6, true, &other),
            "another secret, another key"
        );
    }

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
