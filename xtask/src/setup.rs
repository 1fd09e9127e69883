//! `cargo xtask setup`: checks each prerequisite and installs what is
//! missing, saying what it does. Where it cannot install (not root, no
//! apt-get), it prints the exact manual steps and fails.

use std::process::Command;

use anyhow::{bail, Context as _};

use crate::{
    cmd::{self, is_root, stdout, succeeds},
    kernel,
};

#[derive(clap::Args)]
pub struct Args {
    /// Only check; install nothing.
    #[arg(long)]
    pub check: bool,
    /// Leave out what only the kernel matrix (`cargo xtask test --kernel`)
    /// needs: QEMU, virtme-ng and the kernels.
    #[arg(long)]
    pub no_kernel_matrix: bool,
}

impl Args {
    /// What building, running and the host's own test layers need.
    pub fn without_matrix() -> Args {
        Args {
            check: false,
            no_kernel_matrix: true,
        }
    }
}

/// System commands the tests and the lab use, and the Debian package of each.
const SYSTEM_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("nstat", "iproute2"),
    ("nft", "nftables"),
    ("mount", "mount"),
];

/// The bpf-linker release this project builds with.
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut apt_updated = false;
    let mut missing_manual: Vec<String> = Vec::new();

    // 1. The nightly toolchain (only the installed one exists here).
    if !succeeds(Command::new("rustc").args(["+nightly", "--version"])) {
        bail!(
            "no nightly Rust toolchain: the eBPF crate needs one. Install it with \
             `rustup toolchain install nightly --profile minimal --component rust-src`"
        );
    }

    // 2. rust-src for nightly (build-std=core for the bpf target).
    let installed = stdout(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("setup: rust-src for nightly: present");
    } else if args.check {
        missing_manual.push("rustup component add rust-src --toolchain nightly".into());
    } else {
        eprintln!("setup: rust-src for nightly: missing, installing");
        cmd::run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }

    // 3. bpf-linker built against nightly's LLVM major.
    let major = nightly_llvm_major()?;
    match linker_llvm_major() {
        Some(m) if m == major => eprintln!("setup: bpf-linker (LLVM {m}): present"),
        found => {
            let why = match found {
                Some(m) => format!("built against LLVM {m}, nightly uses LLVM {major}"),
                None => "missing".to_string(),
            };
            let pkgs = [
                format!("llvm-{major}-dev"),
                format!("libpolly-{major}-dev"),
                "libzstd-dev".to_string(),
            ];
            let install = format!(
                "LLVM_PREFIX=/usr/lib/llvm-{major} cargo install bpf-linker --version {BPF_LINKER_VERSION} \
                 --locked --force --no-default-features --features llvm-{major}"
            );
            if args.check {
                missing_manual.push(format!("apt-get install -y {}", pkgs.join(" ")));
                missing_manual.push(install);
            } else {
                eprintln!("setup: bpf-linker: {why}; installing LLVM {major} and building it (a minute or two)");
                apt_install(&pkgs, &mut apt_updated, &mut missing_manual)?;
                if missing_manual.is_empty() {
                    cmd::run(
                        cmd::cargo()
                            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{major}"))
                            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
                            .args(["--locked", "--force", "--no-default-features", "--features"])
                            .arg(format!("llvm-{major}")),
                    )?;
                } else {
                    missing_manual.push(install);
                }
            }
        }
    }

    // 4. System tools.
    let mut pkgs: Vec<String> = Vec::new();
    for (tool, pkg) in SYSTEM_TOOLS {
        if which::which(tool).is_ok() || which::which(format!("/usr/sbin/{tool}")).is_ok() {
            continue;
        }
        eprintln!("setup: {tool}: missing (package {pkg})");
        if !pkgs.iter().any(|p| p == pkg) {
            pkgs.push(pkg.to_string());
        }
    }
    if pkgs.is_empty() {
        eprintln!("setup: system tools ({}): present", tool_names());
    } else if args.check {
        missing_manual.push(format!("apt-get install -y {}", pkgs.join(" ")));
    } else {
        apt_install(&pkgs, &mut apt_updated, &mut missing_manual)?;
    }

    // 5. The kernel matrix: QEMU and friends, virtme-ng, the kernels.
    if !args.no_kernel_matrix {
        let mut pkgs: Vec<String> = Vec::new();
        for (path, pkg) in kernel::HOST_PACKAGES {
            if !std::path::Path::new(path).exists() {
                eprintln!("setup: {path}: missing (package {pkg})");
                pkgs.push(pkg.to_string());
            }
        }
        if which::which("python3").is_err() {
            pkgs.push("python3".into());
        }
        if !succeeds(Command::new("python3").args(["-c", "import venv, ensurepip"])) {
            pkgs.push("python3-venv".into());
        }
        if pkgs.is_empty() {
            eprintln!("setup: kernel matrix tools (QEMU, busybox, udev, kmod): present");
        } else if args.check {
            missing_manual.push(format!("apt-get install -y {}", pkgs.join(" ")));
        } else {
            apt_install(&pkgs, &mut apt_updated, &mut missing_manual)?;
        }
        if args.check {
            if !kernel::vng().exists() {
                missing_manual
                    .push("cargo xtask setup   # installs virtme-ng for the kernel matrix".into());
            }
            for k in kernel::KERNELS {
                if kernel::cached(k).is_none() {
                    missing_manual.push(format!(
                        "cargo xtask setup   # fetches kernel {} for the matrix",
                        k.name
                    ));
                }
            }
            missing_manual.dedup();
        } else if missing_manual.is_empty() {
            if !is_root() {
                missing_manual.push(
                    "sudo -E cargo xtask setup   # the kernel matrix links modules under /lib/modules".into(),
                );
            } else {
                kernel::ensure_virtme_ng()?;
                kernel::ensure_kernels()?;
            }
        }
    }

    if !missing_manual.is_empty() {
        eprintln!("setup: these steps are needed and were not done here; run them by hand:");
        for step in &missing_manual {
            eprintln!("    {step}");
        }
        bail!("setup is incomplete");
    }
    eprintln!("setup: everything is in place");
    Ok(())
}

fn tool_names() -> String {
    SYSTEM_TOOLS
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The LLVM major version the nightly compiler uses ("LLVM version: 22.1.4").
fn nightly_llvm_major() -> anyhow::Result<u32> {
    let vv = stdout(Command::new("rustc").args(["+nightly", "-vV"]))
        .context("running `rustc +nightly -vV`")?;
    vv.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse().ok())
        .context("`rustc +nightly -vV` shows no LLVM version")
}

/// The LLVM major the installed bpf-linker is linked against, from the
/// shared library it loads (libLLVM.so.22.1 -> 22).
fn linker_llvm_major() -> Option<u32> {
    let path = which::which("bpf-linker").ok()?;
    let ldd = stdout(Command::new("ldd").arg(&path))?;
    ldd.lines().find_map(|l| {
        let l = l.trim();
        let rest = l
            .strip_prefix("libLLVM.so.")
            .or_else(|| l.strip_prefix("libLLVM-"))?;
        rest.split(['.', ' ']).next()?.parse().ok()
    })
}

/// apt-get install, running `apt-get update` once first. Without root or
/// apt-get, records the manual step instead.
pub(crate) fn apt_install(
    pkgs: &[String],
    updated: &mut bool,
    manual: &mut Vec<String>,
) -> anyhow::Result<()> {
    let line = format!("apt-get update && apt-get install -y {}", pkgs.join(" "));
    if !is_root() || which::which("apt-get").is_err() {
        manual.push(if is_root() {
            line
        } else {
            format!("sudo sh -c '{line}'")
        });
        return Ok(());
    }
    if !*updated {
        cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
        *updated = true;
    }
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(pkgs),
    )
}
