//! Fetching the matrix's kernels: Debian's packages through a private apt
//! configuration, unpacked and their modules indexed and linked where
//! virtme-ng looks.

use std::{fs, path::Path, process::Command};

use anyhow::{bail, Context as _};

use super::{cache_dir, cached, kernel_dir, Cached, Kernel, KERNELS};
use crate::cmd;

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
