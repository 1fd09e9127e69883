//! Why was this connection reset? (issue 13). Each cause reproduced for
//! real in the routed lab, IPv4 and IPv6, with rstguard attached through
//! its CLI: what the application saw (the errno), and what `rstguard
//! resets` named it, where the RST arrived (the client, ingress) and, where
//! rstguard runs on the host that sent it, where it left (the server,
//! egress). Every record of every flow is accounted for, and the metrics
//! and `status` agree with the records. An attacker's RSTs are named for
//! what they are (blind), never for a cause they imitate.
//!
//! The endpoint causes run with tracking (`--state track`), which watches
//! both directions (the RSTs a host sends are named at its egress); the
//! NAT and the injector run with tracking and with socket mode, where the
//! peer's distance comes from the handshake and the idle time from the
//! socket.
//!
//! The server's segments reach the client through the router: TTL (hop
//! limit) 63. What the router itself sends arrives with 64.

mod endpoints;
mod injector;
mod nat;
mod recording;

use std::{
    collections::BTreeMap,
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use rstguard_lab::{
    http_get,
    injector::{send_from, tcp_packet, Injector},
    kernel_tcp,
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

/// Waits in `log` for the record of a RST sent from `sent.0` to `sent.1`,
/// and checks what it was named: device, direction, verdict, action, cause
/// and flags, as [`said`] gives them.
fn named(
    log: &ResetLog,
    what: &str,
    sent: (SocketAddr, SocketAddr),
    want: (&str, &str, &str, &str, &str, &str),
) -> Reset {
    let r = log.wait(what, |r| r.sent(sent.0, sent.1));
    assert_eq!(said(&r), want, "{what}: {r:#?}");
    r
}

/// A RST the server's stack sent, as both ends name it: `(cause, flags)`,
/// exact and passed, at the client's XDP (`c0`, ingress) and at the
/// server's TC egress (`s0`); the client's record and the server's.
fn named_at_both_ends(
    (at_client, at_server): (&ResetLog, &ResetLog),
    what: &str,
    sent: (SocketAddr, SocketAddr),
    (cause, flags): (&str, &str),
) -> (Reset, Reset) {
    let want = |dev, dir| (dev, dir, "exact", "pass", cause, flags);
    (
        named(at_client, what, sent, want("c0", "ingress")),
        named(at_server, what, sent, want("s0", "egress")),
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
