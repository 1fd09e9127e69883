//! The daemon an operator lives with: every subcommand against a running
//! daemon, live policy changes, metrics, reload, crash and cleanup.

use std::{fs, time::Duration};

use nix::sys::signal::Signal;
use serde_json::Value;

use rstguard_lab::{
    http_get, n, rstguard_bin, sockaddr as v4,
    spoof::{random_rsts, rsts_at},
    Daemon, LiveTransfer, Netns, Pair, CLIENT4, SERVER4,
};

fn rst_count(stats: &Value, dev: &str, verdict: &str, action: &str) -> u64 {
    let i = stats["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["device"] == dev)
        .unwrap_or_else(|| panic!("no {dev} in {stats}"));
    n(&i["counters"]["rst"][verdict][action])
}

#[test]
fn second_terminal_commands_work_against_a_running_daemon() {
    let pair = Pair::new();
    let s = &pair.server;
    let mut daemon = Daemon::start(
        s,
        &[
            "attach",
            "s0",
            "--state",
            "track",
            "--interval",
            "0",
            "--event-sample",
            "1",
            "--log-events-per-sec",
            "3",
        ],
    );
    let live = LiveTransfer::start(s, &pair.client, SERVER4, 5000);
    live.assert_flowing();
    let cport = live.client_port;

    // status
    let st = s.cli_json(&["status"]);
    assert_eq!(st["running"], true, "{st}");
    assert_eq!(st["pid"], daemon.pid());
    let i0 = &st["interfaces"][0];
    assert_eq!(i0["device"], "s0");
    assert_eq!(
        (i0["xdp_attached"].clone(), i0["egress_attached"].clone()),
        (Value::Bool(true), Value::Bool(true)),
        "{st}"
    );
    assert_eq!(i0["xdp_mode"], "skb", "auto picks skb on veth");
    assert_eq!(i0["egress"], egress_hook());
    assert_eq!(st["policy"]["level"], "monitor");
    assert_eq!(n(&st["flow_table"]["capacity"]), 1 << 20);

    // flows
    let flows = s.cli_json(&["flows"]);
    let ours = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            let ends = [f["a"].as_str().unwrap(), f["b"].as_str().unwrap()];
            ends.contains(&format!("{SERVER4}:5000").as_str())
                && ends.contains(&format!("{CLIENT4}:{cport}").as_str())
        })
        .unwrap_or_else(|| panic!("the live flow is not listed: {flows}"));
    assert_eq!(ours["state"], "established", "{ours}");

    // stats match what was sent; policy set changes the very next verdicts.
    // The RSTs aim half the sequence space away from what the server
    // acknowledged: out of any window (random ones may land in it).
    let (client, server) = (v4(CLIENT4, cport), v4(SERVER4, 5000));
    let server_half = if ours["a"] == format!("{SERVER4}:5000").as_str() {
        &ours["a_sent"]
    } else {
        &ours["b_sent"]
    };
    let far = (n(&server_half["ack"]) as u32).wrapping_add(1 << 31);
    let far_rsts = || {
        (0..50u32)
            .map(|k| far.wrapping_add(k * 1000))
            .collect::<Vec<_>>()
    };
    rsts_at(&pair.client, client, server, far_rsts(), None);
    let stats = s.cli_json(&["stats"]);
    assert_eq!(
        rst_count(&stats, "s0", "out_of_window", "passed"),
        50,
        "monitor counts and passes"
    );
    let (code, out, err) = s.cli(&["policy", "set", "level=enforce"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("level=enforce"), "{out}");
    rsts_at(&pair.client, client, server, far_rsts(), None);
    let stats = s.cli_json(&["stats"]);
    assert_eq!(
        rst_count(&stats, "s0", "out_of_window", "dropped"),
        50,
        "the next 50 are dropped"
    );
    assert_eq!(rst_count(&stats, "s0", "out_of_window", "passed"), 50);

    assert_eq!(s.cli(&["policy", "set", "no_flow=drop"]).0, 0);
    let stranger = (v4(CLIENT4, 1), v4(SERVER4, 5999));
    random_rsts(&pair.client, stranger.0, stranger.1, 5);
    assert_eq!(
        rst_count(&s.cli_json(&["stats"]), "s0", "no_flow", "dropped"),
        5
    );
    let policy = s.cli_json(&["policy", "show"]);
    assert_eq!(policy["default"]["level"], "enforce");
    assert_eq!(policy["default"]["no_flow"], "drop");
    assert_eq!(policy["interfaces"]["s0"]["level"], "enforce", "{policy}");
    let (code, _, err) = s.cli(&["policy", "set", "level=lax"]);
    assert_eq!(code, 1);
    assert!(err.contains("monitor, enforce, strict"), "{err}");

    // trust
    assert_eq!(s.cli(&["trust", "add", "10.200.0.0/24"]).0, 0);
    assert_eq!(
        s.cli_json(&["trust", "list"]),
        serde_json::json!(["10.200.0.0/24"])
    );
    random_rsts(&pair.client, client, server, 5);
    assert_eq!(
        rst_count(&s.cli_json(&["stats"]), "s0", "trusted", "passed"),
        5
    );
    assert_eq!(s.cli(&["trust", "del", "10.200.0.0/24"]).0, 0);
    assert_eq!(s.cli_json(&["trust", "list"]), serde_json::json!([]));
    let (code, _, err) = s.cli(&["trust", "del", "10.200.0.0/24"]);
    assert_eq!(code, 1, "{err}");

    // rates
    let watch = s.cli_json(&["stats", "--watch", "1", "--count", "1"]);
    let w0 = &watch["interfaces"][0];
    assert!(
        w0["per_second"]["hooks"]["xdp"]["packets"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{w0}"
    );
    assert_eq!(w0["interval_secs"], 1);

    // the most attacked flow and port (every suspicious RST was an event)
    std::thread::sleep(Duration::from_millis(1200));
    let st = s.cli_json(&["status"]);
    assert_eq!(st["top_ports"][0]["port"], 5000, "{st}");
    assert_eq!(n(&st["top_flows"][0]["suspicious_rsts"]), 100, "{st}");
    let (_, text, _) = s.cli(&["status"]);
    assert!(
        text.contains("most attacked flows") && text.contains("running"),
        "{text}"
    );
    // Events are logged, at most 3 a second, the rest summarised.
    let line = daemon.wait_log("suspicious RST");
    assert!(
        line.contains("verdict=out_of_window")
            && line.contains(&format!("dst={SERVER4}:5000"))
            && line.contains(" expected=")
            && line.contains(" window="),
        "{line}"
    );
    daemon.wait_log("events left out of the log");

    // the live flow survived all of it
    live.assert_flowing();
    let outcome = live.finish();
    assert_eq!(outcome.server_error, None);
    assert_eq!(outcome.sent, Ok(outcome.received));

    // detach: one interface of a running daemon is refused; --all stops it.
    let (code, _, err) = s.cli(&["detach", "s0"]);
    assert_eq!(code, 1);
    assert!(err.contains("is running"), "{err}");
    let (code, out, err) = s.cli(&["detach", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stopped"), "{out}");
    let (code, _) = daemon.stop_exited();
    assert_eq!(code, 0);
    assert!(!s.ip(&["-d", "link", "show", "s0"]).contains("xdp"));
    let (code, _, err) = s.cli(&["status"]);
    assert_eq!(code, 1);
    assert!(err.contains("no rstguard state"), "{err}");
}

#[test]
fn metrics_scrape_parses_and_matches_the_traffic() {
    let pair = Pair::new();
    let s = &pair.server;
    let _daemon = Daemon::start(
        s,
        &[
            "attach",
            "s0",
            // The flow table's metrics: tracking (socket mode's are in
            // socket_mode.rs).
            "--state",
            "track",
            "--policy",
            "enforce",
            "--interval",
            "0",
            "--mode",
            "native",
            "--flows",
            "5000",
        ],
    );
    // Every series exists from the first scrape, before any traffic.
    let first = scrape(s);
    assert_eq!(
        value(
            &first,
            "rstguard_rst_packets_total",
            &[("device", "s0"), ("verdict", "exact"), ("action", "passed")]
        ),
        0.0
    );

    let live = LiveTransfer::start(s, &pair.client, SERVER4, 5000);
    live.assert_flowing();
    random_rsts(
        &pair.client,
        v4(CLIENT4, live.client_port),
        v4(SERVER4, 5000),
        20,
    );
    let scrape = scrape(s);

    use prometheus_parse::Value as V;
    let mut families = std::collections::BTreeMap::new();
    for sample in &scrape.samples {
        families
            .entry(sample.metric.clone())
            .or_insert_with(Vec::new)
            .push(sample);
        // No label carries an address or a port.
        for (k, v) in sample.labels.iter() {
            assert!(
                !(v.contains(':') || (v.split('.').count() == 4 && k != "version")),
                "{}: label {k}={v}",
                sample.metric
            );
        }
        if sample.metric.ends_with("_total") {
            assert!(
                matches!(sample.value, V::Counter(_)),
                "{} is not a counter",
                sample.metric
            );
        } else {
            assert!(
                matches!(sample.value, V::Gauge(_)),
                "{} is not a gauge",
                sample.metric
            );
        }
    }
    // Every verdict x action exists.
    assert_eq!(
        families["rstguard_rst_packets_total"].len(),
        rstguard_common::Verdict::COUNT * 2
    );
    let dropped = value(
        &scrape,
        "rstguard_rst_packets_total",
        &[
            ("device", "s0"),
            ("verdict", "out_of_window"),
            ("action", "dropped"),
        ],
    );
    let in_window = value(
        &scrape,
        "rstguard_rst_packets_total",
        &[
            ("device", "s0"),
            ("verdict", "in_window"),
            ("action", "passed"),
        ],
    );
    assert_eq!(dropped + in_window, 20.0);
    assert!(
        value(
            &scrape,
            "rstguard_packets_total",
            &[("device", "s0"), ("hook", "xdp")]
        ) > 20.0
    );
    assert!(
        value(
            &scrape,
            "rstguard_tcp_packets_total",
            &[("device", "s0"), ("hook", "tc")]
        ) > 0.0
    );
    assert_eq!(
        value(&scrape, "rstguard_flows_created_total", &[("device", "s0")]),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "rstguard_flow_table_capacity",
            &[("table", "assured")]
        ),
        5000.0
    );
    assert_eq!(
        value(
            &scrape,
            "rstguard_attached",
            &[("device", "s0"), ("hook", "xdp"), ("mode", "native")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "rstguard_attached",
            &[("device", "s0"), ("hook", "tc"), ("mode", egress_hook())]
        ),
        1.0
    );
    assert_eq!(
        value(&scrape, "rstguard_policy_level", &[("device", "s0")]),
        1.0
    );
    assert_eq!(
        value(&scrape, "rstguard_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "rstguard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    for family in rstguard::daemon::metrics::NAMES {
        assert!(
            families.contains_key(*family),
            "{family} missing from the scrape"
        );
    }
    assert_eq!(
        families.len(),
        rstguard::daemon::metrics::NAMES.len(),
        "unlisted families"
    );
    assert_eq!(http_get(s, "127.0.0.1:9477", "/nope").0, 404);
    let outcome = live.finish();
    assert_eq!(outcome.server_error, None);
}

fn scrape(ns: &Netns) -> prometheus_parse::Scrape {
    let (status, body) = http_get(ns, "127.0.0.1:9477", "/metrics");
    assert_eq!(status, 200);
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text")
}

/// How the egress classifier attaches on this kernel.
fn egress_hook() -> &'static str {
    if rstguard::kernel::has_tcx() {
        "tcx"
    } else {
        "clsact"
    }
}

fn value(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| {
            x.metric == metric
                && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
                && x.labels.len() == labels.len()
        })
        .unwrap_or_else(|| panic!("no {metric}{labels:?}"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{metric} is not a number"),
    }
}

#[test]
fn sighup_applies_a_good_config_and_keeps_the_old_policy_on_a_bad_one() {
    let pair = Pair::new();
    let s = &pair.server;
    let path = pair.server.bpffs.with_extension("toml");
    fs::write(
        &path,
        "interfaces = [\"s0\"]\npolicy = \"monitor\"\ninterval = 0\nmetrics = \"off\"\n",
    )
    .unwrap();
    let config = path.display().to_string();
    let daemon = Daemon::start(s, &["attach", "--config", &config]);
    assert_eq!(
        s.cli_json(&["policy", "show"])["default"]["level"],
        "monitor"
    );
    assert_eq!(s.cli(&["check-config", &config]).0, 0);

    fs::write(&path, "interfaces = [\"s0\"]\npolicy = \"strict\"\ntime_wait = \"drop\"\ntrust = [\"10.9.0.0/16\"]\ninterval = 0\nmetrics = \"off\"\n").unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon.wait_log("config reloaded");
    let p = s.cli_json(&["policy", "show"]);
    assert_eq!(p["default"]["level"], "strict");
    assert_eq!(p["default"]["time_wait"], "drop");
    assert_eq!(p["interfaces"]["s0"]["level"], "strict");
    assert_eq!(
        s.cli_json(&["trust", "list"]),
        serde_json::json!(["10.9.0.0/16"])
    );
    assert_eq!(s.cli_json(&["status"])["config_ok"], true);

    fs::write(
        &path,
        "interfaces = [\"s0\"]\npolicy = \"monitor\"\nflows = \"lots\"\n",
    )
    .unwrap();
    let (code, _, err) = s.cli(&["check-config", &config]);
    assert_eq!(code, 1);
    assert!(err.contains(":3:9:"), "the line and column: {err}");
    daemon.signal(Signal::SIGHUP);
    let line = daemon.wait_log("config rejected");
    assert!(line.contains(":3:9:"), "{line}");
    let p = s.cli_json(&["policy", "show"]);
    assert_eq!(
        p["default"]["level"], "strict",
        "the old policy stays in force"
    );
    let st = s.cli_json(&["status"]);
    assert_eq!(st["config_ok"], false);
    let _ = fs::remove_file(&path);
}

#[test]
fn kill_9_fails_open_and_detach_all_cleans_up() {
    let pair = Pair::new();
    let s = &pair.server;
    let mut daemon = Daemon::start(
        s,
        &[
            "attach",
            "s0",
            "--policy",
            "strict",
            "--interval",
            "0",
            "--no-metrics",
        ],
    );
    assert!(s.ip(&["-d", "link", "show", "s0"]).contains("xdp"));
    daemon.crash();
    // The kernel closed the links with the process: nothing filters now.
    assert!(
        !s.ip(&["-d", "link", "show", "s0"]).contains("xdp"),
        "XDP outlived the daemon"
    );
    if rstguard::kernel::has_tcx() {
        let tcx = s.run(|| {
            aya::programs::SchedClassifier::query_tcx("s0", aya::programs::TcAttachType::Egress)
                .map(|(_, p)| p.len())
        });
        assert_eq!(tcx.unwrap(), 0);
    }
    // The pinned maps stay: the last counters can still be read.
    let st = s.cli_json(&["status"]);
    assert_eq!(st["running"], false);
    assert_eq!(st["interfaces"][0]["xdp_attached"], false);
    assert_eq!(s.cli(&["stats"]).0, 0);
    let (_, text, _) = s.cli(&["status"]);
    assert!(text.contains("NOT running"), "{text}");
    // detach --all removes what is left.
    let (code, out, err) = s.cli(&["detach", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed"), "{out}");
    assert!(!std::path::Path::new(&s.pin_dir()).exists());
    assert_eq!(s.cli(&["status"]).0, 1);
    // A new daemon starts cleanly afterwards.
    let mut again = Daemon::start(s, &["attach", "s0", "--interval", "0", "--no-metrics"]);
    assert_eq!(again.stop().0, 0);
}

#[test]
fn a_second_daemon_with_the_same_pin_dir_is_refused() {
    let pair = Pair::new();
    let s = &pair.server;
    s.ip(&["link", "add", "s1", "type", "veth", "peer", "name", "s1p"]);
    s.ip(&["link", "set", "s1", "up"]);
    s.ip(&["link", "set", "s1p", "up"]);
    let mut first = Daemon::start(s, &["attach", "s0", "--interval", "0"]);
    let (code, _, err) = s.cli(&["attach", "s1", "--interval", "0", "--no-metrics"]);
    assert_eq!(code, 1);
    let line = err.lines().last().unwrap();
    assert!(line.contains("another rstguard daemon holds"), "{line}");
    assert!(
        !s.ip(&["-d", "link", "show", "s1"]).contains("xdp"),
        "s1 was touched"
    );
    assert_eq!(
        s.cli_json(&["status"])["running"],
        true,
        "the first one is undisturbed"
    );
    assert_eq!(first.stop().0, 0);
}

#[test]
fn under_ip_netns_exec_the_daemon_mounts_its_own_bpffs() {
    let pair = Pair::new();
    let s = &pair.server;
    // The default pin directory: `ip netns exec` gives the daemon a fresh
    // /sys with no BPF filesystem; it mounts one (in its private mount
    // namespace, so the host is untouched).
    let mut cmd = std::process::Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &s.name,
        rstguard_bin().to_str().unwrap(),
        "attach",
        "s0",
        "--interval",
        "0",
        "--no-metrics",
    ]);
    cmd.env_remove("RSTGUARD_PIN_DIR");
    let mut daemon = Daemon::spawn(cmd, &["attach", "s0"]);
    daemon.wait_log("mounted a BPF filesystem");
    let out = std::process::Command::new("nsenter")
        .args([
            "-t",
            &daemon.pid().to_string(),
            "-m",
            "-n",
            rstguard_bin().to_str().unwrap(),
            "status",
            "--json",
        ])
        .env_remove("RSTGUARD_PIN_DIR")
        .output()
        .unwrap();
    let st: Value =
        serde_json::from_slice(&out.stdout).expect("status in the daemon's mount namespace");
    assert_eq!(st["running"], true);
    assert_eq!(
        st["pin_dir"],
        format!(
            "/sys/fs/bpf/rstguard/schema-{}",
            rstguard_common::status::SCHEMA
        )
    );
    assert_eq!(daemon.stop().0, 0);
}
