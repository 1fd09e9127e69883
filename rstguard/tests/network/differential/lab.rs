//! The lab: the host with rstguard attached, its peer, the RSTs spoofed
//! from the peer, and what rstguard (its counters) and the kernel (its
//! MIB counters, the ACKs it sends) make of them.

use super::*;

impl Lab {
    pub(super) fn new() -> Lab {
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

    pub(super) fn port(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    pub(super) fn addrs(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (SERVER6.parse().unwrap(), CLIENT6.parse().unwrap())
        } else {
            (SERVER4.parse().unwrap(), CLIENT4.parse().unwrap())
        }
    }

    /// An nft rule in the peer's namespace (chain `in` or `out`).
    pub(super) fn nft(&self, chain: &str, rule: &str) {
        let mut args = vec!["nft", "add", "rule", "inet", "rg", chain];
        args.extend(rule.split_whitespace());
        self.pair.client.exec(&args);
    }

    /// The peer drops everything from the host's `port`.
    pub(super) fn peer_ignores(&self, host_port: u16) {
        self.nft("in", &format!("tcp sport {host_port} drop"));
    }

    /// The peer sends nothing but RSTs to the host's `port` (its data and
    /// ACKs are lost on the way).
    pub(super) fn peer_mute(&self, host_port: u16) {
        self.nft(
            "out",
            &format!("tcp dport {host_port} tcp flags & rst == 0 drop"),
        );
    }

    /// A connection from the host (port `hp`) to a listener on the peer.
    pub(super) fn connect(&mut self, v6: bool) -> (Socket, Socket, Socket, SocketAddr, SocketAddr) {
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

    pub(super) fn spoof(&self, v6: bool, from: SocketAddr, to: SocketAddr, seg: &Forged) {
        let seg = *seg;
        self.pair
            .client
            .run(move || Spoofer::new(v6).send(from, to, &seg));
    }

    pub(super) fn counters(&self) -> Counters {
        self.maps.counters(self.ifindex).expect("reading counters")
    }

    /// The verdict the RST sent after `before` was counted under.
    pub(super) fn verdict_since(&self, before: &Counters) -> Verdict {
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
    pub(super) fn mibs(&self) -> BTreeMap<String, u64> {
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
    pub(super) fn acks_captured(&self, host: SocketAddr, peer: SocketAddr) -> u32 {
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
pub(super) fn tcp_of(frame: &[u8]) -> Option<(SocketAddr, SocketAddr, u8, usize)> {
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
