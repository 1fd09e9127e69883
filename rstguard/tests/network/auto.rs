//! `--policy auto`: the level follows an attack up to the ceiling and back
//! down to the floor, and an operator's pin is honoured.

use std::{
    thread,
    time::{Duration, Instant},
};

use rstguard_lab::{
    http_get, sockaddr as v4, spoof::Flood, Daemon, LiveTransfer, Netns, Pair, CLIENT4, SERVER4,
};

fn level(ns: &Netns) -> (String, bool) {
    let st = ns.cli_json(&["status"]);
    let i = &st["interfaces"][0];
    (
        i["level"].as_str().unwrap().to_string(),
        i["auto"]["pinned"].as_bool().unwrap_or(false),
    )
}

/// Waits until the level is `want`, at most `secs`; returns how long it took.
fn wait_level(ns: &Netns, want: &str, secs: u64) -> Duration {
    let start = Instant::now();
    loop {
        let (l, _) = level(ns);
        if l == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < rstguard_lab::patience(Duration::from_secs(secs)),
            "level {l}, not {want}, after {secs} s"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn auto_escalates_under_a_flood_relaxes_after_it_and_honours_a_pin() {
    let pair = Pair::new();
    let s = &pair.server;
    // K = 2 s above 200/s per level; 3 quiet seconds below 20/s per level.
    let mut daemon = Daemon::start(
        s,
        &[
            "attach",
            "s0",
            "--policy",
            "auto",
            "--escalate-above",
            "200",
            "--escalate-after",
            "2",
            "--relax-below",
            "20",
            "--quiet-period",
            "3",
            "--interval",
            "0",
            "--event-sample",
            "0",
        ],
    );
    assert_eq!(level(s).0, "monitor", "auto starts at the floor");
    let live = LiveTransfer::start(s, &pair.client, SERVER4, 5000);
    live.assert_flowing();
    let (src, dst) = (v4(CLIENT4, live.client_port), v4(SERVER4, 5000));

    // ~1,000 spoofed RSTs a second: two levels up, K seconds each.
    let flood = Flood::start(&pair.client, src, dst, 100, 20);
    let took = wait_level(s, "strict", 12);
    assert!(
        took >= Duration::from_secs(3),
        "escalated too fast ({took:?}): not one level at a time"
    );
    live.assert_flowing();
    flood.wait_sent(2000);
    let sent = flood.stop();
    assert!(sent > 2000, "{sent}");

    // Quiet: back down, one level per 3 quiet seconds.
    let took = wait_level(s, "monitor", 14);
    assert!(
        took >= Duration::from_secs(5),
        "relaxed too fast ({took:?})"
    );
    live.assert_flowing();

    eprintln!("the daemon's log:\n{}", daemon.log());
    let escalated: Vec<String> = daemon
        .log()
        .lines()
        .filter(|l| l.contains("auto: policy escalated"))
        .map(String::from)
        .collect();
    let relaxed: Vec<String> = daemon
        .log()
        .lines()
        .filter(|l| l.contains("auto: policy relaxed"))
        .map(String::from)
        .collect();
    assert_eq!(escalated.len(), 2, "{}", daemon.log());
    assert!(
        escalated[0].contains("from=monitor to=enforce")
            && escalated[1].contains("from=enforce to=strict"),
        "{escalated:?}"
    );
    assert!(
        escalated[0].contains("invalid_rate=") && escalated[0].contains("why="),
        "{}",
        escalated[0]
    );
    assert_eq!(relaxed.len(), 2, "{}", daemon.log());
    assert!(
        relaxed[0].contains("from=strict to=enforce")
            && relaxed[1].contains("from=enforce to=monitor"),
        "{relaxed:?}"
    );
    let (_, metrics) = http_get(s, "127.0.0.1:9477", "/metrics");
    for line in [
        "rstguard_policy_transitions_total{device=\"s0\",direction=\"up\"} 2",
        "rstguard_policy_transitions_total{device=\"s0\",direction=\"down\"} 2",
        "rstguard_policy_level{device=\"s0\"} 0",
        "rstguard_policy_auto{device=\"s0\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    let st = s.cli_json(&["status"]);
    assert_eq!(st["interfaces"][0]["escalations"], 2);
    assert_eq!(st["interfaces"][0]["deescalations"], 2);

    // An operator pins enforce: a flood no longer moves it.
    let (code, out, err) = s.cli(&["policy", "set", "level=enforce"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pinned at enforce"), "{out}");
    daemon.wait_log("the operator pinned the level");
    assert_eq!(level(s), ("enforce".to_string(), true));
    let flood = Flood::start(&pair.client, src, dst, 100, 20);
    thread::sleep(Duration::from_secs(5));
    assert_eq!(
        level(s),
        ("enforce".to_string(), true),
        "auto moved a pinned level"
    );
    let (_, metrics) = http_get(s, "127.0.0.1:9477", "/metrics");
    assert!(
        metrics.contains("rstguard_policy_auto{device=\"s0\"} 0"),
        "{metrics}"
    );
    // Handed back, it goes on from enforce: strict after K seconds.
    let (code, out, _) = s.cli(&["policy", "set", "level=auto"]);
    assert_eq!(code, 0);
    assert!(out.contains("auto mode's again"), "{out}");
    daemon.wait_log("auto control resumed");
    wait_level(s, "strict", 8);
    flood.stop();
    live.assert_flowing();

    let outcome = live.finish();
    assert_eq!(outcome.server_error, None, "the transfer was reset");
    assert_eq!(outcome.sent, Ok(outcome.received), "byte-exact");
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn level_auto_is_refused_without_auto_mode() {
    let pair = Pair::new();
    let s = &pair.server;
    let _daemon = Daemon::start(
        s,
        &[
            "attach",
            "s0",
            "--policy",
            "enforce",
            "--interval",
            "0",
            "--no-metrics",
        ],
    );
    let (code, _, err) = s.cli(&["policy", "set", "level=auto"]);
    assert_eq!(code, 1);
    assert!(err.contains("not started with --policy auto"), "{err}");
    // A fixed level is not pinned: there is no controller to pin it against.
    let (code, out, _) = s.cli(&["policy", "set", "level=strict"]);
    assert_eq!(code, 0);
    assert!(!out.contains("pinned"), "{out}");
}
