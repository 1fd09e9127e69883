//! Frames for the benchmarks, built with etherparse.

use etherparse::{PacketBuilder, TcpOptionElement, VlanId};

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

#[derive(Clone, Copy, Debug)]
pub enum Net {
    V4,
    V6,
    Vlan,
}

/// A TCP segment from `src` to `dst` (IPv4 as 4 bytes, IPv6 as 16).
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub rst: bool,
    pub payload: usize,
}

pub fn tcp(net: Net, src: [u8; 16], dst: [u8; 16], t: &Tcp) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let ip4 = |a: [u8; 16]| [a[12], a[13], a[14], a[15]];
    let step = match net {
        Net::V4 => eth.ipv4(ip4(src), ip4(dst), 64),
        Net::Vlan => eth
            .single_vlan(VlanId::try_new(10).unwrap())
            .ipv4(ip4(src), ip4(dst), 64),
        Net::V6 => eth.ipv6(src, dst, 64),
    };
    let mut b = step.tcp(t.sport, t.dport, t.seq, 1000);
    if let Some(a) = t.ack {
        b = b.ack(a);
    }
    if t.syn {
        b = b
            .syn()
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::WindowScale(7),
            ])
            .expect("options fit");
    }
    if t.rst {
        b = b.rst();
    }
    let payload = vec![0x5a; t.payload];
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).expect("building a frame");
    out
}

pub fn udp() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5000, 53);
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 32]).expect("building a frame");
    out
}

/// IPv4 address as the programs key it (IPv4-mapped IPv6).
pub fn v4(a: [u8; 4]) -> [u8; 16] {
    rstguard_common::key::v4_mapped(a)
}

pub fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = last;
    a
}
