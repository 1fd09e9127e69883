//! Frames: a TCP segment (or UDP, or a fragment) wrapped in the IP version
//! and encapsulation a test asks for, built with etherparse.

use std::net::IpAddr;

use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, PacketBuilder, TcpOptionElement, VlanId,
};
use rstguard_common::key::v4_mapped;

/// How frames are wrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encap {
    #[default]
    Plain,
    /// One 802.1Q tag.
    Vlan,
    /// 802.1ad outer tag, 802.1Q inner tag.
    QinQ,
}

/// The network a conversation runs over.
#[derive(Clone, Copy, Debug, Default)]
pub struct Net {
    pub v6: bool,
    pub encap: Encap,
    /// IPv4 header with 8 bytes of options (IHL 7).
    pub ipv4_options: bool,
    /// IPv6 hop-by-hop and destination options headers before TCP.
    pub ipv6_exts: bool,
}

/// One TCP segment to build.
#[derive(Clone, Debug, Default)]
pub struct Seg {
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub win: u16,
    pub opts: Vec<TcpOptionElement>,
    pub payload: usize,
    /// IPv4 TTL / IPv6 hop limit (None: 64).
    pub ttl: Option<u8>,
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

pub fn addr16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Builds an Ethernet frame carrying `seg` from `src` to `dst`.
pub fn tcp_frame(net: &Net, src: (IpAddr, u16), dst: (IpAddr, u16), seg: &Seg) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let mut ip = ip_headers(net, src.0, dst.0, IpNumber::TCP);
    if let Some(ttl) = seg.ttl {
        match &mut ip {
            IpHeaders::Ipv4(h, _) => h.time_to_live = ttl,
            IpHeaders::Ipv6(h, _) => h.hop_limit = ttl,
        }
    }
    let step = match net.encap {
        Encap::Plain => eth.ip(ip),
        Encap::Vlan => eth.single_vlan(VlanId::try_new(10).unwrap()).ip(ip),
        Encap::QinQ => eth
            .double_vlan(VlanId::try_new(100).unwrap(), VlanId::try_new(10).unwrap())
            .ip(ip),
    };
    let mut tcp = step.tcp(src.1, dst.1, seg.seq, seg.win);
    if let Some(ack) = seg.ack {
        tcp = tcp.ack(ack);
    }
    if seg.syn {
        tcp = tcp.syn();
    }
    if seg.fin {
        tcp = tcp.fin();
    }
    if seg.rst {
        tcp = tcp.rst();
    }
    if !seg.opts.is_empty() {
        tcp = tcp.options(&seg.opts).expect("TCP options fit");
    }
    let payload = vec![0x5a; seg.payload];
    let mut frame = Vec::with_capacity(tcp.size(payload.len()));
    tcp.write(&mut frame, &payload).expect("building the frame");
    frame
}

/// A UDP frame (not our business).
pub fn udp_frame(net: &Net) -> Vec<u8> {
    let ip = ip_headers(net, ip("10.0.0.1"), ip("10.0.0.2"), IpNumber::UDP);
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ip(ip).udp(5000, 53);
    let mut frame = Vec::new();
    b.write(&mut frame, &[1, 2, 3, 4])
        .expect("building the frame");
    frame
}

fn ip_headers(net: &Net, src: IpAddr, dst: IpAddr, proto: IpNumber) -> IpHeaders {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Ipv4Header::new(0, 64, proto, s.octets(), d.octets()).unwrap();
            if net.ipv4_options {
                // Two NOPs, then a 6-byte option of an unassigned kind,
                // which routers ignore: 8 bytes, IHL 7.
                h.options = Ipv4Options::try_from(&[1u8, 1, 0x5e, 6, 0, 0, 0, 0][..]).unwrap();
            }
            IpHeaders::Ipv4(h, Default::default())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: proto,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            };
            let mut exts = Ipv6Extensions::default();
            if net.ipv6_exts {
                let pad = [1u8, 4, 0, 0, 0, 0]; // PadN, 6 bytes
                exts.hop_by_hop_options = Some(Ipv6RawExtHeader::new_raw(proto, &pad).unwrap());
                exts.destination_options = Some(Ipv6RawExtHeader::new_raw(proto, &pad).unwrap());
            }
            IpHeaders::Ipv6(h, exts)
        }
        _ => panic!("mixed address families"),
    }
}

/// An IPv6 frame with a fragment header: the first fragment (offset 0)
/// carries TCP, a later one does not.
pub fn ipv6_fragment(offset_units: u16, seg: &Seg) -> Vec<u8> {
    let (s, d) = (ip("fd00::1"), ip("fd00::2"));
    let mut ip = ip_headers(&Net::default(), s, d, IpNumber::TCP);
    if let IpHeaders::Ipv6(_, exts) = &mut ip {
        exts.fragment = Some(Ipv6FragmentHeader::new(
            IpNumber::TCP,
            etherparse::IpFragOffset::try_new(offset_units).unwrap(),
            true,
            7,
        ));
    }
    fragment_frame(ip, seg)
}

/// An IPv4 fragment at `offset_units` * 8 bytes (0: the first one).
pub fn ipv4_fragment(offset_units: u16, seg: &Seg) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
    h.more_fragments = true;
    h.fragment_offset = etherparse::IpFragOffset::try_new(offset_units).unwrap();
    fragment_frame(IpHeaders::Ipv4(h, Default::default()), seg)
}

/// A fragment with header `ip`, from port 40000 to 80, carrying the TCP
/// header of `seg` and no payload.
fn fragment_frame(ip: IpHeaders, seg: &Seg) -> Vec<u8> {
    let mut tcp = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(ip)
        .tcp(40000, 80, seg.seq, seg.win);
    if seg.rst {
        tcp = tcp.rst();
    }
    let mut frame = Vec::new();
    tcp.write(&mut frame, &[]).expect("building the frame");
    frame
}

/// Inserts `n` more IPv6 destination-options headers (8 bytes each, PadN)
/// right after the fixed header of an untagged IPv6 frame, fixing the
/// next-header chain and the payload length. etherparse writes each kind
/// of extension header at most once; longer chains are built this way.
pub fn add_ipv6_dest_opts(frame: &mut Vec<u8>, n: usize) {
    const IP: usize = 14;
    for _ in 0..n {
        let next = frame[IP + 6];
        let ext = [next, 0, 1, 4, 0, 0, 0, 0];
        frame.splice(IP + 40..IP + 40, ext);
        frame[IP + 6] = 60; // IPPROTO_DSTOPTS
        let len = u16::from_be_bytes([frame[IP + 4], frame[IP + 5]]) + 8;
        frame[IP + 4..IP + 6].copy_from_slice(&len.to_be_bytes());
    }
}
