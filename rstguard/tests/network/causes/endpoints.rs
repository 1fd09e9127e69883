//! The causes an endpoint's application meets (a refused connection, a
//! lost socket, a peer that closed, an abort, a firewall's reject), named
//! where the RST arrives and where it left.

use super::*;

/// The causes an endpoint's application meets, over one family, with
/// rstguard on the client (`at_client`) and on the server (`at_server`)
/// at `level`. Returns the flows and the records each must have.
fn endpoint_causes(
    lab: &Routed,
    at_client: &ResetLog,
    at_server: &ResetLog,
    v6: bool,
    level: &str,
    base: u16,
) -> Vec<Expected> {
    let fam = family(v6);
    let mut flows = Vec::new();
    let pass_or_drop = if level == "monitor" { "pass" } else { "drop" };

    // 1. A closed port: ECONNREFUSED; the server's own RST|ACK answers the
    //    SYN (egress there), and arrives at the client (ingress).
    let server = SERVER.addr(v6, base + 1);
    let (got, client) = lab.client.run(move || {
        let (s, local) = client_socket(v6);
        (connect(s, server).map(|_| ()).map_err(|e| e.kind()), local)
    });
    let what = format!("{fam} {level} refused");
    assert_eq!(got, Err(ErrorKind::ConnectionRefused), "{what}");
    let (r, sent) = named_at_both_ends(
        (at_client, at_server),
        &what,
        (server, client),
        ("refused", "RST|ACK"),
    );
    assert_eq!((r.ttl, r.peer_ttl), (PEER_TTL, None), "{what}: {r:#?}");
    assert!(
        r.evidence.starts_with("it answers the SYN"),
        "{what}: {r:#?}"
    );
    assert_eq!(sent.ttl, OWN_TTL, "{what}: {sent:#?}");
    flows.push(
        Expected::new(what, client, server)
            .client(&[("ingress", "refused")])
            .server(&[("egress", "refused")]),
    );

    // 1'. An attacker's RST|ACK at a connection being opened, with an ACK
    //     number it guessed: blind (bad_syn_ack), never refused; the
    //     connection opens. The server holds back the SYN (it drops it)
    //     until the forged RST was judged; the SYN's retransmission opens
    //     the connection a second later.
    let server = SERVER.addr(v6, base + 2);
    let what = format!("{fam} {level} forged refusal");
    let held = Table::new(
        &lab.server,
        "inet",
        "rgholdsyn",
        &format!(
            "counter held {{ }}\n\
             chain input {{ type filter hook input priority 0; \
             tcp dport {} tcp flags & (syn | ack) == syn counter name \"held\" drop; }}",
            server.port()
        ),
    );
    let srv = serve_one(&lab.server, server, |s| read_until_error(&s));
    let (addr_tx, addr_rx) = mpsc::channel();
    let cli = lab.client.spawn(move || {
        let (s, local) = client_socket(v6);
        addr_tx.send(local).unwrap();
        // The SYN goes again after 1, 3, 7 and 15 s: time enough for the
        // forged RST to be judged and the hold lifted on a loaded machine.
        let c = sockets::connect(s, server, Duration::from_secs(20)).map_err(|e| e.kind())?;
        drop(c);
        Ok::<(), ErrorKind>(())
    });
    let client = addr_rx.recv_timeout(TIMEOUT).expect("the client's address");
    let deadline = Instant::now() + TIMEOUT;
    while held.counter("held") == 0 {
        assert!(Instant::now() < deadline, "{what}: the SYN never came");
        thread::sleep(Duration::from_millis(20));
    }
    let guess: u32 = rand::random();
    send_from(
        &lab.attacker,
        client.ip(),
        vec![tcp_packet(
            server,
            client,
            rand::random(),
            Some(guess),
            true,
            &[],
            64,
        )],
    );
    named(
        at_client,
        &what,
        (server, client),
        (
            "c0",
            "ingress",
            "bad_syn_ack",
            pass_or_drop,
            "blind",
            "RST|ACK",
        ),
    );
    drop(held);
    assert_eq!(
        cli.join().unwrap(),
        Ok(()),
        "{what}: the connection did not open"
    );
    assert_eq!(srv.join().unwrap(), (0, ErrorKind::UnexpectedEof), "{what}");
    flows.push(Expected::new(what, client, server).client(&[("ingress", "blind")]));

    // 2. The peer closed and we kept writing: EOF, one write that the
    //    peer answers with a RST, then EPIPE.
    let server = SERVER.addr(v6, base + 3);
    let what = format!("{fam} {level} peer closed");
    let srv = serve_one(&lab.server, server, drop);
    let (eof, states, reset, second, client) = lab.client.run(move || {
        let (c, local) = connected(v6, server);
        let eof = (&c).read(&mut [0u8; 16]).map_err(|e| e.kind());
        let half_closed = tcp_state(&c);
        (&c).write_all(b"are you still reading?").unwrap();
        let reset = wait_reset(&c, TIMEOUT);
        let closed = tcp_state(&c);
        let second = (&c).write(b"hello?").map_err(|e| e.kind());
        (eof, (half_closed, closed), reset, second, local)
    });
    srv.join().unwrap();
    assert_eq!(eof, Ok(0), "{what}: the peer's FIN");
    assert!(reset, "{what}: no RST answered the write");
    assert_eq!(states, (TCP_CLOSE_WAIT, TCP_CLOSE), "{what}");
    assert_eq!(second, Err(ErrorKind::BrokenPipe), "{what}");
    let (r, _) = named_at_both_ends(
        (at_client, at_server),
        &what,
        (server, client),
        ("peer_closed", "RST"),
    );
    assert_eq!((r.ttl, r.peer_ttl), (PEER_TTL, Some(PEER_TTL)), "{what}");
    assert!(
        r.evidence.starts_with("after the sender's FIN"),
        "{what}: {r:#?}"
    );
    // The peer's stack answers every segment of ours that reaches it
    // after its close (the write, and the ACK of its FIN when that was
    // delayed past the write): each answer is named the same.
    flows.push(
        Expected::new(what, client, server)
            .client(&[("ingress", "peer_closed")])
            .server(&[("egress", "peer_closed")])
            .tail_both("peer_closed"),
    );

    // 3. The server closes with our data unread: ECONNRESET; abort, and
    //    the evidence says the data went unread.
    let server = SERVER.addr(v6, base + 4);
    let what = format!("{fam} {level} unread data");
    let srv = serve_one(&lab.server, server, |s| {
        s.peek(&mut [0u8; 16]).expect("peeking");
        drop(s);
    });
    let ((_, got), client) = lab.client.run(move || {
        let (c, local) = connected(v6, server);
        (&c).write_all(b"unread bytes").unwrap();
        (read_until_error(&c), local)
    });
    srv.join().unwrap();
    assert_eq!(got, ErrorKind::ConnectionReset, "{what}");
    let ends = named_at_both_ends(
        (at_client, at_server),
        &what,
        (server, client),
        ("abort", "RST|ACK"),
    );
    for r in [ends.0, ends.1] {
        assert!(
            r.evidence.contains("closed with data unread"),
            "{what}: {r:#?}"
        );
    }
    flows.push(
        Expected::new(what, client, server)
            .client(&[("ingress", "abort")])
            .server(&[("egress", "abort")]),
    );

    // 4. SO_LINGER 0 with data unsent: ECONNRESET after some of it; abort,
    //    nothing of ours unread.
    let server = SERVER.addr(v6, base + 5);
    let what = format!("{fam} {level} SO_LINGER 0");
    let srv = serve_one(&lab.server, server, |s| {
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        (&s).write_all(&vec![7u8; 1 << 20]).expect("writing");
        drop(s);
    });
    let ((_, got), client) = lab.client.run(move || {
        let (c, local) = connected(v6, server);
        (read_until_error(&c), local)
    });
    srv.join().unwrap();
    assert_eq!(got, ErrorKind::ConnectionReset, "{what}");
    let ends = named_at_both_ends(
        (at_client, at_server),
        &what,
        (server, client),
        ("abort", "RST|ACK"),
    );
    for r in [ends.0, ends.1] {
        assert!(r.evidence.contains("SO_LINGER 0"), "{what}: {r:#?}");
    }
    // The client's ACKs still in flight when the server aborted draw the
    // server's RSTs for no socket (both ends see them): the real stacks
    // race, and these are named for what they are.
    flows.push(
        Expected::new(what, client, server)
            .client(&[("ingress", "abort")])
            .server(&[("egress", "abort")])
            .tail_both("no_socket"),
    );

    // 5. The server's socket destroyed (`ss -K`) while we were idle, its
    //    abort RST kept from reaching us: half-open. Our next write draws
    //    a RST without ACK: ECONNRESET; no_socket.
    let server = SERVER.addr(v6, base + 6);
    let what = format!("{fam} {level} ss -K");
    let (acc_tx, acc_rx) = mpsc::channel();
    let srv = serve_one(&lab.server, server, move |s| {
        acc_tx.send(()).unwrap();
        // Blocked here when the socket is destroyed.
        let got = (&s).read(&mut [0u8; 64]).map_err(|e| e.kind());
        drop(s);
        got
    });
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (addr_tx, addr_rx) = mpsc::channel();
    let cli = lab.client.spawn(move || {
        let (c, local) = connected(v6, server);
        addr_tx.send(local).unwrap();
        go_rx.recv_timeout(Duration::from_secs(20)).expect("go");
        let state = tcp_state(&c);
        (&c).write_all(b"still there?").unwrap();
        (state, read_until_error(&c).1)
    });
    let client = addr_rx.recv_timeout(TIMEOUT).expect("connected");
    acc_rx.recv_timeout(TIMEOUT).expect("accepted");
    let kept = keep_rsts_in(&lab.server, server.port());
    let killed = lab.server.exec(&[
        "ss",
        "-K",
        "-tn",
        "state",
        "established",
        "sport",
        "=",
        &format!(":{}", server.port()),
    ]);
    let server_saw = srv.join().unwrap();
    assert_eq!(
        server_saw,
        Err(ErrorKind::ConnectionAborted),
        "{what}: `ss -K` destroyed no socket (does this kernel have \
         CONFIG_INET_DIAG_DESTROY?): {killed}"
    );
    assert_eq!(kept.counter("kept"), 1, "{what}: the abort RST kept in");
    drop(kept);
    go_tx.send(()).unwrap();
    let (state, got) = cli.join().unwrap();
    assert_eq!(
        state, TCP_ESTABLISHED,
        "{what}: the client no longer ESTABLISHED"
    );
    assert_eq!(got, ErrorKind::ConnectionReset, "{what}");
    let (r, _) = named_at_both_ends(
        (at_client, at_server),
        &what,
        (server, client),
        ("no_socket", "RST"),
    );
    assert_eq!((r.ttl, r.peer_ttl), (PEER_TTL, Some(PEER_TTL)), "{what}");
    assert!(
        r.evidence.contains("the sender has no such connection"),
        "{what}: {r:#?}"
    );
    flows.push(
        Expected::new(what, client, server)
            .client(&[("ingress", "no_socket")])
            .server(&[("egress", "no_socket")]),
    );

    // 6. A firewall in the router, `reject with tcp reset` added
    //    mid-connection: our write draws the router's RST in the server's
    //    name, one hop closer: ECONNRESET; middlebox.
    let server = SERVER.addr(v6, base + 7);
    let what = format!("{fam} {level} firewall reject");
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let srv = serve_one(&lab.server, server, move |s| {
        let _ = done_rx.recv_timeout(Duration::from_secs(20));
        vanish(s);
    });
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (addr_tx, addr_rx) = mpsc::channel();
    let cli = lab.client.spawn(move || {
        let (c, local) = connected(v6, server);
        addr_tx.send(local).unwrap();
        go_rx.recv_timeout(Duration::from_secs(20)).expect("go");
        (&c).write_all(b"through the firewall?").unwrap();
        read_until_error(&c).1
    });
    let client = addr_rx.recv_timeout(TIMEOUT).expect("connected");
    let firewall = reject_port(&lab.router, server.port());
    go_tx.send(()).unwrap();
    let got = cli.join().unwrap();
    drop(firewall);
    done_tx.send(()).unwrap();
    srv.join().unwrap();
    assert_eq!(got, ErrorKind::ConnectionReset, "{what}");
    let r = named(
        at_client,
        &what,
        (server, client),
        ("c0", "ingress", "exact", "pass", "middlebox", "RST"),
    );
    assert_eq!(
        (r.ttl, r.peer_ttl),
        (ROUTER_TTL, Some(PEER_TTL)),
        "{what}: {r:#?}"
    );
    assert!(
        r.evidence.contains("sent 1 hop closer than the peer"),
        "{what}: {r:#?}"
    );
    flows.push(Expected::new(what, client, server).client(&[("ingress", "middlebox")]));

    // 7. An attacker's blind RSTs at a live connection, with and without
    //    ACK, from the peer's distance and from another: blind, every one;
    //    never no_socket, abort, middlebox or injected. The connection
    //    goes on.
    let server = SERVER.addr(v6, base + 8);
    let what = format!("{fam} {level} blind RSTs");
    let srv = serve_one(&lab.server, server, |s| {
        let mut buf = [0u8; 64];
        loop {
            match (&s).read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => (&s).write_all(&buf[..k]).unwrap(),
            }
        }
    });
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (addr_tx, addr_rx) = mpsc::channel();
    let cli = lab.client.spawn(move || {
        let (c, local) = connected(v6, server);
        let echo = |c: &TcpStream| {
            let mut back = [0u8; 4];
            (&*c).write_all(b"ping").unwrap();
            (&*c).read_exact(&mut back).map(|()| back)
        };
        assert_eq!(echo(&c).unwrap(), *b"ping");
        addr_tx.send(local).unwrap();
        go_rx.recv_timeout(Duration::from_secs(20)).expect("go");
        let after = echo(&c).map_err(|e| e.kind());
        c.shutdown(std::net::Shutdown::Write).unwrap();
        (after, read_until_error(&c).1)
    });
    let client = addr_rx.recv_timeout(TIMEOUT).expect("connected");
    let mut blind = Vec::new();
    for ttl in [64, OTHER_TTL] {
        for ack in [false, true] {
            for _ in 0..5 {
                let ack = ack.then(rand::random);
                blind.push(tcp_packet(
                    server,
                    client,
                    rand::random(),
                    ack,
                    true,
                    &[],
                    ttl,
                ));
            }
        }
    }
    let sent = blind.len();
    send_from(&lab.attacker, client.ip(), blind);
    let records = at_client.wait_n(&what, sent, |r| r.sent(server, client));
    for r in &records {
        assert!(
            r.cause == "blind"
                && r.device == "c0"
                && r.direction == "ingress"
                && ["in_window", "out_of_window", "rate_limited"].contains(&r.verdict.as_str()),
            "{what}: {r:#?}"
        );
        if r.verdict == "out_of_window" {
            assert_eq!(r.action, pass_or_drop, "{what}: {r:#?}");
        }
    }
    go_tx.send(()).unwrap();
    let (after, end) = cli.join().unwrap();
    srv.join().unwrap();
    assert_eq!(after, Ok(*b"ping"), "{what}: the connection died");
    assert_eq!(end, ErrorKind::UnexpectedEof, "{what}: a clean close");
    flows.push(Expected::new(what, client, server).client(&vec![("ingress", "blind"); sent]));
    flows
}

#[test]
fn each_endpoint_cause_is_named_where_it_arrives_and_where_it_left() {
    let lab = Routed::new();
    let mut dc = start_daemon(
        &lab.client,
        &[
            "attach",
            "c0",
            "--state",
            "track",
            "--policy",
            "monitor",
            "--interval",
            "0",
        ],
    );
    let mut ds = start_daemon(
        &lab.server,
        &[
            "attach",
            "s0",
            "--state",
            "track",
            "--policy",
            "monitor",
            "--interval",
            "0",
        ],
    );
    let at_client = ResetLog::follow(&lab.client);
    let at_server = ResetLog::follow(&lab.server);
    let mut flows = endpoint_causes(&lab, &at_client, &at_server, false, "monitor", 7400);
    for ns in [&lab.client, &lab.server] {
        policy_set(ns, "level=strict");
    }
    flows.extend(endpoint_causes(
        &lab, &at_client, &at_server, true, "strict", 7420,
    ));

    // Every record of every flow, and nothing else.
    let (mut n_client, mut n_server) = (0, 0);
    for f in &flows {
        let (c, s) = f.check_both(&at_client, &at_server);
        n_client += c;
        n_server += s;
    }
    assert_eq!(at_client.all().len(), n_client, "{:#?}", at_client.all());
    assert_eq!(at_server.all().len(), n_server, "{:#?}", at_server.all());

    metrics_and_status_agree(&lab.client, "c0", &at_client, "the client");
    metrics_and_status_agree(&lab.server, "s0", &at_server, "the server");
    assert_eq!(dc.stop().0, 0, "{}", dc.log());
    assert_eq!(ds.stop().0, 0, "{}", ds.log());
}
