//! Builds the eBPF object (the `rstguard-ebpf` crate) with aya-build, for
//! `include_bytes_aligned!` in `src/ebpf.rs`. Set `AYA_BUILD_SKIP=1` to skip
//! it (for `cargo check` or clippy without nightly): the binary then embeds
//! an empty object and says so when asked to load it.

use std::{env, fs, path::PathBuf};

use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        fs::write(out_dir.join("rstguard"), []).context("writing the empty eBPF stand-in")?;
        fs::write(out_dir.join("rstguard-socket"), [])
            .context("writing the empty eBPF stand-in")?;
        return Ok(());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ebpf_dir = root
        .parent()
        .ok_or_else(|| anyhow!("rstguard/ has no parent directory"))?
        .join("rstguard-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    // aya-build relays every line the nested cargo prints to stderr as a
    // build warning; keep that to real diagnostics.
    env::set_var("CARGO_TERM_QUIET", "true");
    // The programs use rstguard-common too: rebuild when it changes.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("../rstguard-common").display()
    );
    aya_build::build_ebpf(
        [Package {
            name: "rstguard-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF programs (run `cargo xtask setup` if nightly, rust-src or bpf-linker is missing)")
}
