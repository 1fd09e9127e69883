//! Blind attacks must fail at enforce and strict, and be counted at
//! monitor; the transfer under attack completes byte-exact, and rstguard's
//! counters account for every spoofed packet by verdict.

use std::{
    net::{SocketAddr, TcpStream},
    thread,
    time::Duration,
};

use rstguard_lab::{
    n,
    routed::{Routed, CLIENT, SERVER},
    spoof::{random_rsts, rsts_at},
    traffic::{nstat, serve_on},
    LiveTransfer, Netns,
};
use serde_json::Value;

use crate::placement::{judged_at, rsts, start, total, Placement};
use socket2::{Domain, Socket, Type};

const SPOOFED: u64 = 5000;

#[test]
fn five_thousand_blind_rsts_each_way_at_a_live_transfer() {
    // On the endpoints, by socket (socket mode) and by tracking.
    let cases = [
        (Placement::Router, "monitor", false, "auto"),
        (Placement::Router, "enforce", false, "auto"),
        (Placement::Router, "strict", false, "auto"),
        (Placement::Router, "enforce", true, "auto"),
        (Placement::Router, "strict", true, "auto"),
        (Placement::Endpoints, "monitor", false, "socket"),
        (Placement::Endpoints, "enforce", false, "socket"),
        (Placement::Endpoints, "strict", true, "socket"),
        (Placement::Endpoints, "enforce", false, "track"),
        (Placement::Endpoints, "strict", true, "track"),
    ];
    let lab = Routed::new();
    for (i, (placement, level, v6, state)) in cases.into_iter().enumerate() {
        let what = format!(
            "{placement:?} {level} {} --state {state}",
            if v6 { "IPv6" } else { "IPv4" }
        );
        let mut daemons = start(&lab, placement, &["--policy", level, "--state", state]);
        let port = 8000 + i as u16;
        let live = LiveTransfer::between(&lab.server, &lab.client, SERVER.addr(v6, port));
        live.assert_flowing();
        let client = CLIENT.addr(v6, live.client_port);
        let server = SERVER.addr(v6, port);
        random_rsts(&lab.attacker, client, server, SPOOFED as u32);
        random_rsts(&lab.attacker, server, client, SPOOFED as u32);
        live.assert_flowing();
        let outcome = live.finish();
        assert_eq!(
            outcome.server_error, None,
            "{what}: the server's socket was reset"
        );
        assert_eq!(outcome.sent, Ok(outcome.received), "{what}: byte-exact");

        let judged: Vec<Value> = match placement {
            Placement::Router => vec![rsts(&lab.router, "r2")],
            Placement::Endpoints => vec![rsts(&lab.server, "s0"), rsts(&lab.client, "c0")],
        };
        let all: u64 = judged.iter().map(total).sum();
        assert_eq!(
            all,
            2 * SPOOFED,
            "{what}: every spoofed RST has a verdict: {judged:?}"
        );
        for r in &judged {
            let oow = &r["out_of_window"];
            match level {
                "monitor" => {
                    assert_eq!(n(&oow["dropped"]), 0, "{what}: monitor dropped");
                    assert!(n(&oow["passed"]) >= SPOOFED - 50, "{what}: {r}");
                }
                _ => {
                    assert_eq!(n(&oow["passed"]), 0, "{what}: {r}");
                    assert!(n(&oow["dropped"]) >= SPOOFED - 50, "{what}: {r}");
                    assert_eq!(
                        n(&r["exact"]["passed"]),
                        0,
                        "{what}: a blind guess was exact: {r}"
                    );
                }
            }
            if level == "strict" {
                assert_eq!(n(&r["in_window"]["passed"]), 0, "{what}: {r}");
            }
        }
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0);
        }
    }
}

/// What a real peer's RST would carry, and the window: the receiver's last
/// ACK and window, from rstguard's own flow table.
fn receiver_window(ns: &Netns, receiver: SocketAddr) -> (u32, u32) {
    let flows = ns.cli_json(&["flows"]);
    let want = receiver.to_string();
    for f in flows.as_array().unwrap() {
        for (end, sent) in [("a", "a_sent"), ("b", "b_sent")] {
            if f[end].as_str() == Some(want.as_str()) {
                let half = &f[sent];
                return (n(&half["ack"]) as u32, n(&half["win"]) as u32);
            }
        }
    }
    panic!("no flow with {want}: {flows}");
}

#[test]
fn in_window_rsts_cost_challenge_acks_at_enforce_and_nothing_at_strict() {
    let lab = Routed::new();
    let counters = ["TcpExtTCPChallengeACK", "TcpExtTCPACKSkippedChallenge"];
    for (i, (placement, level, state)) in [
        // (Socket mode's in-window RSTs: socket_mode.rs.)
        (Placement::Endpoints, "enforce", "track"),
        (Placement::Endpoints, "strict", "track"),
        (Placement::Router, "enforce", "auto"),
        (Placement::Router, "strict", "auto"),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("{placement:?} {level} --state {state}");
        let mut daemons = start(&lab, placement, &["--policy", level, "--state", state]);
        let port = 8100 + i as u16;
        let live = LiveTransfer::between(&lab.server, &lab.client, SERVER.addr(false, port));
        live.assert_flowing();
        let (ns, dev) = judged_at(&lab, placement, true);
        // Aim at the middle of the window, with the transfer paused: its
        // window stays where rstguard's flow table says it is, however long
        // reading the table and sending take (seconds under QEMU's TCG,
        // where a live transfer would move it far past its width).
        live.pause();
        let outcome_port = live.client_port;
        let client = CLIENT.addr(false, outcome_port);
        let server = SERVER.addr(false, port);
        let aimed = std::time::Instant::now();
        let (ack, win) = receiver_window(ns, server);
        let before = nstat(&lab.server, &counters);
        assert!(win > 1000, "{what}: window {win}");
        let seqs: Vec<u32> = (0..20u32).map(|k| ack.wrapping_add(win / 2 + k)).collect();
        rsts_at(&lab.attacker, client, server, seqs, Some(0));
        let aimed = aimed.elapsed();
        live.resume();
        let after = nstat(&lab.server, &counters);
        let moved: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
        let r = rsts(ns, dev);
        let inexact = n(&r["in_window"]["passed"])
            + n(&r["in_window"]["dropped"])
            + n(&r["rate_limited"]["dropped"]);
        assert!(
            inexact >= 15,
            "{what}: not in the window (aimed at {ack} + {win} / 2, sent within {aimed:?} of \
             reading the flow table): {r}"
        );
        if level == "strict" {
            assert_eq!(
                moved, 0,
                "{what}: the kernel answered RSTs that strict should have dropped: {r}"
            );
            assert_eq!(n(&r["in_window"]["passed"]), 0, "{what}: {r}");
        } else {
            assert!(moved > 0, "{what}: no challenge ACK: {r}");
            assert!(n(&r["in_window"]["passed"]) > 0, "{what}: {r}");
            assert!(
                moved <= n(&r["in_window"]["passed"]),
                "{what}: more challenges than passed RSTs: {r}"
            );
        }
        live.assert_flowing();
        let outcome = live.finish();
        assert_eq!(outcome.server_error, None, "{what}");
        assert_eq!(outcome.sent, Ok(outcome.received), "{what}: byte-exact");
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0);
        }
    }
}

#[test]
fn a_bad_rst_ack_at_a_client_in_syn_sent_does_not_stop_the_connection() {
    let lab = Routed::new();
    for (i, (placement, level, v6, state)) in [
        (Placement::Endpoints, "monitor", false, "socket"),
        (Placement::Endpoints, "enforce", false, "socket"),
        (Placement::Endpoints, "strict", true, "socket"),
        (Placement::Endpoints, "enforce", false, "track"),
        (Placement::Router, "strict", false, "auto"),
        (Placement::Router, "enforce", true, "auto"),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!(
            "{placement:?} {level} {} --state {state}",
            if v6 { "IPv6" } else { "IPv4" }
        );
        let mut daemons = start(&lab, placement, &["--policy", level, "--state", state]);
        let port = 8200 + i as u16;
        let cport = 42000 + i as u16;
        let server = SERVER.addr(v6, port);
        let client = CLIENT.addr(v6, cport);
        let listener = serve_on(&lab.server, server, |l| {
            l.accept().map(|_| ()).map_err(|e| e.kind())
        });
        // The router drops the first SYN: the client waits in SYN_SENT
        // for its retransmission, a second later.
        lab.router.exec(&[
            "nft",
            &format!(
                "add table inet rgsyn; add chain inet rgsyn c {{ type filter hook forward priority 0; }}; \
                 add rule inet rgsyn c tcp dport {port} tcp flags syn drop"
            ),
        ]);
        let connecting = lab.client.spawn(move || {
            let s = Socket::new(Domain::for_address(client), Type::STREAM, None).unwrap();
            s.set_reuse_address(true).unwrap();
            s.bind(&client.into()).unwrap();
            s.connect_timeout(
                &server.into(),
                rstguard_lab::patience(Duration::from_secs(10)),
            )
            .map_err(|e| e.kind())
        });
        thread::sleep(Duration::from_millis(300));
        // The SYN is out; forged answers that do not ACK it.
        let bad_acks: Vec<u32> = (0..20u32).map(|k| 0x5eed_0000 + k).collect();
        for ack in bad_acks {
            rsts_at(&lab.attacker, server, client, vec![0], Some(ack));
        }
        lab.router
            .exec(&["nft", "delete", "table", "inet", "rgsyn"]);
        let connected = connecting.join().unwrap();
        assert_eq!(
            connected,
            Ok(()),
            "{what}: the connection did not establish"
        );
        assert_eq!(listener.join().unwrap(), Ok(()), "{what}");
        let (ns, dev) = judged_at(&lab, placement, false);
        let r = rsts(ns, dev);
        let bad = &r["bad_syn_ack"];
        if level == "monitor" {
            assert_eq!(
                (n(&bad["passed"]), n(&bad["dropped"])),
                (20, 0),
                "{what}: {r}"
            );
        } else {
            assert_eq!(
                (n(&bad["passed"]), n(&bad["dropped"])),
                (0, 20),
                "{what}: {r}"
            );
        }
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0);
        }
    }
}

/// Whether the client has a TIME_WAIT socket from local port `cport`.
fn in_time_wait(ns: &Netns, cport: u16) -> bool {
    ns.exec(&["ss", "-Htan", "state", "time-wait"])
        .lines()
        .any(|l| {
            l.split_whitespace()
                .any(|f| f.ends_with(&format!(":{cport}")))
        })
}

#[test]
fn time_wait_assassination_fails_with_time_wait_drop() {
    let lab = Routed::new();
    for (i, (placement, level)) in [
        (Placement::Endpoints, "monitor"),
        (Placement::Endpoints, "enforce"),
        (Placement::Router, "strict"),
        (Placement::Router, "monitor"),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("{placement:?} {level}");
        // Tracking's TIME_WAIT (socket mode's is in the differential and
        // packet tests: a TIME_WAIT socket takes only RCV.NXT).
        let mut daemons = start(
            &lab,
            placement,
            &["--policy", level, "--time-wait", "drop", "--state", "track"],
        );
        let port = 8300 + i as u16;
        let server = SERVER.addr(false, port);
        let srv = serve_on(&lab.server, server, |l| {
            use std::io::{Read, Write};
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            s.write_all(b"bye").unwrap();
            // The server closes second: the client holds TIME_WAIT.
        });
        let cport = lab.client.run(move || {
            use std::io::{Read, Write};
            let mut c =
                TcpStream::connect_timeout(&server, rstguard_lab::patience(Duration::from_secs(5)))
                    .unwrap();
            c.write_all(b"hello").unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            c.local_addr().unwrap().port()
        });
        srv.join().unwrap();
        thread::sleep(Duration::from_millis(300));
        assert!(
            in_time_wait(&lab.client, cport),
            "{what}: no TIME_WAIT to attack"
        );
        // The exact number the client's TIME_WAIT would accept: what the
        // server last sent, as rstguard learned it.
        let (ns, dev) = judged_at(&lab, placement, false);
        let flows = ns.cli_json(&["flows"]);
        let server_s = server.to_string();
        let f = flows
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["a"] == server_s.as_str() || f["b"] == server_s.as_str())
            .unwrap_or_else(|| panic!("{what}: no flow: {flows}"));
        assert_eq!(f["state"], "time_wait", "{what}: {f}");
        let half = if f["a"] == server_s.as_str() {
            &f["a_sent"]
        } else {
            &f["b_sent"]
        };
        let seq = n(&half["snd_nxt"]) as u32;
        rsts_at(
            &lab.attacker,
            server,
            CLIENT.addr(false, cport),
            vec![seq],
            None,
        );
        let r = rsts(ns, dev);
        let tw = &r["time_wait"];
        if level == "monitor" {
            assert_eq!((n(&tw["passed"]), n(&tw["dropped"])), (1, 0), "{what}: {r}");
            assert!(
                !in_time_wait(&lab.client, cport),
                "{what}: the exact RST should have assassinated TIME_WAIT"
            );
        } else {
            assert_eq!((n(&tw["passed"]), n(&tw["dropped"])), (0, 1), "{what}: {r}");
            assert!(
                in_time_wait(&lab.client, cport),
                "{what}: TIME_WAIT was assassinated"
            );
        }
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0);
        }
    }
}
