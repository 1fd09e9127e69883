//! The agent of the native-XDP benchmark (`virtio.rs`), run inside the VM
//! as `rstguard-bench --guest-agent`: it brings up the virtio-net NIC,
//! serves the live connection, and on the host's word sets each
//! configuration up, measures, and tears it down.
//!
//! Protocol, one line each way on TCP port 5000: `hello`, `setup CONFIG`,
//! `measure WARMUP_MS SECS_MS`, `teardown`, `quit`; each answered `ok
//! [DETAIL]` or `err WHY`.

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use aya::programs::XdpMode;
use rstguard::ebpf::{LoadOptions, Loaded};
use serde_json::json;

use crate::virtio::{VmConfig, CONTROL_PORT, GUEST_ADDR, GUEST_MAC, LIVE_PORT};

const IFACE: &str = "eth0";
const PIN_DIR: &str = "/sys/fs/bpf/rgv-bench";

struct Agent {
    log: fs::File,
    ifindex: u32,
}

impl Agent {
    fn log(&mut self, line: &str) {
        let _ = writeln!(self.log, "{line}");
        println!("agent: {line}");
    }
}

/// Runs `cmd`, returning its stdout, or why it failed.
fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The interface with the NIC's MAC, waiting for the driver to bind.
fn find_nic() -> Result<String, String> {
    let mac = GUEST_MAC
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(dir) = fs::read_dir("/sys/class/net") {
            for e in dir.filter_map(Result::ok) {
                let addr = fs::read_to_string(e.path().join("address")).unwrap_or_default();
                if addr.trim() == mac {
                    return Ok(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no interface with MAC {mac} after 60 s"));
        }
        let _ = sh(&["modprobe", "virtio_net"]);
        thread::sleep(Duration::from_millis(500));
    }
}

fn bring_up() -> Result<(String, u32), String> {
    let _ = sh(&["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]);
    let found = find_nic()?;
    if found != IFACE {
        sh(&["ip", "link", "set", &found, "name", IFACE])?;
    }
    // Two queue pairs for the stack (one per CPU); the other two are left
    // for XDP's transmit queues.
    sh(&["ethtool", "-L", IFACE, "combined", "2"])?;
    sh(&[
        "ip",
        "addr",
        "add",
        &format!("{GUEST_ADDR}/24"),
        "dev",
        IFACE,
    ])?;
    sh(&["ip", "link", "set", IFACE, "up"])?;
    let channels = sh(&["ethtool", "-l", IFACE])?;
    let combined: Vec<&str> = channels
        .lines()
        .filter_map(|l| l.strip_prefix("Combined:"))
        .map(str::trim)
        .collect();
    let driver = sh(&["ethtool", "-i", IFACE])?
        .lines()
        .find_map(|l| l.strip_prefix("driver: ").map(str::to_string))
        .unwrap_or_default();
    let ifindex = rstguard::iface::Iface::by_name(IFACE)
        .map_err(|e| e.to_string())?
        .index;
    Ok((
        format!(
            "driver {driver}, {} queue pairs in use of {}",
            combined.get(1).unwrap_or(&"?"),
            combined.first().unwrap_or(&"?")
        ),
        ifindex,
    ))
}

/// Busy time of every CPU so far, ns, and the number of CPUs.
fn busy_ns() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0);
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    // USER_HZ is 100.
    ((total - idle) * 1e7, cpus as f64)
}

/// XDP drops in the driver, summed over the NIC's queues (virtio-net's
/// `rx0_xdp_drops`, one per queue, in `ethtool -S`).
fn xdp_drops() -> f64 {
    let stats = sh(&["ethtool", "-S", IFACE]).unwrap_or_default();
    per_queue_sums(&stats).1
}

fn per_queue_sums(stats: &str) -> (f64, f64) {
    let sum = |what: &str| -> f64 {
        stats
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .filter(|(k, _)| {
                k.strip_prefix("rx")
                    .and_then(|r| r.split_once('_'))
                    .is_some_and(|(q, rest)| {
                        !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) && rest == what
                    })
            })
            .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
            .sum()
    };
    (sum("packets"), sum("xdp_drops"))
}

/// What a configuration holds while in force.
enum Holder {
    None,
    Conntrack,
    Program(Box<Loaded>),
    Daemon(Child),
}

fn set_up(agent: &mut Agent, c: VmConfig) -> Result<(Holder, String), String> {
    match c {
        VmConfig::Bare => Ok((Holder::None, String::new())),
        VmConfig::Conntrack => {
            sh(&[
                "nft",
                "add table inet rgbench; add chain inet rgbench pre { type filter hook prerouting priority -150; }; \
                 add rule inet rgbench pre ct state invalid drop",
            ])?;
            Ok((Holder::Conntrack, String::new()))
        }
        VmConfig::XdpPass | VmConfig::Reference => {
            let mut l = Loaded::load_object(
                crate::cost::BENCH_OBJECT,
                &LoadOptions {
                    flows: 1024,
                    new_flows: 1024,
                    ..LoadOptions::default()
                },
            )
            .map_err(|e| format!("loading the bench object: {e}"))?;
            let name = if c == VmConfig::XdpPass {
                "bench_pass"
            } else {
                "bench_drop_rst"
            };
            l.other_xdp(name)
                .map_err(|e| format!("{name}: {e}"))?
                .attach_to_if_index(agent.ifindex, XdpMode::Driver)
                .map_err(|e| format!("attaching {name} in native mode: {e}"))?;
            Ok((Holder::Program(Box::new(l)), "native".into()))
        }
        VmConfig::RstguardAuto | VmConfig::RstguardSkb => {
            let mode = if c == VmConfig::RstguardAuto {
                "auto"
            } else {
                "skb"
            };
            let mut child = Command::new(rstguard_lab::rstguard_bin())
                .args([
                    "attach",
                    IFACE,
                    "--state",
                    "track",
                    "--policy",
                    "enforce",
                    "--mode",
                    mode,
                    "--interval",
                    "0",
                    "--no-metrics",
                ])
                .env("RSTGUARD_PIN_DIR", PIN_DIR)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("starting rstguard: {e}"))?;
            // The daemon says `attached iface=eth0 xdp_mode=native ...`.
            let (tx, rx) = mpsc::channel();
            let stderr = child.stderr.take().expect("piped");
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => {
                        agent.log(&format!("rstguard: {line}"));
                        if let Some(at) = line.find("xdp_mode=") {
                            let m = line[at + 9..]
                                .split_whitespace()
                                .next()
                                .unwrap_or("?")
                                .to_string();
                            // Keep draining its log so that it never blocks.
                            thread::spawn(move || while rx.recv().is_ok() {});
                            return Ok((Holder::Daemon(child), format!("XDP mode {m}")));
                        }
                    }
                    Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("rstguard attach --mode {mode} never attached"));
                    }
                }
            }
        }
    }
}

fn tear_down(h: Holder) -> Result<(), String> {
    match h {
        Holder::None => Ok(()),
        Holder::Conntrack => sh(&["nft", "delete table inet rgbench"]).map(drop),
        Holder::Program(l) => {
            drop(l);
            Ok(())
        }
        Holder::Daemon(mut child) => {
            // SAFETY: signalling the daemon this agent started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(format!("rstguard exited {status}"))
                    };
                }
                thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            Err("rstguard did not stop on SIGTERM within 60 s".into())
        }
    }
}

/// The interface line of `rstguard check eth0` (native XDP, by driver).
fn check_line() -> String {
    let out = Command::new(rstguard_lab::rstguard_bin())
        .args(["check", IFACE])
        .env("RSTGUARD_PIN_DIR", PIN_DIR)
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.contains("interface "))
            .unwrap_or("(no interface line)")
            .to_string(),
        Err(e) => format!("(rstguard check: {e})"),
    }
}

fn serve_live() {
    let l = TcpListener::bind(("0.0.0.0", LIVE_PORT)).expect("binding the live port");
    thread::spawn(move || {
        for s in l.incoming().filter_map(Result::ok) {
            thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 65536];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
}

fn answer(w: &mut TcpStream, r: Result<String, String>) {
    let line = match r {
        Ok(d) if d.is_empty() => "ok".to_string(),
        Ok(d) => format!("ok {d}"),
        Err(e) => format!("err {e}"),
    };
    let _ = writeln!(w, "{line}");
}

pub fn run(log: &Path) -> std::process::ExitCode {
    let mut agent = Agent {
        log: fs::File::create(log)
            .unwrap_or_else(|_| fs::File::create(PathBuf::from("/dev/null")).expect("/dev/null")),
        ifindex: 0,
    };
    let (nic, ifindex) = match bring_up() {
        Ok(v) => v,
        Err(e) => {
            agent.log(&format!("bringing the NIC up failed: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    agent.ifindex = ifindex;
    agent.log(&format!("{IFACE}: {nic}"));
    serve_live();
    let listener = TcpListener::bind(("0.0.0.0", CONTROL_PORT)).expect("binding the control port");
    agent.log(&format!("listening on {GUEST_ADDR}:{CONTROL_PORT}"));
    let (stream, peer) = listener.accept().expect("the host's control connection");
    agent.log(&format!("control from {peer}"));
    let mut w = stream.try_clone().expect("cloning the stream");
    let mut holder: Option<Holder> = None;
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        agent.log(&format!("< {line}"));
        let mut words = line.split_whitespace();
        match words.next() {
            Some("hello") => {
                let kernel = sh(&["uname", "-r"]).unwrap_or_default();
                let hello = json!({
                    "kernel": kernel.trim(),
                    "check": check_line(),
                    "nic": nic,
                });
                answer(&mut w, Ok(hello.to_string()));
            }
            Some("setup") => {
                let r = match words.next().and_then(VmConfig::from_key) {
                    Some(c) => set_up(&mut agent, c).map(|(h, detail)| {
                        holder = Some(h);
                        detail
                    }),
                    None => Err(format!("no such configuration: {line}")),
                };
                agent.log(&format!("> {r:?}"));
                answer(&mut w, r);
            }
            Some("measure") => {
                let n: Vec<u64> = words.filter_map(|v| v.parse().ok()).collect();
                let (warmup, secs) = (n.first().copied().unwrap_or(0), n.get(1).copied());
                let Some(secs) = secs else {
                    answer(&mut w, Err("measure WARMUP_MS SECS_MS".into()));
                    continue;
                };
                thread::sleep(Duration::from_millis(warmup));
                let ((b0, cpus), x0, t0) = (busy_ns(), xdp_drops(), Instant::now());
                thread::sleep(Duration::from_millis(secs));
                let ((b1, _), x1, t1) = (busy_ns(), xdp_drops(), Instant::now());
                let m = json!({
                    "secs": (t1 - t0).as_secs_f64(),
                    "busy_ns": b1 - b0,
                    "cpus": cpus,
                    "xdp_drops": x1 - x0,
                });
                agent.log(&format!("> {m}"));
                answer(&mut w, Ok(m.to_string()));
            }
            Some("teardown") => {
                let r = holder.take().map_or(Ok(()), tear_down);
                answer(&mut w, r.map(|()| String::new()));
            }
            Some("quit") => {
                if let Some(h) = holder.take() {
                    let _ = tear_down(h);
                }
                answer(&mut w, Ok(String::new()));
                break;
            }
            _ => answer(&mut w, Err(format!("unknown command: {line}"))),
        }
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #[test]
    fn virtio_nets_per_queue_counters_are_summed() {
        let stats = "NIC statistics:\n     rx0_packets: 10\n     rx0_bytes: 600\n     rx0_xdp_packets: 9\n     \
                     rx0_xdp_drops: 7\n     rx1_packets: 5\n     rx1_xdp_drops: 2\n     tx0_packets: 99\n";
        assert_eq!(super::per_queue_sums(stats), (15.0, 9.0));
    }
}
