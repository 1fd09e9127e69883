//! Booting one kernel of the matrix under virtme-ng and running
//! `rstguard check` and the test binaries inside it.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use super::{venv_dir, vng, Cached, Kernel};
use crate::{
    cmd::root,
    guest_check::{self, CheckRun},
};

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
