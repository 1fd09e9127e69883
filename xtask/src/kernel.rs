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

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{
    cmd::{self, root},
    guest_check::{self, CheckRun},
};

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

/// The private apt configuration: its own sources (the matrix's suites),
/// lists and cache, under the kernel cache.
fn apt(cmd_name: &str) -> anyhow::Result<Command> {
    let dir = cache_dir().join("apt");
    for sub in ["lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let sources = dir.join("sources.list");
    let mut text = String::from("# The kernel matrix's suites (written by `cargo xtask setup`).\n");
    for k in KERNELS {
        for suite in k.suites {
            let archive = if suite.ends_with("-security") {
                "http://deb.debian.org/debian-security"
            } else {
                "http://deb.debian.org/debian"
            };
            text.push_str(&format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {archive} {suite} main\n"
            ));
        }
    }
    fs::write(&sources, text)?;
    let mut c = Command::new(cmd_name);
    c.arg(format!("-oDir::Etc::SourceList={}", sources.display()))
        .arg("-oDir::Etc::SourceParts=/nonexistent")
        .arg(format!(
            "-oDir::State::Lists={}",
            dir.join("lists").display()
        ))
        .arg(format!("-oDir::Cache={}", dir.join("cache").display()))
        .arg("-oDir::State::status=/dev/null")
        .arg("-oAcquire::Languages=none")
        .arg("-oAPT::Sandbox::User=root")
        .arg("-oDebug::NoLocking=true");
    Ok(c)
}

/// Fetches and unpacks every kernel of the matrix that is not cached yet.
pub fn ensure_kernels() -> anyhow::Result<()> {
    let missing: Vec<&Kernel> = KERNELS.iter().filter(|k| cached(k).is_none()).collect();
    for k in KERNELS {
        if let Some(c) = cached(k) {
            eprintln!(
                "setup: kernel {} ({}): cached ({})",
                k.name, c.release, c.package
            );
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "setup: kernels {}: fetching Debian's packages (about 80 MB each) into {}",
            missing
                .iter()
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", "),
            cache_dir().join("kernels").display()
        );
        cmd::run(apt("apt-get")?.args(["update", "-qq"]))?;
        for k in missing {
            fetch(k)?;
        }
    }
    for k in KERNELS {
        let c = cached(k).with_context(|| format!("kernel {} was not unpacked", k.name))?;
        link_modules(&c)?;
    }
    Ok(())
}

/// Finds, downloads, unpacks and indexes one kernel.
fn fetch(k: &Kernel) -> anyhow::Result<()> {
    // `apt-cache show linux-image-amd64`: one stanza per version; the meta
    // package depends on the versioned image package.
    let show = cmd::stdout(apt("apt-cache")?.args(["show", "linux-image-amd64"]))
        .context("apt-cache show linux-image-amd64")?;
    let mut best: Option<(String, String)> = None;
    for stanza in show.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let (Some(version), Some(depends)) = (field("Version:"), field("Depends:")) else {
            continue;
        };
        if !version.starts_with(k.version_prefix) {
            continue;
        }
        let newer = match &best {
            None => true,
            Some((v, _)) => {
                cmd::succeeds(Command::new("dpkg").args(["--compare-versions", &version, "gt", v]))
            }
        };
        if newer {
            best = Some((version, depends));
        }
    }
    let Some((version, depends)) = best else {
        bail!(
            "no linux-image-amd64 {}* in {}: has Debian moved the suite?",
            k.version_prefix,
            k.suites.join(", ")
        );
    };
    // "linux-image-5.10.0-46-amd64 (= 5.10.262-1)"
    let image = depends
        .split(',')
        .map(str::trim)
        .find(|d| d.starts_with("linux-image-"))
        .and_then(|d| d.split_whitespace().next())
        .with_context(|| format!("linux-image-amd64 {version} depends on no image: {depends}"))?
        .to_string();
    let release = image
        .strip_prefix("linux-image-")
        .expect("starts with linux-image-")
        .to_string();
    let dir = kernel_dir(k);
    let download = cache_dir().join("debs");
    fs::create_dir_all(&download)?;
    eprintln!("setup: kernel {}: downloading {image} {version}", k.name);
    cmd::run(
        apt("apt-get")?
            .current_dir(&download)
            .args(["download", "-qq"])
            .arg(format!("{image}={version}")),
    )?;
    let deb = fs::read_dir(&download)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{image}_")) && n.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get download left no {image} .deb"))?;
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    eprintln!("setup: kernel {}: unpacking {}", k.name, deb.display());
    cmd::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("root")),
    )?;
    // Debian installs modules under /lib/modules; newer packages may use
    // /usr/lib/modules.
    if !dir.join("root/lib/modules").exists() && dir.join("root/usr/lib/modules").exists() {
        fs::create_dir_all(dir.join("root/lib"))?;
        std::os::unix::fs::symlink("../usr/lib/modules", dir.join("root/lib/modules"))?;
    }
    cmd::run(
        Command::new("depmod")
            .arg("-b")
            .arg(dir.join("root"))
            .arg(&release),
    )?;
    fs::remove_file(&deb)?;
    // Written last: a cache entry with these files is complete.
    fs::write(dir.join("package"), format!("{image} {version}\n"))?;
    fs::write(dir.join("release"), format!("{release}\n"))?;
    Ok(())
}

/// virtme-ng loads the guest's modules from `/lib/modules/RELEASE` of the
/// filesystem it shares: link the cached ones there.
fn link_modules(c: &Cached) -> anyhow::Result<()> {
    let target = kernel_dir(&c.kernel)
        .join("root/lib/modules")
        .join(&c.release);
    let link = Path::new("/lib/modules").join(&c.release);
    match fs::read_link(&link) {
        Ok(t) if t == target => return Ok(()),
        Ok(_) => {
            eprintln!(
                "setup: {} pointed elsewhere; pointing it at the cached modules",
                link.display()
            );
            fs::remove_file(&link)?;
        }
        Err(_) if link.exists() => {
            // A kernel with this very release is installed here: its own
            // modules serve as well.
            eprintln!(
                "setup: {} is an installed kernel's; the matrix uses those modules",
                link.display()
            );
            return Ok(());
        }
        Err(_) => {}
    }
    eprintln!(
        "setup: linking {} -> {} (virtme-ng loads the guest's modules from there)",
        link.display(),
        target.display()
    );
    fs::create_dir_all("/lib/modules")?;
    std::os::unix::fs::symlink(&target, &link)
        .with_context(|| format!("linking {}", link.display()))
}

/// What one layer did inside one kernel.
pub struct LayerRun {
    pub layer: &'static str,
    pub passed: u32,
    pub failed: u32,
    pub took: Duration,
    /// Did the binary exit 0?
    pub ok: bool,
    /// Why it did not, in a few words.
    pub why: Option<String>,
    /// The guest's CPU seconds in user space and in the kernel, summed
    /// over its CPUs.
    pub cpu: Option<(f64, f64)>,
}

/// What one kernel did.
pub struct KernelRun {
    pub kernel: Kernel,
    pub release: String,
    pub layers: Vec<LayerRun>,
    /// `rstguard check` inside the guest.
    pub check: Option<CheckRun>,
    pub took: Duration,
    /// The boot or the run failed before the layers could report.
    pub error: Option<String>,
}

/// Seconds one layer may run inside a guest before it is stopped.
const LAYER_TIMEOUT_SECS: u64 = 1800;

/// How much slower than the host a wall-clock rate may come out under TCG:
/// tests that measure rates wait this many times longer, and assert the
/// same thing (`RSTGUARD_TEST_TIME_SCALE`, read by the tests).
pub const TCG_TIME_SCALE: u32 = 4;

/// Boots `c`, runs `rstguard check` (the `rstguard` binary given) and then
/// `binaries` (layer name, path, arguments) inside, one after the other;
/// their output goes to `out_dir/LAYER.log`.
pub fn run_in(
    c: &Cached,
    rstguard: &Path,
    binaries: &[(&'static str, PathBuf)],
    test_args: &dyn Fn(&str) -> Vec<String>,
    out_dir: &Path,
) -> KernelRun {
    let start = Instant::now();
    let mut run = KernelRun {
        kernel: c.kernel,
        release: c.release.clone(),
        layers: Vec::new(),
        check: None,
        took: Duration::ZERO,
        error: None,
    };
    if let Err(e) = boot_and_run(c, rstguard, binaries, test_args, out_dir, &mut run) {
        run.error = Some(format!("{e:#}"));
    }
    run.took = start.elapsed();
    run
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn boot_and_run(
    c: &Cached,
    rstguard: &Path,
    binaries: &[(&'static str, PathBuf)],
    test_args: &dyn Fn(&str) -> Vec<String>,
    out: &Path,
    run: &mut KernelRun,
) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out)?;
    // The guest script: a BPF filesystem (the lab mounts private ones per
    // test too), then each layer with a timeout, its output and exit code
    // in the shared directory, its start and end on the console.
    // /dev/net/tun appears only once its module is loaded (the legacy
    // peer's TAP device), and nothing in the guest loads it on demand.
    let mut script = String::from(
        "set -u\nmount -t bpf bpf /sys/fs/bpf 2>/dev/null\nmkdir -p /run/netns\n\
         modprobe -q tun || true\n",
    );
    script.push_str(&format!(
        "export RSTGUARD_TEST_TIME_SCALE={TCG_TIME_SCALE} LOGS_DIRECTORY={out} RUST_BACKTRACE=1\n",
        out = shell_quote(&out.to_string_lossy())
    ));
    // The real CLI's preflight first, and one attach: what they say about
    // this kernel (see guest_check.rs); no layers when it cannot attach.
    let check_sh = out.join("check.sh");
    fs::write(
        &check_sh,
        guest_check::namespace_script(
            &shell_quote(&rstguard.to_string_lossy()),
            &shell_quote(&out.to_string_lossy()),
        ),
    )?;
    script.push_str("echo \"rstguard-matrix: check start $(date +%s)\"\n");
    script.push_str(&guest_check::script(
        &shell_quote(&check_sh.to_string_lossy()),
        &shell_quote(&out.to_string_lossy()),
    ));
    for (layer, bin) in binaries {
        let args: Vec<String> = test_args(layer).iter().map(|a| shell_quote(a)).collect();
        let log = out.join(format!("{layer}.log"));
        let rc = out.join(format!("{layer}.rc"));
        // The guest's CPU time in the layer's user space and in its kernel
        // (where the verifier runs): where the emulated time goes.
        let time = out.join(format!("{layer}.time"));
        script.push_str(&format!(
            "echo \"rstguard-matrix: {layer} start $(date +%s)\"\n\
             TIMEFORMAT='%U %S'\n\
             {{ time timeout -k 10 {LAYER_TIMEOUT_SECS} {bin} {args} > {log} 2>&1; echo $? > {rc}; }} 2> {time}\n\
             echo \"rstguard-matrix: {layer} end $(date +%s)\"\n",
            bin = shell_quote(&bin.to_string_lossy()),
            args = args.join(" "),
            log = shell_quote(&log.to_string_lossy()),
            rc = shell_quote(&rc.to_string_lossy()),
            time = shell_quote(&time.to_string_lossy()),
        ));
    }
    let script_path = out.join("run.sh");
    fs::write(&script_path, script)?;

    let console = out.join("console.log");
    // vng runs its siblings (virtme-run) through PATH: put its venv first.
    let path = format!(
        "{}:{}",
        venv_dir().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(vng())
        .env("PATH", path)
        .arg("-r")
        .arg(&c.vmlinuz)
        .args(["--disable-kvm", "--cpus", "2", "--memory", "3G"])
        .arg("--rwdir")
        .arg(out)
        .arg("--cwd")
        .arg(root())
        .arg("--exec")
        .arg(format!(
            "bash {}",
            shell_quote(&script_path.to_string_lossy())
        ))
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(fs::File::create(out.join("vng.stderr"))?))
        .spawn()
        .context("starting vng (run `cargo xtask setup`)")?;
    let mut console_file = fs::File::create(&console)?;
    let stdout = child.stdout.take().expect("piped");
    let mut layer_start: Option<Instant> = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        use std::io::Write as _;
        writeln!(console_file, "{line}")?;
        let Some(rest) = line.trim().strip_prefix("rstguard-matrix: ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(layer), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        match (layer, what) {
            ("check", "start") => {}
            ("check", "end") => {
                let check = guest_check::read(c.kernel.name, out);
                eprintln!(
                    "  {} rstguard check: {}",
                    c.kernel.name,
                    if check.ok {
                        check.summary.clone()
                    } else {
                        format!("FAILED: {}", check.summary)
                    }
                );
                for l in &check.lines {
                    eprintln!("    {l}");
                }
                run.check = Some(check);
            }
            (_, "start") => {
                eprintln!("  {} {layer}: running", c.kernel.name);
                layer_start = Some(Instant::now());
            }
            (_, "end") => {
                let took = layer_start.take().map_or(Duration::ZERO, |s| s.elapsed());
                let layer = binaries
                    .iter()
                    .map(|(l, _)| *l)
                    .find(|l| *l == layer)
                    .unwrap_or("?");
                let r = layer_result(layer, out, took);
                eprintln!(
                    "  {} {layer}: {} passed, {} failed, {:.0} s{}{}",
                    c.kernel.name,
                    r.passed,
                    r.failed,
                    took.as_secs_f64(),
                    r.cpu
                        .map(|(u, s)| format!(" (guest CPU: {u:.0} s user, {s:.0} s kernel)"))
                        .unwrap_or_default(),
                    r.why
                        .as_deref()
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default()
                );
                run.layers.push(r);
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    if let Some(c) = run.check.as_ref().filter(|c| !c.attached) {
        bail!("{}", c.summary);
    }
    if run.check.is_none() || run.layers.len() < binaries.len() {
        bail!(
            "the guest stopped before every layer ran (vng: {status}; see {} and {})",
            console.display(),
            out.join("vng.stderr").display()
        );
    }
    Ok(())
}

/// Reads a layer's log: libtest's totals and the exit code.
fn layer_result(layer: &'static str, out: &Path, took: Duration) -> LayerRun {
    let log = fs::read_to_string(out.join(format!("{layer}.log"))).unwrap_or_default();
    let rc: Option<i32> = fs::read_to_string(out.join(format!("{layer}.rc")))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let (mut passed, mut failed) = (0, 0);
    for line in log.lines() {
        // "test result: ok. 28 passed; 1 failed; 0 ignored; ..."
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split([';', '.']) {
                let mut w = part.split_whitespace();
                match (w.next().and_then(|n| n.parse::<u32>().ok()), w.next()) {
                    (Some(n), Some("passed")) => passed += n,
                    (Some(n), Some("failed")) => failed += n,
                    _ => {}
                }
            }
        }
    }
    let why = match rc {
        Some(0) => None,
        Some(124) | Some(137) => Some(format!("timed out after {LAYER_TIMEOUT_SECS} s")),
        Some(rc) => Some(format!(
            "exit {rc}; see {}",
            out.join(format!("{layer}.log")).display()
        )),
        None => Some("no exit code".to_string()),
    };
    let cpu = fs::read_to_string(out.join(format!("{layer}.time")))
        .ok()
        .and_then(|t| {
            let mut w = t.split_whitespace().map(|v| v.parse::<f64>().ok());
            Some((w.next()??, w.next()??))
        });
    LayerRun {
        layer,
        passed,
        failed,
        took,
        ok: rc == Some(0),
        why,
        cpu,
    }
}
