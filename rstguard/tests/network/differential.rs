//! Socket mode against the kernel itself. rstguard runs in monitor mode
//! with `--state socket` on the host's interface; live sockets on the host
//! are brought into every state a RST can meet (established, with data in
//! flight both ways, holding SACK blocks, after a FIN each way, SYN_SENT,
//! SYN_RECV, TIME_WAIT and its FIN_WAIT2 flavour), IPv4 and IPv6; RSTs are
//! aimed at them one at a time, around the numbers the sockets really hold
//! (read with TCP_REPAIR) and at random. For each one, rstguard's verdict
//! (its counters) is set beside the kernel's reaction to the very same
//! packet: the connection reset (the socket's state, or the TIME_WAIT or
//! request socket gone), a challenge ACK (nstat's TCPChallengeACK and
//! TCPACKSkippedChallenge, and the ACK itself in a capture on the peer's
//! side), or nothing. `exact` (and `time_wait`, a TIME_WAIT socket
//! ended) must be what resets, every time, and nothing else may.

use std::{
    collections::BTreeMap,
    fmt,
    io::Write,
    net::{IpAddr, Shutdown, SocketAddr, TcpStream},
    os::fd::{AsRawFd, OwnedFd},
    thread,
    time::{Duration, Instant},
};

use rand::Rng;
use rstguard::{maps::Maps, paths::PinDir};
use rstguard_common::{
    count::rst_slot, judge::socket::tcp_state, Action, Counter, Counters, Verdict,
};
use rstguard_lab::{
    kernel_tcp,
    spoof::{Forged, Spoofer},
    Daemon, Pair, CLIENT4, CLIENT6, SERVER4, SERVER6,
};
use socket2::{Domain, Socket, Type};

/// What the kernel did with one RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reaction {
    /// The connection (or the TIME_WAIT or request socket) ended.
    Reset,
    /// A challenge ACK (sent, or skipped by the per-socket rate limit).
    Challenge,
    /// Another ACK (a FIN_WAIT2 TIME_WAIT socket answers out-of-window
    /// segments).
    Ack,
    /// Nothing: dropped silently.
    Silent,
}

impl fmt::Display for Reaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reaction::Reset => "reset",
            Reaction::Challenge => "challenge ACK",
            Reaction::Ack => "ACK",
            Reaction::Silent => "silent drop",
        })
    }
}

/// The states RSTs are aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Established,
    InFlight,
    SackHeld,
    CloseWait,
    LastAck,
    FinWait1,
    FinWait2,
    Closing,
    SynSent,
    SynRecv,
    TimeWait,
    FinWait2Orphan,
}

const STATES: [State; 12] = [
    State::Established,
    State::InFlight,
    State::SackHeld,
    State::CloseWait,
    State::LastAck,
    State::FinWait1,
    State::FinWait2,
    State::Closing,
    State::SynSent,
    State::SynRecv,
    State::TimeWait,
    State::FinWait2Orphan,
];

/// The host (rstguard on its interface, in monitor mode, socket mode) and
/// its peer.
struct Lab {
    pair: Pair,
    _daemon: Daemon,
    maps: Maps,
    ifindex: u32,
    /// Packets arriving at the peer (AF_PACKET on c0).
    capture: OwnedFd,
    next_port: u16,
}

/// One socket on the host in a state, and what it holds.
struct Target {
    state: State,
    v6: bool,
    host: SocketAddr,
    peer: SocketAddr,
    /// The host's socket, where it still has one (TIME_WAIT and request
    /// sockets have none).
    sock: Option<Socket>,
    /// What keeps the scenario alive (the peer's sockets, the listener).
    _keep: Vec<Socket>,
    /// Where RSTs are aimed: RCV.NXT, or for SYN_SENT the ACK of its SYN.
    base: u32,
    /// The host's SND.NXT (an ACK for RST|ACKs), and a SACK edge it holds.
    snd_nxt: u32,
    sack_edge: Option<u32>,
}

/// The daemon's pinned maps (pinned just after it says it attached).
pub fn open_maps(pin_dir: &str) -> Maps {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Maps::open(&PinDir::new(pin_dir)) {
            Ok(m) => return m,
            Err(e) if Instant::now() > deadline => panic!("the pinned maps: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn socket(v6: bool) -> Socket {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    Socket::new(domain, Type::STREAM, None).expect("a socket")
}

fn settle() {
    thread::sleep(Duration::from_millis(40));
}

impl Lab {
    fn new() -> Lab {
        let pair = Pair::new();
        for ns in [&pair.server, &pair.client] {
            // Every challenge ACK visible in the capture: the per-socket
            // limit stays as it is (TCPACKSkippedChallenge counts those).
            ns.exec(&["sysctl", "-qw", "net.ipv4.tcp_rfc1337=0"]);
        }
        let daemon = Daemon::start(
            &pair.server,
            &[
                "attach",
                "s0",
                "--state",
                "socket",
                "--policy",
                "monitor",
                "--interval",
                "0",
                "--no-metrics",
            ],
        );
        let maps = open_maps(&pair.server.pin_dir());
        let link = pair.server.ip(&["-o", "link", "show", "s0"]);
        let ifindex: u32 = link.split(':').next().unwrap().trim().parse().unwrap();
        pair.client.exec(&["nft", "add", "table", "inet", "rg"]);
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            pair.client.exec(&[
                "nft",
                &format!("add chain inet rg {chain} {{ type filter hook {hook} priority 0; }}"),
            ]);
        }
        let capture = pair.client.run(|| {
            // SAFETY: plain socket(2); ETH_P_ALL in network order.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            };
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            // SAFETY: a fresh fd we own.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            // SAFETY: sockaddr_ll is plain old data.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            let name = std::ffi::CString::new("c0").unwrap();
            // SAFETY: a NUL-terminated name.
            sll.sll_ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
            // SAFETY: binding our fd to a sockaddr_ll of the right size.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(r, 0, "binding the capture");
            fd
        });
        Lab {
            pair,
            _daemon: daemon,
            maps,
            ifindex,
            capture,
            next_port: 20_000,
        }
    }

    fn port(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    fn addrs(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (SERVER6.parse().unwrap(), CLIENT6.parse().unwrap())
        } else {
            (SERVER4.parse().unwrap(), CLIENT4.parse().unwrap())
        }
    }

    /// An nft rule in the peer's namespace (chain `in` or `out`).
    fn nft(&self, chain: &str, rule: &str) {
        let mut args = vec!["nft", "add", "rule", "inet", "rg", chain];
        args.extend(rule.split_whitespace());
        self.pair.client.exec(&args);
    }

    /// The peer drops everything from the host's `port`.
    fn peer_ignores(&self, host_port: u16) {
        self.nft("in", &format!("tcp sport {host_port} drop"));
    }

    /// The peer sends nothing but RSTs to the host's `port` (its data and
    /// ACKs are lost on the way).
    fn peer_mute(&self, host_port: u16) {
        self.nft(
            "out",
            &format!("tcp dport {host_port} tcp flags & rst == 0 drop"),
        );
    }

    /// A connection from the host (port `hp`) to a listener on the peer.
    fn connect(&mut self, v6: bool) -> (Socket, Socket, Socket, SocketAddr, SocketAddr) {
        let (h, p) = Lab::addrs(v6);
        let (hp, pp) = (self.port(), self.port());
        let peer = SocketAddr::new(p, pp);
        let host = SocketAddr::new(h, hp);
        let listener = self.pair.client.run(move || {
            let l = socket(v6);
            l.set_reuse_address(true).unwrap();
            l.bind(&peer.into()).expect("binding the peer");
            l.listen(8).unwrap();
            l
        });
        let sock = self.pair.server.run(move || {
            let s = socket(v6);
            s.bind(&host.into()).expect("binding the host");
            s.connect(&peer.into()).expect("connecting");
            s
        });
        let (accepted, _) = listener.accept().expect("accepting");
        (sock, accepted, listener, host, peer)
    }

    /// Brings a socket on the host into `state`.
    fn target(&mut self, state: State, v6: bool) -> Target {
        use State::*;
        let mut t = match state {
            SynSent => {
                let (h, p) = Lab::addrs(v6);
                let host = SocketAddr::new(h, self.port());
                let peer = SocketAddr::new(p, self.port());
                self.peer_ignores(host.port());
                let sock = self.pair.server.run(move || {
                    let s = socket(v6);
                    s.bind(&host.into()).unwrap();
                    s.set_nonblocking(true).unwrap();
                    let _ = s.connect(&peer.into());
                    s
                });
                settle();
                let k = kernel_tcp::seqs(&sock).unwrap();
                Target {
                    state,
                    v6,
                    host,
                    peer,
                    sock: Some(sock),
                    _keep: vec![],
                    base: k.write_seq,
                    snd_nxt: k.write_seq,
                    sack_edge: None,
                }
            }
            SynRecv => {
                let (h, p) = Lab::addrs(v6);
                let host = SocketAddr::new(h, self.port());
                let peer = SocketAddr::new(p, self.port());
                let listener = self.pair.server.run(move || {
                    let l = socket(v6);
                    l.bind(&host.into()).unwrap();
                    l.listen(8).unwrap();
                    l
                });
                self.peer_ignores(host.port());
                let client = self.pair.client.run(move || {
                    let s = socket(v6);
                    s.bind(&peer.into()).unwrap();
                    s.set_nonblocking(true).unwrap();
                    let _ = s.connect(&host.into());
                    s
                });
                settle();
                // The peer's ISN + 1 is the request's RCV.NXT.
                let k = kernel_tcp::seqs(&client).unwrap();
                Target {
                    state,
                    v6,
                    host,
                    peer,
                    sock: None,
                    _keep: vec![listener, client],
                    base: k.write_seq,
                    snd_nxt: 0,
                    sack_edge: None,
                }
            }
            _ => {
                let (sock, peer_sock, listener, host, peer) = self.connect(v6);
                let stream = |s: &Socket| -> TcpStream { s.try_clone().unwrap().into() };
                stream(&sock).write_all(&[1u8; 2000]).unwrap();
                stream(&peer_sock).write_all(&[2u8; 3000]).unwrap();
                settle();
                let mut buf = vec![0u8; 3000];
                std::io::Read::read_exact(&mut stream(&sock), &mut buf).unwrap();
                let mut buf = vec![0u8; 2000];
                std::io::Read::read_exact(&mut stream(&peer_sock), &mut buf).unwrap();
                let mut sack_edge = None;
                let mut keep_host = true;
                match state {
                    Established => {}
                    InFlight => {
                        self.peer_ignores(host.port());
                        self.peer_mute(host.port());
                        stream(&sock).write_all(&[3u8; 5000]).unwrap();
                        stream(&peer_sock).write_all(&[4u8; 5000]).unwrap();
                    }
                    SackHeld => {
                        settle();
                        let k = kernel_tcp::seqs(&sock).unwrap();
                        let ooo = Forged {
                            seq: k.rcv_nxt.wrapping_add(1000),
                            ack: Some(k.write_seq),
                            payload: 100,
                            ..Forged::default()
                        };
                        self.spoof(v6, peer, host, &ooo);
                        sack_edge = Some(k.rcv_nxt.wrapping_add(1100));
                    }
                    CloseWait => peer_sock.shutdown(Shutdown::Write).unwrap(),
                    LastAck => {
                        peer_sock.shutdown(Shutdown::Write).unwrap();
                        settle();
                        self.peer_ignores(host.port());
                        sock.shutdown(Shutdown::Write).unwrap();
                    }
                    FinWait1 => {
                        self.peer_ignores(host.port());
                        sock.shutdown(Shutdown::Write).unwrap();
                    }
                    FinWait2 => sock.shutdown(Shutdown::Write).unwrap(),
                    Closing => {
                        self.peer_ignores(host.port());
                        sock.shutdown(Shutdown::Write).unwrap();
                        settle();
                        peer_sock.shutdown(Shutdown::Write).unwrap();
                    }
                    TimeWait => {
                        sock.shutdown(Shutdown::Write).unwrap();
                        settle();
                        peer_sock.shutdown(Shutdown::Write).unwrap();
                        keep_host = false;
                    }
                    FinWait2Orphan => keep_host = false,
                    SynSent | SynRecv => unreachable!(),
                }
                settle();
                let k = kernel_tcp::seqs(&sock).unwrap();
                let mut base = k.rcv_nxt;
                let keep = vec![peer_sock, listener];
                let sock = if keep_host {
                    Some(sock)
                } else {
                    if state == TimeWait {
                        // The peer's FIN is in: TIME_WAIT's RCV.NXT is past
                        // it (k was read after it arrived).
                        base = k.rcv_nxt;
                    }
                    // FinWait2Orphan: closed with nothing unread, the FIN
                    // goes out and is acknowledged, and the orphan waits in
                    // a TIME_WAIT socket of the FIN_WAIT2 flavour.
                    drop(sock);
                    None
                };
                settle();
                Target {
                    state,
                    v6,
                    host,
                    peer,
                    sock,
                    _keep: keep,
                    base,
                    snd_nxt: k.write_seq,
                    sack_edge,
                }
            }
        };
        t.check_state(self);
        t
    }

    fn spoof(&self, v6: bool, from: SocketAddr, to: SocketAddr, seg: &Forged) {
        let seg = *seg;
        self.pair
            .client
            .run(move || Spoofer::new(v6).send(from, to, &seg));
    }

    fn counters(&self) -> Counters {
        self.maps.counters(self.ifindex).expect("reading counters")
    }

    /// The verdict the RST sent after `before` was counted under.
    fn verdict_since(&self, before: &Counters) -> Verdict {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let d = self.counters().delta(before);
            if d.get(Counter::XdpRst) >= 1 {
                assert_eq!(d.get(Counter::XdpRst), 1, "one RST at a time");
                let moved: Vec<Verdict> = Verdict::ALL
                    .into_iter()
                    .filter(|v| d.slots[rst_slot(*v, Action::Pass)] == 1)
                    .collect();
                assert_eq!(moved.len(), 1, "verdicts moved: {moved:?}");
                for v in Verdict::ALL {
                    assert_eq!(
                        d.slots[rst_slot(v, Action::Drop)],
                        0,
                        "monitor drops nothing"
                    );
                }
                return moved[0];
            }
            assert!(Instant::now() < deadline, "the RST never reached XDP");
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The host's TCP MIB counters that tell what it did with a RST.
    fn mibs(&self) -> BTreeMap<String, u64> {
        self.pair.server.run(|| {
            let text = std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let mut out = BTreeMap::new();
            for pair in lines.chunks(2) {
                let (names, values) = (pair[0], pair[1]);
                if !names.starts_with("TcpExt:") {
                    continue;
                }
                for (n, v) in names
                    .split_whitespace()
                    .zip(values.split_whitespace())
                    .skip(1)
                {
                    out.insert(n.to_string(), v.parse().unwrap_or(0));
                }
            }
            out
        })
    }

    /// Pure ACKs from `host` to `peer` captured at the peer since the last
    /// call.
    fn acks_captured(&self, host: SocketAddr, peer: SocketAddr) -> u32 {
        let mut buf = [0u8; 2048];
        let mut acks = 0;
        loop {
            // SAFETY: our fd, a buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.capture.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n <= 0 {
                return acks;
            }
            if let Some((src, dst, flags, payload)) = tcp_of(&buf[..n as usize]) {
                if src == host && dst == peer && flags == 0x10 && payload == 0 {
                    acks += 1;
                }
            }
        }
    }
}

/// (source, destination, flags, payload length) of a TCP segment in an
/// Ethernet frame.
fn tcp_of(frame: &[u8]) -> Option<(SocketAddr, SocketAddr, u8, usize)> {
    let s = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match s.net? {
        etherparse::NetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        etherparse::NetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => return None,
    };
    match s.transport? {
        etherparse::TransportSlice::Tcp(t) => Some((
            SocketAddr::new(src, t.source_port()),
            SocketAddr::new(dst, t.destination_port()),
            t.slice()[13],
            t.payload().len(),
        )),
        _ => None,
    }
}

impl Target {
    /// Whether the host's socket (or its TIME_WAIT or request socket) is
    /// still there.
    fn alive(&self, lab: &Lab) -> bool {
        match &self.sock {
            Some(s) => {
                let st = kernel_tcp::state(s).unwrap();
                st != tcp_state::CLOSE
            }
            None => {
                let filter = format!(
                    "( sport = :{} and dport = :{} )",
                    self.host.port(),
                    self.peer.port()
                );
                let out = lab.pair.server.exec(&["ss", "-Htan", &filter]);
                !out.trim().is_empty()
            }
        }
    }

    /// Waits (up to 3 s: the machine may be loaded) until the host's socket
    /// is in the state the scenario built.
    fn check_state(&mut self, lab: &Lab) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let (ok, got) = self.in_state(lab);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} (v6 {}): the socket is {got}",
                self.state,
                self.v6
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn in_state(&self, lab: &Lab) -> (bool, String) {
        let want = match self.state {
            State::Established | State::InFlight | State::SackHeld => tcp_state::ESTABLISHED,
            State::CloseWait => tcp_state::CLOSE_WAIT,
            State::LastAck => tcp_state::LAST_ACK,
            State::FinWait1 => tcp_state::FIN_WAIT1,
            State::FinWait2 => tcp_state::FIN_WAIT2,
            State::Closing => tcp_state::CLOSING,
            State::SynSent => tcp_state::SYN_SENT,
            State::SynRecv | State::TimeWait | State::FinWait2Orphan => {
                let name = match self.state {
                    State::SynRecv => "SYN-RECV",
                    State::TimeWait => "TIME-WAIT",
                    _ => "FIN-WAIT-2",
                };
                let out = lab.pair.server.exec(&[
                    "ss",
                    "-Htan",
                    &format!("( sport = :{} )", self.host.port()),
                ]);
                return (out.contains(name), out);
            }
        };
        let got = kernel_tcp::state(self.sock.as_ref().unwrap()).unwrap();
        (got == want, tcp_state::name(got).to_string())
    }
}

/// Where a RST's sequence number (or ACK) lies: relative to what the
/// target holds (its base, rebuilt targets included), or anywhere.
#[derive(Clone, Copy, Debug)]
enum At {
    Rel(i64),
    Abs(u32),
    /// The host's SND.NXT.
    SndNxt,
}

impl At {
    fn of(self, t: &Target) -> u32 {
        match self {
            At::Rel(d) => t.base.wrapping_add(d as u32),
            At::Abs(v) => v,
            At::SndNxt => t.snd_nxt,
        }
    }
}

/// RSTs aimed at a target: (seq, ACK) around what it holds, and at random.
fn aims(state: State, sack: bool, rng: &mut impl Rng, random: usize) -> Vec<(At, Option<At>)> {
    let mut v: Vec<(At, Option<At>)> = Vec::new();
    match state {
        State::SynSent => {
            for d in [0i64, 1, -1, 2, 1000, -(1 << 20)] {
                v.push((At::Abs(rng.gen()), Some(At::Rel(d))));
            }
            v.push((At::Rel(0), None));
            for _ in 0..random {
                v.push((At::Abs(rng.gen()), Some(At::Rel(rng.gen_range(-1..3)))));
            }
        }
        _ => {
            let offsets = [
                0i64,
                1,
                -1,
                2,
                -2,
                100,
                1000,
                1100,
                10_000,
                30_000,
                60_000,
                65_535,
                65_536,
                100_000,
                1 << 20,
                3 << 20,
                1 << 24,
                1 << 31,
                -100,
                -70_000,
                -(1 << 30),
            ];
            for d in offsets {
                v.push((At::Rel(d), None));
            }
            if sack {
                // The SACK edge (1100) is in the list; its ACK'd twin:
                v.push((At::Rel(1100), Some(At::SndNxt)));
            }
            if state == State::SynRecv {
                // RCV.NXT with an ACK that is not the SYN-ACK's.
                v.push((At::Rel(0), Some(At::Abs(rng.gen()))));
                v.push((At::Rel(1), Some(At::Abs(rng.gen()))));
            }
            for _ in 0..random {
                let seq = if rng.gen_bool(0.6) {
                    At::Rel(rng.gen_range(-2_000..140_000))
                } else {
                    At::Abs(rng.gen())
                };
                let ack = match state {
                    // A request socket's ACK check: no ACK, or a wrong one.
                    State::SynRecv => rng.gen_bool(0.3).then(|| At::Abs(rng.gen())),
                    _ => rng.gen_bool(0.5).then_some(At::SndNxt),
                };
                v.push((seq, ack));
            }
        }
    }
    v
}

#[test]
fn socket_mode_agrees_with_the_kernel_on_every_rst() {
    let mut lab = Lab::new();
    let mut rng = rand::thread_rng();
    // (state, verdict, reaction) -> RSTs.
    let mut table: BTreeMap<(State, Verdict, Reaction), u32> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut total = 0u32;
    let mut uncaptured = 0u32;
    for v6 in [false, true] {
        for state in STATES {
            // One state only, when debugging (its name as in the table).
            if let Ok(only) = std::env::var("RSTGUARD_DIFF_STATE") {
                if format!("{state:?}") != only {
                    continue;
                }
            }
            let mut t = lab.target(state, v6);
            let shots = aims(state, t.sack_edge.is_some(), &mut rng, 24);
            for (seq, ack) in shots {
                if !t.alive(&lab) {
                    t = lab.target(state, v6);
                }
                let (seq, ack) = (seq.of(&t), ack.map(|a| a.of(&t)));
                let before = lab.counters();
                let mibs = lab.mibs();
                let _ = lab.acks_captured(t.host, t.peer);
                lab.spoof(v6, t.peer, t.host, &Forged::rst(seq, ack));
                let verdict = lab.verdict_since(&before);
                thread::sleep(Duration::from_millis(30));
                let after = lab.mibs();
                let d = |k: &str| after.get(k).unwrap_or(&0) - mibs.get(k).unwrap_or(&0);
                let acks = lab.acks_captured(t.host, t.peer);
                let reset = if state == State::SynRecv {
                    // A SYN the peer retransmits could make a new request
                    // before `ss` looks: the kernel's own count of dropped
                    // requests tells.
                    d("EmbryonicRsts") > 0
                } else {
                    !t.alive(&lab)
                };
                let reaction = if reset {
                    Reaction::Reset
                } else if d("TCPChallengeACK") + d("TCPACKSkippedChallenge") > 0 {
                    Reaction::Challenge
                } else if acks > 0 || d("TCPACKSkippedFinWait2") > 0 {
                    Reaction::Ack
                } else {
                    Reaction::Silent
                };
                // The capture shows every challenge ACK the kernel counted
                // as sent.
                if reaction == Reaction::Challenge && u64::from(acks) < d("TCPChallengeACK") {
                    uncaptured += 1;
                }
                total += 1;
                *table.entry((state, verdict, reaction)).or_default() += 1;
                let expected_reset = matches!(verdict, Verdict::Exact | Verdict::TimeWait);
                let consistent = match verdict {
                    Verdict::Exact | Verdict::TimeWait => reaction == Reaction::Reset,
                    Verdict::InWindow => reaction == Reaction::Challenge,
                    _ => matches!(reaction, Reaction::Silent | Reaction::Ack),
                };
                if std::env::var("RSTGUARD_DIFF_TRACE").is_ok()
                    || !consistent
                    || expected_reset != (reaction == Reaction::Reset)
                {
                    let moved: Vec<String> = after
                        .iter()
                        .filter(|(k, v)| mibs.get(*k) != Some(v))
                        .map(|(k, v)| format!("{k}+{}", v - mibs.get(k).unwrap_or(&0)))
                        .collect();
                    let ss = lab.pair.server.exec(&[
                        "ss",
                        "-Htanie",
                        &format!("( sport = :{} )", t.host.port()),
                    ]);
                    mismatches.push(format!(
                        "ss: {ss} {state:?} v6={v6} seq={seq} ack={ack:?} base={} verdict={verdict} kernel={reaction} acks={acks} mibs={}",
                        t.base,
                        moved.join(",")
                    ));
                }
            }
        }
    }
    eprintln!("\n{total} RSTs; verdict against the kernel's reaction:");
    eprintln!(
        "{:<16} {:<14} {:<14} {:>6}",
        "state", "verdict", "kernel", "RSTs"
    );
    for ((state, verdict, reaction), n) in &table {
        eprintln!(
            "{:<16} {:<14} {:<14} {n:>6}",
            format!("{state:?}"),
            verdict.name(),
            reaction.to_string()
        );
    }
    let mut by_verdict: BTreeMap<(Verdict, Reaction), u32> = BTreeMap::new();
    for ((_, v, r), n) in &table {
        *by_verdict.entry((*v, *r)).or_default() += n;
    }
    eprintln!("\nby verdict:");
    for ((v, r), n) in &by_verdict {
        eprintln!("{:<14} {:<14} {n:>6}", v.name(), r.to_string());
    }
    assert_eq!(uncaptured, 0, "challenge ACKs counted but not captured");
    assert!(
        mismatches.is_empty(),
        "{} of {total} RSTs judged unlike the kernel:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    for state in STATES {
        assert!(
            table
                .keys()
                .any(|(s, _, r)| *s == state && *r == Reaction::Reset),
            "{state:?}: no RST reset it"
        );
    }
}
