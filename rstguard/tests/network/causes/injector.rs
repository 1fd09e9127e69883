//! An on-path injector: its RSTs are named injected, proven by the data
//! that follows them; `--drop-injected` keeps the connection; an attacker's
//! blind RST after a real abort is named blind, not injected.

use super::*;

/// The injector's TTL: its RSTs reach the client with it (the server's
/// segments with 63).
const INJECTOR_TTL: u8 = 50;
/// What sets the injector off.
const KEYWORD: &[u8] = b"FORBIDDEN";
/// The server's stream: `CHUNKS` chunks of `CHUNK` bytes, the keyword in
/// chunk `KEY`; each chunk one segment.
const CHUNK: usize = 1000;
const CHUNKS: usize = 8;
const KEY: usize = 3;

fn chunk(i: usize) -> Vec<u8> {
    let mut c = vec![b'a' + i as u8; CHUNK];
    if i == KEY {
        c[100..100 + KEYWORD.len()].copy_from_slice(KEYWORD);
    }
    c
}

/// How a transfer with an injector on its path ended.
struct Injected {
    client: SocketAddr,
    server: SocketAddr,
    /// What the client read (checked against the stream), and how its
    /// reads ended.
    read: usize,
    client_end: Result<(), ErrorKind>,
    /// How the server's transfer ended.
    server_end: Result<(), ErrorKind>,
    /// The injector's RST, as rstguard on the client judged it.
    rst: Reset,
}

/// The server sends its stream to the client, one chunk at a time (the
/// next when the client has read the last); an injector in the router
/// watches for the keyword and resets the connection in the server's
/// name, from TTL 50; after it fired, the server goes on sending.
fn transfer_past_an_injector(lab: &Routed, log: &ResetLog, v6: bool, port: u16) -> Injected {
    let server = SERVER.addr(v6, port);
    let (read_tx, read_rx) = mpsc::channel::<usize>();
    let (go_on_tx, go_on_rx) = mpsc::channel::<()>();
    let srv = serve_one(&lab.server, server, move |s| {
        s.set_nodelay(true).unwrap();
        for i in 0..CHUNKS {
            (&s).write_all(&chunk(i)).map_err(|e| e.kind())?;
            if i == KEY {
                go_on_rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("the injector fired");
            }
            // The client read it, or it is gone.
            if read_rx.recv_timeout(Duration::from_secs(10)) != Ok(i) {
                // Reset: its answer to our next segment ends the connection.
                return Err(read_until_error(&s).1);
            }
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        match read_until_error(&s).1 {
            ErrorKind::UnexpectedEof => Ok(()),
            e => Err(e),
        }
    });
    let (addr_tx, addr_rx) = mpsc::channel();
    let (connect_tx, connect_rx) = mpsc::channel::<()>();
    let cli = lab.client.spawn(move || {
        let (s, local) = client_socket(v6);
        addr_tx.send(local).unwrap();
        connect_rx.recv_timeout(TIMEOUT).expect("go");
        let mut c = connect(s, server).expect("connecting");
        let mut read = 0;
        let mut buf = vec![0u8; CHUNK];
        for i in 0..CHUNKS {
            if let Err(e) = c.read_exact(&mut buf) {
                return (read, Err(e.kind()));
            }
            assert_eq!(buf, chunk(i), "chunk {i} corrupted");
            read += CHUNK;
            let _ = read_tx.send(i);
        }
        let end = match c.read(&mut buf) {
            Ok(0) => Ok(()),
            Ok(_) => Err(ErrorKind::InvalidData),
            Err(e) => Err(e.kind()),
        };
        (read, end)
    });
    let client = addr_rx.recv_timeout(TIMEOUT).expect("connected");
    let mut injector = Injector::start(&lab.router, server, client, KEYWORD, INJECTOR_TTL);
    connect_tx.send(()).unwrap();
    let fired = injector.fired();
    // The server goes on once rstguard has judged the RST (so that it
    // lands before the server's next segment, as a fast injector's does).
    let rst = log.wait("the injected RST", |r| {
        r.sent(server, client) && r.cause != "injected"
    });
    assert_eq!(
        (rst.seq, rst.ack, rst.ttl),
        (fired.seq, Some(fired.ack), INJECTOR_TTL),
        "{rst:#?}"
    );
    go_on_tx.send(()).unwrap();
    let (read, client_end) = cli.join().unwrap();
    let server_end = srv.join().unwrap();
    Injected {
        client,
        server,
        read,
        client_end,
        server_end,
        rst,
    }
}

/// The proof that the injected RST was forged: the server's data went on
/// after it, from the server's own distance.
fn assert_proven(lab: &Routed, log: &ResetLog, t: &Injected, what: &str) {
    let r = match log.try_wait_n(1, |r| r.sent(t.server, t.client) && r.cause == "injected") {
        Ok(mut found) => found.remove(0),
        Err(_) => panic!(
            "{what}: nothing named the injection; the flow's records: {:#?}\nflows: {}\nstats: {}",
            log.between(t.client, t.server),
            lab.client.cli_json(&["flows"]),
            lab.client.cli_json(&["stats"])
        ),
    };
    let (dev, dir, verdict, action, cause, flags) = said(&r);
    assert_eq!(
        (dev, dir, verdict, action, cause),
        ("c0", "ingress", "exact", "pass", "injected"),
        "{what}: {r:#?}"
    );
    // The record shows the data segment: no RST.
    assert!(
        flags.contains("ACK") && !flags.contains("RST"),
        "{what}: {r:#?}"
    );
    assert_eq!(r.ttl, PEER_TTL, "{what}: the data's own TTL");
    assert!(
        r.evidence
            .contains("the sender's data went on after its RST"),
        "{what}: {r:#?}"
    );
}

/// The injector won: the client read nothing past the RST and got
/// ECONNRESET; the server's next segment drew the client's RST for no
/// socket, which ended the server's side too (recorded where tracking
/// watches the host's own segments).
fn assert_reset_by_injector(log: &ResetLog, t: &Injected, state: &str, what: &str) {
    assert_eq!(t.client_end, Err(ErrorKind::ConnectionReset), "{what}");
    assert!(
        t.read <= (KEY + 1) * CHUNK,
        "{what}: read {} bytes after the RST",
        t.read
    );
    assert_eq!(t.server_end, Err(ErrorKind::ConnectionReset), "{what}");
    if state == "socket" {
        // Socket mode does not watch what the host sends.
        return;
    }
    let r = log.wait(what, |r| r.sent(t.client, t.server));
    assert_eq!(
        said(&r),
        ("c0", "egress", "exact", "pass", "no_socket", "RST"),
        "{what}: {r:#?}"
    );
}

/// The server aborts (SO_LINGER 0) after one chunk: a real RST from the
/// server's own distance (ECONNRESET at the client). Returns the client's
/// address and the RST's record.
fn abort_after_one_chunk(
    lab: &Routed,
    log: &ResetLog,
    v6: bool,
    server: SocketAddr,
    what: &str,
) -> (SocketAddr, Reset) {
    let (read_tx, read_rx) = mpsc::channel::<()>();
    let srv = serve_one(&lab.server, server, move |s| {
        s.set_nodelay(true).unwrap();
        (&s).write_all(&chunk(0)).unwrap();
        read_rx.recv_timeout(TIMEOUT).expect("the client read");
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    });
    let (got, client) = lab.client.run(move || {
        let (mut c, local) = connected(v6, server);
        let mut buf = vec![0u8; CHUNK];
        c.read_exact(&mut buf).unwrap();
        read_tx.send(()).unwrap();
        (read_until_error(&c).1, local)
    });
    srv.join().unwrap();
    assert_eq!(got, ErrorKind::ConnectionReset, "{what}");
    let abort = log.wait(what, |r| r.sent(server, client));
    assert_eq!(
        said(&abort),
        ("c0", "ingress", "exact", "pass", "abort", "RST|ACK"),
        "{what}: {abort:#?}"
    );
    assert_eq!(abort.ttl, PEER_TTL, "{what}: {abort:#?}");
    (client, abort)
}

/// After the server's real abort, the attacker (one hop away, as the
/// server is) sends five data segments in the server's name, a quarter of
/// the sequence space ahead: past everything the server sent (as new data
/// would be), but outside any window the client could have offered.
/// Returns the flow (without its records) and how many segments went
/// out, once the client's stack has answered each.
fn abort_then_forged_data(
    lab: &Routed,
    log: &ResetLog,
    state: &str,
    v6: bool,
    port: u16,
    what: &str,
) -> (Expected, usize) {
    let server = SERVER.addr(v6, port);
    let (client, abort) = abort_after_one_chunk(lab, log, v6, server, what);
    let forged: Vec<Vec<u8>> = (0..5u32)
        .map(|i| {
            tcp_packet(
                server,
                client,
                abort.seq.wrapping_add((1 << 30) + i * 4096),
                abort.ack,
                false,
                &[1u8; 100],
                64,
            )
        })
        .collect();
    let n = forged.len();
    send_from(&lab.attacker, client.ip(), forged);
    if state == "socket" {
        // Nothing is recorded of the client's answers: give the programs
        // the moment they take, the daemon its next read of the events.
        thread::sleep(rstguard_lab::patience(Duration::from_millis(500)));
    } else {
        log.wait_n(what, n, |r| r.sent(client, server));
    }
    (Expected::new(what.to_string(), client, server), n)
}

#[test]
fn an_injected_rst_is_named_and_drop_injected_keeps_the_connection() {
    let lab = Routed::new();
    // Tracking, then socket mode (the client's own sockets): ports 76xx,
    // then 78xx.
    for (state, base) in [("track", 7600), ("socket", 7800)] {
        injections(&lab, state, base);
    }
}

fn injections(lab: &Routed, state: &str, base: u16) {
    let track = state == "track";
    let mut d = start_daemon(
        &lab.client,
        &[
            "attach",
            "c0",
            "--state",
            state,
            "--policy",
            "enforce",
            "--interval",
            "0",
        ],
    );
    let log = ResetLog::follow(&lab.client);
    let mut flows = Vec::new();
    // The client's own RSTs, recorded where tracking watches them.
    let own = |n: usize| {
        if track {
            vec![("egress", "no_socket"); n]
        } else {
            vec![]
        }
    };

    // Without --drop-injected the injector wins: ECONNRESET. The RST
    // passes (it carries the live numbers) as a middlebox's; the server's
    // next segment proves it forged.
    for (v6, port) in [(false, base + 1), (true, base + 2)] {
        let what = format!("{state}: {} enforce, injected", family(v6));
        let t = transfer_past_an_injector(lab, &log, v6, port);
        assert_reset_by_injector(&log, &t, state, &what);
        assert_eq!(
            said(&t.rst),
            ("c0", "ingress", "exact", "pass", "middlebox", "RST|ACK"),
            "{what}: {:#?}",
            t.rst
        );
        assert_eq!(t.rst.peer_ttl, Some(PEER_TTL), "{what}");
        assert_proven(lab, &log, &t, &what);
        let mut want = vec![("ingress", "middlebox"), ("ingress", "injected")];
        want.extend(own(1));
        flows.push(Expected::new(what, t.client, t.server).client(&want));
    }
    // An attacker cannot frame a real abort as injected: data forged in
    // the server's name, from the server's own distance, after its real
    // RST, but (blind) outside the window, proves nothing; the client's
    // stack answers each with a RST for no socket.
    for (v6, port) in [(false, base + 31), (true, base + 32)] {
        let what = format!(
            "{state}: {} enforce, forged data after an abort",
            family(v6)
        );
        let (flow, forged) = abort_then_forged_data(lab, &log, state, v6, port, &what);
        let mut want = vec![("ingress", "abort")];
        want.extend(own(5));
        flows.push(flow.client(&want));
        assert_eq!(forged, 5);
    }
    let metric = |m: &BTreeMap<(String, String), u64>| {
        m.get(&("ingress".into(), "injected".into())).copied()
    };
    assert_eq!(
        metric(&cause_metrics(&lab.client, "c0")),
        Some(2),
        "{state}"
    );

    // With --drop-injected (set live) the RST is dropped for its distance
    // and the transfer completes, byte-exact, at enforce; it passes at
    // monitor (ECONNRESET), which drops nothing.
    policy_set(&lab.client, "drop_injected=on");
    for (v6, port, level) in [
        (false, base + 11, "enforce"),
        (true, base + 12, "enforce"),
        (false, base + 13, "monitor"),
    ] {
        policy_set(&lab.client, &format!("level={level}"));
        let what = format!("{state}: {} {level} --drop-injected", family(v6));
        let t = transfer_past_an_injector(lab, &log, v6, port);
        assert_proven(lab, &log, &t, &what);
        if level == "monitor" {
            assert_reset_by_injector(&log, &t, state, &what);
            assert_eq!(
                said(&t.rst),
                (
                    "c0",
                    "ingress",
                    "ttl_mismatch",
                    "pass",
                    "middlebox",
                    "RST|ACK"
                ),
                "{what}: {:#?}",
                t.rst
            );
            let mut want = vec![("ingress", "middlebox"), ("ingress", "injected")];
            want.extend(own(1));
            flows.push(Expected::new(what, t.client, t.server).client(&want));
        } else {
            assert_eq!(
                (t.read, t.client_end, t.server_end),
                (CHUNKS * CHUNK, Ok(()), Ok(())),
                "{what}: the transfer did not complete"
            );
            assert_eq!(
                said(&t.rst),
                (
                    "c0",
                    "ingress",
                    "ttl_mismatch",
                    "drop",
                    "middlebox",
                    "RST|ACK"
                ),
                "{what}: {:#?}",
                t.rst
            );
            flows.push(
                Expected::new(what, t.client, t.server)
                    .client(&[("ingress", "middlebox"), ("ingress", "injected")]),
            );
        }
    }
    for f in &flows {
        f.check(&log, "client", &f.at_client, None);
    }
    let total: usize = flows.iter().map(|f| f.at_client.len()).sum();
    assert_eq!(log.all().len(), total, "{state}: {:#?}", log.all());
    assert_eq!(cause_metrics(&lab.client, "c0"), log.by_cause(), "{state}");
    drop(log);
    assert_eq!(d.stop().0, 0, "{}", d.log());

    // The flag, at strict: the same.
    let mut d = start_daemon(
        &lab.client,
        &[
            "attach",
            "c0",
            "--state",
            state,
            "--policy",
            "strict",
            "--drop-injected",
            "--interval",
            "0",
        ],
    );
    let log = ResetLog::follow(&lab.client);
    let what = format!("{state}: IPv6 strict --drop-injected");
    let t = transfer_past_an_injector(lab, &log, true, base + 21);
    assert_eq!(
        (t.read, t.client_end, t.server_end),
        (CHUNKS * CHUNK, Ok(()), Ok(())),
        "{what}: the transfer did not complete"
    );
    assert_eq!(
        said(&t.rst),
        (
            "c0",
            "ingress",
            "ttl_mismatch",
            "drop",
            "middlebox",
            "RST|ACK"
        ),
        "{what}: {:#?}",
        t.rst
    );
    assert_proven(lab, &log, &t, &what);
    drop(log);
    assert_eq!(d.stop().0, 0, "{}", d.log());
}

/// A blind RST is blind, also after a real RST: after the server's own
/// abort (exact, from the server's distance), an attacker's RST from
/// another distance with a sequence number a quarter of the sequence
/// space away (out of any window; no injector copying live numbers sends
/// one) must be named blind, not `injected` ("an injector's burst"): the
/// burst rule asks that the first RST came from another distance too, so a
/// blind attacker cannot raise `rstguard_rst_causes_total
/// {cause="injected"}` on a flow a real RST closed. Tracking: the burst
/// needs the flow table (in socket mode the closed connection has no
/// socket left, and the RST is `no_flow`).
#[test]
fn a_blind_rst_after_the_peers_own_abort_is_blind() {
    let lab = Routed::new();
    let mut d = start_daemon(
        &lab.client,
        &[
            "attach",
            "c0",
            "--state",
            "track",
            "--policy",
            "enforce",
            "--interval",
            "0",
        ],
    );
    let log = ResetLog::follow(&lab.client);
    let mut named = Vec::new();
    for (v6, port) in [(false, 7701), (true, 7702)] {
        let what = format!("{} a blind RST after an abort", family(v6));
        let server = SERVER.addr(v6, port);
        let (client, abort) = abort_after_one_chunk(&lab, &log, v6, server, &what);
        send_from(
            &lab.attacker,
            client.ip(),
            vec![tcp_packet(
                server,
                client,
                abort.seq.wrapping_add(1 << 30),
                None,
                true,
                &[],
                OTHER_TTL,
            )],
        );
        let r = log.wait(&what, |r| r.sent(server, client) && r.number > abort.number);
        assert_eq!(
            (r.verdict.as_str(), r.action.as_str(), r.ttl),
            ("out_of_window", "drop", OTHER_TTL - 1),
            "{what}: {r:#?}"
        );
        named.push((what, r));
    }
    assert_eq!(d.stop().0, 0, "{}", d.log());
    for (what, r) in &named {
        assert_eq!(r.cause, "blind", "{what}: {r:#?}");
    }
}
