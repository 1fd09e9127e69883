//! The fields of a TCP segment that tracking and judgement need, as parsed
//! from the packet.

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// The largest window scale shift (RFC 7323, section 2.3).
pub const MAX_WSCALE: u8 = 14;

/// A parsed TCP segment. Not a map type: it lives on the stack only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub seq: u32,
    pub ack: u32,
    /// TCP payload length in bytes.
    pub payload_len: u32,
    /// Right edge of the highest SACK block, valid when `has_sack`.
    pub sack_right: u32,
    /// Raw (unscaled) window field.
    pub win: u16,
    /// TCP flags byte (`FIN`, `SYN`, `RST`, `PSH`, `ACK`, ...).
    pub flags: u8,
    /// Window scale option, clamped to [`MAX_WSCALE`], or
    /// [`crate::state::WSCALE_NONE`] when the segment has none.
    pub wscale: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    pub has_sack: bool,
    /// The first fragment of a fragmented IP datagram: `payload_len` covers
    /// only this fragment, so where the segment ends is unknown.
    pub first_fragment: bool,
}

impl Segment {
    #[inline(always)]
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The sequence number just past this segment: payload, plus one for
    /// SYN and one for FIN.
    #[inline(always)]
    pub const fn end_seq(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add((self.flags & SYN != 0) as u32)
            .wrapping_add((self.flags & FIN != 0) as u32)
    }
}

/// Bytes of TCP options a header can hold.
pub const MAX_OPTION_BYTES: usize = 40;
/// The window every option offset is masked into: a power of two above
/// [`MAX_OPTION_BYTES`] (see [`parse_options`]).
pub const OPTION_BUF: usize = 64;
/// Options read per segment, NOPs included: real stacks send at most 8 or
/// so; the bound keeps the verifier's work small.
pub const MAX_OPTIONS: usize = 16;

const TCPOPT_EOL: u8 = 0;
const TCPOPT_NOP: u8 = 1;
const TCPOPT_WINDOW: u8 = 3;
const TCPOPT_SACK: u8 = 5;

/// A segment's TCP options, wherever they are: a buffer in host tests, the
/// packet itself in the programs (every read checked against the end of
/// the packet there). Offsets count from the first option byte.
pub trait OptionBytes {
    /// The byte at `off`; `None` past the end.
    fn byte(&self, off: usize) -> Option<u8>;
    /// The big-endian `u32` at `off`; `None` past the end.
    fn be32(&self, off: usize) -> Option<u32>;
}

impl OptionBytes for [u8] {
    fn byte(&self, off: usize) -> Option<u8> {
        self.get(off).copied()
    }

    fn be32(&self, off: usize) -> Option<u32> {
        let b = self.get(off..off.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl<const N: usize> OptionBytes for [u8; N] {
    fn byte(&self, off: usize) -> Option<u8> {
        self[..].byte(off)
    }

    fn be32(&self, off: usize) -> Option<u32> {
        self[..].be32(off)
    }
}

/// Reads the window scale and the highest SACK right edge from the first
/// `len` bytes of `opts` into `seg`. Returns false when an option is
/// malformed or cannot be read; what came before it is kept.
///
/// Every offset is masked into [`OPTION_BUF`]. That changes nothing
/// (offsets at or past `len`, at most 40, are refused first) but bounds
/// every read for the BPF verifier without its having to compare two
/// unknown values (which verifiers before 6.8 learn nothing from), and lets
/// it see every iteration as the same state, instead of one per path
/// through the loop. `len` is hidden from the optimiser, which would
/// otherwise prove the masks redundant and drop them.
#[inline(always)]
pub fn parse_options<B: OptionBytes + ?Sized>(opts: &B, len: usize, seg: &mut Segment) -> bool {
    const M: usize = OPTION_BUF - 1;
    if len > MAX_OPTION_BYTES {
        return false;
    }
    let len = core::hint::black_box(len);
    let mut off = 0usize;
    for _ in 0..MAX_OPTIONS {
        if off >= len {
            return true;
        }
        let Some(kind) = opts.byte(off & M) else {
            return false;
        };
        if kind == TCPOPT_EOL {
            return true;
        }
        if kind == TCPOPT_NOP {
            off = (off + 1) & M;
            continue;
        }
        if off + 1 >= len {
            return false;
        }
        let Some(olen) = opts.byte((off + 1) & M) else {
            return false;
        };
        let olen = olen as usize;
        if olen < 2 || off + olen > len {
            return false;
        }
        if kind == TCPOPT_WINDOW && olen == 3 {
            let Some(ws) = opts.byte((off + 2) & M) else {
                return false;
            };
            seg.wscale = if ws > MAX_WSCALE { MAX_WSCALE } else { ws };
        } else if kind == TCPOPT_SACK && olen >= 10 {
            // Up to four (left, right) blocks; keep the highest right edge.
            let blocks = (olen - 2) / 8;
            let mut b = 0usize;
            while b < 4 && b < blocks {
                let at = off + 6 + b * 8;
                let Some(right) = opts.be32(at & M) else {
                    return false;
                };
                if !seg.has_sack || crate::seq::after(right, seg.sack_right) {
                    seg.sack_right = right;
                    seg.has_sack = true;
                }
                b += 1;
            }
        }
        off = (off + olen) & M;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WSCALE_NONE;

    fn parse(opts: &[u8]) -> (bool, Segment) {
        let mut seg = Segment {
            wscale: WSCALE_NONE,
            ..Segment::default()
        };
        let ok = parse_options(opts, opts.len(), &mut seg);
        (ok, seg)
    }

    #[test]
    fn linux_syn_options() {
        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
        let opts = [
            2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let (ok, seg) = parse(&opts);
        assert!(ok);
        assert_eq!(seg.wscale, 7);
        assert!(!seg.has_sack);
    }

    #[test]
    fn window_scale_is_clamped() {
        let (ok, seg) = parse(&[3, 3, 15, 0]);
        assert!(ok);
        assert_eq!(seg.wscale, MAX_WSCALE);
    }

    #[test]
    fn sack_keeps_the_highest_right_edge() {
        let mut opts = std::vec![1, 1, 5, 26];
        for (l, r) in [(100u32, 200u32), (300, 400), (250, 260)] {
            opts.extend_from_slice(&l.to_be_bytes());
            opts.extend_from_slice(&r.to_be_bytes());
        }
        let (ok, seg) = parse(&opts);
        assert!(ok);
        assert!(seg.has_sack);
        assert_eq!(seg.sack_right, 400);
    }

    #[test]
    fn malformed_lengths_are_reported() {
        assert!(!parse(&[3, 1, 0, 0]).0, "length below 2");
        assert!(!parse(&[1, 1, 8, 40, 0, 0]).0, "length past the end");
        assert!(!parse(&[1, 1, 1, 8]).0, "kind without its length");
        // EOL ends parsing, whatever follows.
        assert!(parse(&[0, 99, 99, 99]).0);
        assert!(!parse(&[1; 44]).0, "more than a TCP header holds");
    }

    /// Options cut short by the end of what can be read (a frame that ends
    /// inside them) are malformed, whatever the header claimed.
    #[test]
    fn options_past_the_readable_end_are_reported() {
        let opts = [1u8, 1, 3, 3, 7, 0, 0, 0];
        let mut seg = Segment::default();
        assert!(!parse_options(&opts[..4], 8, &mut seg));
        let mut seg = Segment::default();
        assert!(parse_options(&opts[..], 8, &mut seg));
        assert_eq!(seg.wscale, 7);
    }
}
