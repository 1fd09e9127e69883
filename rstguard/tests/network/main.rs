//! Layer 3: network tests. Namespaces joined by veth, real sockets, the
//! real `rstguard` binary attached through its CLI, spoofed RSTs from a raw
//! socket. Needs root; everything created is removed, also on failure.

mod auto;
mod blind;
mod causes;
mod check;
mod daemon;
mod differential;
mod evasion;
mod legacy;
mod legit;
mod placement;
mod socket_mode;
mod table;
mod unforgeable;

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, TcAttachType};
use rstguard_lab::{
    daemon::iface, http_get, n, rstguard_bin, sockaddr, spoof::random_rsts, traffic::drain, Daemon,
    LiveTransfer, Netns, Pair, CLIENT4, SERVER4,
};
use socket2::SockRef;

#[test]
fn attach_counts_traffic_and_rsts_then_detaches_on_sigterm() {
    let pair = Pair::new();
    let mut daemon = Daemon::start(&pair.server, &["attach", "s0", "--interval", "1", "--json"]);

    let server = pair.server.spawn(|| {
        let l = TcpListener::bind(sockaddr(SERVER4, 5000)).unwrap();
        // 1: read to EOF, answer.
        let (mut s, _) = l.accept().unwrap();
        let (got, err) = drain(&mut s);
        assert_eq!(err, None);
        s.write_all(b"ok").unwrap();
        drop(s);
        // 2: the client aborts (SO_LINGER 0): we see a reset.
        let (s, _) = l.accept().unwrap();
        let (_, err) = drain(&s);
        (got, err)
    });

    let sent = 200_000u64;
    pair.client.run(move || {
        let mut c = connect_retry(sockaddr(SERVER4, 5000));
        c.write_all(&vec![7u8; sent as usize]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"ok");
        // No listener: the server's stack answers with a RST (out via TC).
        let refused = TcpStream::connect_timeout(
            &sockaddr(SERVER4, 5001),
            rstguard_lab::patience(Duration::from_secs(5)),
        );
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::ConnectionRefused);
        // Abort with SO_LINGER 0: our RST arrives at the server's XDP.
        let c = connect_retry(sockaddr(SERVER4, 5000));
        c.write_all_ref(b"bye");
        SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
        thread::sleep(Duration::from_millis(100));
        drop(c);
    });
    let (got, err) = server.join().unwrap();
    assert_eq!(got, sent, "the transfer completed byte-exact");
    assert_eq!(
        err,
        Some(ErrorKind::ConnectionReset),
        "the abort reset the server's socket"
    );

    let (code, stdout) = daemon.stop();
    assert_eq!(code, 0, "rstguard exits 0 on SIGTERM: {}", daemon.log());
    let last: serde_json::Value =
        serde_json::from_str(stdout.last().expect("a final report")).unwrap();
    let s0 = iface(&last, "s0");
    let hooks = &s0["hooks"];
    // Ingress carried the client's 200 kB; egress the server's ACKs.
    assert!(n(&hooks["xdp"]["tcp"]) > 10, "{s0}");
    assert!(n(&hooks["tc"]["tcp"]) > 10, "{s0}");
    assert!(n(&hooks["xdp"]["packets"]) >= n(&hooks["xdp"]["tcp"]));
    // Direction: the refusal left through TC (never judged), the abort
    // arrived at XDP and was judged exact.
    assert!(
        n(&hooks["tc"]["rst"]) >= 1,
        "refusal RST not seen at egress: {s0}"
    );
    assert_eq!(n(&hooks["xdp"]["rst"]), 1, "{s0}");
    assert_eq!(n(&s0["rst"]["exact"]["passed"]), 1, "{s0}");
    // The default, --state auto: this host's own flows are judged by their
    // sockets, not tracked.
    assert_eq!(n(&s0["flows"]["created"]), 0, "{s0}");
    assert_eq!(n(&hooks["xdp"]["socket_rst"]), 1, "{s0}");
    assert_eq!(s0["xdp_mode"], "skb", "auto picks skb on veth");
    assert!(
        daemon.log().contains("virtual device (veth)"),
        "{}",
        daemon.log()
    );

    // Nothing left attached.
    let link = pair.server.ip(&["-d", "link", "show", "s0"]);
    assert!(!link.contains("xdp"), "XDP still attached: {link}");
    if rstguard::kernel::has_tcx() {
        let tcx = pair
            .server
            .run(|| SchedClassifier::query_tcx("s0", TcAttachType::Egress).map(|(_, p)| p.len()));
        assert_eq!(tcx.unwrap(), 0, "a TCX program is still attached");
    }
    let filters = pair
        .server
        .exec(&["tc", "filter", "show", "dev", "s0", "egress"]);
    assert!(
        filters.trim().is_empty(),
        "a clsact filter is still attached: {filters}"
    );
}

#[test]
fn enforce_survives_1000_blind_rsts_and_accounts_for_each() {
    const SPOOFED: u64 = 1000;
    let pair = Pair::new();
    let mut daemon = Daemon::start(
        &pair.server,
        &[
            "attach",
            "s0",
            "--policy",
            "enforce",
            "--interval",
            "1",
            "--json",
        ],
    );
    let live = LiveTransfer::start(&pair.server, &pair.client, SERVER4, 5000);
    live.assert_flowing();

    // 1,000 RSTs at random sequence numbers, spoofed as the client.
    let (client, server) = (sockaddr(CLIENT4, live.client_port), sockaddr(SERVER4, 5000));
    random_rsts(&pair.client, client, server, SPOOFED as u32);
    live.assert_flowing();
    let outcome = live.finish();
    assert_eq!(outcome.server_error, None, "the server's socket was reset");
    assert_eq!(outcome.sent, Ok(outcome.received), "byte-exact transfer");

    let (code, stdout) = daemon.stop();
    assert_eq!(code, 0, "{}", daemon.log());
    let last: serde_json::Value = serde_json::from_str(stdout.last().unwrap()).unwrap();
    let s0 = iface(&last, "s0");
    let rst = &s0["rst"];
    let total: u64 = rst
        .as_object()
        .unwrap()
        .values()
        .map(|v| n(&v["passed"]) + n(&v["dropped"]))
        .sum();
    assert_eq!(n(&s0["hooks"]["xdp"]["rst"]), SPOOFED, "{s0}");
    assert_eq!(total, SPOOFED, "every spoofed RST has a verdict: {rst}");
    // Blind guesses: out of the window, almost all; the few that land in
    // it pass within the per-flow budget (the kernel challenges them) or
    // are rate-limited; none is exact.
    let oow = n(&rst["out_of_window"]["dropped"]);
    assert!(oow >= SPOOFED - 20, "{rst}");
    assert_eq!(n(&rst["out_of_window"]["passed"]), 0, "{rst}");
    assert_eq!(
        n(&rst["exact"]["passed"]) + n(&rst["no_flow"]["passed"]),
        0,
        "{rst}"
    );
    assert_eq!(
        oow + n(&rst["in_window"]["passed"]) + n(&rst["rate_limited"]["dropped"]),
        SPOOFED,
        "{rst}"
    );
}

fn connect_retry(addr: std::net::SocketAddr) -> TcpStream {
    let deadline = Instant::now() + rstguard_lab::patience(Duration::from_secs(10));
    loop {
        match TcpStream::connect_timeout(&addr, rstguard_lab::patience(Duration::from_secs(2))) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("connecting to {addr}: {e}"),
        }
    }
}

trait WriteAllRef {
    fn write_all_ref(&self, buf: &[u8]);
}

impl WriteAllRef for TcpStream {
    fn write_all_ref(&self, buf: &[u8]) {
        let mut s = self;
        s.write_all(buf).unwrap();
    }
}

/// Runs `rstguard ARGS` in `ns` to completion; returns (exit code, stderr).
fn rstguard_in(ns: &Netns, pre: &[&str], args: &[&str]) -> (i32, String) {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &ns.name])
        .args(pre)
        .arg(rstguard_bin())
        .args(args);
    let out = cmd.output().expect("running rstguard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last line of stderr: the one-line error.
fn error_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let pair = Pair::new();
    // No such interface.
    let (code, err) = rstguard_in(&pair.server, &[], &["attach", "nosuch0"]);
    assert_eq!(code, 1);
    assert_eq!(
        error_line(&err),
        "rstguard: error: no interface named 'nosuch0' (list them with `ip link`)"
    );
    // Missing privileges: an unprivileged user.
    let (code, err) = rstguard_in(
        &pair.server,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        &["attach", "s0"],
    );
    assert_eq!(code, 1, "{err}");
    let line = error_line(&err);
    assert!(line.contains("CAP_BPF") && line.contains("sudo"), "{line}");
    // Bad flag values are refused by the parser, with the choices.
    let (code, err) = rstguard_in(&pair.server, &[], &["attach", "s0", "--policy", "lax"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("[possible values: monitor, enforce, strict, auto]"),
        "{err}"
    );
    // A pin directory that is not on a BPF filesystem.
    let (code, err) = rstguard_in(
        &pair.server,
        &[],
        &["--pin-dir", "/tmp/rstguard-not-bpffs", "attach", "s0"],
    );
    assert_eq!(code, 1);
    let line = error_line(&err);
    assert!(
        line.contains("not on a BPF filesystem") && line.contains("mount -t bpf"),
        "{line}"
    );
    let link = pair.server.ip(&["-d", "link", "show", "s0"]);
    assert!(!link.contains("xdp"), "{link}");
}

#[test]
fn an_interface_that_vanishes_is_reported_and_the_rest_carries_on() {
    let pair = Pair::new();
    let s = &pair.server;
    s.ip(&["link", "add", "s1", "type", "veth", "peer", "name", "s1p"]);
    s.ip(&["link", "set", "s1", "up"]);
    s.ip(&["link", "set", "s1p", "up"]);
    let mut daemon = Daemon::start(s, &["attach", "s0", "s1", "--interval", "0"]);
    s.ip(&["link", "del", "s1"]);
    let line = daemon.wait_log("interface vanished");
    assert!(line.contains("s1"), "{line}");
    let (_, metrics) = http_get(s, "127.0.0.1:9477", "/metrics");
    assert!(
        metrics.contains("rstguard_attached{device=\"s0\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("rstguard_attached{device=\"s1\""),
        "{metrics}"
    );
    assert!(pair
        .server
        .ip(&["-d", "link", "show", "s0"])
        .contains("xdp"));
    assert_eq!(daemon.stop().0, 0, "{}", daemon.log());
    assert!(!pair
        .server
        .ip(&["-d", "link", "show", "s0"])
        .contains("xdp"));
}

#[test]
fn a_busy_xdp_hook_is_refused_and_nothing_stays_half_attached() {
    let pair = Pair::new();
    pair.server.ip(&[
        "link",
        "add",
        "s1",
        "type",
        "veth",
        "peer",
        "name",
        "c1",
        "netns",
        &pair.client.name,
    ]);
    pair.server.ip(&["link", "set", "s1", "up"]);
    pair.client.ip(&["link", "set", "c1", "up"]);
    // Someone else's XDP program on s1 (here: another rstguard).
    let mut first = Daemon::start(&pair.server, &["attach", "s1", "--interval", "0"]);
    // A second rstguard (its own pin directory and no metrics, so that it
    // gets as far as attaching) asked for s0 and s1: s0 attaches, s1 is busy.
    let other = format!("{}/other", pair.server.bpffs.display());
    let (code, err) = rstguard_in(
        &pair.server,
        &[],
        &[
            "--pin-dir",
            &other,
            "attach",
            "s0",
            "s1",
            "--interval",
            "0",
            "--no-metrics",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("s1 already has an XDP program attached")
            && line.contains("will not replace it"),
        "{line}"
    );
    // s0 was undone; s1 still has the first daemon's program.
    let s0 = pair.server.ip(&["-d", "link", "show", "s0"]);
    assert!(!s0.contains("xdp"), "s0 left half-attached: {s0}");
    if rstguard::kernel::has_tcx() {
        let tcx = pair
            .server
            .run(|| SchedClassifier::query_tcx("s0", TcAttachType::Egress).map(|(_, p)| p.len()));
        assert_eq!(tcx.unwrap(), 0, "s0's classifier left attached");
    }
    let filters = pair
        .server
        .exec(&["tc", "filter", "show", "dev", "s0", "egress"]);
    assert!(
        filters.trim().is_empty(),
        "s0's clsact filter left attached: {filters}"
    );
    let s1 = pair.server.ip(&["-d", "link", "show", "s1"]);
    assert!(s1.contains("xdp"), "the first program was disturbed: {s1}");
    assert_eq!(first.stop().0, 0);
}

#[test]
fn the_lab_leaves_nothing_behind() {
    let (name, bpffs) = {
        let pair = Pair::new();
        let mut d = Daemon::start(
            &pair.server,
            &["attach", "s0", "--interval", "0", "--no-metrics"],
        );
        assert_eq!(d.stop().0, 0);
        (pair.server.name.clone(), pair.server.bpffs.clone())
    };
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&name),
        "namespace {name} left behind"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(bpffs.to_str().unwrap()),
        "bpffs mount left behind at {}",
        bpffs.display()
    );
    assert!(!bpffs.exists(), "{} left behind", bpffs.display());
}
