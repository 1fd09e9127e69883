//! An on-path injector, as censors and hostile networks run them (Weaver,
//! Sommer and Paxson, NDSS 2009): it reads the real traffic from an
//! AF_PACKET socket, and when a segment carries its keyword it resets the
//! connection with a RST that copies the live sequence numbers, sent from
//! its own distance (its own TTL).
//!
//! Also: segments forged with a chosen TTL (a blind attacker's RSTs and
//! data, from another distance than the peer's).

use std::{
    mem::MaybeUninit,
    net::{IpAddr, SocketAddr},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use socket2::{Domain, Protocol, Socket, Type};

use crate::{netns::Netns, spoof::Spoofer};

/// How long an injector watches for its keyword before it gives up.
pub const WATCH: Duration = Duration::from_secs(30);

/// What an injector sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    /// The RST's sequence number: where the peer's segment with the
    /// keyword ended.
    pub seq: u32,
    /// Its ACK number: the victim's next sequence number.
    pub ack: u32,
    pub ttl: u8,
}

/// An injector watching the traffic of a namespace (every interface, what
/// arrives), until it fires once or [`WATCH`] passes.
pub struct Injector {
    fired: mpsc::Receiver<Injection>,
    handle: Option<JoinHandle<()>>,
}

impl Injector {
    /// Starts watching in `ns` for a segment from `peer` to `victim` whose
    /// payload holds `keyword`. When the victim has acknowledged that
    /// segment (so the RST lands at its RCV.NXT: a real injector races the
    /// peer's next segment instead, and sometimes loses), it sends the
    /// victim a RST|ACK in the peer's name at the segment's end, with TTL
    /// (hop limit) `ttl`. Returns once the capture is open.
    pub fn start(
        ns: &Netns,
        peer: SocketAddr,
        victim: SocketAddr,
        keyword: &'static [u8],
        ttl: u8,
    ) -> Injector {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (fired_tx, fired) = mpsc::channel();
        let handle = ns.spawn(move || {
            let cap = capture();
            let spoofer = Spoofer::new(victim.is_ipv6());
            ready_tx.send(()).expect("signalling readiness");
            let deadline = Instant::now() + WATCH;
            let mut buf = vec![MaybeUninit::<u8>::uninit(); 65536];
            // Where the keyword's segment ends, once seen.
            let mut end: Option<u32> = None;
            while Instant::now() < deadline {
                let Ok(len) = cap.recv(&mut buf) else {
                    continue; // the read timeout: look at the clock
                };
                // SAFETY: recv initialised the first `len` bytes.
                let pkt: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), len) };
                let Some(seg) = Seen::parse(pkt) else {
                    continue;
                };
                match end {
                    None if seg.src == peer
                        && seg.dst == victim
                        && contains(seg.payload, keyword) =>
                    {
                        end = Some(seg.seq.wrapping_add(seg.payload.len() as u32));
                    }
                    Some(e)
                        if seg.src == victim
                            && seg.dst == peer
                            && seg.ack.is_some_and(|a| a.wrapping_sub(e) as i32 >= 0) =>
                    {
                        let rst = tcp_packet(peer, victim, e, Some(seg.seq), true, &[], ttl);
                        spoofer.send_packet(victim.ip(), &rst);
                        let _ = fired_tx.send(Injection {
                            seq: e,
                            ack: seg.seq,
                            ttl,
                        });
                        return;
                    }
                    _ => {}
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the injector's capture is open");
        Injector {
            fired,
            handle: Some(handle),
        }
    }

    /// Waits (bounded) until it has fired; returns what it sent.
    pub fn fired(&mut self) -> Injection {
        let i = self
            .fired
            .recv_timeout(WATCH)
            .expect("the injector never saw its keyword and the victim's ACK");
        if let Some(h) = self.handle.take() {
            h.join().expect("the injector thread panicked");
        }
        i
    }
}

/// An AF_PACKET socket on every interface of the current namespace that
/// reads what arrives (not what leaves: a forwarded segment is seen once),
/// from the IP header on, with a short read timeout.
fn capture() -> Socket {
    let all = i32::from((libc::ETH_P_ALL as u16).to_be());
    let s = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(all)))
        .expect("an AF_PACKET socket (needs CAP_NET_RAW)");
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        r,
        0,
        "PACKET_IGNORE_OUTGOING: {}",
        std::io::Error::last_os_error()
    );
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("a read timeout");
    s
}

/// A captured TCP segment.
struct Seen<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    payload: &'a [u8],
}

impl<'a> Seen<'a> {
    fn parse(pkt: &'a [u8]) -> Option<Seen<'a>> {
        let p = SlicedPacket::from_ip(pkt).ok()?;
        let (src, dst): (IpAddr, IpAddr) = match p.net? {
            NetSlice::Ipv4(ip) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            NetSlice::Ipv6(ip) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            NetSlice::Arp(_) => return None,
        };
        let TransportSlice::Tcp(tcp) = p.transport? else {
            return None;
        };
        Some(Seen {
            src: SocketAddr::new(src, tcp.source_port()),
            dst: SocketAddr::new(dst, tcp.destination_port()),
            seq: tcp.sequence_number(),
            ack: tcp.ack().then(|| tcp.acknowledgment_number()),
            payload: tcp.payload(),
        })
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// An IP packet with a TCP segment from `src` to `dst` (ACK when `ack` is
/// some, RST when `rst`, PSH with a payload), sent with TTL / hop limit
/// `ttl`.
pub fn tcp_packet(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    rst: bool,
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    let ip = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), ttl)
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), ttl)
        }
        _ => panic!("mixed address families"),
    };
    let win = if rst { 0 } else { 502 };
    let mut tcp = ip.tcp(src.port(), dst.port(), seq, win);
    if let Some(a) = ack {
        tcp = tcp.ack(a);
    }
    if rst {
        tcp = tcp.rst();
    }
    if !payload.is_empty() {
        tcp = tcp.psh();
    }
    let mut pkt = Vec::with_capacity(tcp.size(payload.len()));
    tcp.write(&mut pkt, payload).expect("building a segment");
    pkt
}

/// Sends `packets` (from [`tcp_packet`]) to `dst` from a raw socket in
/// `ns`, back to back (a handful: no ring can overflow).
pub fn send_from(ns: &Netns, dst: IpAddr, packets: Vec<Vec<u8>>) {
    assert!(packets.len() <= 64, "a handful, not a flood");
    ns.run(move || {
        let s = Spoofer::new(dst.is_ipv6());
        for p in &packets {
            s.send_packet(dst, p);
        }
    });
}
