//! A flow's identity: its two endpoints in canonical order
//! ([`Endpoints`], carried by events) and the flow table's compact key
//! ([`FlowKey`]).

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
}
