//! `rstguard resets --json --follow` beside a running daemon: every RST it
//! records, as it records it, to wait for and to read back.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::netns::Netns;

/// How long [`ResetLog::wait`] waits for a record: the daemon drains its
/// ring every 100 ms and `--follow` looks every 200 ms; the rest is for a
/// loaded machine.
pub const WAIT: Duration = Duration::from_secs(15);

/// One record of `rstguard resets --json` (the fields the tests read).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Reset {
    pub number: u64,
    pub device: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub verdict: String,
    pub action: String,
    pub cause: String,
    pub flags: String,
    pub seq: u32,
    pub ack: Option<u32>,
    pub ttl: u8,
    pub peer_ttl: Option<u8>,
    pub idle_secs: Option<u32>,
    pub evidence: String,
}

impl Reset {
    /// Whether it went between `a` and `b`, either way.
    pub fn between(&self, a: SocketAddr, b: SocketAddr) -> bool {
        let (a, b) = (a.to_string(), b.to_string());
        (self.from == a && self.to == b) || (self.from == b && self.to == a)
    }

    /// Whether `from` sent it to `to`.
    pub fn sent(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.from == from.to_string() && self.to == to.to_string()
    }
}

type Shared = Arc<(Mutex<Records>, Condvar)>;

#[derive(Default)]
struct Records {
    list: Vec<Reset>,
    /// Lines that did not parse (a failure to report, not to hide).
    bad: Vec<String>,
    ended: bool,
}

/// A running `rstguard resets --json --follow` in a namespace, killed on
/// drop; what it prints is kept.
pub struct ResetLog {
    child: Child,
    shared: Shared,
}

impl ResetLog {
    /// Follows the RSTs recorded by the daemon running in `ns`, from the
    /// oldest record it keeps.
    pub fn follow(ns: &Netns) -> ResetLog {
        // Every record it keeps (the daemon keeps fewer than this).
        let mut child = ns
            .rstguard(&["resets", "--json", "--follow", "--limit", "1000000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting rstguard resets --follow");
        let shared: Shared = Arc::default();
        let pipe = child.stdout.take().expect("its stdout");
        let s = Arc::clone(&shared);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // A test that failed while holding the lock poisoned it.
                let mut r = s.0.lock().unwrap_or_else(|e| e.into_inner());
                match serde_json::from_str::<Reset>(&line) {
                    Ok(rec) => r.list.push(rec),
                    Err(_) => r.bad.push(line),
                }
                s.1.notify_all();
            }
            s.0.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
            s.1.notify_all();
        });
        ResetLog { child, shared }
    }

    /// Every record so far.
    pub fn all(&self) -> Vec<Reset> {
        let r = self.shared.0.lock().unwrap();
        assert!(r.bad.is_empty(), "rstguard resets printed {:?}", r.bad);
        r.list.clone()
    }

    /// The records of the flow between `a` and `b`, in order.
    pub fn between(&self, a: SocketAddr, b: SocketAddr) -> Vec<Reset> {
        self.all().into_iter().filter(|r| r.between(a, b)).collect()
    }

    /// Waits (at most [`WAIT`]) until `n` records match `pred`; returns
    /// them, or, if they do not come, those that came.
    pub fn try_wait_n(
        &self,
        n: usize,
        pred: impl Fn(&Reset) -> bool,
    ) -> Result<Vec<Reset>, Vec<Reset>> {
        let deadline = Instant::now() + WAIT;
        let (lock, cvar) = &*self.shared;
        let mut r = lock.lock().unwrap();
        loop {
            let found: Vec<Reset> = r.list.iter().filter(|x| pred(x)).cloned().collect();
            if found.len() >= n {
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline || r.ended {
                return Err(found);
            }
            r = cvar.wait_timeout(r, deadline - now).unwrap().0;
        }
    }

    /// Waits (at most [`WAIT`]) until `n` records match `pred`; returns
    /// them. `what` names them in the failure.
    pub fn wait_n(&self, what: &str, n: usize, pred: impl Fn(&Reset) -> bool) -> Vec<Reset> {
        self.try_wait_n(n, pred).unwrap_or_else(|found| {
            let all = self.all();
            // The latest records: what happened last is what explains.
            let shown = &all[all.len().saturating_sub(30)..];
            panic!(
                "{what}: {} of {n} records within {WAIT:?}; the latest {} of {} records: {shown:#?}",
                found.len(),
                shown.len(),
                all.len()
            )
        })
    }

    /// Waits for the first record that matches `pred`.
    pub fn wait(&self, what: &str, pred: impl Fn(&Reset) -> bool) -> Reset {
        self.wait_n(what, 1, pred).remove(0)
    }

    /// How many records there are of each (direction, cause).
    pub fn by_cause(&self) -> BTreeMap<(String, String), u64> {
        let mut m = BTreeMap::new();
        for r in self.all() {
            *m.entry((r.direction, r.cause)).or_default() += 1;
        }
        m
    }
}

impl Drop for ResetLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
