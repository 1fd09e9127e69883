//! `cargo xtask test`: every test layer, and a summary of what ran.
//!
//! 1. host: unit and property tests (no privileges);
//! 2. packet: the real eBPF object through BPF_PROG_TEST_RUN (root);
//! 3. network: namespaces, veth, real sockets, the real CLI (root).
//!
//! `--kernel 5.10|6.1|6.12|all` runs the packet and network layers inside
//! those kernels instead (see `kernel.rs`): the test binaries are built
//! once, here, and each kernel boots under QEMU with them.

use anyhow::{bail, Context as _};

use std::{path::PathBuf, time::Instant};

use crate::{cmd, kernel, setup};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layer {
    Host,
    Packet,
    Network,
}

impl Layer {
    /// The layer's name, which is also its test target's name for the
    /// privileged layers (`rstguard/tests/packet`, `rstguard/tests/network`).
    fn name(self) -> &'static str {
        match self {
            Layer::Host => "host",
            Layer::Packet => "packet",
            Layer::Network => "network",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Skip the layers that need root (packet, network); the summary says
    /// they were skipped.
    #[arg(long)]
    pub skip_privileged: bool,
    /// Run only these layers (repeatable).
    #[arg(long = "layer", value_enum)]
    pub layers: Vec<Layer>,
    /// Run the packet and network layers inside these kernels (5.10, 6.1,
    /// 6.12, or all), booted under QEMU (repeatable; root).
    #[arg(long = "kernel", value_name = "VERSION")]
    pub kernels: Vec<String>,
    /// With --kernel: both layers whole in each kernel, not only the tests
    /// of what differs between kernels ([`MATRIX_PACKET`],
    /// [`MATRIX_NETWORK`]).
    #[arg(long)]
    pub full: bool,
    /// Extra arguments for the test binaries (after `--`), e.g. a filter.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

/// The tests the kernel matrix runs by default, per layer: what differs
/// between kernels. Packet: the verifier's limits, socket mode and its
/// causes (the `bpf_skc_*` helpers and casts, BTF offsets), the parser's
/// frames and what BPF_PROG_TEST_RUN makes of them, exact RSTs at every
/// level, forwarded segments (the skb context a kernel's test run takes).
/// Network: attaching (XDP links, clsact against TCX), pinning, a crash
/// failing open, interfaces that vanish, socket mode, `rstguard check`,
/// blind RSTs dropped and accounted for. The rest is rstguard's own logic,
/// which the host runs whole; `--full` runs it in the kernels too (the
/// whole network layer takes about half an hour a kernel under emulation,
/// which CI cannot give three kernels).
pub const MATRIX_PACKET: [&str; 6] = [
    "the_programs_stay_far_inside_the_verifiers_limits",
    "socket::",
    "socket_causes::",
    "frames::",
    "exact::",
    "forwarded",
];

/// See [`MATRIX_PACKET`].
pub const MATRIX_NETWORK: [&str; 8] = [
    "daemon::",
    "socket_mode::",
    "check::",
    "enforce_survives_1000_blind_rsts_and_accounts_for_each",
    "attach_counts_traffic_and_rsts_then_detaches_on_sigterm",
    "an_interface_that_vanishes_is_reported_and_the_rest_carries_on",
    "a_busy_xdp_hook_is_refused_and_nothing_stays_half_attached",
    "the_lab_leaves_nothing_behind",
];

enum Outcome {
    Passed,
    Failed(String),
    Skipped(&'static str),
}

/// Where network test runs on this machine take turns.
const NETWORK_LOCK: &str = "/run/rstguard-network-tests.lock";

/// Waits for this machine's network test lock (released when dropped).
pub(crate) fn network_lock() -> anyhow::Result<std::fs::File> {
    let f =
        std::fs::File::create(NETWORK_LOCK).with_context(|| format!("creating {NETWORK_LOCK}"))?;
    if f.try_lock().is_err() {
        eprintln!("test: another network test run holds {NETWORK_LOCK}; waiting for it");
        f.lock()
            .with_context(|| format!("locking {NETWORK_LOCK}"))?;
    }
    Ok(f)
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    setup::run(&setup::Args {
        check: false,
        no_kernel_matrix: args.kernels.is_empty(),
    })?;
    if !args.kernels.is_empty() {
        return matrix(args);
    }
    let wanted = |l: Layer| args.layers.is_empty() || args.layers.contains(&l);
    let root = cmd::is_root();
    let mut summary: Vec<(Layer, Outcome)> = Vec::new();

    for layer in [Layer::Host, Layer::Packet, Layer::Network] {
        if !wanted(layer) {
            continue;
        }
        let outcome = if layer != Layer::Host && args.skip_privileged {
            Outcome::Skipped("--skip-privileged")
        } else if layer != Layer::Host && !root {
            Outcome::Failed(
                "needs root to load eBPF programs and create namespaces: run `sudo -E cargo xtask test`, \
                 or `cargo xtask test --skip-privileged` to leave it out"
                    .into(),
            )
        } else {
            // Network tests measure rates and wait on timers: two runs at
            // once on one machine (two checkouts) starve each other of CPU
            // and fail for no fault of the code, so they take turns.
            let _turn = (layer == Layer::Network).then(network_lock).transpose()?;
            let mut c = cmd::cargo();
            match layer {
                Layer::Host => c.args(["test", "--workspace", "--exclude", "rstguard-ebpf"]),
                Layer::Packet | Layer::Network => c.args([
                    "test",
                    "-p",
                    "rstguard",
                    "--features",
                    "privileged-tests",
                    "--test",
                    layer.name(),
                ]),
            };
            if !args.test_args.is_empty() {
                c.arg("--").args(&args.test_args);
            }
            match cmd::run(&mut c) {
                Ok(()) => Outcome::Passed,
                Err(e) => Outcome::Failed(format!("{e:#}")),
            }
        };
        summary.push((layer, outcome));
    }

    eprintln!("\ntest summary:");
    let mut failed = 0;
    for (layer, outcome) in &summary {
        let line = match outcome {
            Outcome::Passed => "passed".to_string(),
            Outcome::Failed(why) => {
                failed += 1;
                format!("FAILED: {why}")
            }
            Outcome::Skipped(why) => format!("skipped ({why})"),
        };
        eprintln!("  {:<8} {line}", layer.name());
    }
    if failed > 0 {
        bail!("{failed} test layer(s) failed");
    }
    Ok(())
}

/// The kernels named on the command line, in the matrix's order.
fn chosen_kernels(names: &[String]) -> anyhow::Result<Vec<kernel::Kernel>> {
    let known = || {
        kernel::KERNELS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for n in names {
        if n != "all" && !kernel::KERNELS.iter().any(|k| k.name == n) {
            bail!(
                "no kernel {n} in the matrix: name one of {}, or all",
                known()
            );
        }
    }
    Ok(kernel::KERNELS
        .iter()
        .filter(|k| names.iter().any(|n| n == "all" || n == k.name))
        .copied()
        .collect())
}

/// The test binaries of the privileged layers, (layer, path), and the
/// `rstguard` binary they run (and that the matrix runs `check` with).
struct TestBinaries {
    layers: Vec<(&'static str, PathBuf)>,
    rstguard: PathBuf,
}

/// The profile the matrix's test binaries (and the `rstguard` they run)
/// are built with: release's optimisations, debug's assertions and
/// overflow checks. Under TCG every instruction is emulated, and the
/// unoptimised build spent most of a layer's time in its own code (frame
/// building, table filling, the daemon's BTF and object loading); the
/// checks stay what they are on the host. Defined here, on cargo's command
/// line, so that it builds into `target/matrix/` beside debug and release
/// without touching either.
const MATRIX_PROFILE: &[&str] = &[
    "--config",
    "profile.matrix.inherits='release'",
    "--config",
    "profile.matrix.debug-assertions=true",
    "--config",
    "profile.matrix.overflow-checks=true",
    "--config",
    "profile.matrix.incremental=true",
];

/// Builds the privileged test binaries once.
fn build_test_binaries(layers: &[Layer]) -> anyhow::Result<TestBinaries> {
    let mut c = cmd::cargo();
    c.args(MATRIX_PROFILE).args([
        "test",
        "--profile",
        "matrix",
        "-p",
        "rstguard",
        "--features",
        "privileged-tests",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for l in layers {
        c.args(["--test", l.name()]);
    }
    eprintln!("+ {}", cmd::show(&c));
    let out = c
        .current_dir(cmd::root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the test binaries failed ({})", out.status);
    }
    let mut found = Vec::new();
    let mut rstguard = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        else {
            continue;
        };
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        if is_bin && name == "rstguard" {
            rstguard = Some(PathBuf::from(exe));
        } else if let Some(l) = layers.iter().find(|l| l.name() == name) {
            found.push((l.name(), PathBuf::from(exe)));
        }
    }
    let Some(rstguard) = rstguard else {
        bail!("cargo test --no-run reported no rstguard binary");
    };
    // In the layers' order (cargo reports them as they finish).
    let mut ordered = Vec::new();
    for l in layers {
        let Some(i) = found.iter().position(|(n, _)| *n == l.name()) else {
            bail!("cargo built no test binary for the {} layer", l.name());
        };
        ordered.push(found.swap_remove(i));
    }
    Ok(TestBinaries {
        layers: ordered,
        rstguard,
    })
}

/// `--kernel`: the packet and network layers inside each kernel, a
/// progress line per layer, and a table at the end.
fn matrix(args: &Args) -> anyhow::Result<()> {
    if !cmd::is_root() {
        bail!("the kernel matrix needs root (QEMU, /lib/modules): run `sudo -E cargo xtask test --kernel ...`");
    }
    let kernels = chosen_kernels(&args.kernels)?;
    let layers: Vec<Layer> = [Layer::Packet, Layer::Network]
        .into_iter()
        .filter(|l| args.layers.is_empty() || args.layers.contains(l))
        .collect();
    if layers.is_empty() {
        bail!("the kernel matrix runs the packet and network layers; --layer host runs on this kernel only");
    }
    let binaries = build_test_binaries(&layers)?;
    let started = Instant::now();
    let mut runs = Vec::new();
    for (i, k) in kernels.iter().enumerate() {
        let cached = kernel::cached(k)
            .with_context(|| format!("kernel {} is not cached: run `cargo xtask setup`", k.name))?;
        eprintln!(
            "test: kernel {} ({}, {}; {}/{}): booting under QEMU (TCG) with the {} layer(s)",
            k.name,
            cached.release,
            k.distro,
            i + 1,
            kernels.len(),
            layers
                .iter()
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(" and ")
        );
        let out = cmd::root().join("target/kernel-matrix").join(k.name);
        let test_args = |layer: &str| -> Vec<String> {
            if args.full || !args.test_args.is_empty() {
                args.test_args.clone()
            } else if layer == Layer::Network.name() {
                MATRIX_NETWORK.iter().map(|t| t.to_string()).collect()
            } else {
                MATRIX_PACKET.iter().map(|t| t.to_string()).collect()
            }
        };
        let run = kernel::run_in(
            &cached,
            &binaries.rstguard,
            &binaries.layers,
            &test_args,
            &out,
        );
        eprintln!(
            "test: kernel {}: {} in {:.0} s",
            k.name,
            if run.error.is_none()
                && run.layers.iter().all(|l| l.ok)
                && run.check.as_ref().is_some_and(|c| c.ok)
            {
                "passed"
            } else {
                "FAILED"
            },
            run.took.as_secs_f64()
        );
        runs.push(run);
    }

    eprintln!(
        "\nkernel matrix ({:.0} s in all):",
        started.elapsed().as_secs_f64()
    );
    let mut header = format!(
        "  {:<6} {:<22} {:<28}",
        "kernel", "release", "rstguard check"
    );
    for l in &layers {
        header.push_str(&format!(" {:<30}", l.name()));
    }
    eprintln!("{header} time");
    let mut failed = 0;
    for run in &runs {
        let check = match &run.check {
            Some(c) if c.ok => c.summary.clone(),
            Some(_) => "FAILED !".to_string(),
            None => "did not run".to_string(),
        };
        let mut line = format!("  {:<6} {:<22} {check:<28}", run.kernel.name, run.release);
        for l in &layers {
            let cell = match run.layers.iter().find(|r| r.layer == l.name()) {
                Some(r) => format!(
                    "{} passed, {} failed, {:.0} s{}",
                    r.passed,
                    r.failed,
                    r.took.as_secs_f64(),
                    if r.ok { "" } else { " !" }
                ),
                None => "did not run".to_string(),
            };
            line.push_str(&format!(" {cell:<30}"));
        }
        line.push_str(&format!(" {:.0} s", run.took.as_secs_f64()));
        eprintln!("{line}");
        if let Some(e) = &run.error {
            failed += 1;
            eprintln!("         {e}");
        } else if let Some(c) = run.check.as_ref().filter(|c| !c.ok) {
            failed += 1;
            eprintln!("         rstguard check: {}", c.summary);
        } else if let Some(bad) = run.layers.iter().find(|l| !l.ok) {
            failed += 1;
            eprintln!(
                "         {}: {}",
                bad.layer,
                bad.why.as_deref().unwrap_or("failed")
            );
        }
    }
    eprintln!(
        "  (logs: {})",
        cmd::root().join("target/kernel-matrix").display()
    );
    // The totals in the plain form CI reads.
    let (passed, failed_tests) = runs
        .iter()
        .flat_map(|r| &r.layers)
        .fold((0, 0), |(p, f), l| (p + l.passed, f + l.failed));
    eprintln!("matrix: {passed} passed, {failed_tests} failed");
    if failed > 0 {
        bail!("{failed} kernel(s) of the matrix failed");
    }
    Ok(())
}
