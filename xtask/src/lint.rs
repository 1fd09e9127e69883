//! `cargo xtask lint`: formatting, then clippy in two passes.

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    cmd::run(cmd::cargo().args(["fmt", "--all", "--check"]))?;
    // User space, its tests (privileged ones included), the benchmarks and
    // xtask.
    cmd::run(cmd::cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "rstguard-ebpf",
        "--all-targets",
        "--features",
        "rstguard/privileged-tests",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The systemd unit (the binary need not be installed for the check).
    if which::which("systemd-analyze").is_ok() {
        let unit = std::fs::read_to_string(cmd::root().join("packaging/rstguard.service"))?;
        let path = std::env::temp_dir().join("rstguard-lint.service");
        std::fs::write(&path, unit.replace("/usr/bin/rstguard", "/bin/true"))?;
        cmd::run(
            std::process::Command::new("systemd-analyze")
                .arg("verify")
                .arg(&path),
        )?;
    }
    // The Kubernetes manifests, against the Kubernetes schemas.
    kubernetes_manifests()?;
    // The eBPF crate, for its own target.
    cmd::run(
        std::process::Command::new("cargo")
            .args(["+nightly", "clippy", "-p", "rstguard-ebpf"])
            .args([
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--release",
            ])
            .args(["--", "-D", "warnings"]),
    )
}

/// The kubernetes-validate release the manifests are checked with (PyPI).
const KUBERNETES_VALIDATE: &str = "1.37.0";

/// Validates packaging/kubernetes/*.yaml against the Kubernetes schemas
/// (strict: unknown fields are errors), installing the validator from PyPI
/// when it is missing.
fn kubernetes_manifests() -> anyhow::Result<()> {
    let have = cmd::stdout(std::process::Command::new("kubernetes-validate").arg("--version"))
        .is_some_and(|v| v.contains(KUBERNETES_VALIDATE));
    if !have {
        eprintln!(
            "lint: kubernetes-validate {KUBERNETES_VALIDATE} is missing; installing it (pip)"
        );
        cmd::run(std::process::Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("kubernetes-validate=={KUBERNETES_VALIDATE}"),
        ]))?;
    }
    let dir = cmd::root().join("packaging/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no manifests in {}", dir.display());
    }
    cmd::run(
        std::process::Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .args(&files),
    )
}
