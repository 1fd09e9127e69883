//! Builds the benchmark object (the `rstguard-bench` binary of the
//! `rstguard-ebpf` crate: rstguard's programs and the baselines they are
//! measured against) with aya-build, for `include_bytes_aligned!`.

use std::{env, path::PathBuf};

use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // As rstguard's own build.rs: AYA_BUILD_SKIP=1 (clippy without nightly)
    // embeds an empty object.
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        let out = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
        std::fs::write(out.join("rstguard-bench"), []).context("writing the empty stand-in")?;
        return Ok(());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let parent = root
        .parent()
        .ok_or_else(|| anyhow!("rstguard-bench/ has no parent directory"))?;
    let ebpf_dir = parent.join("rstguard-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    env::set_var("CARGO_TERM_QUIET", "true");
    println!(
        "cargo:rerun-if-changed={}",
        parent.join("rstguard-common").display()
    );
    aya_build::build_ebpf(
        [Package {
            name: "rstguard-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF programs (run `cargo xtask setup`)")
}
