//! `cargo xtask lint`: formatting, then clippy in two passes.

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    cmd::run(cmd::cargo().args(["fmt", "--all", "--check"]))?;
    // User space, its tests (privileged ones included) and xtask.
    cmd::run(cmd::cargo().args([
        "clippy",
        "--all-targets",
        "--features",
        "rstguard/privileged-tests",
        "--",
        "-D",
        "warnings",
    ]))?;
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
