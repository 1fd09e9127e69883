//! `cargo xtask build` and `cargo xtask run`.

use std::{fs, os::unix::process::CommandExt, process::Command};

use anyhow::{bail, Context as _};

use crate::{
    cmd::{self, is_root, root},
    kernel, setup,
};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for rstguard (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn build() -> anyhow::Result<()> {
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "rstguard"]))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    setup::run(&setup::Args::without_matrix())?;
    build()?;
    let argv = if args.args.is_empty() {
        let iface = default_route_interface()?;
        eprintln!("run: no arguments: attaching to {iface}, the default route's interface, in monitor mode (drops nothing)");
        vec![
            "attach".to_string(),
            iface,
            "--policy".into(),
            "monitor".into(),
        ]
    } else {
        args.args
    };
    let bin = root().join("target/release/rstguard");
    if argv.iter().any(|a| a == "attach") {
        preflight(&bin, &argv);
    }
    exec_as_root(&bin, &argv)
}

/// Runs `rstguard check -- ARGS` (as root, as the daemon will run) and
/// prints its FAIL lines, so that what would stop the daemon is said
/// before it tries to attach. The daemon runs either way: its own error
/// is the last word.
fn preflight(bin: &std::path::Path, argv: &[String]) {
    let mut cmd = if is_root() {
        Command::new(bin)
    } else {
        let mut c = Command::new("sudo");
        c.arg("-E").arg(bin);
        c
    };
    cmd.args(["check", "--"]).args(argv);
    let Some(out) = cmd::output(&mut cmd) else {
        eprintln!("run: preflight: could not run `{}`", cmd::show(&cmd));
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let count = |s: &str| stdout.lines().filter(|l| l.starts_with(s)).count();
    let (fails, warns) = (count("FAIL"), count("WARN"));
    match out.status.code() {
        Some(0 | 1) if fails > 0 => {
            eprintln!(
                "run: preflight (`rstguard check -- {}`): {fails} FAIL",
                argv.join(" ")
            );
            for line in stdout.lines().filter(|l| l.starts_with("FAIL")) {
                eprintln!("{line}");
            }
        }
        Some(0) => eprintln!(
            "run: preflight: no FAIL{}",
            if warns > 0 {
                format!(
                    " ({warns} WARN: `rstguard check -- {}` shows them)",
                    argv.join(" ")
                )
            } else {
                String::new()
            }
        ),
        _ => eprintln!(
            "run: preflight: `rstguard check` could not check this command line: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// Replaces this process with `bin ARGS`, as root (through `sudo -E` when
/// not root). Signals (Ctrl-C, SIGTERM) then reach the program directly.
fn exec_as_root(bin: &std::path::Path, args: &[String]) -> anyhow::Result<()> {
    let mut cmd = if is_root() {
        Command::new(bin)
    } else {
        eprintln!("not root: running through sudo -E");
        let mut c = Command::new("sudo");
        c.arg("-E").arg(bin);
        c
    };
    cmd.args(args);
    eprintln!("+ {}", cmd::show(&cmd));
    let err = cmd.exec();
    Err(err).with_context(|| format!("could not start {}", bin.display()))
}

/// `cargo xtask demo`: builds rstguard and the lab in release, then runs the
/// demo as root.
pub fn demo() -> anyhow::Result<()> {
    setup::run(&setup::Args::without_matrix())?;
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "rstguard", "-p", "rstguard-lab"]))?;
    exec_as_root(&root().join("target/release/rstguard-demo"), &[])
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Also flood a VM's virtio-net NIC with rstguard in native mode (the
    /// kernel matrix's 6.12 under QEMU, a tap in a namespace of the run's
    /// own): `cargo xtask bench --native-virtio -- --only virtio` runs only
    /// that.
    #[arg(long)]
    pub native_virtio: bool,
    /// Arguments for rstguard-bench (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// The kernel the virtio-net VM boots.
const VIRTIO_KERNEL: &str = "6.12";

/// `cargo xtask bench [--native-virtio] [-- ARGS]`: builds rstguard and the
/// benchmark runner in release, then runs the runner as root.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    setup::run(&setup::Args {
        check: false,
        no_kernel_matrix: !args.native_virtio,
    })?;
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "rstguard",
        "-p",
        "rstguard-bench",
    ]))?;
    let mut argv = args.args;
    if args.native_virtio {
        let k = kernel::KERNELS
            .iter()
            .find(|k| k.name == VIRTIO_KERNEL)
            .expect("6.12 is in the matrix");
        let cached = kernel::cached(k).with_context(|| {
            format!("kernel {VIRTIO_KERNEL} is not cached: run `cargo xtask setup`")
        })?;
        argv.extend([
            "--native-virtio".to_string(),
            "--vng".into(),
            kernel::vng().display().to_string(),
            "--vmlinuz".into(),
            cached.vmlinuz.display().to_string(),
            "--virtio-out".into(),
            root().join("target/bench-virtio").display().to_string(),
        ]);
    }
    exec_as_root(&root().join("target/release/rstguard-bench"), &argv)
}

/// The interface of the IPv4 default route, else of the IPv6 one.
fn default_route_interface() -> anyhow::Result<String> {
    if let Ok(route) = fs::read_to_string("/proc/net/route") {
        for line in route.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" {
                return Ok(f[0].to_string());
            }
        }
    }
    if let Ok(route) = fs::read_to_string("/proc/net/ipv6_route") {
        for line in route.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 10 && f[0].chars().all(|c| c == '0') && f[1] == "00" && f[9] != "lo" {
                return Ok(f[9].to_string());
            }
        }
    }
    bail!("no default route here: name an interface, e.g. `cargo xtask run -- attach eth0 --policy monitor`")
}
