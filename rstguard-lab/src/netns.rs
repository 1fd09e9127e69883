//! Network namespaces, each with a private BPF filesystem for the pins of
//! the rstguard that runs in it (tests run in parallel; each daemon gets its
//! own pin directory), and a pair of them joined by veth.

use std::{
    fs::File,
    os::fd::AsFd,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    thread::{self, JoinHandle},
};

use nix::sched::{setns, CloneFlags};

use crate::{require_root, rstguard_bin, sh};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop, with a BPF filesystem of its own
/// for the pins of the rstguard that runs in it (tests run in parallel;
/// each daemon gets its own pin directory).
pub struct Netns {
    pub name: String,
    /// Mount point of this namespace's private bpffs.
    pub bpffs: PathBuf,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = format!(
            "rgt-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let bpffs = std::env::temp_dir().join(format!("{name}-bpffs"));
        let ns = Netns { name, bpffs };
        std::fs::create_dir_all(&ns.bpffs).expect("creating the bpffs mount point");
        sh(&["mount", "-t", "bpf", "bpf", ns.bpffs.to_str().unwrap()]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The pin directory rstguard uses in this namespace.
    pub fn pin_dir(&self) -> String {
        self.bpffs.join("rstguard").display().to_string()
    }

    /// A command running `rstguard ARGS` in this namespace's network (the
    /// mount namespace stays the test's, so pins are shared with later
    /// commands), with this namespace's pin directory.
    pub fn rstguard(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{}", self.name))
            .arg(rstguard_bin())
            .args(args)
            .env("RSTGUARD_PIN_DIR", self.pin_dir());
        c
    }

    /// Runs `rstguard ARGS` to completion: (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.rstguard(args).output().expect("running rstguard");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `rstguard ARGS --json` and parses its output, which must succeed.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let (code, out, err) = self.cli(&a);
        assert_eq!(code, 0, "rstguard {args:?} failed: {err}");
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("rstguard {args:?}: bad JSON ({e}): {out}"))
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// The MAC address of `dev` in this namespace.
    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let out = self.ip(&["-o", "link", "show", dev]);
        let hex = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC address for {dev}: {out}"));
        let mut mac = [0u8; 6];
        for (b, h) in mac.iter_mut().zip(hex.split(':')) {
            *b = u8::from_str_radix(h, 16).expect("a MAC address");
        }
        mac
    }

    /// `ip netns exec NAME ARGS...`
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = PathBuf::from("/var/run/netns").join(&self.name);
        thread::spawn(move || {
            let file = File::open(&path).expect("opening the namespace");
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("entering the namespace");
            f()
        })
    }

    /// Runs `f` in this namespace and waits for it.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("the namespace thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still running in it goes first.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        // The private bpffs: lazily, in case a process that held a file on
        // it is still being reaped.
        let _ = Command::new("umount").arg("-l").arg(&self.bpffs).status();
        let _ = std::fs::remove_dir(&self.bpffs);
    }
}

/// Two namespaces joined by a veth pair: `server` (veth `s0`, 10.200.0.1,
/// fd00:200::1) and `client` (veth `c0`, 10.200.0.2, fd00:200::2).
pub struct Pair {
    pub server: Netns,
    pub client: Netns,
}

pub const SERVER4: &str = "10.200.0.1";
pub const CLIENT4: &str = "10.200.0.2";
pub const SERVER6: &str = "fd00:200::1";
pub const CLIENT6: &str = "fd00:200::2";

impl Pair {
    #[expect(
        clippy::new_without_default,
        reason = "creates network namespaces: nothing a default value should do"
    )]
    pub fn new() -> Pair {
        require_root();
        let server = Netns::new("srv");
        let client = Netns::new("cli");
        server.ip(&[
            "link",
            "add",
            "s0",
            "type",
            "veth",
            "peer",
            "name",
            "c0",
            "netns",
            &client.name,
        ]);
        for (ns, dev, v4, v6) in [
            (&server, "s0", SERVER4, SERVER6),
            (&client, "c0", CLIENT4, CLIENT6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        Pair { server, client }
    }
}

/// Removes every namespace this process created (and what runs in them):
/// for a Ctrl-C handler, when destructors will not run.
pub fn remove_all_of_this_process() {
    let prefix = format!("rgt-{}-", std::process::id());
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    for line in String::from_utf8_lossy(&list).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&prefix) {
            drop(Netns {
                name: name.to_string(),
                bpffs: std::env::temp_dir().join(format!("{name}-bpffs")),
            });
        }
    }
}
