//! The OCI image, run the way packaging/kubernetes/rstguard.yaml runs it:
//! the DaemonSet's arguments, capabilities (drop ALL, add the unit's
//! three), seccomp profile, read-only root, no privilege escalation, the
//! node's network and
//! /sys/fs/bpf, the ConfigMap's file at /etc/rstguard. All of it is read
//! from the manifest, so the test follows the manifest; the node is a
//! network namespace with its own BPF filesystem.

use std::{fs, process::Command};

use serde_yaml_ng::Value;

use rstguard_lab::{rstguard_bin, sh, Daemon};

use super::{artifact, attaches_reloads_and_detaches, Node};

fn manifest() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/kubernetes/rstguard.yaml"
    );
    let text = fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn the_image_runs_as_the_daemonset_runs_it() {
    let image = artifact("RSTGUARD_IMAGE");
    let docs = manifest();
    let ds = kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];

    let node = Node::new();
    let name = format!("rgt-image-{}", std::process::id());
    let _container = Container(name.clone());
    let conf = TempDir::new(&format!("{name}-config"));
    let conf_dir = &conf.0;

    // `podman run` options, from the manifest.
    let mut opts: Vec<String> = Vec::new();
    let mut arg = |a: &[&str]| opts.extend(a.iter().map(|s| s.to_string()));
    // Limits below the host's: this host withholds CAP_SYS_RESOURCE, and
    // the runtime's setrlimit of podman's defaults fails.
    arg(&[
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
    ]);
    // hostNetwork: the node's network is the test namespace's.
    arg(&[&format!("--network=ns:/var/run/netns/{}", node.ns.name)]);
    for cap in strs(&sc["capabilities"]["drop"]) {
        arg(&["--cap-drop", &cap]);
    }
    let added = strs(&sc["capabilities"]["add"]);
    assert_eq!(added, ["BPF", "PERFMON", "NET_ADMIN"], "the unit's three");
    for cap in &added {
        arg(&["--cap-add", cap]);
    }
    assert_eq!(sc["privileged"], false);
    if sc["readOnlyRootFilesystem"] == true {
        arg(&["--read-only"]);
    }
    if sc["allowPrivilegeEscalation"] == false {
        arg(&["--security-opt", "no-new-privileges"]);
    }
    if let Some(uid) = sc["runAsUser"].as_u64() {
        arg(&["--user", &uid.to_string()]);
    }
    match sc["seccompProfile"]["type"].as_str() {
        Some("Unconfined") => {
            arg(&["--security-opt", "seccomp=unconfined"]);
        }
        Some("RuntimeDefault") | None => {}
        other => panic!("seccompProfile {other:?}: not mapped to podman"),
    }
    // Volumes: the host's /sys/fs/bpf is the node's BPF filesystem; the
    // ConfigMap's files go in a directory.
    let volumes = pod["volumes"].as_sequence().unwrap();
    let mut config_file = None;
    for m in c["volumeMounts"].as_sequence().unwrap() {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .expect("a volume for each mount");
        let target = m["mountPath"].as_str().unwrap();
        let source = if let Some(host) = v["hostPath"]["path"].as_str() {
            assert_eq!(host, "/sys/fs/bpf", "the only host path");
            node.ns.bpffs.display().to_string()
        } else {
            let cm_name = v["configMap"]["name"].as_str().expect("a ConfigMap");
            let cm = kind(&docs, "ConfigMap");
            assert_eq!(cm["metadata"]["name"], cm_name);
            for (file, text) in cm["data"].as_mapping().unwrap() {
                let file = file.as_str().unwrap();
                fs::write(conf_dir.join(file), text.as_str().unwrap()).unwrap();
                config_file = Some(conf_dir.join(file));
            }
            conf_dir.display().to_string()
        };
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        arg(&["--volume", &format!("{source}:{target}{ro}")]);
    }
    let config_file = config_file.expect("a ConfigMap volume");
    // The ConfigMap's file is valid, as the binary that reads it says.
    sh(&[
        rstguard_bin().to_str().unwrap(),
        "check-config",
        config_file.to_str().unwrap(),
    ]);
    let args = strs(&c["args"]);
    // runc: crun refuses hosts whose cgroups are in hybrid (v1 + v2) mode,
    // as this one's are.
    let podman = |extra: &[&str], run: &[String]| {
        let mut cmd = Command::new("podman");
        cmd.args(["--runtime", "runc", "run", "--rm", "--pull", "never"])
            .args(extra)
            .args(&opts)
            .arg(&image)
            .args(run);
        cmd
    };

    // `rstguard check` on the same command line, in the same container:
    // nothing stops it there.
    let mut check = vec!["check".to_string(), "--".into()];
    check.extend(args.iter().cloned());
    let out = podman(&[], &check).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check in the container: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for item in ["capabilities", "bpffs", "interface eth0"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("OK   {item}: "))),
            "{item}: {text}"
        );
    }

    let cmd = podman(&["--name", &name], &args);

    let mut daemon = Daemon::spawn(cmd, &["attach"]);
    attaches_reloads_and_detaches(&node, &mut daemon, &config_file);
    // The container is gone (--rm) with the daemon.
    let left = sh(&[
        "podman",
        "ps",
        "--all",
        "--filter",
        &format!("name={name}"),
        "--quiet",
    ]);
    assert!(left.trim().is_empty(), "container left: {left}");
}

/// A container removed on drop, should the test fail while it runs
/// (killing `podman run` leaves the container to conmon).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--ignore", "--time", "0", &self.0])
            .output();
    }
}

/// A directory removed on drop, also when the test fails.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(name);
        fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_image_holds_one_static_binary_and_nothing_else() {
    let image = artifact("RSTGUARD_IMAGE");
    let inspect: serde_json::Value =
        serde_json::from_str(&sh(&["podman", "image", "inspect", &image])).unwrap();
    let i = &inspect[0];
    assert_eq!(
        i["Config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/rstguard"])
    );
    assert_eq!(
        i["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "FROM scratch plus one COPY: {i}"
    );
    assert_eq!(
        i["Labels"]["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    // The OCI archive of it.
    let archive = artifact("RSTGUARD_IMAGE_ARCHIVE");
    let listing = sh(&["tar", "-tf", &archive]);
    for f in ["oci-layout", "index.json"] {
        assert!(listing.lines().any(|l| l == f), "{archive}: {listing}");
    }
    // No shell in it.
    let out = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .args(["--entrypoint", "/bin/sh", &image, "-c", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the image has a shell");
    // The binary runs by itself.
    let out = sh(&[
        "podman",
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        &image,
        "--version",
    ]);
    assert_eq!(
        out.trim(),
        format!("rstguard {}", env!("CARGO_PKG_VERSION"))
    );
}
