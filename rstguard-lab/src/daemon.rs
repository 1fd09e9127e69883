//! A running `rstguard attach`, killed on drop.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use crate::netns::Netns;

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
            match rx_attached.recv_timeout(crate::patience(Duration::from_secs(20))) {
                Ok(line) if line.contains("error") => {
                    panic!("rstguard failed to start: {}", d.log())
                }
                Ok(_) => {}
                Err(_) => panic!(
                    "rstguard did not attach within {:?}: {}",
                    crate::patience(Duration::from_secs(20)),
                    d.log()
                ),
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
        let deadline = Instant::now() + crate::patience(Duration::from_secs(10));
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
        self.wait("rstguard did not exit")
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit. Returns the exit
    /// code and everything printed on stdout.
    pub fn stop(&mut self) -> (i32, Vec<String>) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait("rstguard did not exit within 20 s of SIGTERM")
    }

    /// Waits at most 20 s for the process to exit, then collects stdout.
    fn wait(&mut self, why: &str) -> (i32, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + crate::patience(Duration::from_secs(20));
        let code = loop {
            if let Some(status) = child.try_wait().expect("waiting") {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{why}: {}", self.log());
            }
            thread::sleep(Duration::from_millis(50));
        };
        // The stdout reader ends with the pipe.
        while let Ok(line) = self
            .stdout_rx
            .recv_timeout(crate::patience(Duration::from_secs(2)))
        {
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

/// What a real peer's RST would carry, and the window: the receiver's last
/// ACK and window, from the flow table of the rstguard running in `ns`.
pub fn receiver_window(ns: &Netns, receiver: std::net::SocketAddr) -> (u32, u32) {
    let flows = ns.cli_json(&["flows"]);
    let want = receiver.to_string();
    // IPv6 addresses are hashed in the table key: `rstguard flows` shows
    // `[ipv6 #hash]:port`, so an IPv6 end is found by its port.
    let matches = |end: &str| match receiver {
        std::net::SocketAddr::V4(_) => end == want,
        std::net::SocketAddr::V6(a) => {
            end.starts_with("[ipv6 #") && end.ends_with(&format!("]:{}", a.port()))
        }
    };
    for f in flows.as_array().expect("a list of flows") {
        for (end, sent) in [("a", "a_sent"), ("b", "b_sent")] {
            if f[end].as_str().is_some_and(matches) {
                let half = &f[sent];
                return (crate::n(&half["ack"]) as u32, crate::n(&half["win"]) as u32);
            }
        }
    }
    panic!("no flow with {want}: {flows}");
}
