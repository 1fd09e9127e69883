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
    /// Starts `rstguard ARGS` in `ns` (see [`Netns::rstguard`]) and waits
    /// until it says it attached to every interface it was given.
    pub fn start(ns: &Netns, args: &[&str]) -> Daemon {
        Daemon::spawn(ns.rstguard(args), args)
    }

    /// Starts `cmd` (an `rstguard attach ...`) and waits for it to attach.
    pub fn spawn(mut cmd: Command, args: &[&str]) -> Daemon {
        let mut child = cmd
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

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("signalling rstguard");
    }

    /// Waits (bounded) until the log has a line containing `what`.
    pub fn wait_log(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(what))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {what:?}: {}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it with SIGKILL (a crash) and reaps it.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping");
    }

    /// Waits (bounded) for an exit someone else caused; returns the exit
    /// code and stdout.
    pub fn stop_exited(&mut self) -> (i32, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Some(status) = child.try_wait().expect("waiting") {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rstguard did not exit: {}", self.log());
            }
            thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.stdout_rx.recv_timeout(Duration::from_secs(2)) {
            self.stdout.push(line);
        }
        (code, self.stdout.clone())
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

/// A live TCP transfer, client -> server, paced (about 16 MB/s) so that it
/// does not starve the rest of the test of CPU, until [`LiveTransfer::finish`].
pub struct LiveTransfer {
    pub client_port: u16,
    received: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    server: JoinHandle<Option<std::io::ErrorKind>>,
    client: JoinHandle<Result<u64, std::io::ErrorKind>>,
}

/// How a transfer ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub sent: Result<u64, std::io::ErrorKind>,
    pub received: u64,
    /// The error that ended the server's reads (None: a clean EOF).
    pub server_error: Option<std::io::ErrorKind>,
}

impl LiveTransfer {
    /// Server on `server_ip:port` in `server`, client in `client`.
    pub fn start(
        server: &Netns,
        client: &Netns,
        server_ip: &'static str,
        port: u16,
    ) -> LiveTransfer {
        use std::{
            io::Write,
            net::{Shutdown, TcpListener},
            sync::atomic::{AtomicBool, AtomicU64},
        };
        let received = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel();
        let server = {
            let received = Arc::clone(&received);
            server.spawn(move || {
                let l = TcpListener::bind(sockaddr(server_ip, port)).unwrap();
                ready_tx.send(()).unwrap();
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return None,
                        Ok(k) => {
                            received.fetch_add(k as u64, Ordering::Relaxed);
                        }
                        Err(e) => return Some(e.kind()),
                    }
                }
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server listens");
        let stop = Arc::new(AtomicBool::new(false));
        let (port_tx, port_rx) = mpsc::channel();
        let client = {
            let stop = Arc::clone(&stop);
            client.spawn(move || {
                let mut c = std::net::TcpStream::connect_timeout(
                    &sockaddr(server_ip, port),
                    Duration::from_secs(5),
                )
                .expect("connecting");
                port_tx.send(c.local_addr().unwrap().port()).unwrap();
                let chunk = vec![1u8; 16384];
                let mut sent = 0u64;
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    c.write_all(&chunk).map_err(|e| e.kind())?;
                    sent += chunk.len() as u64;
                    thread::sleep(Duration::from_millis(1));
                }
                c.shutdown(Shutdown::Write).map_err(|e| e.kind())?;
                Ok(sent)
            })
        };
        let client_port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("connected");
        LiveTransfer {
            client_port,
            received,
            stop,
            server,
            client,
        }
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until more bytes arrive: the flow is alive.
    pub fn assert_flowing(&self) {
        let before = self.received();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.received() == before {
            assert!(
                Instant::now() < deadline,
                "the transfer stalled at {before} bytes"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the client, waits for the server to read everything.
    pub fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.client.join().expect("the client thread panicked");
        let server_error = self.server.join().expect("the server thread panicked");
        Outcome {
            sent,
            received: self.received.load(Ordering::Relaxed),
            server_error,
        }
    }
}

/// GET `path` over HTTP/1.0 from inside `ns`; returns (status, body).
pub fn http_get(ns: &Netns, addr: &'static str, path: &'static str) -> (u16, String) {
    ns.run(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).expect("connecting to the metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).expect("reading the response");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header and a body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status");
        (status, body.to_string())
    })
}
