//! Every filesystem path rstguard uses, and the BPF filesystem under them.
//!
//! Maps are pinned under `<pin root>/schema-N/` (N = `status::SCHEMA`), so a
//! binary with another map layout never reuses them. The daemon holds an
//! exclusive `flock` on that directory while it runs: a second daemon with
//! the same pin root is refused.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
};

use nix::{
    fcntl::{Flock, FlockArg},
    mount::{mount, MsFlags},
    sys::statfs::{statfs, BPF_FS_MAGIC},
};
use rstguard_common::{layout, status::SCHEMA};

use crate::error::Error;

/// Where maps are pinned unless `--pin-dir` says otherwise.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/rstguard";
/// Where the BPF filesystem is mounted by convention.
pub const BPFFS: &str = "/sys/fs/bpf";
/// The configuration file read when `--config` is not given (optional).
pub const DEFAULT_CONFIG: &str = "/etc/rstguard/rstguard.toml";

/// Where the full verifier log goes when the kernel rejects a program: the
/// first of these that takes it. `LOGS_DIRECTORY` is systemd's
/// `LogsDirectory=` (writable under `ProtectSystem=strict`).
fn verifier_log_candidates(program: &str) -> Vec<PathBuf> {
    let name = format!("rstguard-verifier-{program}.log");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("LOGS_DIRECTORY") {
        if let Some(first) = d.to_string_lossy().split(':').next() {
            dirs.push(PathBuf::from(first));
        }
    }
    dirs.push(PathBuf::from("/var/log/rstguard"));
    dirs.push(std::env::temp_dir());
    dirs.into_iter().map(|d| d.join(&name)).collect()
}

/// Writes a verifier log; the path it went to, or why it went nowhere.
pub fn write_verifier_log(program: &str, log: &str) -> Result<PathBuf, String> {
    let mut why = Vec::new();
    for path in verifier_log_candidates(program) {
        let written = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::write(&path, log));
        match written {
            Ok(()) => return Ok(path),
            Err(e) => why.push(format!("{}: {e}", path.display())),
        }
    }
    Err(why.join("; "))
}

/// The pin directory of one rstguard instance.
#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
}

/// The daemon's lock on its pin directory; released on drop.
pub struct PinLock {
    _lock: Flock<File>,
}

impl PinDir {
    pub fn new(root: impl Into<PathBuf>) -> PinDir {
        PinDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding this schema's pins.
    pub fn dir(&self) -> PathBuf {
        self.root.join(format!("schema-{SCHEMA}"))
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Whether a daemon (running or crashed) left pins here.
    pub fn exists(&self) -> bool {
        self.map(layout::STATUS).exists()
    }

    /// Makes sure the pin root lies on a BPF filesystem, mounting one at
    /// /sys/fs/bpf when the root is under it and nothing is mounted there
    /// (as on hosts without systemd, or in the fresh /sys that `ip netns
    /// exec` gives a process).
    pub fn ensure_bpffs(&self) -> Result<(), Error> {
        if on_bpffs(&self.root) {
            return Ok(());
        }
        let bpffs = Path::new(BPFFS);
        if self.root.starts_with(bpffs) && bpffs.is_dir() && !on_bpffs(bpffs) {
            mount(
                Some("bpf"),
                bpffs,
                Some("bpf"),
                MsFlags::empty(),
                Some("mode=0700"),
            )
            .map_err(|e| Error::Bpffs {
                path: bpffs.to_path_buf(),
                reason: format!("mounting a BPF filesystem there failed: {e}"),
            })?;
            tracing::info!(path = BPFFS, "mounted a BPF filesystem");
            if on_bpffs(&self.root) {
                return Ok(());
            }
        }
        Err(Error::Bpffs {
            path: self.root.clone(),
            reason: "it is not on a BPF filesystem; mount one (`mount -t bpf bpf DIR`) \
                     and point --pin-dir below it"
                .into(),
        })
    }

    /// Creates the pin directory and locks it for this daemon; removes the
    /// pins a crashed daemon left. Fails when another daemon holds it.
    pub fn claim(&self) -> Result<PinLock, Error> {
        self.ensure_bpffs()?;
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let file = File::open(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                Error::AlreadyRunning { dir: dir.clone() }
            } else {
                Error::io(&dir, io::Error::from(e))
            }
        })?;
        self.clear()?;
        Ok(PinLock { _lock: lock })
    }

    /// Whether a daemon holds the directory's lock right now.
    pub fn is_locked(&self) -> bool {
        let Ok(file) = File::open(self.dir()) else {
            return false;
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_unlocked_on_drop) => false,
            Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
        }
    }

    /// Removes every pin in the directory (the directory stays).
    pub fn clear(&self) -> Result<(), Error> {
        let dir = self.dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Removes the pins and the directories (the root only when empty).
    pub fn remove(&self) -> Result<(), Error> {
        self.clear()?;
        let dir = self.dir();
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let _ = fs::remove_dir(&self.root);
        Ok(())
    }
}

/// Whether `path` (or, when it does not exist yet, its nearest existing
/// ancestor) is on a BPF filesystem.
pub fn on_bpffs(path: &Path) -> bool {
    // The nearest existing ancestor decides where the path would live.
    let mut p = path;
    loop {
        if p.exists() {
            return statfs(p).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}
