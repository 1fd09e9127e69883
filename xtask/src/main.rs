//! `cargo xtask`: rstguard's orchestration. Setup installs what is missing,
//! run builds and starts the daemon as root, test runs every test layer,
//! lint runs rustfmt and both clippy passes.

mod cmd;
mod guest_check;
mod kernel;
mod lint;
mod package;
mod run;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test rstguard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check for and install what building and testing need: rust-src for
    /// the nightly toolchain, bpf-linker built against nightly's LLVM, and
    /// the system tools the tests use. Quick when everything is there.
    Setup(setup::Args),
    /// Build rstguard (and its eBPF object) in release mode.
    Build,
    /// Set up, build in release, and run `rstguard ARGS` as root (through
    /// `sudo -E` when not root). Without ARGS: `rstguard attach <interface
    /// of the default route> --policy monitor`, which drops nothing.
    Run(run::Args),
    /// Set up, then run every test layer: host, packet (root) and network
    /// (root); with `--kernel 5.10|6.1|6.12|all`, the packet and network
    /// layers inside those kernels under QEMU.
    Test(test::Args),
    /// rustfmt check, clippy on user space, clippy on the eBPF crate, the
    /// systemd unit (systemd-analyze verify), the Kubernetes manifests
    /// (kubernetes-validate).
    Lint,
    /// Build the packages: the static (musl) binary, the .deb (cargo-deb)
    /// and the OCI image (podman), into target/package/. `--test` then
    /// installs and runs them in namespaces (root).
    Package(package::Args),
    /// Show a blind RST attack killing a legacy TCP stack's connection, then
    /// failing with rstguard on the router (in network namespaces; root).
    Demo,
    /// Run the benchmarks (root): program cost against baselines, RST
    /// floods end to end, flow-table scale. `-- --write BENCHMARKS.md`
    /// writes the report; `-- --help` lists the options. `--native-virtio`
    /// adds the flood on a VM's virtio-net NIC with native XDP.
    Bench(run::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::run(&args),
        Command::Build => run::build(),
        Command::Run(args) => run::run(args),
        Command::Test(args) => test::run(&args),
        Command::Lint => lint::run(),
        Command::Package(args) => package::run(&args),
        Command::Demo => run::demo(),
        Command::Bench(args) => run::bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
