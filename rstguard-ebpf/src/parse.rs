//! Packet parsing: Ethernet (802.1Q/802.1ad tags), or none on devices
//! without a link-layer header, IPv4 (IHL, fragments), IPv6 (extension
//! headers, fragments) and TCP (data offset, options), through one
//! bounds-checked accessor. Every read goes through [`Cursor::read`], which
//! checks the access against the end of the packet; `unsafe` is only at the
//! dereference there.

use core::mem::size_of;

use aya_ebpf::{macros::map, maps::PerCpuArray};
use rstguard_common::{
    key::v4_mapped,
    parse::{parse_options, OptionBytes, Segment},
    state::WSCALE_NONE,
    Counter, Endpoints, Flow, FlowKey, Verdict,
};

use crate::key::flow_key;

/// VLAN tags followed (802.1ad outer + 802.1Q inner, and two more).
pub const MAX_VLAN_TAGS: usize = 4;
/// IPv6 extension headers followed before giving up.
pub const MAX_IPV6_EXT: usize = 8;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// NOP, NOP, timestamp kind, timestamp length.
const TS_ONLY_PREFIX: u32 = 0x0101_080a;

/// IPv4 flags and fragment offset: more fragments, and the offset.
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET: u16 = 0x1fff;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_MH: u8 = 135;

/// A TCP segment with its flow.
pub struct Packet {
    /// The flow's endpoints, in canonical order.
    pub ends: Endpoints,
    /// The flow table's key for them.
    pub key: FlowKey,
    /// It came in an IPv6 packet.
    pub v6: bool,
    /// The sender is the key's `lo` endpoint.
    pub sender_is_lo: bool,
    pub seg: Segment,
    /// A TCP option had a bad length; options past it were ignored.
    pub bad_options: bool,
    /// Length of the TCP options still to parse (0: none, or none needed).
    pub opt_len: u8,
    /// Offset of the TCP options in the frame.
    pub opt_off: u32,
    /// What the IP header says, for the TCP parser: the addresses, the
    /// TTL or hop limit, where the TCP header starts and the length the IP
    /// header gives it.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub ttl: u8,
    pub tcp_off: u32,
    pub l4_len: u32,
}

/// How far into a frame a TCP header may start: past it the frame passes
/// (counted as truncated). A bound the verifier needs before it adds an
/// offset to a packet pointer; Ethernet, VLAN tags, IPv6 and a chain of
/// extension headers of up to 2,048 bytes each stay below it.
const MAX_TCP_OFFSET: usize = 0x3fff;
/// How far into a frame the IP header may start (past Ethernet and
/// [`MAX_VLAN_TAGS`] tags).
const MAX_IP_OFFSET: usize = 14 + 4 * MAX_VLAN_TAGS;
/// A power of two minus one above [`MAX_IP_OFFSET`].
const IP_OFFSET_MASK: usize = 0x3f;
const _: () = assert!(MAX_IP_OFFSET <= IP_OFFSET_MASK);

impl Packet {
    /// The sender's address.
    #[inline(always)]
    pub fn src(&self) -> &[u8; 16] {
        if self.sender_is_lo {
            &self.ends.lo_addr
        } else {
            &self.ends.hi_addr
        }
    }
}

/// Why a frame is not a TCP segment we judge or learn from.
pub enum Skip {
    /// Not TCP over IP: not our business.
    NotTcp,
    /// Passes, counted (a parse error, or a non-first fragment).
    Count(Counter),
    /// Counted too, and judged at ingress without its flags: it may hide a
    /// RST (a tiny or overlapping fragment, a header past the parser's
    /// bounds).
    Judge(Verdict, Counter),
}

/// `v & mask`, computed where the verifier sees it. The value goes through
/// the stack first, so LLVM cannot drop the mask as redundant after an
/// earlier bounds check; and the register added to a packet pointer
/// carries the bound itself, whatever the verifier kept of a copy LLVM
/// spilled before that check (verifiers before 6.6 lose the link between
/// a checked register and its spilled copy: 5.10 and 6.1 refused the
/// parser's IPv4 read for it).
#[inline(always)]
fn bounded(v: usize, mask: usize) -> usize {
    core::hint::black_box(v) & mask
}

/// Bounds-checked reads from `[start, end)`.
#[derive(Clone, Copy)]
pub struct Cursor {
    start: usize,
    end: usize,
}

impl Cursor {
    #[inline(always)]
    pub fn new(start: usize, end: usize) -> Self {
        Cursor { start, end }
    }

    /// Reads a `T` at byte offset `off`, or `None` past the end.
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        let p = self.start + off;
        if p + size_of::<T>() > self.end {
            return None;
        }
        // SAFETY: [p, p + size_of::<T>()) lies inside the packet, as just
        // checked; packet memory may be unaligned, hence read_unaligned.
        Some(unsafe { (p as *const T).read_unaligned() })
    }

    #[inline(always)]
    fn be16_at(&self, off: usize) -> Option<u16> {
        self.read::<[u8; 2]>(off).map(u16::from_be_bytes)
    }

    #[inline(always)]
    fn be32_at(&self, off: usize) -> Option<u32> {
        self.read::<[u8; 4]>(off).map(u32::from_be_bytes)
    }
}

/// Parses a frame. `frame_len` is the full length of the packet (which may
/// exceed the readable part at TC); it stands in for an IP length field of 0
/// (TSO and BIG TCP super-packets). `l3`: the device has no link-layer
/// header, the frame starts at the IP header.
#[inline(always)]
pub fn parse(c: Cursor, frame_len: usize, l3: bool, out: &mut Packet) -> Result<(), Skip> {
    let count = Skip::Count;
    out.seg.first_fragment = false;
    let (proto, off) = if l3 {
        // No link-layer header: the IP version says which. (Two bytes, not
        // one: LLVM turns a one-byte bound check into one the verifier
        // cannot follow.)
        let b: [u8; 2] = c.read(0).ok_or(count(Counter::TruncatedIpv4))?;
        match b[0] >> 4 {
            4 => (ETH_P_IP, 0),
            6 => (ETH_P_IPV6, 0),
            _ => return Err(Skip::NotTcp),
        }
    } else {
        ethernet(c)?
    };
    // The IP header's offset, read back from the scratch map: one walk of
    // the IP parsers for every number of VLAN tags, not one each.
    out.tcp_off = off as u32;
    let out = core::hint::black_box(out);
    let off = out.tcp_off as usize;
    if off > MAX_IP_OFFSET {
        return Err(count(Counter::BadVlan));
    }
    let off = bounded(off, IP_OFFSET_MASK);
    match proto {
        ETH_P_IP => parse_ipv4(c, off, frame_len, out)?,
        ETH_P_IPV6 => parse_ipv6(c, off, frame_len, out)?,
        ETH_P_8021Q | ETH_P_8021AD => {
            return Err(Skip::Judge(Verdict::HeaderUnreachable, Counter::BadVlan))
        }
        _ => return Err(Skip::NotTcp),
    }
    // Read what the IP parsers left back from the scratch map: the
    // verifier then sees unknown values, and the many paths through
    // Ethernet, VLAN tags, IPv4 and IPv6's extension headers merge here
    // instead of each walking the TCP parser.
    let out = core::hint::black_box(out);
    let off = out.tcp_off as usize;
    if off > MAX_TCP_OFFSET {
        return Err(count(Counter::TruncatedTcp));
    }
    parse_tcp(c, bounded(off, MAX_TCP_OFFSET), out.l4_len as usize, out)
}

/// The Ethernet header and up to [`MAX_VLAN_TAGS`] tags: the EtherType
/// past them, and where it ends.
#[inline(always)]
fn ethernet(c: Cursor) -> Result<(u16, usize), Skip> {
    let count = Skip::Count;
    let mut proto = c.be16_at(12).ok_or(count(Counter::TruncatedEthernet))?;
    let mut off = 14usize;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        proto = c.be16_at(off + 2).ok_or(count(Counter::BadVlan))?;
        off += 4;
    }
    Ok((proto, off))
}

/// IPv4: leaves the addresses, TTL and where TCP starts in `out`.
#[inline(always)]
fn parse_ipv4(c: Cursor, off: usize, frame_len: usize, out: &mut Packet) -> Result<(), Skip> {
    let count = Skip::Count;
    let hdr: [u8; 20] = c.read(off).ok_or(count(Counter::TruncatedIpv4))?;
    let ihl = (hdr[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return Err(count(Counter::BadIpv4Ihl));
    }
    if hdr[9] != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    let frag = u16::from_be_bytes([hdr[6], hdr[7]]);
    match frag & IPV4_OFFSET {
        0 => {}
        // 8 bytes in: reassembled over the first fragment, it rewrites the
        // TCP flags (RFC 3128). No real stack sends one.
        1 => {
            return Err(Skip::Judge(
                Verdict::FragmentOverlap,
                Counter::NonFirstFragment,
            ))
        }
        _ => return Err(count(Counter::NonFirstFragment)),
    }
    out.seg.first_fragment = frag & IPV4_MF != 0;
    let tot_len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
    let ip_len = if tot_len == 0 {
        frame_len.saturating_sub(off)
    } else {
        tot_len
    };
    let tcp_off = off + ihl;
    if ip_len < ihl {
        return Err(count(Counter::BadIpLength));
    }
    out.src = v4_mapped([hdr[12], hdr[13], hdr[14], hdr[15]]);
    out.dst = v4_mapped([hdr[16], hdr[17], hdr[18], hdr[19]]);
    out.ttl = hdr[8];
    out.v6 = false;
    out.tcp_off = tcp_off as u32;
    out.l4_len = (ip_len - ihl) as u32;
    Ok(())
}

/// IPv6: leaves the addresses, hop limit and where TCP starts in `out`.
#[inline(always)]
fn parse_ipv6(c: Cursor, off: usize, frame_len: usize, out: &mut Packet) -> Result<(), Skip> {
    let count = Skip::Count;
    let hdr: [u8; 8] = c.read(off).ok_or(count(Counter::TruncatedIpv6))?;
    let src: [u8; 16] = c.read(off + 8).ok_or(count(Counter::TruncatedIpv6))?;
    let dst: [u8; 16] = c.read(off + 24).ok_or(count(Counter::TruncatedIpv6))?;
    let payload_len = u16::from_be_bytes([hdr[4], hdr[5]]) as usize;
    let mut next = hdr[6];
    let hop_limit = hdr[7];

    let mut ext_len = 0usize;
    for _ in 0..MAX_IPV6_EXT {
        if !is_ipv6_ext(next) {
            break;
        }
        // Every extension header starts with (next header, length); the
        // fragment header's second byte is reserved and its size fixed.
        let eh: [u8; 4] = c
            .read(off + 40 + ext_len)
            .ok_or(tiny_or(out, Counter::TruncatedIpv6))?;
        let size = match next {
            IPPROTO_FRAGMENT => {
                let off_m = u16::from_be_bytes([eh[2], eh[3]]);
                if off_m & 0xfff8 != 0 {
                    return Err(count(Counter::NonFirstFragment));
                }
                out.seg.first_fragment = off_m & 1 != 0;
                8
            }
            IPPROTO_AH => (eh[1] as usize + 2) * 4,
            _ => (eh[1] as usize + 1) * 8,
        };
        next = eh[0];
        // Through the scratch map, so that every path through the loop
        // starts its next round in one state the verifier walks once.
        out.l4_len = (ext_len + size) as u32;
        ext_len = core::hint::black_box(&*out).l4_len as usize & MAX_TCP_OFFSET;
    }
    if next != IPPROTO_TCP {
        return Err(if is_ipv6_ext(next) {
            Skip::Judge(Verdict::HeaderUnreachable, Counter::Ipv6ExtTooLong)
        } else {
            Skip::NotTcp
        });
    }
    // A payload length of 0 (jumbogram, BIG TCP): what the frame holds.
    let ip_len = if payload_len != 0 {
        payload_len
    } else {
        frame_len.saturating_sub(off + 40)
    };
    if ip_len < ext_len {
        return Err(tiny_or(out, Counter::BadIpLength));
    }
    out.src = src;
    out.dst = dst;
    out.ttl = hop_limit;
    out.v6 = true;
    out.tcp_off = (off + 40 + ext_len) as u32;
    out.l4_len = (ip_len - ext_len) as u32;
    Ok(())
}

/// A first fragment whose TCP header does not fit in it is a tiny fragment
/// (RFC 1858; RFC 7112 for IPv6's header chain); anything else that short
/// is a bad length.
#[inline(always)]
fn tiny_or(out: &Packet, otherwise: Counter) -> Skip {
    if out.seg.first_fragment {
        Skip::Judge(Verdict::TinyFragment, Counter::TruncatedTcp)
    } else {
        Skip::Count(otherwise)
    }
}

#[inline(always)]
fn is_ipv6_ext(next: u8) -> bool {
    matches!(
        next,
        IPPROTO_HOPOPTS
            | IPPROTO_ROUTING
            | IPPROTO_DSTOPTS
            | IPPROTO_MH
            | IPPROTO_AH
            | IPPROTO_FRAGMENT
    )
}

/// Parses the TCP header at `off`; `l4_len` is the length the IP header
/// gives for the TCP header and payload.
#[inline(always)]
fn parse_tcp(c: Cursor, off: usize, l4_len: usize, out: &mut Packet) -> Result<(), Skip> {
    let count = Skip::Count;
    if l4_len < 20 {
        return Err(tiny_or(out, Counter::BadIpLength));
    }
    let th: [u8; 20] = c.read(off).ok_or(count(Counter::TruncatedTcp))?;
    let doff = (th[12] >> 4) as usize * 4;
    if doff < 20 {
        return Err(count(Counter::BadTcpDoff));
    }
    if l4_len < doff {
        return Err(tiny_or(out, Counter::BadIpLength));
    }
    let seg = &mut out.seg;
    let first_fragment = seg.first_fragment;
    *seg = Segment {
        seq: u32::from_be_bytes([th[4], th[5], th[6], th[7]]),
        ack: u32::from_be_bytes([th[8], th[9], th[10], th[11]]),
        payload_len: (l4_len - doff) as u32,
        sack_right: 0,
        win: u16::from_be_bytes([th[14], th[15]]),
        flags: th[13],
        wscale: WSCALE_NONE,
        ttl: out.ttl,
        has_sack: false,
        first_fragment,
    };
    // Options are parsed later, from a copy (see `rstguard_common::parse::
    // parse_options`): here only note where they are. The usual
    // NOP, NOP, timestamp layout of established segments holds nothing
    // rstguard needs, so it is skipped without a copy.
    out.bad_options = false;
    out.opt_off = (off + 20) as u32;
    out.opt_len = (doff - 20) as u8;
    if doff == 32 && c.be32_at(off + 20) == Some(TS_ONLY_PREFIX) {
        out.opt_len = 0;
    }
    let sport = u16::from_be_bytes([th[0], th[1]]);
    let dport = u16::from_be_bytes([th[2], th[3]]);
    out.sender_is_lo = Endpoints::fill(&mut out.ends, out.src, sport, out.dst, dport);
    out.key = flow_key(&out.ends, out.v6);
    Ok(())
}

/// The furthest into a frame the TCP options may start: past it they are
/// not read (counted as bad options). A bound the verifier needs before it
/// adds an offset to a packet pointer; 14 + 2 * 4 + 40 + 6 extension
/// headers of up to 2,048 bytes + 20 stays below it.
const MAX_OPTIONS_OFFSET: usize = 0x3fff;

/// The TCP options, read in place: every read is a bounds-checked read
/// from the packet (direct packet access), through a cursor that starts at
/// the first option byte.
///
/// That cursor's start is hidden from the optimiser. Knowing that packet
/// addresses fit in 32 bits (`xdp_md` holds them as `u32`), LLVM turns the
/// one-byte check `p + 1 > end` into `p >= end`, which verifiers before
/// 5.11 take as proof of nothing, so the read after it is refused.
struct PacketOptions(Cursor);

impl OptionBytes for PacketOptions {
    #[inline(always)]
    fn byte(&self, off: usize) -> Option<u8> {
        self.0.read::<u8>(off)
    }

    #[inline(always)]
    fn be32(&self, off: usize) -> Option<u32> {
        self.0.be32_at(off)
    }
}

/// Reads the segment's options (when the parser noted any worth reading)
/// into `pkt.seg`, from the packet itself, in the bounded loop of
/// [`parse_options`]. No helper: `bpf_xdp_load_bytes` (5.18) and a copy
/// into map memory were what kept the programs off older kernels. Options
/// that run past the readable part of the frame are bad options.
#[inline(always)]
pub fn read_options(c: Cursor, pkt: &mut Packet) {
    let len = pkt.opt_len as usize;
    if len == 0 {
        return;
    }
    let base = pkt.opt_off as usize;
    // The parser never notes an offset past the bound; the check is for
    // the verifier (the scratch map hands the offset back as an unknown
    // value, and a packet pointer only takes a bounded one).
    if base > MAX_OPTIONS_OFFSET {
        pkt.bad_options = true;
        return;
    }
    let base = bounded(base, MAX_OPTIONS_OFFSET);
    let opts = PacketOptions(Cursor::new(core::hint::black_box(c.start + base), c.end));
    pkt.bad_options = !parse_options(&opts, len, &mut pkt.seg);
}

/// Per-CPU working memory for one packet: the parsed segment and a new
/// flow being built. On the 512-byte BPF stack they would crowd out
/// everything else.
pub struct Scratch {
    pub pkt: Packet,
    pub flow: Flow,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch space. Each use initialises what it reads: the
/// parser fills `pkt` before anything reads it, and a new flow is fully
/// written before it is inserted.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: a per-CPU slot; XDP and TC programs do not preempt each other
    // on a CPU mid-run (both run with preemption/BH disabled).
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}
