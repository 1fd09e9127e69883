//! A NAT gateway that forgot an idle flow: its RST is named idle-expired.

use super::*;

/// How long the NAT gateway keeps an idle flow.
const NAT_TIMEOUT_SECS: u32 = 3;
/// rstguard's idle threshold in the NAT test (`--idle-after`).
const IDLE_AFTER: &str = "2";
/// How long the client stays idle: past the NAT's timeout and past two
/// units of the flows' idle clock (2^31 ns each), which a gap must span
/// for the segment that ends it to leave it visible.
const IDLE: Duration = Duration::from_millis(5_500);

#[test]
fn a_nat_gateway_that_forgot_an_idle_flow_is_named_idle_expired() {
    let lab = Routed::new();
    // Tracking: the flow's idle clock and the TTL of the server's segments.
    // Socket mode: the socket's own idle time and the TTL of the SYN-ACK.
    // Through the NAT: 7501 (IPv4), 7502 (IPv6); past it, idle as long, the
    // server aborts: 7503, 7504; 7511 to 7514 in socket mode.
    let _gateway = nat_gateway(
        &lab.router,
        "r1",
        &[7501, 7502, 7511, 7512],
        NAT_TIMEOUT_SECS,
    );
    for (state, base) in [("track", 7501), ("socket", 7511)] {
        idle_then_reset(&lab, state, base);
    }
}

fn idle_then_reset(lab: &Routed, state: &str, base: u16) {
    let mut d = start_daemon(
        &lab.client,
        &[
            "attach",
            "c0",
            "--state",
            state,
            "--policy",
            "enforce",
            "--idle-after",
            IDLE_AFTER,
            "--interval",
            "0",
        ],
    );
    let log = ResetLog::follow(&lab.client);

    struct Conn {
        rcv_nxt: u32,
        v6: bool,
        natted: bool,
        server: SocketAddr,
        client: SocketAddr,
        go: mpsc::Sender<()>,
        srv: thread::JoinHandle<Option<SocketAddr>>,
        cli: thread::JoinHandle<(std::io::Result<()>, ErrorKind)>,
    }
    let mut conns = Vec::new();
    for (i, (v6, natted)) in [(false, true), (true, true), (false, false), (true, false)]
        .into_iter()
        .enumerate()
    {
        let server = SERVER.addr(v6, base + i as u16);
        let (go, go_rx) = mpsc::channel::<()>();
        // The server echoes one message. Behind the NAT it never hears of
        // the flow again (it vanishes at the end); past the NAT it aborts
        // after the idle time (SO_LINGER 0).
        let (abort_tx, abort_rx) = mpsc::channel::<()>();
        let srv = serve_one(&lab.server, server, move |s| {
            let peer = s.peer_addr().ok();
            let mut b = [0u8; 5];
            (&s).read_exact(&mut b).unwrap();
            (&s).write_all(&b).unwrap();
            let _ = abort_rx.recv_timeout(Duration::from_secs(30));
            if natted {
                vanish(s);
            } else {
                SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
                drop(s);
            }
            peer
        });
        let (addr_tx, addr_rx) = mpsc::channel();
        let cli = lab.client.spawn(move || {
            let (c, local) = connected(v6, server);
            (&c).write_all(b"hello").unwrap();
            let mut b = [0u8; 5];
            (&c).read_exact(&mut b).unwrap();
            let rcv_nxt = kernel_tcp::seqs(&c).expect("the client's numbers").rcv_nxt;
            addr_tx.send((local, rcv_nxt)).unwrap();
            c.set_read_timeout(Some(IDLE + TIMEOUT)).unwrap();
            let wrote = if natted {
                go_rx.recv_timeout(Duration::from_secs(30)).expect("go");
                (&c).write_all(b"anyone there?")
            } else {
                Ok(())
            };
            (wrote, read_until_error(&c).1)
        });
        let (client, rcv_nxt) = addr_rx.recv_timeout(TIMEOUT).expect("the echo");
        conns.push(Conn {
            rcv_nxt,
            v6,
            natted,
            server,
            client,
            go: if natted { go } else { abort_tx },
            srv,
            cli,
        });
    }
    let idle_since = Instant::now();

    // While the flows idle, an attacker's blind RST from another distance
    // (and certainly out of the window) at the first: blind, and the idle
    // clock does not move.
    thread::sleep(Duration::from_secs(2));
    let (c0, s0, rcv_nxt) = (conns[0].client, conns[0].server, conns[0].rcv_nxt);
    send_from(
        &lab.attacker,
        c0.ip(),
        vec![tcp_packet(
            s0,
            c0,
            rcv_nxt.wrapping_add(1 << 31),
            None,
            true,
            &[],
            OTHER_TTL,
        )],
    );
    let r = log.wait(&format!("{state}: the blind RST while idle"), |r| {
        r.sent(s0, c0)
    });
    assert_eq!(
        said(&r),
        ("c0", "ingress", "out_of_window", "drop", "blind", "RST"),
        "{r:#?}"
    );

    thread::sleep(IDLE.saturating_sub(idle_since.elapsed()));
    // Behind the NAT the client writes; past it the server aborts.
    for c in &conns {
        c.go.send(()).unwrap();
    }
    for c in conns {
        let what = format!(
            "{state}: {} {}",
            family(c.v6),
            if c.natted {
                "through a NAT that forgot the flow"
            } else {
                "the server's own abort after as long idle"
            }
        );
        let (wrote, got) = c.cli.join().unwrap();
        let seen_by_server = c.srv.join().unwrap().expect("the server's peer");
        assert!(wrote.is_ok(), "{what}: {wrote:?}");
        assert_eq!(got, ErrorKind::ConnectionReset, "{what}");
        let r = log.wait(&what, |r| {
            r.sent(c.server, c.client) && r.verdict != "out_of_window"
        });
        let idle = r.idle_secs.expect("the flow's or the socket's idle time");
        assert!(idle >= 4, "{what}: idle {idle} s: {r:#?}\n{}", d.log());
        if c.natted {
            // The server saw the router's address: the NAT was real.
            assert_ne!(seen_by_server.ip(), c.client.ip(), "{what}: no NAT");
            assert_eq!(
                said(&r),
                ("c0", "ingress", "exact", "pass", "idle_expired", "RST"),
                "{what}: {r:#?}"
            );
            assert_eq!((r.ttl, r.peer_ttl), (ROUTER_TTL, Some(PEER_TTL)), "{what}");
            assert!(r.evidence.contains("forgot it"), "{what}: {r:#?}");
        } else {
            assert_eq!(seen_by_server, c.client, "{what}: NATed");
            // Idle past the threshold, but from the peer's own distance:
            // the peer's abort, not a middlebox's.
            assert_eq!(
                said(&r),
                ("c0", "ingress", "exact", "pass", "abort", "RST|ACK"),
                "{what}: {r:#?}"
            );
            assert_eq!((r.ttl, r.peer_ttl), (PEER_TTL, Some(PEER_TTL)), "{what}");
        }
        let cause = if c.natted { "idle_expired" } else { "abort" };
        let mut want = vec![("ingress", cause)];
        if c.client == c0 {
            want.insert(0, ("ingress", "blind"));
        }
        let flow = Expected::new(what, c.client, c.server).client(&want);
        flow.check(&log, "client", &flow.at_client, None);
    }
    assert_eq!(log.all().len(), 5, "{state}: {:#?}", log.all());
    drop(log);
    assert_eq!(d.stop().0, 0, "{}", d.log());
}
