//! Forged segments teach rstguard nothing, and what it cannot see never
//! turns a legitimate RST away: through the real CLI, at live connections.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

use rand::Rng;
use rstguard_lab::{
    attack::{start_transfer, LEGACY_PORT, STEP},
    n,
    routed::{Routed, CLIENT, LEGACY, ROUTER_IFACES, SERVER},
    spoof::{forged_pairs, Forged},
    Daemon, LiveTransfer,
};
use socket2::SockRef;

use crate::placement::{ignored, judged_at, rsts, start, total, Placement};

/// Pairs of each kind sent at every case.
const PAIRS: u32 = 100;

/// The forgeries that used to teach a sequence number, each followed by a
/// RST at the number it would have taught: (what, as the client?, pair).
fn pairs(rng: &mut impl Rng) -> Vec<(&'static str, bool, Forged, Forged)> {
    let mut v = Vec::new();
    for _ in 0..PAIRS {
        let x: u32 = rng.gen();
        let a: u32 = rng.gen();
        v.push(("FIN", true, Forged::fin(x, Some(a)), Forged::rst(x, None)));
        let x: u32 = rng.gen();
        v.push((
            "SYN",
            true,
            Forged::syn(x),
            Forged::rst(x.wrapping_add(1), None),
        ));
        let x: u32 = rng.gen();
        v.push((
            "SYN|ACK",
            false,
            Forged::syn_ack(x, rng.gen()),
            Forged::rst(x.wrapping_add(1), None),
        ));
    }
    v
}

#[test]
fn forged_fin_syn_and_synack_then_rst_pairs_fail_and_a_real_reset_still_lands() {
    let lab = Routed::new();
    let mut rng = rand::thread_rng();
    for (i, (placement, level, v6, state)) in [
        (Placement::Endpoints, "enforce", false, "track"),
        (Placement::Endpoints, "strict", true, "track"),
        (Placement::Endpoints, "enforce", true, "socket"),
        (Placement::Endpoints, "strict", false, "socket"),
        (Placement::Router, "enforce", true, "auto"),
        (Placement::Router, "strict", false, "auto"),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!(
            "{placement:?} {level} {} --state {state}",
            if v6 { "IPv6" } else { "IPv4" }
        );
        let mut daemons = start(&lab, placement, &["--policy", level, "--state", state]);
        let port = 8400 + i as u16;
        let live = LiveTransfer::between(&lab.server, &lab.client, SERVER.addr(v6, port));
        live.assert_flowing();
        let client = CLIENT.addr(v6, live.client_port);
        let server = SERVER.addr(v6, port);
        let all = pairs(&mut rng);
        let (to_server, to_client): (Vec<_>, Vec<_>) = all.iter().partition(|p| p.1);
        let strip = |v: Vec<&(&str, bool, Forged, Forged)>| v.iter().map(|p| (p.2, p.3)).collect();
        forged_pairs(&lab.attacker, client, server, strip(to_server));
        forged_pairs(&lab.attacker, server, client, strip(to_client));
        thread::sleep(Duration::from_millis(300));
        live.assert_flowing();

        // Every forged RST was judged, none of them exact, all dropped.
        let sites: Vec<(&rstguard_lab::Netns, &str)> = match placement {
            Placement::Router => vec![judged_at(&lab, placement, true)],
            Placement::Endpoints => vec![
                judged_at(&lab, placement, true),
                judged_at(&lab, placement, false),
            ],
        };
        let mut judged = 0;
        let mut dropped = 0;
        let mut taught_nothing = 0;
        for (ns, dev) in &sites {
            let r = rsts(ns, dev);
            assert_eq!(
                n(&r["exact"]["passed"]),
                0,
                "{what}: a forged RST was exact: {r}"
            );
            judged += total(&r);
            dropped += r
                .as_object()
                .unwrap()
                .values()
                .map(|v| n(&v["dropped"]))
                .sum::<u64>();
            let ig = ignored(ns, dev);
            taught_nothing += ig.as_object().unwrap().values().map(n).sum::<u64>();
        }
        let sent = 3 * u64::from(PAIRS);
        assert_eq!(judged, sent, "{what}: every forged RST has a verdict");
        assert!(dropped >= sent - 3, "{what}: {dropped} of {sent} dropped");
        if state == "socket" {
            // Nothing to teach: socket mode keeps no state of its own.
            for (ns, _) in &sites {
                let flows = ns.cli_json(&["flows"]);
                assert_eq!(flows.as_array().map(Vec::len), Some(0), "{what}: {flows}");
            }
        } else {
            assert!(
                taught_nothing >= sent,
                "{what}: the forgeries were counted as teaching nothing only {taught_nothing} times"
            );
        }

        // The connection is intact, and its own reset still lands.
        live.assert_flowing();
        live.abort_server();
        let outcome = live.finish();
        assert!(
            matches!(
                outcome.sent,
                Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
            ),
            "{what}: the server's abort did not reach the client: {:?}",
            outcome.sent
        );
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0);
        }
    }
}

/// The server aborts (SO_LINGER 0) after data the client never gets; the
/// router between them sees only the server's direction (the client's
/// segments take a direct link). The server's RST is inexact for the
/// client, which answers with a challenge ACK; the server's stack, with no
/// socket left, answers that with a RST at the client's RCV.NXT, which the
/// router never saw, and that RST must reach the client.
fn asymmetric_abort(lab: &Routed, v6: bool, port: u16) -> ErrorKind {
    let server = SERVER.addr(v6, port);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let srv = lab.server.spawn(move || {
        let l = TcpListener::bind(server).expect("binding");
        ready_tx.send(()).unwrap();
        let (mut s, _) = l.accept().expect("accepting");
        let mut b = [0u8; 5];
        s.read_exact(&mut b).expect("the client's hello");
        s.write_all(b"first").unwrap();
        go_rx.recv_timeout(Duration::from_secs(5)).expect("go");
        // Data the router forwards and the link then loses, then the abort.
        s.write_all(&[9u8; 3000]).unwrap();
        thread::sleep(Duration::from_millis(50));
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the server listens");
    let (lose_tx, lose_rx) = std::sync::mpsc::channel::<()>();
    let (lost_tx, lost_rx) = std::sync::mpsc::channel::<()>();
    let client = lab.client.spawn(move || {
        let mut c =
            TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("connecting");
        c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).expect("the server's first bytes");
        lose_tx.send(()).unwrap();
        lost_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("lossy link");
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return ErrorKind::UnexpectedEof,
                Ok(_) => continue,
                Err(e) => return e.kind(),
            }
        }
    });
    lose_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("connected");
    // The link after the router loses the server's data (not its RSTs).
    let (family, len) = if v6 {
        ("ip6", "ip6 length > 40")
    } else {
        ("ip", "ip length > 60")
    };
    lab.router.exec(&[
        "nft",
        &format!(
            "add table inet rglose; \
             add chain inet rglose c {{ type filter hook forward priority 0; }}; \
             add rule inet rglose c {family} saddr {} tcp sport {port} {len} drop",
            SERVER.ip(v6)
        ),
    ]);
    lost_tx.send(()).unwrap();
    go_tx.send(()).unwrap();
    let outcome = client.join().expect("the client thread");
    srv.join().expect("the server thread");
    lab.router
        .exec(&["nft", "delete", "table", "inet", "rglose"]);
    outcome
}

#[test]
fn with_asymmetric_routing_an_abort_with_lost_data_still_resets_the_client() {
    let lab = Routed::new();
    lab.bypass_client_to_server();
    // Without rstguard: the reference outcome.
    for v6 in [false, true] {
        assert_eq!(
            asymmetric_abort(&lab, v6, 8500 + v6 as u16),
            ErrorKind::ConnectionReset,
            "without rstguard, v6={v6}"
        );
    }
    for (i, level) in ["monitor", "enforce", "strict"].into_iter().enumerate() {
        let mut args = vec!["attach"];
        args.extend(ROUTER_IFACES);
        args.extend(["--policy", level, "--interval", "0", "--no-metrics"]);
        let mut d = Daemon::start(&lab.router, &args);
        for v6 in [false, true] {
            let port = 8510 + 2 * i as u16 + v6 as u16;
            assert_eq!(
                asymmetric_abort(&lab, v6, port),
                ErrorKind::ConnectionReset,
                "rstguard {level} on the router, v6={v6}"
            );
        }
        // The RSTs came in from the server's side (r1); the client's
        // side of those flows was never seen.
        let r = rsts(&lab.router, "r1");
        assert!(
            n(&r["one_sided"]["passed"]) >= 2,
            "{level}: no one-sided RST: {r}"
        );
        let dropped: u64 = r
            .as_object()
            .unwrap()
            .values()
            .map(|v| n(&v["dropped"]))
            .sum();
        assert_eq!(dropped, 0, "{level}: a legitimate RST was dropped: {r}");
        let status = lab.router.cli_json(&["status"]);
        assert!(
            status.to_string().contains("one_sided"),
            "status does not show one-sided RSTs: {status}"
        );
        assert_eq!(d.stop().0, 0);
    }
}

#[test]
fn a_legacy_stack_behind_strict_survives_forged_fin_then_rst_pairs() {
    let mut lab = Routed::new();
    let peer = lab.with_legacy(LEGACY_PORT);
    let legacy = SocketAddr::new(LEGACY.parse().unwrap(), LEGACY_PORT);
    // Pairs one half window apart over the whole sequence space: a FIN at
    // X (with a random ACK), then a RST at X.
    let sweep = |start: u32| -> Vec<(Forged, Forged)> {
        let mut rng = rand::thread_rng();
        (0..(u64::from(u32::MAX) / u64::from(STEP) + 1))
            .map(|k| {
                let x = start.wrapping_add((k as u32).wrapping_mul(STEP));
                (Forged::fin(x, Some(rng.gen())), Forged::rst(x, None))
            })
            .collect()
    };

    // Unprotected, the same sweep kills the connection.
    let t = start_transfer(&lab, &peer);
    let resets = peer.resets();
    forged_pairs(
        &lab.attacker,
        CLIENT.addr(false, t.client_port),
        legacy,
        sweep(0),
    );
    thread::sleep(Duration::from_millis(300));
    assert!(
        peer.resets() > resets,
        "the unprotected legacy peer survived"
    );
    assert_eq!(t.finish().sent, Err(ErrorKind::ConnectionReset));

    // Behind rstguard at strict on the router, it survives.
    let mut args = vec!["attach"];
    args.extend(ROUTER_IFACES);
    args.push("r3");
    args.extend(["--policy", "strict", "--interval", "0", "--no-metrics"]);
    let mut daemon = Daemon::start(&lab.router, &args);
    let t = start_transfer(&lab, &peer);
    let resets = peer.resets();
    let sent = forged_pairs(
        &lab.attacker,
        CLIENT.addr(false, t.client_port),
        legacy,
        sweep(STEP / 3),
    );
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        peer.resets(),
        resets,
        "the legacy peer was reset through rstguard"
    );
    t.assert_flowing_to(&peer);
    let outcome = t.finish();
    let bytes = outcome.sent.expect("the client's connection survived");
    assert_eq!(bytes, peer.received(), "byte-exact");
    let r = rsts(&lab.router, "r2");
    assert_eq!(n(&r["exact"]["passed"]), 0, "{r}");
    let dropped = n(&r["out_of_window"]["dropped"]) + n(&r["in_window"]["dropped"]);
    assert_eq!(dropped, sent, "every forged RST was dropped: {r}");
    let ig = ignored(&lab.router, "r2");
    assert!(
        n(&ig["ack_out_of_range"]) + n(&ig["seq_out_of_window"]) >= sent,
        "the forged FINs taught something: {ig}"
    );
    assert_eq!(daemon.stop().0, 0);
}
