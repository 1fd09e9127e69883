//! `rstguard check` through the real CLI, in a namespace with a veth (and a
//! bridge, which has no native XDP): what it says, its JSON, its exit
//! status, under full, the unit's and no privileges, and with XDP programs
//! attached by a daemon of its own pin directory and of another.

use std::process::Command;

use serde_json::Value;

use rstguard_lab::{rstguard_bin, Daemon, Netns, Pair};

/// The systemd unit's capabilities, as `setpriv` grants them to root.
const UNIT_CAPS: &[&str] = &[
    "setpriv",
    "--bounding-set=-all,+bpf,+perfmon,+net_admin",
    "--inh-caps=-all,+bpf,+perfmon,+net_admin",
    "--ambient-caps=-all,+bpf,+perfmon,+net_admin",
];

const NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

/// `rstguard ARGS` in `ns`'s network, behind `pre` (a privilege changer),
/// with the namespace's pin directory: (exit code, stdout, stderr).
fn check(ns: &Netns, pre: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{}", ns.name))
        .args(pre)
        .arg(rstguard_bin())
        .args(args)
        .env("RSTGUARD_PIN_DIR", ns.pin_dir());
    let out = c.output().expect("running rstguard check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_json(ns: &Netns, pre: &[&str], args: &[&str]) -> (i32, Value) {
    // Before any `--`: after it come attach's arguments.
    let mut a = args.to_vec();
    a.insert(1, "--json");
    let (code, out, err) = check(ns, pre, &a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}{err}"));
    (code, v)
}

/// The check named `item` in a JSON report.
fn item<'a>(report: &'a Value, item: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["item"] == item)
        .unwrap_or_else(|| panic!("no {item} in {report}"))
}

fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    item(report, name)["status"].as_str().unwrap()
}

fn detail<'a>(report: &'a Value, name: &str) -> &'a str {
    item(report, name)["detail"].as_str().unwrap()
}

#[test]
fn check_reports_the_machine_and_each_interface_and_fails_where_attach_would() {
    let pair = Pair::new();
    let s = &pair.server;
    s.ip(&["link", "add", "br0", "type", "bridge"]);
    s.ip(&["link", "set", "br0", "up"]);

    // Root, a veth: every machine item is there; the veth is fine.
    let (code, r) = check_json(s, &[], &["check", "s0"]);
    for name in [
        "kernel",
        "btf",
        "capabilities",
        "bpffs",
        "daemon",
        "lockdown",
    ] {
        assert_ne!(status(&r, name), "fail", "{name}: {r}");
    }
    let uname = Command::new("uname").arg("-r").output().unwrap();
    let release = String::from_utf8_lossy(&uname.stdout);
    // Major and minor only: Debian's 5.10 is `uname -r` 5.10.0-46 while the
    // kernel says it is 5.10.262, which check reports.
    let version: String = release
        .trim()
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap()
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    assert!(
        detail(&r, "kernel").starts_with(&format!("Linux {version}.")),
        "{r}"
    );
    assert_eq!(status(&r, "bpffs"), "ok", "the namespace's bpffs: {r}");
    assert_eq!(status(&r, "interface s0"), "ok", "{r}");
    assert!(
        detail(&r, "interface s0").contains("driver veth, native XDP supported"),
        "{r}"
    );
    assert_eq!(code, 0, "no FAIL, exit 0: {r}");
    assert_ne!(r["status"], "fail");

    // Text: one line per item, OK|WARN|FAIL item: detail — what to do.
    let (code, out, _) = check(s, &[], &["check", "s0", "br0"]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "6 machine items and 2 interfaces: {out}");
    for l in &lines {
        let (status, rest) = l.split_once(' ').unwrap();
        assert!(["OK", "WARN", "FAIL"].contains(&status), "{l}");
        assert!(rest.trim_start().contains(": "), "{l}");
        assert_eq!(status != "OK", l.contains(" — "), "{l}");
    }
    let br0 = lines
        .iter()
        .find(|l| l.contains("interface br0"))
        .expect("a br0 line");
    assert!(
        br0.starts_with("WARN interface br0: link ethernet, driver bridge, no native XDP")
            && br0.contains("--mode auto will use generic (skb) XDP"),
        "{br0}"
    );

    // --mode native on a device without it: FAIL, exit 1.
    let (code, out, err) = check(s, &[], &["check", "br0", "--mode", "native"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL interface br0: link ethernet, driver bridge, no native XDP")
            && out.contains("--mode native cannot attach — use --mode auto or skb"),
        "{out}"
    );
    assert!(err.contains("1 check(s) failed"), "{err}");

    // A config file names the interfaces and their modes.
    let dir = tempdir();
    let conf = format!("{dir}/rstguard.toml");
    std::fs::write(
        &conf,
        "interfaces = [\"s0\", \"br0\"]\n[interface.br0]\nmode = \"native\"\n",
    )
    .unwrap();
    let (code, r) = check_json(s, &[], &["check", "--config", &conf]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(status(&r, "config"), "ok");
    assert_eq!(status(&r, "interface s0"), "ok");
    assert_eq!(status(&r, "interface br0"), "fail", "{r}");
    // The same through an attach command line.
    let (code, r) = check_json(s, &[], &["check", "--", "attach", "--config", &conf]);
    assert_eq!((code, status(&r, "interface br0")), (1, "fail"), "{r}");
    // A named interface that does not exist.
    let (code, r) = check_json(s, &[], &["check", "nosuch0"]);
    assert_eq!((code, status(&r, "interface nosuch0")), (1, "fail"), "{r}");
    std::fs::remove_dir_all(&dir).unwrap();

    // The systemd unit's three capabilities are enough.
    let (code, r) = check_json(s, UNIT_CAPS, &["check", "s0"]);
    assert_eq!(status(&r, "capabilities"), "ok", "{r}");
    assert_eq!(
        detail(&r, "capabilities"),
        "CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON in the effective set"
    );
    assert_eq!(code, 0, "{r}");

    // Nobody: no capabilities, FAIL, exit 1.
    let (code, r) = check_json(s, NOBODY, &["check", "s0"]);
    assert_eq!(status(&r, "capabilities"), "fail", "{r}");
    assert!(
        detail(&r, "capabilities").contains("missing CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"),
        "{r}"
    );
    assert_eq!(r["status"], "fail");
    assert_eq!(code, 1);
}

#[test]
fn check_tells_the_running_daemons_program_from_anothers() {
    let pair = Pair::new();
    let s = &pair.server;
    let mut daemon = Daemon::start(s, &["attach", "s0", "--interval", "0", "--no-metrics"]);

    // Same pin directory: the daemon runs (WARN), its program is its own.
    let (code, r) = check_json(s, &[], &["check", "s0"]);
    assert_eq!(status(&r, "daemon"), "warn", "{r}");
    assert!(
        detail(&r, "daemon").contains(&format!("pid {}", daemon.pid())),
        "{r}"
    );
    assert_eq!(status(&r, "interface s0"), "ok", "{r}");
    assert!(
        detail(&r, "interface s0").contains("rstguard's XDP program is attached")
            && detail(&r, "interface s0").contains("skb mode): the running daemon's"),
        "{r}"
    );
    assert_eq!(code, 0, "{r}");

    // Another pin directory: to that rstguard, the program is another's,
    // and attaching would be refused.
    let other = format!("{}/other", s.bpffs.display());
    let (code, r) = check_json(
        s,
        &[],
        &["check", "--", "attach", "s0", "--pin-dir", &other],
    );
    assert_eq!(status(&r, "daemon"), "ok", "{r}");
    assert_eq!(status(&r, "interface s0"), "fail", "{r}");
    let action = item(&r, "interface s0")["action"].as_str().unwrap();
    assert!(
        detail(&r, "interface s0").contains("another XDP program is attached")
            && detail(&r, "interface s0").contains("rstguard_xdp")
            && action.contains("ip link set dev s0 xdp off"),
        "{r}"
    );
    assert_eq!(code, 1);
    // And attaching is refused indeed.
    let (code, _, err) = check(
        s,
        &[],
        &[
            "--pin-dir",
            &other,
            "attach",
            "s0",
            "--no-metrics",
            "--interval",
            "0",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("s0 already has an XDP program attached"),
        "{err}"
    );
    assert_eq!(daemon.stop().0, 0, "{}", daemon.log());

    // Once it stopped, nothing is attached and no daemon runs.
    let (code, r) = check_json(s, &[], &["check", "s0"]);
    assert_eq!(status(&r, "daemon"), "ok", "{r}");
    assert!(
        detail(&r, "interface s0").contains("no XDP program attached"),
        "{r}"
    );
    assert_eq!(code, 0);
}

fn tempdir() -> String {
    let d = std::env::temp_dir().join(format!("rgt-check-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.display().to_string()
}
