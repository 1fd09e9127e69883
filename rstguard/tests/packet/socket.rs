//! Socket mode through BPF_PROG_TEST_RUN, against real sockets. Each test
//! runs on a thread in a network namespace of its own (the XDP test run
//! looks sockets up in the caller's namespace), makes real connections
//! there, reads what the kernel holds for them (TCP_REPAIR), and runs RSTs
//! aimed at those numbers through the real XDP program: every verdict, in
//! every socket state, IPv4 and IPv6.

use std::{
    io::{Read, Write},
    net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    thread,
    time::Duration,
};

use rstguard::{
    ebpf::LoadOptions,
    socket::{host_addresses, prepare},
};
use rstguard_common::{
    judge::socket::{tcp_state, Source},
    Action, Counter, Level, Verdict,
};
use rstguard_lab::{kernel_tcp, sh, spoof::Forged};

use crate::harness::*;

use Action::{Drop, Pass};
use Verdict::*;

/// Runs `f` on a thread in a fresh network namespace, with the object
/// loaded with socket mode and interface 1 (lo, where the test runs
/// frames) set to `source`.
pub(crate) fn in_netns(
    level: Level,
    source: Source,
    f: impl FnOnce(&mut Harness) + Send + 'static,
) {
    require_root();
    thread::spawn(move || {
        kernel_tcp::private_netns();
        let fields = prepare().expect("socket mode is available on this test machine");
        let Some(mut h) = with_socket_mode(
            level,
            &LoadOptions {
                sock_fields: fields,
                ..LoadOptions::default()
            },
        ) else {
            return;
        };
        h.loaded
            .maps
            .set_source(1, source)
            .expect("setting the state source");
        f(&mut h);
    })
    .join()
    .expect("the test thread");
}

/// A client and the server end of its connection, over `lo`.
pub(crate) struct Conn {
    pub(crate) client: TcpStream,
    pub(crate) server: TcpStream,
    _listener: TcpListener,
}

impl Conn {
    pub(crate) fn new(v6: bool) -> Conn {
        let any: SocketAddr = if v6 { "[::1]:0" } else { "127.0.0.1:0" }.parse().unwrap();
        let listener = TcpListener::bind(any).expect("listening");
        let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connecting");
        let (server, _) = listener.accept().expect("accepting");
        Conn {
            client,
            server,
            _listener: listener,
        }
    }

    pub(crate) fn c(&self) -> SocketAddr {
        self.client.local_addr().unwrap()
    }

    pub(crate) fn s(&self) -> SocketAddr {
        self.server.local_addr().unwrap()
    }

    /// Data both ways, all of it read.
    pub(crate) fn talk(&mut self) {
        self.client.write_all(&[1u8; 1000]).unwrap();
        self.server.write_all(&[2u8; 3000]).unwrap();
        let mut buf = [0u8; 1000];
        self.server.read_exact(&mut buf).unwrap();
        let mut buf = [0u8; 3000];
        self.client.read_exact(&mut buf).unwrap();
        settle();
    }
}

/// Lets loopback traffic (and delayed ACKs) land.
pub(crate) fn settle() {
    thread::sleep(Duration::from_millis(50));
}

pub(crate) fn pair(a: SocketAddr) -> (IpAddr, u16) {
    (a.ip(), a.port())
}

pub(crate) fn net_of(a: SocketAddr) -> Net {
    Net {
        v6: a.is_ipv6(),
        ..Net::default()
    }
}

/// A RST from `from` to `to` (ACK `ack` when given), as a frame.
pub(crate) fn rst(from: SocketAddr, to: SocketAddr, seq: u32, ack: Option<u32>) -> Vec<u8> {
    let seg = Seg {
        seq,
        ack,
        rst: true,
        ..Seg::default()
    };
    tcp_frame(&net_of(to), pair(from), pair(to), &seg)
}

/// A network (10.9.0.0/24, fd09::/64 on `d0`) whose packets go nowhere: a
/// veth whose peer is down.
fn dead_end() {
    sh(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    sh(&["ip", "addr", "add", "10.9.0.1/24", "dev", "d0"]);
    sh(&["ip", "addr", "add", "fd09::1/64", "dev", "d0", "nodad"]);
    sh(&["ip", "link", "set", "d0", "up"]);
}

fn families() -> [bool; 2] {
    [false, true]
}

#[test]
fn established_sockets_every_window_verdict() {
    in_netns(Level::Enforce, Source::Socket, |h| {
        for v6 in families() {
            let mut conn = Conn::new(v6);
            conn.talk();
            let k = kernel_tcp::seqs(&conn.server).unwrap();
            let (c, s) = (conn.c(), conn.s());
            let at = |seq| rst(c, s, seq, None);
            let name = if v6 { "ipv6" } else { "ipv4" };
            assert_eq!(h.judge(&at(k.rcv_nxt)), (Exact, Pass), "{name}");
            assert_eq!(h.judge(&at(k.rcv_nxt + 1)), (InWindow, Pass), "{name}");
            assert_eq!(h.judge(&at(k.rcv_nxt + 1000)), (InWindow, Pass), "{name}");
            assert_eq!(
                h.judge(&at(k.rcv_nxt.wrapping_add(1 << 31))),
                (OutOfWindow, Drop),
                "{name}"
            );
            // One before RCV.NXT is exact only after a FIN.
            assert_eq!(
                h.judge(&at(k.rcv_nxt.wrapping_sub(1))),
                (OutOfWindow, Drop),
                "{name}"
            );
            // Another port: no socket. The listener's port: a listener only.
            let other = SocketAddr::new(s.ip(), s.port().wrapping_add(1));
            assert_eq!(h.judge(&rst(c, other, k.rcv_nxt, None)), (NoFlow, Pass));
            let stranger = SocketAddr::new(c.ip(), 1);
            assert_eq!(
                h.judge(&rst(
                    stranger,
                    conn._listener.local_addr().unwrap(),
                    0,
                    None
                )),
                (NoFlow, Pass),
                "{name}: a listener holds no connection"
            );
            // Nothing was tracked, and nothing reset the connection.
            assert!(h.flow(&h.key_of(pair(c), pair(s))).is_none(), "{name}");
            assert_eq!(
                kernel_tcp::state(&conn.server).unwrap(),
                tcp_state::ESTABLISHED
            );
        }
        let counted = h.counters();
        assert_eq!(counted.get(Counter::SocketRst), 14);
        assert_eq!(counted.get(Counter::FlowsCreated), 0);
    });
}

#[test]
fn strict_drops_in_window_rsts_and_monitor_drops_nothing() {
    for (level, in_window, out) in [
        (Level::Monitor, Pass, Pass),
        (Level::Enforce, Pass, Drop),
        (Level::Strict, Drop, Drop),
    ] {
        in_netns(level, Source::Socket, move |h| {
            let mut conn = Conn::new(false);
            conn.talk();
            let k = kernel_tcp::seqs(&conn.server).unwrap();
            let (c, s) = (conn.c(), conn.s());
            assert_eq!(
                h.judge(&rst(c, s, k.rcv_nxt + 10, None)),
                (InWindow, in_window)
            );
            assert_eq!(
                h.judge(&rst(c, s, k.rcv_nxt ^ 0x8000_0000, None)),
                (OutOfWindow, out)
            );
            assert_eq!(h.judge(&rst(c, s, k.rcv_nxt, None)), (Exact, Pass));
        });
    }
}

#[test]
fn after_a_fin_rcv_nxt_minus_one_resets() {
    in_netns(Level::Enforce, Source::Socket, |h| {
        for v6 in families() {
            let mut conn = Conn::new(v6);
            conn.talk();
            // The client closes its side: the server is in CLOSE_WAIT.
            conn.client.shutdown(Shutdown::Write).unwrap();
            settle();
            assert_eq!(
                kernel_tcp::state(&conn.server).unwrap(),
                tcp_state::CLOSE_WAIT
            );
            let k = kernel_tcp::seqs(&conn.server).unwrap();
            let (c, s) = (conn.c(), conn.s());
            assert_eq!(h.judge(&rst(c, s, k.rcv_nxt - 1, None)), (Exact, Pass));
            assert_eq!(h.judge(&rst(c, s, k.rcv_nxt, None)), (Exact, Pass));
            assert_eq!(
                h.judge(&rst(c, s, k.rcv_nxt - 2, None)),
                (OutOfWindow, Drop)
            );
            // The server closes too: LAST_ACK until the client acks (it
            // does at once over lo), the client in TIME_WAIT.
        }
    });
}

#[test]
fn the_highest_sack_edge_a_socket_holds_resets() {
    in_netns(Level::Strict, Source::Socket, |h| {
        for v6 in families() {
            let mut conn = Conn::new(v6);
            conn.talk();
            let srv = kernel_tcp::seqs(&conn.server).unwrap();
            let (c, s) = (conn.c(), conn.s());
            // Out-of-order data from the client's four-tuple: the server
            // queues it and holds a SACK block [rcv_nxt + 1000, + 1100).
            let ooo = Forged {
                seq: srv.rcv_nxt + 1000,
                ack: Some(srv.write_seq),
                payload: 100,
                ..Forged::default()
            };
            let sock = rstguard_lab::spoof::Spoofer::new(v6);
            sock.send(c, s, &ooo);
            settle();
            let edge = srv.rcv_nxt + 1100;
            assert_eq!(h.judge(&rst(c, s, edge, None)), (Exact, Pass));
            assert_eq!(
                h.judge(&rst(c, s, srv.rcv_nxt + 1000, None)),
                (InWindow, Drop)
            );
            assert_eq!(h.judge(&rst(c, s, srv.rcv_nxt, None)), (Exact, Pass));
        }
    });
}

#[test]
fn syn_sent_wants_the_ack_of_its_syn() {
    in_netns(Level::Enforce, Source::Socket, |h| {
        // A network whose packets go nowhere: the SYN is never answered.
        dead_end();
        for peer in ["10.9.0.2:80", "[fd09::2]:80"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(peer),
                socket2::Type::STREAM,
                None,
            )
            .unwrap();
            sock.set_nonblocking(true).unwrap();
            let _ = sock.connect(&peer.into());
            settle();
            assert_eq!(kernel_tcp::state(&sock).unwrap(), tcp_state::SYN_SENT);
            let me = sock.local_addr().unwrap().as_socket().unwrap();
            let k = kernel_tcp::seqs(&sock).unwrap();
            // write_seq is ISN + 1 once the SYN is out.
            assert_eq!(h.judge(&rst(peer, me, 0, Some(k.write_seq))), (Exact, Pass));
            assert_eq!(
                h.judge(&rst(peer, me, 0, Some(k.write_seq + 1))),
                (BadSynAck, Drop)
            );
            assert_eq!(
                h.judge(&rst(peer, me, 0, Some(k.write_seq - 1))),
                (BadSynAck, Drop)
            );
            assert_eq!(
                h.judge(&rst(peer, me, k.write_seq, None)),
                (BadSynAck, Drop)
            );
            drop(sock);
        }
    });
}

#[test]
fn request_sockets_reset_only_at_rcv_nxt() {
    in_netns(Level::Strict, Source::Socket, |h| {
        dead_end();
        let listener = TcpListener::bind("10.9.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        // A SYN from an address behind d0: the SYN-ACK goes out there and
        // nothing answers, so the request waits in SYN_RECV.
        let peer: SocketAddr = "10.9.0.2:40000".parse().unwrap();
        rstguard_lab::spoof::Spoofer::new(false).send(peer, server, &Forged::syn(7000));
        // The request appears once the SYN has been through the stack (a
        // moment, longer under emulation).
        let deadline = std::time::Instant::now() + rstguard_lab::patience(Duration::from_secs(2));
        let ss = loop {
            let ss = sh(&["ss", "-Htn", "state", "syn-recv"]);
            if ss.contains("10.9.0.2:40000") || std::time::Instant::now() > deadline {
                break ss;
            }
            settle();
        };
        assert!(ss.contains("10.9.0.2:40000"), "no request socket: {ss}");
        let rcv_nxt = 7001;
        assert_eq!(h.judge(&rst(peer, server, rcv_nxt, None)), (Exact, Pass));
        // The rest of the SYN-ACK's window earns a challenge ACK (Linux
        // 6.18.44, as the differential network test measures it).
        assert_eq!(
            h.judge(&rst(peer, server, rcv_nxt + 1000, None)),
            (InWindow, Drop)
        );
        assert_eq!(
            h.judge(&rst(peer, server, rcv_nxt + 70_000, None)),
            (OutOfWindow, Drop)
        );
        assert_eq!(
            h.judge(&rst(peer, server, rcv_nxt - 1, None)),
            (OutOfWindow, Drop)
        );
        // The ACK field does not count.
        assert_eq!(
            h.judge(&rst(peer, server, rcv_nxt, Some(12345))),
            (Exact, Pass)
        );
        drop(listener);
    });
}

#[test]
fn time_wait_sockets_and_the_time_wait_policy() {
    in_netns(Level::Enforce, Source::Socket, |h| {
        for v6 in families() {
            let mut conn = Conn::new(v6);
            conn.talk();
            let (c, s) = (conn.c(), conn.s());
            let before = kernel_tcp::seqs(&conn.client).unwrap();
            // The client closes first and ends in TIME_WAIT once the server
            // closes too.
            conn.client.shutdown(Shutdown::Both).unwrap();
            settle();
            drop(conn.server);
            settle();
            let tw = sh(&["ss", "-Htn", "state", "time-wait"]);
            assert!(tw.contains(&c.port().to_string()), "no TIME_WAIT: {tw}");
            // Its RCV.NXT: past the server's FIN.
            let rcv_nxt = before.rcv_nxt + 1;
            assert_eq!(h.judge(&rst(s, c, rcv_nxt, None)), (TimeWait, Pass));
            assert_eq!(h.judge(&rst(s, c, rcv_nxt + 1, None)), (OutOfWindow, Drop));
            h.set_policy(|p| p.time_wait = Drop as u8);
            assert_eq!(h.judge(&rst(s, c, rcv_nxt, None)), (TimeWait, Drop));
            h.set_policy(|p| p.time_wait = Pass as u8);
            drop(conn.client);
        }
    });
}

#[test]
fn auto_judges_local_addresses_by_socket_and_tracks_the_rest() {
    in_netns(Level::Enforce, Source::Auto, |h| {
        let mut conn = Conn::new(false);
        conn.talk();
        let (c, s) = (conn.c(), conn.s());
        let k = kernel_tcp::seqs(&conn.server).unwrap();
        // Before the daemon's address list holds 127.0.0.1, the flow is
        // not this host's: no flow is tracked, so no_flow.
        assert_eq!(h.judge(&rst(c, s, k.rcv_nxt + 1, None)), (NoFlow, Pass));
        let mut local = rstguard::socket::LocalAddrs::take(&mut h.loaded).expect("the address map");
        let n = local.refresh().expect("listing addresses");
        assert_eq!(n, host_addresses().unwrap().len());
        assert_eq!(h.judge(&rst(c, s, k.rcv_nxt + 1, None)), (InWindow, Pass));
        assert_eq!(h.judge(&rst(c, s, k.rcv_nxt, None)), (Exact, Pass));
        // A forwarded flow (neither end is this host's) is tracked.
        let (a, b) = (ip("10.50.0.1"), ip("10.60.0.1"));
        let syn = Seg {
            seq: 100,
            syn: true,
            win: 1000,
            ..Seg::default()
        };
        let net = Net::default();
        assert_eq!(h.xdp(&tcp_frame(&net, (a, 1000), (b, 80), &syn)), XDP_PASS);
        assert!(h.flow(&h.key_of((a, 1000), (b, 80))).is_some());
        // Segments to this host's own sockets are not.
        let data = Seg {
            seq: k.rcv_nxt,
            ack: Some(k.write_seq),
            win: 1000,
            payload: 10,
            ..Seg::default()
        };
        h.xdp(&tcp_frame(&net, pair(c), pair(s), &data));
        assert!(h.flow(&h.key_of(pair(c), pair(s))).is_none());
        // Nor are this host's own segments at egress: its SYN-ACK to a
        // remote client starts no flow.
        let remote = (ip("10.70.0.1"), 4000);
        let syn_ack = Seg {
            seq: 9000,
            ack: Some(101),
            syn: true,
            win: 1000,
            ..Seg::default()
        };
        h.tc(&tcp_frame(&net, pair(s), remote, &syn_ack));
        assert!(
            h.flow(&h.key_of(pair(s), remote)).is_none(),
            "egress tracked a local flow"
        );
    });
}

#[test]
fn the_socket_each_verdict_came_from_is_in_its_event() {
    // The event's `expected` is the socket's RCV.NXT.
    in_netns(Level::Enforce, Source::Socket, |h| {
        let mut conn = Conn::new(false);
        conn.talk();
        let k = kernel_tcp::seqs(&conn.server).unwrap();
        let mut ring = h.loaded.events.take().expect("the ring buffer");
        let mut budget = h.loaded.event_budget.take().expect("the event budget");
        let cpus = aya::util::nr_cpus().expect("counting CPUs");
        budget
            .set(
                0,
                aya::maps::PerCpuValues::try_from(vec![100u32; cpus]).unwrap(),
                0,
            )
            .expect("filling the event budget");
        let (c, s) = (conn.c(), conn.s());
        assert_eq!(h.judge(&rst(c, s, k.rcv_nxt + 5, None)), (InWindow, Pass));
        let item = ring.next().expect("an event");
        let e: rstguard_common::RstEvent =
            // SAFETY: the program writes whole RstEvents.
            unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        assert_eq!(e.expected, k.rcv_nxt);
        assert_eq!(e.has_flow, rstguard_common::RstEvent::FROM_SOCKET);
        assert_eq!(e.socket_state, tcp_state::ESTABLISHED);
        assert_eq!(e.cause, rstguard_common::Cause::Blind as u8);
        assert!(e.window > 0);
        let _ = conn.server.as_raw_fd();
    });
}
