//! Spoofed RSTs from a raw socket, as a blind attacker sends them. Packets
//! are built with etherparse; the kernel adds nothing (IPPROTO_RAW implies
//! IP_HDRINCL).

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::PacketBuilder;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub struct Spoofer {
    sock: Socket,
}

impl Spoofer {
    /// A raw IPv4 socket. Create it on a thread inside the attacker's
    /// namespace.
    pub fn v4() -> Spoofer {
        let sock = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )
        .expect("a raw socket (needs CAP_NET_RAW)");
        Spoofer { sock }
    }

    /// Sends a RST|ACK from `src` to `dst` with sequence number `seq`.
    pub fn rst(&self, src: SocketAddrV4, dst: SocketAddrV4, seq: u32, ack: u32) {
        let b = PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64)
            .tcp(src.port(), dst.port(), seq, 0)
            .rst()
            .ack(ack);
        let mut pkt = Vec::with_capacity(b.size(0));
        b.write(&mut pkt, &[]).expect("building a RST");
        let to = SockAddr::from(SocketAddrV4::new(*dst.ip(), 0));
        self.sock.send_to(&pkt, &to).expect("sending a spoofed RST");
    }
}

pub fn v4(ip: &str, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip.parse::<Ipv4Addr>().unwrap(), port)
}

/// Sends `n` RSTs at random sequence numbers from `src` to `dst`, from a
/// raw socket in `ns`.
pub fn random_rsts(ns: &crate::lab::Netns, src: SocketAddrV4, dst: SocketAddrV4, n: u32) {
    ns.run(move || {
        use rand::Rng;
        let s = Spoofer::v4();
        let mut rng = rand::thread_rng();
        for _ in 0..n {
            s.rst(src, dst, rng.gen(), rng.gen());
        }
    });
    // Let them land before anyone reads counters.
    std::thread::sleep(std::time::Duration::from_millis(200));
}
