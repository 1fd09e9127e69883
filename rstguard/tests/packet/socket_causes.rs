//! The causes socket mode names, through BPF_PROG_TEST_RUN against real
//! sockets: the peer's distance learned from a handshake segment the socket
//! vouches for, how long the socket idled, and the data that proves a
//! passed RST forged. IPv4 and IPv6.

use std::{net::SocketAddr, thread, time::Duration};

use rstguard_common::{
    count::cause_slot,
    judge::{cause::EVIDENCE_DATA_AFTER, socket::Source},
    Action, Cause, Counters, Direction, Level, RstEvent, Verdict,
};
use rstguard_lab::{kernel_tcp, sockets};

use crate::{
    harness::*,
    socket::{in_netns, net_of, pair, settle},
};

/// The peer's TTL in these tests, and one from a hop nearer.
const PEER_TTL: u8 = 61;
const NEARER: u8 = 63;

/// A client whose SYN ran through the XDP program (from `PEER_TTL`) before
/// it connected for real, and the server end: the server's socket knows
/// the client's distance.
struct Taught {
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    _listener: std::net::TcpListener,
}

impl Taught {
    fn new(h: &mut Harness, v6: bool) -> Taught {
        let any: SocketAddr = if v6 { "[::1]:0" } else { "127.0.0.1:0" }.parse().unwrap();
        let listener = std::net::TcpListener::bind(any).expect("listening");
        let to = listener.local_addr().unwrap();
        let (socket, from) = sockets::bound(to.ip());
        let syn = Seg {
            seq: 1,
            syn: true,
            ttl: Some(PEER_TTL),
            ..Seg::default()
        };
        assert_eq!(
            h.xdp(&tcp_frame(&net_of(to), pair(from), pair(to), &syn)),
            XDP_PASS
        );
        let client = sockets::connect(socket, to, Duration::from_secs(5)).expect("connecting");
        let (server, _) = listener.accept().expect("accepting");
        Taught {
            client,
            server,
            _listener: listener,
        }
    }

    /// A segment from the client to the server.
    fn client_sends(&self, seg: &Seg) -> Vec<u8> {
        let (c, s) = (
            self.client.local_addr().unwrap(),
            self.server.local_addr().unwrap(),
        );
        tcp_frame(&net_of(s), pair(c), pair(s), seg)
    }

    /// The server's RCV.NXT.
    fn rcv_nxt(&self) -> u32 {
        kernel_tcp::seqs(&self.server)
            .expect("the server's numbers")
            .rcv_nxt
    }
}

fn rst(seq: u32, ttl: u8) -> Seg {
    Seg {
        seq,
        rst: true,
        ttl: Some(ttl),
        ..Seg::default()
    }
}

/// The ingress cause counters that moved since `before`, with how much.
fn causes_moved(h: &Harness, before: &Counters) -> Vec<(Cause, u64)> {
    let d = h.counters().delta(before);
    Cause::ALL
        .into_iter()
        .map(|c| (c, d.slots[cause_slot(Direction::Ingress, c)]))
        .filter(|(_, n)| *n != 0)
        .collect()
}

/// Runs a RST through XDP: verdict, action and cause.
fn judged(h: &mut Harness, frame: &[u8]) -> (Verdict, Action, Cause) {
    let before = h.counters();
    let (v, a) = h.judge(frame);
    let moved = causes_moved(h, &before);
    assert_eq!(moved.len(), 1, "cause counters moved: {moved:?}");
    (v, a, moved[0].0)
}

#[test]
fn exact_rsts_are_named_by_distance_and_idle_time_as_tracking_names_them() {
    for v6 in [false, true] {
        in_netns(Level::Enforce, Source::Socket, move |h| {
            let t = Taught::new(h, v6);
            settle();
            let at = t.rcv_nxt();
            use Cause::*;
            // From the peer's own distance: the peer aborted.
            assert_eq!(judged(h, &t.client_sends(&rst(at, PEER_TTL))).2, NoSocket);
            // From a hop nearer: a middlebox answered for the peer.
            assert_eq!(
                judged(h, &t.client_sends(&rst(at, NEARER))),
                (Verdict::Exact, Action::Pass, Middlebox)
            );
            // A SYN forged for the live connection, from yet another
            // distance, teaches nothing: the peer is where it was.
            let forged = Seg {
                seq: 7,
                syn: true,
                ttl: Some(40),
                ..Seg::default()
            };
            assert_eq!(h.xdp(&t.client_sends(&forged)), XDP_PASS);
            assert_eq!(judged(h, &t.client_sends(&rst(at, PEER_TTL))).2, NoSocket);
            assert_eq!(judged(h, &t.client_sends(&rst(at, 40))).2, Middlebox);
            // The same RST once the socket idled past the threshold: a NAT
            // or load balancer that forgot the flow.
            h.set_policy(|p| p.idle_after_secs = 1);
            thread::sleep(Duration::from_millis(4500));
            assert_eq!(judged(h, &t.client_sends(&rst(at, NEARER))).2, IdleExpired);
            assert_eq!(judged(h, &t.client_sends(&rst(at, PEER_TTL))).2, NoSocket);
            // Blind ones stay blind.
            assert_eq!(judged(h, &t.client_sends(&rst(at + 100, NEARER))).2, Blind);
        });
    }
}

#[test]
fn drop_injected_drops_an_exact_rst_from_another_distance_in_socket_mode() {
    for v6 in [false, true] {
        in_netns(Level::Enforce, Source::Socket, move |h| {
            let t = Taught::new(h, v6);
            settle();
            let at = t.rcv_nxt();
            h.set_policy(|p| p.drop_injected = 1);
            assert_eq!(
                judged(h, &t.client_sends(&rst(at, NEARER))),
                (Verdict::TtlMismatch, Action::Drop, Cause::Middlebox)
            );
            // The dropped RST is on record: the peer's data going on
            // proves it forged.
            let before = h.counters();
            h.xdp(&t.client_sends(&Seg {
                seq: at,
                ack: Some(1),
                payload: 100,
                ttl: Some(PEER_TTL),
                ..Seg::default()
            }));
            assert_eq!(causes_moved(h, &before), vec![(Cause::Injected, 1)]);
            assert_eq!(
                judged(h, &t.client_sends(&rst(at, PEER_TTL))),
                (Verdict::Exact, Action::Pass, Cause::NoSocket)
            );
            h.set_policy(|p| p.ttl_slack = 2);
            assert_eq!(
                judged(h, &t.client_sends(&rst(at, NEARER))),
                (Verdict::Exact, Action::Pass, Cause::NoSocket),
                "within the slack"
            );
        });
    }
}

#[test]
fn data_from_the_peer_past_a_passed_rst_names_it_injected_once() {
    for v6 in [false, true] {
        in_netns(Level::Monitor, Source::Socket, move |h| {
            let t = Taught::new(h, v6);
            settle();
            h.open_events();
            let at = t.rcv_nxt();
            let data = |seq, ttl| Seg {
                seq,
                ack: Some(1),
                payload: 100,
                ttl: Some(ttl),
                ..Seg::default()
            };
            // Before any RST: data proves nothing.
            let before = h.counters();
            h.xdp(&t.client_sends(&data(at, PEER_TTL)));
            assert_eq!(causes_moved(h, &before), vec![]);
            // An injector's RST with the live numbers passes (the frame never
            // reaches the socket here: it stays as it was).
            assert_eq!(
                judged(h, &t.client_sends(&rst(at, NEARER))).2,
                Cause::Middlebox
            );
            h.events();
            // Data the peer sent before, arriving late, ends at the RST:
            // nothing; from another distance than the peer's: nothing.
            let before = h.counters();
            h.xdp(&t.client_sends(&data(at.wrapping_sub(100), PEER_TTL)));
            h.xdp(&t.client_sends(&data(at, NEARER)));
            assert_eq!(causes_moved(h, &before), vec![]);
            // The peer's next data, from its own distance: injected.
            let before = h.counters();
            h.xdp(&t.client_sends(&data(at, PEER_TTL)));
            assert_eq!(causes_moved(h, &before), vec![(Cause::Injected, 1)]);
            let ev = h.events();
            assert_eq!(ev.len(), 1, "{ev:?}");
            assert_eq!(ev[0].cause, Cause::Injected as u8);
            assert_eq!(ev[0].has_flow, RstEvent::FROM_SOCKET);
            assert_ne!(ev[0].evidence & EVIDENCE_DATA_AFTER, 0);
            assert_eq!(ev[0].peer_ttl, PEER_TTL);
            // Counted once.
            let before = h.counters();
            h.xdp(&t.client_sends(&data(at.wrapping_add(100), PEER_TTL)));
            assert_eq!(causes_moved(h, &before), vec![]);
        });
    }
}

#[test]
fn this_kernels_hz_is_measured() {
    // /proc/timer_list is root's; every kernel this runs on has it, and its
    // HZ is one of those a kernel can be built with.
    require_root();
    let hz = rstguard::socket::kernel_hz().expect("HZ from /proc/timer_list");
    assert!([100, 250, 300, 1000].contains(&hz), "{hz}");
}
