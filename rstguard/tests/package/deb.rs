//! The .deb: `dpkg -i` into a throwaway root; its files land where the
//! unit and README say; it carries no maintainer scripts (installing it
//! starts nothing); and the installed unit, verified with systemd-analyze,
//! runs as systemd would run it (its ExecStartPre and ExecStart command
//! lines verbatim, its capabilities and nothing more, its config path),
//! attaches to the test's veth, reloads on SIGHUP and detaches on SIGTERM.
//!
//! No systemd runs here, so the unit's paths are made real in a private
//! mount namespace: read-only overlays put the root's /usr/bin, /etc and
//! /usr/lib/systemd/system over the machine's, and a BPF filesystem is
//! mounted at /sys/fs/bpf, as systemd mounts it at boot.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use rstguard_lab::{sh, Daemon};

use super::{artifact, attaches_reloads_and_detaches, Node};

/// Where the package puts each file: the README's install section lists
/// the same paths.
const FILES: &[&str] = &[
    "/usr/bin/rstguard",
    "/usr/lib/systemd/system/rstguard.service",
    "/etc/rstguard/rstguard.toml",
    "/usr/share/rstguard/grafana-dashboard.json",
    "/usr/share/doc/rstguard/README.md",
    "/usr/share/doc/rstguard/copyright",
];

const UNIT: &str = "/usr/lib/systemd/system/rstguard.service";

/// A throwaway root with the .deb installed by dpkg; removed on drop.
struct Root(PathBuf);

impl Root {
    fn install() -> Root {
        let deb = artifact("RSTGUARD_DEB");
        let root =
            std::env::temp_dir().join(format!("rgt-deb-{}-{}", std::process::id(), rand_suffix()));
        let admin = root.join("var/lib/dpkg");
        fs::create_dir_all(admin.join("info")).unwrap();
        fs::create_dir_all(admin.join("updates")).unwrap();
        fs::write(admin.join("status"), "").unwrap();
        sh(&["dpkg", "--root", root.to_str().unwrap(), "-i", &deb]);
        Root(root)
    }

    fn path(&self, abs: &str) -> PathBuf {
        self.0.join(abs.trim_start_matches('/'))
    }

    fn dpkg(&self, args: &[&str]) -> String {
        let mut a = vec!["dpkg", "--root", self.0.to_str().unwrap()];
        a.extend_from_slice(args);
        sh(&a)
    }

    /// `CMD ARGS` in a private mount namespace where the root's /usr/bin,
    /// /etc and unit directory overlay the machine's, with a BPF
    /// filesystem at /sys/fs/bpf; in network namespace `netns` if given.
    fn command(&self, netns: Option<&str>, cmd: &[&str]) -> Command {
        const SCRIPT: &str = r#"set -e
root=$1; shift
for d in /usr/bin /etc /usr/lib/systemd/system; do
    mount -t overlay overlay -o "lowerdir=$root$d:$d" "$d"
done
mount -t bpf bpf /sys/fs/bpf
exec "$@""#;
        let mut c = Command::new("nsenter");
        if let Some(ns) = netns {
            c.arg(format!("--net=/var/run/netns/{ns}"));
        }
        c.args(["unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", SCRIPT, "sh"])
            .arg(&self.0)
            .args(cmd)
            .env_remove("RSTGUARD_PIN_DIR");
        c
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The [Service] settings of a unit file (the last value of each key).
fn service(unit: &str) -> BTreeMap<String, String> {
    let mut in_service = false;
    let mut out = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// setpriv arguments granting exactly the unit's capabilities (as systemd
/// does for a root service with CapabilityBoundingSet= and
/// AmbientCapabilities=), and NoNewPrivileges=.
fn unit_privileges(svc: &BTreeMap<String, String>) -> Vec<String> {
    let caps = |key: &str| {
        let v = svc
            .get(key)
            .unwrap_or_else(|| panic!("the unit has no {key}="));
        v.split_whitespace()
            .map(|c| {
                format!(
                    "+{}",
                    c.strip_prefix("CAP_").expect("CAP_ name").to_lowercase()
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let bounding = caps("CapabilityBoundingSet");
    let ambient = caps("AmbientCapabilities");
    let mut args = vec![
        "setpriv".to_string(),
        format!("--bounding-set=-all,{bounding}"),
        format!("--inh-caps=-all,{ambient}"),
        format!("--ambient-caps=-all,{ambient}"),
    ];
    if svc.get("NoNewPrivileges").map(String::as_str) == Some("yes") {
        args.push("--no-new-privs".into());
    }
    args.push("--".into());
    args
}

#[test]
fn deb_installs_its_files_where_the_unit_and_readme_say_and_starts_nothing() {
    let root = Root::install();
    let listed = root.dpkg(&["-L", "rstguard"]);
    for f in FILES {
        assert!(
            listed.lines().any(|l| l == *f),
            "{f} not installed: {listed}"
        );
        assert!(root.path(f).is_file(), "{f} missing");
    }
    let status = root.dpkg(&["-s", "rstguard"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    // A static binary: no dependencies at all.
    assert!(!status.contains("Depends:"), "{status}");
    assert!(
        status.contains("Conffiles:\n /etc/rstguard/rstguard.toml "),
        "the config is a conffile (an operator's edits survive upgrades): {status}"
    );
    // No maintainer scripts: installing attaches, starts and enables nothing.
    let info = fs::read_dir(root.path("/var/lib/dpkg/info"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(
            !info.iter().any(|f| f.ends_with(&format!(".{script}"))),
            "the package has a {script}: {info:?}"
        );
    }
    // The binary is the one built, and static.
    let file = root.path("/usr/bin/rstguard");
    let version = sh(&[file.to_str().unwrap(), "--version"]);
    assert_eq!(
        version.trim(),
        format!("rstguard {}", env!("CARGO_PKG_VERSION"))
    );
    let elf = fs::read(&file).unwrap();
    assert!(
        !elf.windows(b"ld-linux".len()).any(|w| w == b"ld-linux"),
        "the packaged binary is dynamically linked"
    );
    // The unit names the installed binary and config.
    let unit = fs::read_to_string(root.path(UNIT)).unwrap();
    let svc = service(&unit);
    for key in ["ExecStartPre", "ExecStart"] {
        let argv: Vec<&str> = svc[key].split_whitespace().collect();
        assert_eq!(argv[0], "/usr/bin/rstguard", "{key}");
        assert!(
            argv.contains(&"/etc/rstguard/rstguard.toml"),
            "{key}: {argv:?}"
        );
    }
    // The Grafana dashboard is JSON.
    let dash = fs::read_to_string(root.path("/usr/share/rstguard/grafana-dashboard.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&dash).expect("the dashboard is JSON");
}

#[test]
fn the_installed_unit_verifies_and_its_command_lines_attach_reload_and_detach() {
    let root = Root::install();
    let unit = fs::read_to_string(root.path(UNIT)).unwrap();
    let svc = service(&unit);

    // systemd-analyze verify, with the package's files in their places (it
    // checks that ExecStart's binary exists and is executable).
    let out = root
        .command(None, &["systemd-analyze", "verify", UNIT])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let node = Node::new();
    let privileges = unit_privileges(&svc);
    let as_unit = |cmdline: &str| {
        let mut argv: Vec<String> = privileges.clone();
        argv.extend(cmdline.split_whitespace().map(String::from));
        argv
    };
    // ExecStartPre: check-config on the installed config, with the unit's
    // capabilities.
    let pre = as_unit(&svc["ExecStartPre"]);
    let pre: Vec<&str> = pre.iter().map(String::as_str).collect();
    let out = root.command(Some(&node.ns.name), &pre).output().unwrap();
    assert!(
        out.status.success(),
        "ExecStartPre failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `rstguard check` on ExecStart's command line, as the unit would run
    // it: nothing stops it.
    let exec_start = &svc["ExecStart"];
    let (bin, attach) = exec_start.split_once(' ').unwrap();
    let check = as_unit(&format!("{bin} check -- {attach}"));
    let check: Vec<&str> = check.iter().map(String::as_str).collect();
    let out = root.command(Some(&node.ns.name), &check).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check: {text}");
    for item in ["capabilities", "bpffs", "config", "interface eth0"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("OK   {item}: "))),
            "{item}: {text}"
        );
    }
    // ExecStart, the daemon.
    let start = as_unit(exec_start);
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    let cmd = root.command(Some(&node.ns.name), &start);
    let mut daemon = Daemon::spawn(cmd, &["attach"]);
    // It runs with the unit's three capabilities, and no others.
    let status = fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    let want = (1u64 << 12) | (1 << 38) | (1 << 39);
    assert_eq!(
        eff, want,
        "CapEff {eff:#x}: only CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF"
    );
    let config = root.path("/etc/rstguard/rstguard.toml");
    attaches_reloads_and_detaches(&node, &mut daemon, Path::new(&config));
}
