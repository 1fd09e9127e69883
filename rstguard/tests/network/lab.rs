//! The namespace lab: network namespaces joined by veth, code run inside a
//! namespace on a thread of its own, the real rstguard binary started in a
//! namespace, and spoofed packets from a raw socket. Everything created is
//! removed on drop, so a failing test cleans up too.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use nix::sched::{setns, CloneFlags};

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "network tests create namespaces and load eBPF programs: run them as root \
             (`sudo -E cargo xtask test`)"
        );
    }
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = format!(
            "rgt-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
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

pub fn sockaddr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port)
}

/// The path of the rstguard binary under test.
pub fn rstguard_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rstguard")
}

/// A running `rstguard attach` in a namespace, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    stdout_rx: mpsc::Receiver<String>,
    pub stdout: Vec<String>,
}

impl Daemon {
    /// Starts `rstguard ARGS` in `ns` and waits until it says it attached
    /// to every interface it was given.
    pub fn start(ns: &Netns, args: &[&str]) -> Daemon {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, rstguard_bin()])
            .args(args)
            .env("RSTGUARD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rstguard");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx_attached, rx_attached) = mpsc::channel();
        {
            let stderr = Arc::clone(&stderr);
            let pipe = child.stderr.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains(" attached") || line.contains("error") {
                        let _ = tx_attached.send(line.clone());
                    }
                    stderr.lock().unwrap().push(line);
                }
            });
        }
        let (tx, stdout_rx) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let d = Daemon {
            child: Some(child),
            stderr,
            stdout_rx,
            stdout: Vec::new(),
        };
        let want = args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .count()
            .saturating_sub(1);
        for _ in 0..want.max(1) {
            match rx_attached.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("error") => {
                    panic!("rstguard failed to start: {}", d.log())
                }
                Ok(_) => {}
                Err(_) => panic!("rstguard did not attach within 20 s: {}", d.log()),
            }
        }
        d
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit. Returns the exit
    /// code and everything printed on stdout.
    pub fn stop(&mut self) -> (i32, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Some(status) = child.try_wait().expect("waiting") {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "rstguard did not exit within 20 s of SIGTERM: {}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        // The stdout reader ends with the pipe.
        while let Ok(line) = self.stdout_rx.recv_timeout(Duration::from_secs(2)) {
            self.stdout.push(line);
        }
        (code, self.stdout.clone())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One interface's entry in a JSON report.
pub fn iface<'a>(report: &'a serde_json::Value, dev: &str) -> &'a serde_json::Value {
    report["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .find(|i| i["device"] == dev)
        .unwrap_or_else(|| panic!("no {dev} in {report}"))
}

pub fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Reads from a stream until EOF or error; returns the bytes read and the
/// error kind that ended it (None at a clean EOF).
pub fn drain(mut r: impl Read) -> (u64, Option<std::io::ErrorKind>) {
    let mut buf = [0u8; 65536];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (total, None),
            Ok(k) => total += k as u64,
            Err(e) => return (total, Some(e.kind())),
        }
    }
}
