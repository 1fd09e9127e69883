//! Why was this connection reset? (issue 13). Each cause reproduced for
//! real in the routed lab, IPv4 and IPv6, with rstguard attached through
//! its CLI: what the application saw (the errno), and what `rstguard
//! resets` named it, where the RST arrived (the client, ingress) and, where
//! rstguard runs on the host that sent it, where it left (the server,
//! egress). Every record of every flow is accounted for, and the metrics
//! and `status` agree with the records. An attacker's RSTs are named for
//! what they are (blind), never for a cause they imitate.
//!
//! The server's segments reach the client through the router: TTL (hop
//! limit) 63. What the router itself sends arrives with 64.

use std::{
    collections::BTreeMap,
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use rstguard_lab::{
    daemon::receiver_window,
    http_get,
    injector::{send_from, tcp_packet, Injector},
    nft::{keep_rsts_in, nat_gateway, reject_port, Table},
    resets::{Reset, ResetLog},
    routed::{Routed, CLIENT, SERVER},
    sockaddr,
    sockets::{
        self, read_until_error, tcp_state, vanish, wait_reset, TCP_CLOSE, TCP_CLOSE_WAIT,
        TCP_ESTABLISHED,
    },
    traffic::serve_on,
    Daemon, Netns, Pair, SERVER4,
};
use socket2::{SockRef, Socket};

/// The server's segments, as they reach the client.
const PEER_TTL: u8 = 63;
/// The router's own packets (a firewall's reject, a NAT's), at the client.
const ROUTER_TTL: u8 = 64;
/// A host's own segments, where they leave it.
const OWN_TTL: u8 = 64;
/// The attacker sends from this TTL: one hop later it arrives with 50.
const OTHER_TTL: u8 = 51;

const TIMEOUT: Duration = Duration::from_secs(5);

fn family(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// The fields a record's judgement consists of: device, direction,
/// verdict, action, cause, flags.
fn said(r: &Reset) -> (&str, &str, &str, &str, &str, &str) {
    (
        &r.device,
        &r.direction,
        &r.verdict,
        &r.action,
        &r.cause,
        &r.flags,
    )
}

/// A client socket bound to the client's address (its port known before
/// it connects).
fn client_socket(v6: bool) -> (Socket, SocketAddr) {
    sockets::bound(CLIENT.ip(v6))
}

fn connect(s: Socket, to: SocketAddr) -> std::io::Result<TcpStream> {
    sockets::connect(s, to, TIMEOUT)
}

/// Connects from the client to `to`; returns the stream and its address.
fn connected(v6: bool, to: SocketAddr) -> (TcpStream, SocketAddr) {
    let (s, local) = client_socket(v6);
    (connect(s, to).expect("connecting"), local)
}

/// Serves one connection on `addr` in `ns` with `f`.
fn serve_one<T: Send + 'static>(
    ns: &Netns,
    addr: SocketAddr,
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    serve_on(ns, addr, move |l: TcpListener| {
        let (s, _) = l.accept().expect("accepting");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        f(s)
    })
}

/// The records a flow must have, in order: (direction, cause) at the
/// client and at the server; then, where a race of the real stacks may add
/// some, any number of each side's tail.
struct Expected {
    what: String,
    client: SocketAddr,
    server: SocketAddr,
    at_client: Vec<(&'static str, &'static str)>,
    at_server: Vec<(&'static str, &'static str)>,
    tail_client: Option<(&'static str, &'static str)>,
    tail_server: Option<(&'static str, &'static str)>,
}

impl Expected {
    fn new(what: String, client: SocketAddr, server: SocketAddr) -> Expected {
        Expected {
            what,
            client,
            server,
            at_client: Vec::new(),
            at_server: Vec::new(),
            tail_client: None,
            tail_server: None,
        }
    }

    fn client(mut self, records: &[(&'static str, &'static str)]) -> Expected {
        self.at_client = records.to_vec();
        self
    }

    fn server(mut self, records: &[(&'static str, &'static str)]) -> Expected {
        self.at_server = records.to_vec();
        self
    }

    /// Any number of `cause` may follow, at the client (arriving) and at
    /// the server (leaving).
    fn tail_both(mut self, cause: &'static str) -> Expected {
        self.tail_client = Some(("ingress", cause));
        self.tail_server = Some(("egress", cause));
        self
    }

    /// Checks the flow's records in `log` against `want`; returns how
    /// many there are.
    fn check(
        &self,
        log: &ResetLog,
        side: &str,
        want: &[(&str, &str)],
        tail: Option<(&str, &str)>,
    ) -> usize {
        let got = log.between(self.client, self.server);
        let causes: Vec<(&str, &str)> = got
            .iter()
            .map(|r| (r.direction.as_str(), r.cause.as_str()))
            .collect();
        let fits = causes.len() >= want.len()
            && causes[..want.len()] == *want
            && causes[want.len()..].iter().all(|c| Some(*c) == tail);
        assert!(
            fits,
            "{}: the {side}'s records: want {want:?} then any {tail:?}, got {got:#?}",
            self.what
        );
        got.len()
    }

    /// Checks the flow's records at both ends; returns how many.
    fn check_both(&self, at_client: &ResetLog, at_server: &ResetLog) -> (usize, usize) {
        (
            self.check(at_client, "client", &self.at_client, self.tail_client),
            self.check(at_server, "server", &self.at_server, self.tail_server),
        )
    }
}

/// `rstguard_rst_causes_total` of `dev`, by (direction, cause), the
/// counts above zero.
fn cause_metrics(ns: &Netns, dev: &str) -> BTreeMap<(String, String), u64> {
    let (status, body) = http_get(ns, "127.0.0.1:9477", "/metrics");
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let mut m = BTreeMap::new();
    for s in &scrape.samples {
        if s.metric != "rstguard_rst_causes_total" || s.labels.get("device") != Some(dev) {
            continue;
        }
        let prometheus_parse::Value::Counter(v) = s.value else {
            panic!("{} is not a counter", s.metric);
        };
        if v > 0.0 {
            let key = (
                s.labels.get("direction").expect("direction").to_string(),
                s.labels.get("cause").expect("cause").to_string(),
            );
            m.insert(key, v as u64);
        }
    }
    m
}

/// `status --json`'s recent_causes, by (direction, cause).
fn recent_causes(ns: &Netns) -> (u64, BTreeMap<(String, String), u64>) {
    let st = ns.cli_json(&["status"]);
    let rc = &st["recent_causes"];
    let mut m = BTreeMap::new();
    for dir in ["ingress", "egress"] {
        for (cause, v) in rc[dir].as_object().expect("a map of causes") {
            m.insert((dir.to_string(), cause.clone()), rstguard_lab::n(v));
        }
    }
    (rstguard_lab::n(&rc["secs"]), m)
}

/// The metrics and `status` tell the same story as the records of the
/// daemon in `ns` (every RST here is recorded: none is sampled away).
fn metrics_and_status_agree(ns: &Netns, dev: &str, log: &ResetLog, what: &str) {
    let records = log.by_cause();
    assert!(!records.is_empty(), "{what}: no records");
    assert_eq!(
        cause_metrics(ns, dev),
        records,
        "{what}: rstguard_rst_causes_total against `resets`"
    );
    // `status` samples the counters every 10 s: wait for the next sample.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (secs, recent) = recent_causes(ns);
        if recent == records {
            assert!(secs > 0, "{what}: a window of {secs} s");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: status' recent_causes {recent:?} never matched the records {records:?}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// Starts `rstguard ARGS` in `ns` (with metrics) and waits until it
/// serves them: only then does it record RSTs for `resets` (the first
/// moments after it says it attached, it judges and counts RSTs without
/// recording them: see `every_rst_judged_right_after_attach_is_recorded`).
fn start_daemon(ns: &Netns, args: &[&str]) -> Daemon {
    assert!(!args.contains(&"--no-metrics"));
    let d = Daemon::start(ns, args);
    let (status, _) = http_get(ns, "127.0.0.1:9477", "/metrics");
    assert_eq!(status, 200, "{}", d.log());
    d
}

/// Sets the live policy of the daemon in `ns`.
fn policy_set(ns: &Netns, kv: &str) {
    let (code, _, err) = ns.cli(&["policy", "set", kv]);
    assert_eq!(code, 0, "policy set {kv}: {err}");
}

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
    let r = at_client.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        ("c0", "ingress", "exact", "pass", "refused", "RST|ACK"),
        "{what}: {r:#?}"
    );
    assert_eq!((r.ttl, r.peer_ttl), (PEER_TTL, None), "{what}: {r:#?}");
    assert!(
        r.evidence.starts_with("it answers the SYN"),
        "{what}: {r:#?}"
    );
    let r = at_server.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        ("s0", "egress", "exact", "pass", "refused", "RST|ACK"),
        "{what}: {r:#?}"
    );
    assert_eq!(r.ttl, OWN_TTL, "{what}: {r:#?}");
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
    let r = at_client.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        (
            "c0",
            "ingress",
            "bad_syn_ack",
            pass_or_drop,
            "blind",
            "RST|ACK"
        ),
        "{what}: {r:#?}"
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
    let r = at_client.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        ("c0", "ingress", "exact", "pass", "peer_closed", "RST"),
        "{what}: {r:#?}"
    );
    assert_eq!((r.ttl, r.peer_ttl), (PEER_TTL, Some(PEER_TTL)), "{what}");
    assert!(
        r.evidence.starts_with("after the sender's FIN"),
        "{what}: {r:#?}"
    );
    let r = at_server.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        ("s0", "egress", "exact", "pass", "peer_closed", "RST"),
        "{what}: {r:#?}"
    );
    flows.push(
        Expected::new(what, client, server)
            .client(&[("ingress", "peer_closed")])
            .server(&[("egress", "peer_closed")]),
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
    for (log, want) in [
        (
            at_client,
            ("c0", "ingress", "exact", "pass", "abort", "RST|ACK"),
        ),
        (
            at_server,
            ("s0", "egress", "exact", "pass", "abort", "RST|ACK"),
        ),
    ] {
        let r = log.wait(&what, |r| r.sent(server, client));
        assert_eq!(said(&r), want, "{what}: {r:#?}");
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
    for (log, want) in [
        (
            at_client,
            ("c0", "ingress", "exact", "pass", "abort", "RST|ACK"),
        ),
        (
            at_server,
            ("s0", "egress", "exact", "pass", "abort", "RST|ACK"),
        ),
    ] {
        let r = log.wait(&what, |r| r.sent(server, client));
        assert_eq!(said(&r), want, "{what}: {r:#?}");
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
    let r = at_client.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        ("c0", "ingress", "exact", "pass", "no_socket", "RST"),
        "{what}: {r:#?}"
    );
    assert_eq!((r.ttl, r.peer_ttl), (PEER_TTL, Some(PEER_TTL)), "{what}");
    assert!(
        r.evidence.contains("the sender has no such connection"),
        "{what}: {r:#?}"
    );
    let r = at_server.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        ("s0", "egress", "exact", "pass", "no_socket", "RST"),
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
    let r = at_client.wait(&what, |r| r.sent(server, client));
    assert_eq!(
        said(&r),
        ("c0", "ingress", "exact", "pass", "middlebox", "RST"),
        "{what}: {r:#?}"
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
        &["attach", "c0", "--policy", "monitor", "--interval", "0"],
    );
    let mut ds = start_daemon(
        &lab.server,
        &["attach", "s0", "--policy", "monitor", "--interval", "0"],
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
    // Through the NAT: 7501 (IPv4), 7502 (IPv6). Past it, idle as long,
    // the server aborts: 7503, 7504.
    let nat = [7501, 7502];
    let _gateway = nat_gateway(&lab.router, "r1", &nat, NAT_TIMEOUT_SECS);
    let mut d = start_daemon(
        &lab.client,
        &[
            "attach",
            "c0",
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
        let server = SERVER.addr(v6, 7501 + i as u16);
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
            addr_tx.send(local).unwrap();
            c.set_read_timeout(Some(IDLE + TIMEOUT)).unwrap();
            let wrote = if natted {
                go_rx.recv_timeout(Duration::from_secs(30)).expect("go");
                (&c).write_all(b"anyone there?")
            } else {
                Ok(())
            };
            (wrote, read_until_error(&c).1)
        });
        let client = addr_rx.recv_timeout(TIMEOUT).expect("the echo");
        conns.push(Conn {
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
    let (c0, s0) = (conns[0].client, conns[0].server);
    let (rcv_nxt, _) = receiver_window(&lab.client, c0);
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
    let r = log.wait("the blind RST while idle", |r| r.sent(s0, c0));
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
            "{} {}",
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
        let idle = r.idle_secs.expect("a tracked flow's idle time");
        assert!(idle >= 4, "{what}: idle {idle} s: {r:#?}");
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
    assert_eq!(log.all().len(), 5, "{:#?}", log.all());
    assert_eq!(d.stop().0, 0, "{}", d.log());
}

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
/// socket, which ended the server's side too.
fn assert_reset_by_injector(log: &ResetLog, t: &Injected, what: &str) {
    assert_eq!(t.client_end, Err(ErrorKind::ConnectionReset), "{what}");
    assert!(
        t.read <= (KEY + 1) * CHUNK,
        "{what}: read {} bytes after the RST",
        t.read
    );
    assert_eq!(t.server_end, Err(ErrorKind::ConnectionReset), "{what}");
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
    log.wait_n(what, n, |r| r.sent(client, server));
    (Expected::new(what.to_string(), client, server), n)
}

#[test]
fn an_injected_rst_is_named_and_drop_injected_keeps_the_connection() {
    let lab = Routed::new();
    let mut d = start_daemon(
        &lab.client,
        &["attach", "c0", "--policy", "enforce", "--interval", "0"],
    );
    let log = ResetLog::follow(&lab.client);
    let mut flows = Vec::new();

    // Without --drop-injected the injector wins: ECONNRESET. The RST
    // passes (it carries the live numbers) as a middlebox's; the server's
    // next segment proves it forged.
    for (v6, port) in [(false, 7601), (true, 7602)] {
        let what = format!("{} enforce, injected", family(v6));
        let t = transfer_past_an_injector(&lab, &log, v6, port);
        assert_reset_by_injector(&log, &t, &what);
        assert_eq!(
            said(&t.rst),
            ("c0", "ingress", "exact", "pass", "middlebox", "RST|ACK"),
            "{what}: {:#?}",
            t.rst
        );
        assert_eq!(t.rst.peer_ttl, Some(PEER_TTL), "{what}");
        assert_proven(&lab, &log, &t, &what);
        flows.push(Expected::new(what, t.client, t.server).client(&[
            ("ingress", "middlebox"),
            ("ingress", "injected"),
            ("egress", "no_socket"),
        ]));
    }
    // An attacker cannot frame a real abort as injected: data forged in
    // the server's name, from the server's own distance, after its real
    // RST, but (blind) outside the window, proves nothing; the client's
    // stack answers each with a RST for no socket.
    for (v6, port) in [(false, 7631), (true, 7632)] {
        let what = format!("{} enforce, forged data after an abort", family(v6));
        let (flow, forged) = abort_then_forged_data(&lab, &log, v6, port, &what);
        flows.push(flow.client(&[
            ("ingress", "abort"),
            ("egress", "no_socket"),
            ("egress", "no_socket"),
            ("egress", "no_socket"),
            ("egress", "no_socket"),
            ("egress", "no_socket"),
        ]));
        assert_eq!(forged, 5);
    }
    let metric = |m: &BTreeMap<(String, String), u64>| {
        m.get(&("ingress".into(), "injected".into())).copied()
    };
    assert_eq!(metric(&cause_metrics(&lab.client, "c0")), Some(2));

    // With --drop-injected (set live) the RST is dropped for its distance
    // and the transfer completes, byte-exact, at enforce; it passes at
    // monitor (ECONNRESET), which drops nothing.
    policy_set(&lab.client, "drop_injected=on");
    for (v6, port, level) in [
        (false, 7611, "enforce"),
        (true, 7612, "enforce"),
        (false, 7613, "monitor"),
    ] {
        policy_set(&lab.client, &format!("level={level}"));
        let what = format!("{} {level} --drop-injected", family(v6));
        let t = transfer_past_an_injector(&lab, &log, v6, port);
        assert_proven(&lab, &log, &t, &what);
        if level == "monitor" {
            assert_reset_by_injector(&log, &t, &what);
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
            flows.push(Expected::new(what, t.client, t.server).client(&[
                ("ingress", "middlebox"),
                ("ingress", "injected"),
                ("egress", "no_socket"),
            ]));
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
    assert_eq!(log.all().len(), total, "{:#?}", log.all());
    assert_eq!(cause_metrics(&lab.client, "c0"), log.by_cause());
    drop(log);
    assert_eq!(d.stop().0, 0, "{}", d.log());

    // The flag, at strict: the same.
    let mut d = start_daemon(
        &lab.client,
        &[
            "attach",
            "c0",
            "--policy",
            "strict",
            "--drop-injected",
            "--interval",
            "0",
        ],
    );
    let log = ResetLog::follow(&lab.client);
    let what = "IPv6 strict --drop-injected";
    let t = transfer_past_an_injector(&lab, &log, true, 7621);
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
    assert_proven(&lab, &log, &t, what);
    assert_eq!(d.stop().0, 0, "{}", d.log());
}

/// `rstguard attach` says it attached once its programs judge RSTs, and
/// every RST a real peer could have sent must then be recorded for
/// `resets` (suspicious ones too, at the default sampling of one in one).
/// FAILS at the time of writing: the programs take a record only from an
/// event budget that the daemon first fills when it starts serving, some
/// 100 to 300 ms after its programs went live (longer on a loaded
/// machine), so the RSTs judged in between are counted
/// (`rstguard_rst_causes_total`) but never recorded, and not counted as
/// lost either (`events_lost` stays 0).
#[test]
fn every_rst_judged_right_after_attach_is_recorded() {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };
    let pair = Pair::new();
    // Connections to a closed port, every 5 ms, from before the daemon
    // starts until it has recorded one.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let hammer = pair.client.spawn(move || {
        let mut n = 0u32;
        while !flag.load(Ordering::Relaxed) && n < 4000 {
            let got = TcpStream::connect_timeout(&sockaddr(SERVER4, 9), TIMEOUT);
            assert_eq!(
                got.map(|_| ()).map_err(|e| e.kind()),
                Err(ErrorKind::ConnectionRefused)
            );
            n += 1;
            thread::sleep(Duration::from_millis(5));
        }
        n
    });
    let mut d = Daemon::start(&pair.client, &["attach", "c0", "--interval", "0"]);
    let (status, _) = http_get(&pair.client, "127.0.0.1:9477", "/metrics");
    assert_eq!(status, 200);
    let log = ResetLog::follow(&pair.client);
    log.wait("a first record", |_| true);
    stop.store(true, Ordering::Relaxed);
    let sent = hammer.join().unwrap();
    let counted: u64 = cause_metrics(&pair.client, "c0").values().sum();
    assert!(
        counted > 0 && counted <= u64::from(sent),
        "{counted} of {sent}"
    );
    if let Err(recorded) = log.try_wait_n(counted as usize, |_| true) {
        // What was counted and not recorded, by (direction, cause).
        let mut missing = cause_metrics(&pair.client, "c0");
        for (k, v) in log.by_cause() {
            *missing.entry(k).or_default() -= v;
        }
        missing.retain(|_, v| *v > 0);
        let stats = pair.client.cli_json(&["stats"]);
        panic!(
            "{} RSTs judged and counted in rstguard_rst_causes_total, {} recorded for \
             `resets`; not recorded: {missing:?}; events_lost {}; the first records: {:#?}",
            counted,
            recorded.len(),
            stats["interfaces"][0]["counters"]["events_lost"],
            &recorded[..recorded.len().min(3)]
        );
    }
    assert_eq!(d.stop().0, 0, "{}", d.log());
}

/// A blind RST is blind, also after a real RST: after the server's own
/// abort (exact, from the server's distance), an attacker's RST from
/// another distance with a sequence number a quarter of the sequence
/// space away (out of any window; no injector copying live numbers sends
/// one) must be named blind. FAILS at the time of writing: it is named
/// `injected` ("an injector's burst"), because the burst rule only asks
/// that some exact RST from the same side came first, not that it came
/// from another distance itself, nor that the second one is near the
/// window. A blind attacker can so raise `rstguard_rst_causes_total
/// {cause="injected"}` on any flow a real RST closed in the last seconds.
#[test]
fn a_blind_rst_after_the_peers_own_abort_is_blind() {
    let lab = Routed::new();
    let mut d = start_daemon(
        &lab.client,
        &["attach", "c0", "--policy", "enforce", "--interval", "0"],
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
