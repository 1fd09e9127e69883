//! Evasion through the real CLI: RSTs hidden in IP fragments (RFC 1858's
//! tiny fragments, RSTs in first fragments) at live connections and at a
//! legacy stack that reassembles; a transfer fragmented on the way; and a
//! device without a link-layer header (tun; WireGuard where the kernel has
//! it). Each attack is shown to work where rstguard does not stop it
//! (monitor, or no rstguard), so that each test can fail.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    process::Command,
    thread,
    time::Duration,
};

use rand::Rng;
use rstguard_lab::{
    attack::{start_transfer, sweep_attack_cut, LEGACY_PORT},
    daemon::{iface, receiver_window},
    fragments::{Cut, AFTER_HEADER, TINY},
    n,
    routed::{Routed, CLIENT, ROUTER_IFACES, SERVER},
    spoof::{fragmented_rsts_at, Forged},
    traffic::{nstat, serve_on, ClientOpts},
    tunnel::{Tunnel, TUN, TUN_CLIENT, TUN_SERVER},
    Daemon, LiveTransfer, Netns,
};
use serde_json::Value;
use socket2::SockRef;

use crate::placement::{judged_at, start, total, Placement};

/// The kernel's challenge-ACK counters: sent, and skipped by the
/// per-socket rate limit (one per 500 ms).
const CHALLENGE: [&str; 2] = ["TcpExtTCPChallengeACK", "TcpExtTCPACKSkippedChallenge"];

/// In-window RSTs sent at each connection.
const RSTS: u64 = 200;

/// 1 KiB every 20 ms (50 KB/s): a live connection that costs the shared
/// machine little; the receiver's window stands nearly still while RSTs go
/// out.
const TRICKLE: (usize, u64) = (1024, 20);

/// One interface's counters, from `rstguard stats --json` in `ns`.
fn counters(ns: &Netns, dev: &str) -> Value {
    iface(&ns.cli_json(&["stats"]), dev)["counters"].clone()
}

/// Sum of every verdict's `dropped`.
fn dropped(rst: &Value) -> u64 {
    rst.as_object()
        .unwrap()
        .values()
        .map(|v| n(&v["dropped"]))
        .sum()
}

/// The verdicts a cut earns at XDP, one each per RST, and the non-first
/// fragments each RST brings.
fn verdicts_of(cut: Cut) -> (&'static [&'static str], u64) {
    if cut == TINY {
        // The first fragment lacks the header; the second sits at offset 8
        // (and is a non-first fragment too); the third passes.
        (&["tiny_fragment", "fragment_overlap"], 2)
    } else {
        (&["fragmented_rst"], 1)
    }
}

/// Sum of the challenge-ACK counters' moves between two readings.
fn moved(before: &[u64], after: &[u64]) -> u64 {
    after.iter().zip(before).map(|(a, b)| a - b).sum()
}

#[test]
fn in_window_rsts_hidden_in_fragments_draw_no_challenge_ack_at_strict() {
    use Placement::{Endpoints, Router};
    let cases = [
        (Endpoints, "monitor", TINY, false),
        (Endpoints, "enforce", TINY, false),
        (Endpoints, "strict", TINY, false),
        (Router, "monitor", TINY, false),
        (Router, "strict", TINY, false),
        (Router, "monitor", AFTER_HEADER, false),
        (Router, "strict", AFTER_HEADER, false),
        (Endpoints, "monitor", AFTER_HEADER, true),
        (Endpoints, "strict", AFTER_HEADER, true),
        (Router, "enforce", AFTER_HEADER, true),
    ];
    let lab = Routed::new();
    for (i, (placement, level, cut, v6)) in cases.into_iter().enumerate() {
        let shape = if cut == TINY { "tiny" } else { "after-header" };
        let family = if v6 { "IPv6" } else { "IPv4" };
        let what = format!("{placement:?} {level} {shape} {family}");
        // The window is read from the flow table: tracking (socket mode
        // judges fragments the same, before any lookup).
        let mut daemons = start(&lab, placement, &["--policy", level, "--state", "track"]);
        let port = 8600 + i as u16;
        let server = SERVER.addr(v6, port);
        let live = LiveTransfer::between_with(
            &lab.server,
            &lab.client,
            server,
            ClientOpts {
                pace: TRICKLE,
                df_clear: false,
            },
        );
        live.assert_flowing();
        let client = CLIENT.addr(v6, live.client_port);
        let (ns, dev) = judged_at(&lab, placement, false);

        // 200 RSTs spoofed as the server, three quarters into the client's
        // window (which stands still: the client only sends).
        let (ack, win) = receiver_window(ns, client);
        assert!(win >= 8192, "{what}: window {win}");
        let seqs: Vec<u32> = (0..RSTS as u32)
            .map(|k| ack.wrapping_add(win / 4 * 3).wrapping_sub(k))
            .collect();
        let before = nstat(&lab.client, &CHALLENGE);
        fragmented_rsts_at(&lab.attacker, server, client, seqs, Some(0), cut);
        let after = nstat(&lab.client, &CHALLENGE);
        let moved = moved(&before, &after);

        let c = counters(ns, dev);
        let r = &c["rst"];
        let (verdicts, non_first_per_rst) = verdicts_of(cut);
        for v in verdicts {
            let (passed, dropped) = (n(&r[*v]["passed"]), n(&r[*v]["dropped"]));
            if level == "monitor" {
                assert_eq!((passed, dropped), (RSTS, 0), "{what}: {v}: {r}");
            } else {
                assert_eq!((passed, dropped), (0, RSTS), "{what}: {v}: {r}");
            }
        }
        assert_eq!(
            total(r),
            RSTS * verdicts.len() as u64,
            "{what}: no other verdict moved: {r}"
        );
        assert_eq!(
            n(&c["non_first_fragments"]),
            RSTS * non_first_per_rst,
            "{what}: {c}"
        );
        // A tiny fragment hides the RST flag: no RST was ever parsed.
        let parsed_rsts = if cut == TINY { 0 } else { RSTS };
        assert_eq!(n(&c["hooks"]["xdp"]["rst"]), parsed_rsts, "{what}: {c}");

        if level == "monitor" {
            // Reassembled, every one met the client's stack in its window:
            // a challenge ACK, the rest skipped by the rate limit.
            assert_eq!(
                moved, RSTS,
                "{what}: the client's stack did not meet every RST: before {before:?}, after {after:?}"
            );
            assert!(after[0] > before[0], "{what}: no challenge ACK");
        } else {
            assert_eq!(
                moved, 0,
                "{what}: the client's stack met RSTs rstguard should have dropped: \
                 before {before:?}, after {after:?}"
            );
        }
        live.assert_flowing();
        let outcome = live.finish();
        assert_eq!(outcome.server_error, None, "{what}");
        assert_eq!(outcome.sent, Ok(outcome.received), "{what}: byte-exact");
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0, "{what}");
        }
    }
}

#[test]
fn a_legacy_stack_that_reassembles_dies_from_tiny_fragment_rsts_unless_rstguard_is_strict() {
    let mut lab = Routed::new();
    let peer = lab.with_legacy(LEGACY_PORT);

    // Unprotected: smoltcp reassembles the fragments (without
    // `proto-ipv4-fragmentation` it would take each one for a whole packet
    // and drop it), meets an in-window RST, and the connection dies.
    let t = start_transfer(&lab, &peer);
    let s = sweep_attack_cut(&lab, &peer, t.client_port, 3, Some(TINY));
    assert!(
        s.reset,
        "the unprotected legacy peer survived {} fragmented RSTs",
        s.sent
    );
    assert_eq!(
        t.finish().sent,
        Err(ErrorKind::ConnectionReset),
        "the client saw its connection die"
    );

    // Behind rstguard at strict on the router, the same sweep.
    let mut args = vec!["attach"];
    args.extend(ROUTER_IFACES);
    args.push("r3");
    args.extend(["--policy", "strict", "--interval", "0", "--no-metrics"]);
    let mut daemon = Daemon::start(&lab.router, &args);
    let t = start_transfer(&lab, &peer);
    let resets = peer.resets();
    let s = sweep_attack_cut(&lab, &peer, t.client_port, 2, Some(TINY));
    assert!(!s.reset, "the legacy peer was reset through rstguard");
    assert_eq!(peer.resets(), resets);
    t.assert_flowing_to(&peer);
    let outcome = t.finish();
    let sent = outcome.sent.expect("the client's connection survived");
    assert_eq!(sent, peer.received(), "byte-exact");
    // Every first and second fragment was dropped: no RST of the sweep
    // could be put together behind the router.
    let c = counters(&lab.router, "r2");
    let r = &c["rst"];
    assert_eq!(n(&r["tiny_fragment"]["dropped"]), s.sent, "{r}");
    assert_eq!(n(&r["fragment_overlap"]["dropped"]), s.sent, "{r}");
    assert_eq!(total(r), 2 * s.sent, "no other verdict: {r}");
    assert_eq!(n(&c["non_first_fragments"]), 2 * s.sent, "{c}");
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn a_transfer_fragmented_on_the_way_completes_byte_exact_at_every_level() {
    let lab = Routed::new();
    // The router's link to the server carries 600-byte packets: the
    // client's 1,500-byte segments, DF cleared, are cut in three there.
    lab.router.ip(&["link", "set", "r1", "mtu", "600"]);
    let cases = [
        (Placement::Endpoints, "monitor"),
        (Placement::Endpoints, "enforce"),
        (Placement::Endpoints, "strict"),
        (Placement::Router, "strict"),
    ];
    for (i, (placement, level)) in cases.into_iter().enumerate() {
        let what = format!("{placement:?} {level}");
        let mut daemons = start(&lab, placement, &["--policy", level]);
        let frag_before = nstat(&lab.router, &["IpFragCreates"])[0];
        let reasm_before = nstat(&lab.server, &["IpReasmOKs"])[0];
        let live = LiveTransfer::between_with(
            &lab.server,
            &lab.client,
            SERVER.addr(false, 8700 + i as u16),
            ClientOpts {
                df_clear: true,
                ..ClientOpts::default()
            },
        );
        live.assert_flowing();
        thread::sleep(Duration::from_secs(1));
        live.assert_flowing();
        let outcome = live.finish();
        assert_eq!(outcome.server_error, None, "{what}");
        assert_eq!(outcome.sent, Ok(outcome.received), "{what}: byte-exact");
        let made = nstat(&lab.router, &["IpFragCreates"])[0] - frag_before;
        let reassembled = nstat(&lab.server, &["IpReasmOKs"])[0] - reasm_before;
        assert!(
            made > 100 && reassembled > 30,
            "{what}: the data was not fragmented: {made} fragments made, {reassembled} reassembled"
        );

        // Where the fragments pass rstguard: the server's ingress, or the
        // router's egress towards it. Nothing is dropped anywhere.
        let sites: Vec<(&Netns, &str)> = match placement {
            Placement::Endpoints => vec![(&lab.server, "s0"), (&lab.client, "c0")],
            Placement::Router => ROUTER_IFACES.iter().map(|d| (&lab.router, *d)).collect(),
        };
        for (ns, dev) in &sites {
            let c = counters(ns, dev);
            assert_eq!(dropped(&c["rst"]), 0, "{what}: {dev} dropped: {c}");
        }
        let (ns, dev) = sites[if placement == Placement::Router { 1 } else { 0 }];
        let c = counters(ns, dev);
        assert!(
            n(&c["non_first_fragments"]) >= reassembled,
            "{what}: {dev} did not count the fragments: {c}"
        );
        assert!(n(&c["hooks"]["xdp"]["tcp"]) > 10, "{what}: {c}");
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0, "{what}");
        }
    }
}

/// Injects `n` RST|ACKs at random sequence numbers from `src` to `dst`
/// into the server's tun device, then lets them land.
fn inject_random(tun: &Tunnel, src: SocketAddr, dst: SocketAddr, n: u32) {
    let mut rng = rand::thread_rng();
    for i in 0..n {
        tun.inject(&Forged::rst(rng.gen(), Some(rng.gen())).packet(src, dst));
        if i % 64 == 63 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    thread::sleep(Duration::from_millis(300));
}

/// Injects 20 RSTs three quarters into `server`'s window (as rstguard in
/// `tun.server` learned it) and returns how far the challenge-ACK
/// counters moved.
fn inject_in_window(tun: &Tunnel, client: SocketAddr, server: SocketAddr) -> u64 {
    let (ack, win) = receiver_window(&tun.server, server);
    assert!(win >= 8192, "window {win}");
    let before = nstat(&tun.server, &CHALLENGE);
    for k in 0..20u32 {
        let seq = ack.wrapping_add(win / 4 * 3).wrapping_sub(k);
        tun.inject(&Forged::rst(seq, Some(0)).packet(client, server));
    }
    thread::sleep(Duration::from_millis(300));
    moved(&before, &nstat(&tun.server, &CHALLENGE))
}

#[test]
fn a_tun_device_meets_blind_attacks_and_legitimate_resets_as_veth_does() {
    const BLIND: u64 = 2000;
    let tun = Tunnel::new();
    let mut daemon = Daemon::start(
        &tun.server,
        &[
            "attach",
            TUN,
            // Its in-window RSTs aim at the flow table's window: tracking.
            "--state",
            "track",
            "--policy",
            "enforce",
            "--interval",
            "0",
            "--no-metrics",
        ],
    );
    let status = tun.server.cli_json(&["status"]);
    let st = iface(&status, TUN);
    assert_eq!(st["link"], "ip", "{st}");
    assert_eq!(st["xdp_mode"], "skb", "{st}");
    assert_eq!(st["xdp_attached"], true, "{st}");
    assert_eq!(st["egress_attached"], true, "{st}");
    let (_, out, _) = tun.server.cli(&["check", "--json", TUN]);
    let check: Value = serde_json::from_str(&out).expect("check's JSON");
    let item = check["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["item"] == format!("interface {TUN}"))
        .unwrap_or_else(|| panic!("no {TUN} in {check}"));
    assert_eq!(item["status"], "ok", "{item}");
    assert!(
        item["detail"].as_str().unwrap().contains("link ip"),
        "{item}"
    );

    for (i, v6) in [false, true].into_iter().enumerate() {
        let what = if v6 { "IPv6" } else { "IPv4" };
        let port = 8800 + i as u16;
        let server = TUN_SERVER.addr(v6, port);
        let live = LiveTransfer::between_with(
            &tun.server,
            &tun.client,
            server,
            ClientOpts {
                pace: TRICKLE,
                df_clear: false,
            },
        );
        live.assert_flowing();
        let client = TUN_CLIENT.addr(v6, live.client_port);

        // Blind RSTs through the tunnel, at enforce: out of the window,
        // dropped; none exact.
        let before = counters(&tun.server, TUN)["rst"].clone();
        inject_random(&tun, client, server, BLIND as u32);
        live.assert_flowing();
        let r = counters(&tun.server, TUN)["rst"].clone();
        let delta = |v: &str, a: &str| n(&r[v][a]) - n(&before[v][a]);
        assert_eq!(total(&r) - total(&before), BLIND, "{what}: {r}");
        assert!(
            delta("out_of_window", "dropped") >= BLIND - 20,
            "{what}: {r}"
        );
        assert_eq!(delta("out_of_window", "passed"), 0, "{what}: {r}");
        assert_eq!(delta("exact", "passed"), 0, "{what}: {r}");

        // In-window RSTs: at monitor the server's stack meets them (and
        // answers with challenge ACKs); at strict it meets none.
        let set = |level: &str| {
            let (code, _, err) = tun
                .server
                .cli(&["policy", "set", &format!("level={level}")]);
            assert_eq!(code, 0, "policy set level={level}: {err}");
        };
        set("monitor");
        let at_monitor = inject_in_window(&tun, client, server);
        assert_eq!(at_monitor, 20, "{what}: monitor: challenge ACKs");
        set("strict");
        let at_strict = inject_in_window(&tun, client, server);
        assert_eq!(at_strict, 0, "{what}: strict: the stack met in-window RSTs");
        let r2 = counters(&tun.server, TUN)["rst"].clone();
        assert_eq!(
            n(&r2["in_window"]["dropped"]) - n(&r["in_window"]["dropped"]),
            20,
            "{what}: {r2}"
        );

        // Still at strict: the transfer ends cleanly, and a real reset
        // lands.
        live.assert_flowing();
        let outcome = live.finish();
        assert_eq!(outcome.server_error, None, "{what}");
        assert_eq!(outcome.sent, Ok(outcome.received), "{what}: byte-exact");

        // A legitimate reset: the client aborts (SO_LINGER 0) and the
        // server sees it.
        let exact_before = n(&counters(&tun.server, TUN)["rst"]["exact"]["passed"]);
        let abort_at = TUN_SERVER.addr(v6, port + 10);
        let srv = serve_on(&tun.server, abort_at, |l| {
            let (mut s, _) = l.accept().expect("accepting");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 64];
            let mut got = 0;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Err(ErrorKind::UnexpectedEof),
                    Ok(k) => got += k,
                    Err(e) => {
                        return if got == 3 {
                            Ok(e.kind())
                        } else {
                            Err(e.kind())
                        }
                    }
                }
            }
        });
        tun.client.run(move || {
            let mut c =
                TcpStream::connect_timeout(&abort_at, Duration::from_secs(5)).expect("connecting");
            c.write_all(b"bye").unwrap();
            thread::sleep(Duration::from_millis(100));
            SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
            drop(c);
        });
        assert_eq!(
            srv.join().unwrap(),
            Ok(ErrorKind::ConnectionReset),
            "{what}: the client's abort did not reset the server"
        );
        let exact = n(&counters(&tun.server, TUN)["rst"]["exact"]["passed"]);
        assert_eq!(exact - exact_before, 1, "{what}: the abort was not exact");
        set("enforce");
    }

    // TCP seen on both hooks of the tun device, and nothing but the
    // forged RSTs dropped.
    let c = counters(&tun.server, TUN);
    let hooks = &c["hooks"];
    assert!(n(&hooks["xdp"]["tcp"]) > 100, "{c}");
    assert!(n(&hooks["tc"]["tcp"]) > 100, "{c}");
    assert_eq!(
        dropped(&c["rst"]),
        n(&c["rst"]["out_of_window"]["dropped"])
            + n(&c["rst"]["in_window"]["dropped"])
            + n(&c["rst"]["rate_limited"]["dropped"]),
        "{c}"
    );
    assert!(
        tun.carried() > 200,
        "the forwarder carried {}",
        tun.carried()
    );
    assert_eq!(daemon.stop().0, 0, "{}", daemon.log());
}

#[test]
fn a_wireguard_interface_where_the_kernel_has_it() {
    let ns = Netns::new("wg");
    let made = Command::new("ip")
        .args(["-n", &ns.name, "link", "add", "wg0", "type", "wireguard"])
        .output()
        .expect("running ip");
    if !made.status.success() {
        // Written past the test harness's capture: a skipped part must be
        // seen, also when the test passes.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: WireGuard: this kernel cannot create a wireguard device (`ip link add wg0 \
             type wireguard`: {}); the tun test covers devices without a link-layer header",
            String::from_utf8_lossy(&made.stderr).trim()
        );
        return;
    }
    // A WireGuard device without keys or peers carries no traffic, but it
    // is the device type: rstguard must attach to it and parse it as IP.
    ns.ip(&["addr", "add", "10.201.21.1/24", "dev", "wg0"]);
    ns.ip(&["link", "set", "wg0", "up"]);
    let mut daemon = Daemon::start(
        &ns,
        &[
            "attach",
            "wg0",
            "--policy",
            "strict",
            "--interval",
            "0",
            "--no-metrics",
        ],
    );
    let status = ns.cli_json(&["status"]);
    let st = iface(&status, "wg0");
    assert_eq!(st["link"], "ip", "{st}");
    assert_eq!(st["xdp_attached"], true, "{st}");
    assert_eq!(st["egress_attached"], true, "{st}");
    assert_eq!(daemon.stop().0, 0, "{}", daemon.log());
    let _ = writeln!(
        std::io::stderr(),
        "NOTE: WireGuard: attach and status covered; traffic through WireGuard is not (the test \
         carries no WireGuard keys or peers)"
    );
}
