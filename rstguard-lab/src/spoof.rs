//! Spoofed RSTs from raw sockets, as a blind attacker sends them. Packets
//! are built with etherparse; the kernel adds nothing (`IPPROTO_RAW`
//! implies IP_HDRINCL, for IPv4 and IPv6 alike).

use std::{
    net::{IpAddr, SocketAddr},
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

use crate::{
    fragments::{fragments, next_id, Cut},
    netns::Netns,
};

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
        self.send(src, dst, &Forged::rst(seq, ack));
    }

    /// Sends a forged segment from `src` to `dst`.
    pub fn send(&self, src: SocketAddr, dst: SocketAddr, seg: &Forged) {
        self.send_packet(dst.ip(), &seg.packet(src, dst));
    }

    /// Sends a forged segment from `src` to `dst` cut into IP fragments as
    /// `cut` says (its payload length is `cut.payload`); returns how many
    /// fragments went out.
    pub fn send_cut(&self, src: SocketAddr, dst: SocketAddr, seg: &Forged, cut: &Cut) -> usize {
        let seg = Forged {
            payload: cut.payload,
            ..*seg
        };
        let frags = fragments(&seg.packet(src, dst), cut.sizes, next_id());
        for f in &frags {
            self.send_packet(dst.ip(), f);
        }
        frags.len()
    }

    /// Sends an IP packet, header and all, to `dst`.
    pub fn send_packet(&self, dst: IpAddr, pkt: &[u8]) {
        let to = SockAddr::from(SocketAddr::new(dst, 0));
        assert_eq!(self.v6, dst.is_ipv6(), "address family");
        self.sock
            .send_to(pkt, &to)
            .expect("sending a spoofed packet");
    }
}

/// A TCP segment an attacker forges: its flags, numbers and payload, as
/// they go on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forged {
    pub seq: u32,
    /// The ACK number; `None`: the ACK flag is off.
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    /// Bytes of payload (zeros).
    pub payload: usize,
}

impl Forged {
    pub fn rst(seq: u32, ack: Option<u32>) -> Forged {
        Forged {
            seq,
            ack,
            rst: true,
            ..Forged::default()
        }
    }

    pub fn syn(seq: u32) -> Forged {
        Forged {
            seq,
            syn: true,
            ..Forged::default()
        }
    }

    pub fn syn_ack(seq: u32, ack: u32) -> Forged {
        Forged {
            seq,
            ack: Some(ack),
            syn: true,
            ..Forged::default()
        }
    }

    pub fn fin(seq: u32, ack: Option<u32>) -> Forged {
        Forged {
            seq,
            ack,
            fin: true,
            ..Forged::default()
        }
    }

    /// The IP packet carrying it from `src` to `dst`.
    pub fn packet(&self, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        let ip = match (src, dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), 64)
            }
            (SocketAddr::V6(s), SocketAddr::V6(d)) => {
                PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), 64)
            }
            _ => panic!("mixed address families"),
        };
        let win = if self.rst { 0 } else { 65535 };
        let mut tcp = ip.tcp(src.port(), dst.port(), self.seq, win);
        if let Some(a) = self.ack {
            tcp = tcp.ack(a);
        }
        if self.syn {
            tcp = tcp.syn();
        }
        if self.fin {
            tcp = tcp.fin();
        }
        if self.rst {
            tcp = tcp.rst();
        }
        let payload = vec![0u8; self.payload];
        let mut pkt = Vec::with_capacity(tcp.size(payload.len()));
        tcp.write(&mut pkt, &payload).expect("building a segment");
        pkt
    }
}

/// An IP packet carrying a RST.
pub fn rst_packet(src: SocketAddr, dst: SocketAddr, seq: u32, ack: Option<u32>) -> Vec<u8> {
    Forged::rst(seq, ack).packet(src, dst)
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

/// Sends each pair of forged segments in `pairs` from `src` to `dst`: a
/// segment meant to teach a sequence number, then a RST at it. Returns how
/// many pairs went out.
pub fn forged_pairs(
    ns: &Netns,
    src: SocketAddr,
    dst: SocketAddr,
    pairs: Vec<(Forged, Forged)>,
) -> u64 {
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        let mut sent = 0u64;
        for (teach, rst) in pairs {
            s.send(src, dst, &teach);
            s.send(src, dst, &rst);
            sent += 1;
            if sent.is_multiple_of(u64::from(BURST / 2)) {
                thread::sleep(Duration::from_micros(500));
            }
        }
        sent
    })
}

/// Sends `n` SYNs to `dst` from random sources in 10.0.0.0/8 (random
/// ports and sequence numbers), as a flood of new flows does; returns how
/// many went out.
pub fn syn_flood(ns: &Netns, dst: SocketAddr, n: u32) -> u64 {
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        let mut rng = rand::thread_rng();
        let mut sent = 0u64;
        for _ in 0..n {
            let a: [u8; 3] = rng.gen();
            let src = SocketAddr::new(
                std::net::Ipv4Addr::new(10, a[0], a[1], a[2]).into(),
                rng.gen_range(1024..65535),
            );
            s.send(src, dst, &Forged::syn(rng.gen()));
            sent += 1;
            if sent.is_multiple_of(u64::from(BURST)) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        sent
    })
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

/// Sends one RST (ACK `ack`) per sequence number in `seqs`, each cut into
/// IP fragments as `cut` says, then lets them land.
pub fn fragmented_rsts_at(
    ns: &Netns,
    src: SocketAddr,
    dst: SocketAddr,
    seqs: Vec<u32>,
    ack: Option<u32>,
    cut: Cut,
) {
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        let mut packets = 0u32;
        for seq in seqs {
            // A packet's fragments go back to back; the pause comes between
            // packets, every BURST fragments or so.
            let k = s.send_cut(src, dst, &Forged::rst(seq, ack), &cut) as u32;
            if (packets + k) / BURST > packets / BURST {
                thread::sleep(Duration::from_millis(1));
            }
            packets += k;
        }
    });
    thread::sleep(Duration::from_millis(300));
}

/// Sweeps the whole sequence space with RSTs `step` apart (one receive
/// window apart, as a blind attacker against a stack that accepts any
/// in-window RST would). Returns how many were sent.
pub fn sweep(ns: &Netns, src: SocketAddr, dst: SocketAddr, step: u32, start: u32) -> u64 {
    sweep_cut(ns, src, dst, step, start, None)
}

/// [`sweep`], with each RST cut into IP fragments when `cut` is some.
/// Returns how many RSTs were sent.
pub fn sweep_cut(
    ns: &Netns,
    src: SocketAddr,
    dst: SocketAddr,
    step: u32,
    start: u32,
    cut: Option<Cut>,
) -> u64 {
    assert!(step >= 1024, "a sweep {step} apart would be far too long");
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        let mut sent = 0u64;
        let mut packets = 0u64;
        let mut seq = start;
        for _ in 0..(u64::from(u32::MAX) / u64::from(step) + 1) {
            let rst = Forged::rst(seq, None);
            let k = match &cut {
                None => {
                    s.send(src, dst, &rst);
                    1
                }
                Some(cut) => s.send_cut(src, dst, &rst, cut) as u64,
            };
            seq = seq.wrapping_add(step);
            sent += 1;
            // A pause every BURST packets, between RSTs.
            if (packets + k) / u64::from(BURST) > packets / u64::from(BURST) {
                thread::sleep(Duration::from_micros(500));
            }
            packets += k;
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

/// Sends `frames` (whole Ethernet frames) round and round out of `iface`
/// in `ns` from an AF_PACKET socket (sendmmsg, bypassing the qdisc), as
/// fast as one core can, for `secs` seconds or `max` frames. Returns
/// frames sent.
pub fn packet_flood(ns: &Netns, iface: &str, frames: Vec<Vec<u8>>, secs: f64, max: u64) -> u64 {
    let iface = iface.to_string();
    ns.run(move || {
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex != 0, "no such interface");
        // SAFETY: plain socket(2); protocol 0: this socket receives nothing.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let one: libc::c_int = 1;
        // SAFETY: a valid fd and an int option.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                4,
            );
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let frames = frames;
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = ifindex as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frames[0][..6]);
        // sendmmsg, 64 frames a call: the sender's cost per frame drops
        // well below the receiver's, so the receiver is what is measured.
        const BATCH: usize = 64;
        let mut iovs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut sent = 0u64;
        let mut at = 0usize;
        while sent < max && Instant::now() < deadline {
            // SAFETY: mmsghdr is plain old data; every pointer set below
            // stays valid for the call.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for m in msgs.iter_mut() {
                m.msg_hdr.msg_name = (&mut to as *mut libc::sockaddr_ll).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                m.msg_hdr.msg_iov = &mut iovs[at];
                m.msg_hdr.msg_iovlen = 1;
                at = (at + 1) % iovs.len();
            }
            // SAFETY: fd is ours, msgs holds BATCH valid headers.
            let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
            if r > 0 {
                sent += r as u64;
            }
        }
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
        sent
    })
}

/// Ethernet frames carrying RST|ACKs at random sequence numbers from `src`
/// to `dst` (IPv4), between the MAC addresses given.
pub fn rst_frames(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    n: usize,
) -> Vec<Vec<u8>> {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| {
            let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
                panic!("IPv4 only");
            };
            let b = PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv4(s.ip().octets(), d.ip().octets(), 64)
                .tcp(s.port(), d.port(), rng.gen(), 0)
                .rst()
                .ack(rng.gen());
            let mut f = Vec::with_capacity(b.size(0));
            b.write(&mut f, &[]).expect("building a frame");
            f
        })
        .collect()
}
