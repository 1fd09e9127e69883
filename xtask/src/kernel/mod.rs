//! The kernel matrix: Debian's kernels for 5.10, 6.1 and 6.12, fetched and
//! cached by `cargo xtask setup`, booted with virtme-ng over this machine's
//! own filesystem, with the packet and network test binaries (built once,
//! here) run inside each.
//!
//! Each kernel is Debian's `linux-image-amd64` from one suite: bullseye for
//! 5.10 (Debian 11), bookworm for 6.1 (Debian 12), bookworm-backports for
//! 6.12. All are built with BTF. The packages are fetched with `apt-get
//! download` through a private apt configuration under the cache directory
//! (this machine's own apt sources are left alone), unpacked with
//! `dpkg-deb -x`, and their modules indexed with `depmod -b`; virtme-ng
//! finds the modules under `/lib/modules/VERSION`, where setup links them.
//!
//! QEMU runs under TCG (`--disable-kvm`): on these machines `/dev/kvm`
//! exists but a nested guest hangs at boot. Slower, but it works everywhere.

use std::{fs, path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::cmd;

mod boot;
mod fetch;

pub use boot::run_in;
pub use fetch::ensure_kernels;

/// One kernel of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Its name on the command line and in the summary.
    pub name: &'static str,
    /// The Debian suites that carry it (the newest version in them wins).
    suites: &'static [&'static str],
    /// Debian's version of `linux-image-amd64` starts with this.
    version_prefix: &'static str,
    /// Who runs it.
    pub distro: &'static str,
}

pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "5.10",
        suites: &["bullseye", "bullseye-security"],
        version_prefix: "5.10.",
        distro: "Debian 11",
    },
    Kernel {
        name: "6.1",
        suites: &["bookworm", "bookworm-security"],
        version_prefix: "6.1.",
        distro: "Debian 12",
    },
    Kernel {
        name: "6.12",
        suites: &["bookworm-backports"],
        version_prefix: "6.12.",
        distro: "Debian 12 backports",
    },
];

/// The virtme-ng release the matrix runs with (a PyPI package).
pub const VIRTME_NG_VERSION: &str = "1.42";

/// Debian packages the matrix needs on the host: QEMU, a static busybox
/// (virtme-ng's initramfs), udev (virtme-ng's guest init names the
/// virtio-serial ports for the command's output with it), kmod (depmod),
/// and Python's venv for virtme-ng.
pub const HOST_PACKAGES: &[(&str, &str)] = &[
    ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
    ("/bin/busybox", "busybox-static"),
    ("/lib/systemd/systemd-udevd", "udev"),
    ("/usr/sbin/depmod", "kmod"),
    ("/usr/bin/dpkg-deb", "dpkg"),
    // The virtio-net benchmark's guest sets its NIC's queues with it.
    ("/usr/sbin/ethtool", "ethtool"),
];

/// Where kernels and virtme-ng are cached: `RSTGUARD_KERNEL_CACHE`, else
/// `$XDG_CACHE_HOME/rstguard` or `~/.cache/rstguard` (shared by every
/// checkout on the machine).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RSTGUARD_KERNEL_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("rstguard")
}

fn venv_dir() -> PathBuf {
    cache_dir().join(format!("virtme-ng-{VIRTME_NG_VERSION}"))
}

/// The `vng` command of the cached virtme-ng.
pub fn vng() -> PathBuf {
    venv_dir().join("bin/vng")
}

/// Installs virtme-ng into its own virtual environment under the cache
/// (nothing is installed into the system's Python).
pub fn ensure_virtme_ng() -> anyhow::Result<()> {
    if cmd::stdout(Command::new(vng()).arg("--version"))
        .is_some_and(|v| v.contains(VIRTME_NG_VERSION))
    {
        eprintln!(
            "setup: virtme-ng {VIRTME_NG_VERSION}: present ({})",
            vng().display()
        );
        return Ok(());
    }
    eprintln!(
        "setup: virtme-ng {VIRTME_NG_VERSION}: missing, installing it from PyPI into {}",
        venv_dir().display()
    );
    fs::create_dir_all(cache_dir())?;
    cmd::run(
        Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(venv_dir()),
    )
    .context("creating a Python venv for virtme-ng (on Debian: apt-get install python3-venv)")?;
    cmd::run(
        Command::new(venv_dir().join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("virtme-ng=={VIRTME_NG_VERSION}")),
    )
}

/// A kernel unpacked in the cache.
pub struct Cached {
    pub kernel: Kernel,
    /// `uname -r` inside it, e.g. `5.10.0-46-amd64`.
    pub release: String,
    /// The Debian package and version it came from.
    pub package: String,
    pub vmlinuz: PathBuf,
}

fn kernel_dir(k: &Kernel) -> PathBuf {
    cache_dir().join("kernels").join(k.name)
}

/// The cached kernel, if setup fetched it.
pub fn cached(k: &Kernel) -> Option<Cached> {
    let dir = kernel_dir(k);
    let release = fs::read_to_string(dir.join("release")).ok()?;
    let package = fs::read_to_string(dir.join("package")).ok()?;
    let release = release.trim().to_string();
    let vmlinuz = dir.join("root/boot").join(format!("vmlinuz-{release}"));
    vmlinuz.exists().then(|| Cached {
        kernel: *k,
        release,
        package: package.trim().to_string(),
        vmlinuz,
    })
}
