//! `cargo xtask lint`: formatting, then clippy in two passes.

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    cmd::run(cmd::cargo().args(["fmt", "--all", "--check"]))?;
    // User space, its tests (privileged ones included) and xtask.
    cmd::run(cmd::cargo().args([
        "clippy",
        "--all-targets",
        "--features",
        "rstguard/privileged-tests,rstguard/bench",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The systemd unit (the binary need not be installed for the check).
    if which::which("systemd-analyze").is_ok() {
        let unit = std::fs::read_to_string(cmd::root().join("packaging/rstguard.service"))?;
        let path = std::env::temp_dir().join("rstguard-lint.service");
        std::fs::write(&path, unit.replace("/usr/local/bin/rstguard", "/bin/true"))?;
        cmd::run(
            std::process::Command::new("systemd-analyze")
                .arg("verify")
                .arg(&path),
        )?;
    }
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
