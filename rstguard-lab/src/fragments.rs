//! IP fragments of forged segments, as an evading attacker cuts them. The
//! whole packet is built first with etherparse (so the TCP checksum covers
//! the whole segment, as the receiver checks it after reassembly), then its
//! IP payload is cut and each piece gets an IP header of its own: IPv4 with
//! the same identification, more-fragments and the offset set and the
//! header checksum recomputed (a receiving kernel checks it; the sending
//! kernel also rewrites it for `IP_HDRINCL`), IPv6 with a fragment
//! extension header. Sent from the raw socket of [`crate::spoof::Spoofer`],
//! they go on the wire as built.

use std::sync::atomic::{AtomicU32, Ordering};

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, Ipv6FragmentHeader, Ipv6Header};

/// How a segment is cut into fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Bytes of payload the segment carries (zeros).
    pub payload: usize,
    /// The bytes of the TCP segment in each fragment, in order: multiples of
    /// 8 but the last, adding up to the whole segment.
    pub sizes: &'static [usize],
}

/// RFC 1858's tiny fragments, Ptacek and Newsham's split of a 20-byte
/// header: 8 bytes (ports, sequence number), 8 (ACK, data offset, flags,
/// window), 4 (checksum, urgent pointer). The flags are not in the first
/// fragment; the second sits at offset 8, where RFC 3128's overlapping
/// fragments rewrite them. rstguard: `tiny_fragment`, then
/// `fragment_overlap`, then a non-first fragment that passes.
pub const TINY: Cut = Cut {
    payload: 0,
    sizes: &[8, 8, 4],
};

/// The whole header (and 4 bytes of payload) in the first fragment, the
/// other 12 bytes of payload in the second: a RST any parser can read, in
/// a first fragment. rstguard: `fragmented_rst`.
pub const AFTER_HEADER: Cut = Cut {
    payload: 16,
    sizes: &[24, 12],
};

/// The identification of the next fragmented packet. One counter for the
/// whole process, so that no two packets sent within 65,536 of each other
/// share one: a receiver reassembles by (source, destination,
/// identification, protocol), and a fragment left over from an earlier
/// packet with the same key would complete a later one with its bytes.
static NEXT_ID: AtomicU32 = AtomicU32::new(0x5eed);

/// Never 0 in its low 16 bits: for `IP_HDRINCL` the kernel replaces an
/// IPv4 identification of 0 with one of its own, per fragment, and the
/// fragments would no longer belong together.
pub fn next_id() -> u32 {
    loop {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if id & 0xffff != 0 {
            return id;
        }
    }
}

/// Cuts `packet` (an IPv4 packet without options, or an IPv6 packet without
/// extension headers, as [`crate::spoof::Forged::packet`] builds them) into
/// fragments of `sizes` bytes of its payload, with identification `id`
/// (its low 16 bits for IPv4).
pub fn fragments(packet: &[u8], sizes: &[usize], id: u32) -> Vec<Vec<u8>> {
    let version = packet.first().map(|b| b >> 4);
    let (header_len, payload) = match version {
        Some(4) => {
            let (h, _) = Ipv4Header::from_slice(packet).expect("an IPv4 packet");
            let hl = h.header_len();
            (hl, &packet[hl..usize::from(h.total_len)])
        }
        Some(6) => {
            let (h, rest) = Ipv6Header::from_slice(packet).expect("an IPv6 packet");
            assert_eq!(h.next_header, IpNumber::TCP, "extension headers");
            (Ipv6Header::LEN, &rest[..usize::from(h.payload_length)])
        }
        _ => panic!("not an IP packet"),
    };
    assert_eq!(
        sizes.iter().sum::<usize>(),
        payload.len(),
        "the fragments must add up to the payload"
    );
    let mut out = Vec::with_capacity(sizes.len());
    let mut offset = 0usize;
    for (i, &size) in sizes.iter().enumerate() {
        let more = i + 1 < sizes.len();
        assert!(
            !more || size % 8 == 0,
            "a fragment other than the last must hold a multiple of 8 bytes"
        );
        let piece = &payload[offset..offset + size];
        let units = IpFragOffset::try_new((offset / 8) as u16).expect("a fragment offset");
        let mut f = Vec::with_capacity(header_len + 8 + size);
        if version == Some(4) {
            let (mut h, _) = Ipv4Header::from_slice(packet).expect("an IPv4 packet");
            h.identification = id as u16;
            h.dont_fragment = false;
            h.more_fragments = more;
            h.fragment_offset = units;
            h.set_payload_len(size).expect("a payload length");
            h.header_checksum = h.calc_header_checksum();
            f.extend_from_slice(&h.to_bytes());
        } else {
            let (mut h, _) = Ipv6Header::from_slice(packet).expect("an IPv6 packet");
            h.next_header = IpNumber::IPV6_FRAGMENTATION_HEADER;
            h.payload_length = (Ipv6FragmentHeader::LEN + size) as u16;
            let frag = Ipv6FragmentHeader::new(IpNumber::TCP, units, more, id);
            f.extend_from_slice(&h.to_bytes());
            f.extend_from_slice(&frag.to_bytes());
        }
        f.extend_from_slice(piece);
        out.push(f);
        offset += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spoof::Forged;
    use etherparse::{defrag::IpDefragPool, Ipv4HeaderSlice, NetSlice, SlicedPacket};
    use std::net::SocketAddr;

    fn seg(cut: &Cut) -> Forged {
        Forged {
            payload: cut.payload,
            ..Forged::rst(0x1234_5678, Some(9))
        }
    }

    /// Cuts a segment, checks each fragment's header, reassembles them with
    /// etherparse's reassembler and compares with the whole segment.
    fn round_trip(src: &str, dst: &str, cut: &Cut) {
        let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let whole = seg(cut).packet(src, dst);
        let frags = fragments(&whole, cut.sizes, 0x1_2345);
        assert_eq!(frags.len(), cut.sizes.len());
        let mut pool = IpDefragPool::<(), ()>::new();
        let mut done = None;
        for f in &frags {
            let sliced = SlicedPacket::from_ip(f).expect("a fragment parses");
            let payload = match &sliced.net {
                Some(NetSlice::Ipv4(s)) => {
                    let h = Ipv4HeaderSlice::from_slice(f).unwrap();
                    assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                    assert_eq!(h.identification(), 0x2345);
                    s.payload().clone()
                }
                Some(NetSlice::Ipv6(s)) => s.payload().clone(),
                _ => panic!("no IP header"),
            };
            assert!(payload.fragmented);
            if let Some(p) = pool
                .process_sliced_packet(&sliced, (), ())
                .expect("reassembly")
            {
                done = Some(p);
            }
        }
        let done = done.expect("the fragments reassemble");
        let header_len = if src.is_ipv4() { 20 } else { 40 };
        assert_eq!(
            done.payload,
            &whole[header_len..],
            "the segment, byte for byte"
        );
    }

    #[test]
    fn fragments_reassemble_into_the_segment() {
        for cut in [&TINY, &AFTER_HEADER] {
            round_trip("10.0.0.1:1000", "10.0.0.2:80", cut);
            round_trip("[fd00::1]:1000", "[fd00::2]:80", cut);
        }
    }

    #[test]
    fn tiny_fragments_keep_the_flags_out_of_the_first() {
        let whole = seg(&TINY).packet(
            "10.0.0.1:1000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        let frags = fragments(&whole, TINY.sizes, next_id());
        assert_eq!(frags.iter().map(Vec::len).collect::<Vec<_>>(), [28, 28, 24]);
        // Offsets 0, 1 and 2 (8-byte units); more-fragments on all but the last.
        let flags: Vec<u16> = frags
            .iter()
            .map(|f| u16::from_be_bytes([f[6], f[7]]))
            .collect();
        assert_eq!(flags, [0x2000, 0x2001, 0x0002]);
        // The second holds the flags byte (RST|ACK).
        assert_eq!(frags[1][20 + 5], 0x14);
    }
}
