//! `cargo xtask package`: the static binary (musl), the .deb (cargo-deb),
//! and the OCI image `FROM scratch` (podman); with `--test`, the package
//! tests (`rstguard/tests/package`): the .deb installed into a throwaway
//! root and its unit's command line run with the unit's capabilities, the
//! image run as the Kubernetes DaemonSet runs it. Installs what it needs
//! (the musl target, cargo-deb, podman and runc), saying so.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{bail, Context as _};

use crate::{
    cmd::{self, is_root, root, stdout, succeeds},
    setup, test,
};

/// The static target: the .deb then depends on nothing and installs on any
/// Debian or Ubuntu release, and the same binary runs in an empty image.
pub const MUSL: &str = "x86_64-unknown-linux-musl";
const CARGO_DEB_VERSION: &str = "3.8.0";
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(clap::Args)]
pub struct Args {
    /// Then run the package tests (root; namespaces and podman).
    #[arg(long)]
    pub test: bool,
    /// Build no OCI image (and leave its test out).
    #[arg(long)]
    pub no_image: bool,
}

pub fn image_name() -> String {
    format!("localhost/rstguard:{VERSION}")
}

fn out_dir() -> PathBuf {
    root().join("target/package")
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    setup::run(&setup::Args::without_matrix())?;
    ensure_musl_target()?;
    ensure_cargo_deb()?;
    let deb = build_deb()?;
    eprintln!("package: {}", deb.display());
    let image = if args.no_image {
        None
    } else {
        ensure_podman()?;
        Some(build_image()?)
    };
    if args.test {
        run_tests(&deb, image.as_deref())?;
    }
    Ok(())
}

fn ensure_musl_target() -> anyhow::Result<()> {
    let installed =
        stdout(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == MUSL) {
        return Ok(());
    }
    eprintln!("package: the {MUSL} target is missing; adding it");
    cmd::run(Command::new("rustup").args(["target", "add", MUSL]))
}

fn ensure_cargo_deb() -> anyhow::Result<()> {
    let v = stdout(cmd::cargo().args(["deb", "--version"])).unwrap_or_default();
    if v.contains(CARGO_DEB_VERSION) {
        return Ok(());
    }
    eprintln!("package: cargo-deb {CARGO_DEB_VERSION} is missing; installing it");
    cmd::run(cmd::cargo().args([
        "install",
        "cargo-deb",
        "--version",
        CARGO_DEB_VERSION,
        "--locked",
    ]))
}

fn ensure_podman() -> anyhow::Result<()> {
    // runc: crun refuses hosts with cgroups in hybrid (v1 + v2) mode.
    let missing: Vec<String> = ["podman", "runc"]
        .iter()
        .filter(|t| which::which(t).is_err() && which::which(format!("/usr/sbin/{t}")).is_err())
        .map(|t| t.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("package: {} missing; installing", missing.join(", "));
    let mut updated = false;
    let mut manual = Vec::new();
    setup::apt_install(&missing, &mut updated, &mut manual)?;
    if !manual.is_empty() {
        bail!(
            "cannot build the OCI image without {}: {} (or `cargo xtask package --no-image`)",
            missing.join(", "),
            manual.join("; ")
        );
    }
    Ok(())
}

/// Builds the static binary and the .deb; returns the .deb's path.
fn build_deb() -> anyhow::Result<PathBuf> {
    let out = out_dir();
    fs::create_dir_all(&out)?;
    let mut c = cmd::cargo();
    c.args(["deb", "-p", "rstguard", "--target", MUSL, "--output"])
        .arg(&out);
    eprintln!("+ {}", cmd::show(&c));
    let o = c
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo deb")?;
    if !o.status.success() {
        bail!("`{}` failed ({})", cmd::show(&c), o.status);
    }
    let path = String::from_utf8_lossy(&o.stdout)
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .context("cargo deb printed no .deb path")?;
    Ok(path)
}

fn static_binary() -> PathBuf {
    root().join(format!("target/{MUSL}/release/rstguard"))
}

/// Builds the image from packaging/Containerfile and saves it as an OCI
/// archive; returns the image's name.
fn archive() -> PathBuf {
    out_dir().join(format!("rstguard-{VERSION}.oci.tar"))
}

fn build_image() -> anyhow::Result<String> {
    let ctx = out_dir().join("image");
    let _ = fs::remove_dir_all(&ctx);
    fs::create_dir_all(&ctx)?;
    fs::copy(static_binary(), ctx.join("rstguard")).context("copying the static binary")?;
    let name = image_name();
    cmd::run(
        Command::new("podman")
            .args(["build", "--network", "none", "--file"])
            .arg(root().join("packaging/Containerfile"))
            .args(["--tag", &name])
            .args([
                "--label",
                &format!("org.opencontainers.image.version={VERSION}"),
            ])
            .args(["--label", "org.opencontainers.image.title=rstguard"])
            .arg(&ctx),
    )?;
    let archive = archive();
    let _ = fs::remove_file(&archive);
    cmd::run(
        Command::new("podman")
            .args(["save", "--format", "oci-archive", "--output"])
            .arg(&archive)
            .arg(&name),
    )?;
    eprintln!("package: image {name}, saved as {}", archive.display());
    Ok(name)
}

fn run_tests(deb: &std::path::Path, image: Option<&str>) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the package tests install into a throwaway root, create namespaces and run podman: run `sudo -E cargo xtask package --test`");
    }
    if !succeeds(Command::new("setpriv").arg("--version")) {
        bail!("the package tests need setpriv (util-linux)");
    }
    let _turn = test::network_lock()?;
    let mut c = cmd::cargo();
    c.args([
        "test",
        "-p",
        "rstguard",
        "--features",
        "privileged-tests",
        "--test",
        "package",
    ])
    .env("RSTGUARD_DEB", deb);
    match image {
        Some(i) => {
            c.env("RSTGUARD_IMAGE", i)
                .env("RSTGUARD_IMAGE_ARCHIVE", archive());
        }
        None => {
            eprintln!("package: no image (--no-image): its test is left out");
            c.args(["--", "--skip", "image"]);
        }
    }
    cmd::run(&mut c)
}
