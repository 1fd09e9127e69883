//! Socket mode through the real CLI, beyond the tests shared with tracking
//! (legit.rs, blind.rs, unforgeable.rs run their endpoint cases in both):
//! a flood of segments that would fill a flow table changes nothing, and
//! `status` and `/metrics` say which state source each interface uses.

use std::{net::SocketAddr, thread, time::Duration};

use etherparse::PacketBuilder;
use rand::Rng;
use rstguard_lab::{
    http_get, n, sockaddr,
    spoof::{packet_flood, rsts_at},
    Daemon, LiveTransfer, Pair, CLIENT4, SERVER4,
};

/// Ethernet frames of ACK segments with data to `dst` from `n` random
/// ports of `src`'s address: each would be a flow of its own to a tracker
/// that picks flows up mid-stream.
fn table_filler(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: SocketAddr,
    n: usize,
) -> Vec<Vec<u8>> {
    let SocketAddr::V4(d) = dst else {
        panic!("IPv4 only")
    };
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| {
            let b = PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv4(src, d.ip().octets(), 64)
                .tcp(rng.gen_range(1024..65535), d.port(), rng.gen(), 1000)
                .ack(rng.gen());
            let mut f = Vec::new();
            b.write(&mut f, &[0u8; 10]).expect("a frame");
            f
        })
        .collect()
}

#[test]
fn a_table_flood_changes_nothing_in_socket_mode() {
    for state in ["socket", "track"] {
        let pair = Pair::new();
        let mut d = Daemon::start(
            &pair.server,
            &[
                "attach",
                "s0",
                "--state",
                state,
                "--policy",
                "enforce",
                "--flows",
                "1024",
                "--interval",
                "0",
                "--no-metrics",
            ],
        );
        let live = LiveTransfer::start(&pair.server, &pair.client, SERVER4, 5000);
        live.assert_flowing();
        let server = sockaddr(SERVER4, 5000);
        let frames = table_filler(
            pair.client.mac("c0"),
            pair.server.mac("s0"),
            [10, 200, 0, 2],
            server,
            4096,
        );
        let sent = packet_flood(&pair.client, "c0", frames, 2.0, 20_000);
        assert!(sent >= 4096, "{state}: only {sent} frames");
        thread::sleep(Duration::from_millis(300));
        let st = pair.server.cli_json(&["stats"]);
        let c = &st["interfaces"][0]["counters"];
        let created = n(&c["flows"]["created"]);
        if state == "socket" {
            assert_eq!(created, 0, "{state}: socket mode tracked something: {st}");
        } else {
            // The contrast: a tracker picks every one of them up.
            assert!(created >= 1000, "{state}: {st}");
        }
        // Blind RSTs at the live connection still fail, and it flows on.
        let client = sockaddr(CLIENT4, live.client_port);
        let mut rng = rand::thread_rng();
        let seqs: Vec<u32> = (0..200).map(|_| rng.gen()).collect();
        rsts_at(&pair.client, client, server, seqs, None);
        live.assert_flowing();
        let st = pair.server.cli_json(&["stats"]);
        let rst = &st["interfaces"][0]["counters"]["rst"];
        assert_eq!(n(&rst["exact"]["passed"]), 0, "{state}: {st}");
        // The server's own abort still reaches the client.
        live.abort_server();
        let outcome = live.finish();
        assert!(outcome.sent.is_err(), "{state}: the abort was lost");
        assert_eq!(d.stop().0, 0);
    }
}

#[test]
fn status_and_metrics_say_which_state_source_each_interface_uses() {
    let pair = Pair::new();
    let mut d = Daemon::start(
        &pair.server,
        &[
            "attach",
            "s0",
            "--state",
            "socket",
            "--interval",
            "0",
            "--metrics",
            "127.0.0.1:9489",
        ],
    );
    let st = pair.server.cli_json(&["status"]);
    let i0 = &st["interfaces"][0];
    assert_eq!(i0["state"], "socket", "{st}");
    assert!(
        i0["state_why"]
            .as_str()
            .unwrap()
            .contains("nothing tracked"),
        "{st}"
    );
    // Socket mode learns nothing at egress: no classifier there.
    assert_eq!(i0["egress"], "none", "{st}");
    let (_, text, _) = pair.server.cli(&["status"]);
    assert!(text.contains("state socket:"), "{text}");
    assert!(
        text.contains("egress none (socket mode needs none)"),
        "{text}"
    );
    // One RST to the server's address with no socket behind it.
    rsts_at(
        &pair.client,
        sockaddr(CLIENT4, 1234),
        sockaddr(SERVER4, 4321),
        vec![1],
        None,
    );
    let (code, body) = http_get(&pair.server, "127.0.0.1:9489", "/metrics");
    assert_eq!(code, 200);
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {body}"))
            .to_string()
    };
    assert!(
        line("rstguard_state_source{device=\"s0\",source=\"socket\"}").ends_with(" 1"),
        "{body}"
    );
    assert!(
        line("rstguard_state_source{device=\"s0\",source=\"track\"}").ends_with(" 0"),
        "{body}"
    );
    assert!(
        line("rstguard_socket_rst_packets_total{device=\"s0\"}").ends_with(" 1"),
        "{body}"
    );
    assert_eq!(d.stop().0, 0);
}

#[test]
fn in_window_rsts_are_dropped_at_strict_and_challenged_at_enforce_in_socket_mode() {
    use std::net::{TcpListener, TcpStream};

    let counters = ["TcpExtTCPChallengeACK", "TcpExtTCPACKSkippedChallenge"];
    for level in ["strict", "enforce"] {
        let pair = Pair::new();
        let mut d = Daemon::start(
            &pair.server,
            &[
                "attach",
                "s0",
                "--state",
                "socket",
                "--policy",
                level,
                "--interval",
                "0",
                "--no-metrics",
            ],
        );
        let server_addr = sockaddr(SERVER4, 6000);
        let listener = pair
            .server
            .run(move || TcpListener::bind(server_addr).expect("listening"));
        let client = pair
            .client
            .run(move || TcpStream::connect(server_addr).expect("connecting"));
        let (server, _) = listener.accept().expect("accepting");
        thread::sleep(Duration::from_millis(50));
        // What the server's socket holds, from the kernel itself.
        let k = rstguard_lab::kernel_tcp::seqs(&server).expect("TCP_REPAIR");
        let before = rstguard_lab::traffic::nstat(&pair.server, &counters);
        let seqs: Vec<u32> = (1..=20u32).map(|i| k.rcv_nxt + 1000 * i).collect();
        let from = client.local_addr().unwrap();
        rsts_at(&pair.client, from, server_addr, seqs, Some(k.write_seq));
        let after = rstguard_lab::traffic::nstat(&pair.server, &counters);
        let moved: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
        let st = pair.server.cli_json(&["stats"]);
        let r = &st["interfaces"][0]["counters"]["rst"]["in_window"];
        if level == "strict" {
            assert_eq!((n(&r["passed"]), n(&r["dropped"])), (0, 20), "{st}");
            assert_eq!(moved, 0, "{level}: the kernel saw RSTs strict dropped");
        } else {
            assert_eq!((n(&r["passed"]), n(&r["dropped"])), (20, 0), "{st}");
            // One challenge ACK or one skipped by the kernel's own
            // per-socket limit, for each.
            assert_eq!(moved, 20, "{level}: {after:?} {before:?}");
        }
        assert_eq!(
            rstguard_lab::kernel_tcp::state(&server).unwrap(),
            rstguard_common::judge::socket::tcp_state::ESTABLISHED,
            "{level}: the connection did not survive"
        );
        drop((client, server, listener));
        assert_eq!(d.stop().0, 0);
    }
}
