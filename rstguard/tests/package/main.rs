//! The packages, installed and run as an operator would: the .deb into a
//! throwaway root, its unit's command lines run with the unit's
//! capabilities and paths; the OCI image run as the Kubernetes DaemonSet
//! runs it. Each runs against a veth in a namespace of its own. Root;
//! `cargo xtask package --test` builds the packages and runs these.

mod deb;
mod image;

use std::path::Path;

use aya::programs::{SchedClassifier, TcAttachType};
use nix::sys::signal::Signal;
use rstguard_lab::{http_get, require_root, Daemon, LiveTransfer, Netns, CLIENT4, SERVER4};

/// A package built by `cargo xtask package`, named by its environment
/// variable.
fn artifact(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run these tests through `cargo xtask package --test`")
    })
}

/// A node: a namespace whose veth is named `eth0`, as the sample config
/// and the ConfigMap name the interface, and a peer namespace. This `eth0`
/// lives in the test's namespace only; the machine's own is never touched.
pub struct Node {
    pub ns: Netns,
    pub peer: Netns,
}

impl Node {
    #[expect(
        clippy::new_without_default,
        reason = "creates network namespaces: nothing a default value should do"
    )]
    pub fn new() -> Node {
        require_root();
        let ns = Netns::new("node");
        let peer = Netns::new("peer");
        ns.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "p0", "netns", &peer.name,
        ]);
        for (n, dev, addr) in [(&ns, "eth0", SERVER4), (&peer, "p0", CLIENT4)] {
            n.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev]);
            n.ip(&["link", "set", dev, "up"]);
        }
        let link = ns.ip(&["-d", "link", "show", "eth0"]);
        assert!(link.contains("veth"), "not the test's veth: {link}");
        Node { ns, peer }
    }

    fn xdp_attached(&self) -> bool {
        self.ns
            .ip(&["-d", "link", "show", "eth0"])
            .contains("prog/xdp")
    }

    fn tcx_programs(&self) -> usize {
        self.ns
            .run(|| SchedClassifier::query_tcx("eth0", TcAttachType::Egress).map(|(_, p)| p.len()))
            .expect("querying TCX")
    }
}

/// A value from `/metrics`: the sample of `metric` whose labels include
/// `labels`.
fn metric(ns: &Netns, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, body) = http_get(ns, "127.0.0.1:9477", "/metrics");
    assert_eq!(status, 200, "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no {metric}{labels:?} in {body}"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

/// What every packaged form must do, once started on `node` with `config`
/// as its config file (at monitor): it attached to eth0 and filters traffic
/// there; an edit to the file and SIGHUP change the policy live; SIGTERM
/// detaches everything and exits 0.
fn attaches_reloads_and_detaches(node: &Node, daemon: &mut Daemon, config: &Path) {
    assert!(node.xdp_attached(), "no XDP on eth0: {}", daemon.log());
    assert_eq!(node.tcx_programs(), 1, "no egress classifier on eth0");
    let xdp = [("device", "eth0"), ("hook", "xdp"), ("mode", "skb")];
    assert_eq!(metric(&node.ns, "rstguard_attached", &xdp), 1.0);

    let live = LiveTransfer::start(&node.ns, &node.peer, SERVER4, 5000);
    live.assert_flowing();
    let outcome = live.finish();
    assert_eq!(outcome.sent, Ok(outcome.received), "byte-exact transfer");
    let seen = metric(
        &node.ns,
        "rstguard_tcp_packets_total",
        &[("device", "eth0"), ("hook", "xdp")],
    );
    assert!(seen > 10.0, "XDP saw {seen} TCP segments");

    let level = |ns: &Netns| metric(ns, "rstguard_policy_level", &[("device", "eth0")]);
    assert_eq!(level(&node.ns), 0.0, "monitor");
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains("\npolicy = \"monitor\"\n"), "{text}");
    // In place, as an editor saving the file would.
    std::fs::write(
        config,
        text.replace("\npolicy = \"monitor\"\n", "\npolicy = \"enforce\"\n"),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon.wait_log("config reloaded");
    assert_eq!(level(&node.ns), 1.0, "enforce after SIGHUP");
    assert_eq!(
        metric(&node.ns, "rstguard_config_last_reload_successful", &[]),
        1.0
    );

    let (code, _) = daemon.stop();
    assert_eq!(code, 0, "exit 0 on SIGTERM: {}", daemon.log());
    assert!(!node.xdp_attached(), "XDP left on eth0");
    assert_eq!(node.tcx_programs(), 0, "egress classifier left on eth0");
}
