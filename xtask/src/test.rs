//! `cargo xtask test`: every test layer, and a summary of what ran.
//!
//! 1. host: unit and property tests (no privileges);
//! 2. packet: the real eBPF object through BPF_PROG_TEST_RUN (root);
//! 3. network: namespaces, veth, real sockets, the real CLI (root).

use anyhow::{bail, Context as _};

use crate::{cmd, setup};

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
    /// Extra arguments for the test binaries (after `--`), e.g. a filter.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

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
    setup::run(&setup::Args { check: false })?;
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
