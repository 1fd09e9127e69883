//! RST flood, end to end: a live transfer into the server namespace while
//! an AF_PACKET sender floods it with spoofed RSTs for that flow, under
//! each configuration in turn, round by round.

use std::{
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use aya::programs::{loaded_programs, XdpMode};
use rstguard::ebpf::{LoadOptions, Loaded};
use rstguard_lab::{
    sockaddr,
    spoof::{packet_flood, rst_frames},
    Daemon, LiveTransfer, Netns, Pair, CLIENT4, SERVER4,
};

use crate::stats::Samples;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Config {
    /// The kernel's own RFC 5961 path.
    Bare,
    /// nftables: `ct state invalid drop` in prerouting.
    Conntrack,
    /// A program that drops every RST (the limit of any XDP filter).
    Reference(XdpMode),
    /// rstguard at enforce, tracking (`--state track`).
    Rstguard(XdpMode),
    /// rstguard at enforce, judging by the server's own socket
    /// (`--state socket`).
    RstguardSocket(XdpMode),
}

impl Config {
    pub fn name(self) -> String {
        let mode = |m: XdpMode| if m == XdpMode::Skb { "skb" } else { "native" };
        match self {
            Config::Bare => "no filter (kernel RFC 5961)".into(),
            Config::Conntrack => "nftables ct state invalid drop".into(),
            Config::Reference(m) => format!("reference XDP drop-every-RST, {}", mode(m)),
            Config::Rstguard(m) => format!("rstguard enforce, tracking, {}", mode(m)),
            Config::RstguardSocket(m) => format!("rstguard enforce, socket mode, {}", mode(m)),
        }
    }
}

pub const CONFIGS: [Config; 8] = [
    Config::Bare,
    Config::Conntrack,
    Config::Reference(XdpMode::Driver),
    Config::Reference(XdpMode::Skb),
    Config::Rstguard(XdpMode::Driver),
    Config::Rstguard(XdpMode::Skb),
    Config::RstguardSocket(XdpMode::Driver),
    Config::RstguardSocket(XdpMode::Skb),
];

pub struct FloodResult {
    pub config: Config,
    pub pps: Samples,
    /// Whole-machine CPU time per spoofed packet, ns, net of the transfer.
    pub cpu_ns: Samples,
    /// The filter program's own time per packet it ran on (bpf_stats), ns.
    pub prog_ns: Samples,
    /// Goodput during the flood over goodput without it.
    pub goodput: Samples,
}

/// Busy CPU time so far: wall time of every CPU minus its idle time
/// (/proc/stat, in ns).
fn idle_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // idle + iowait, in USER_HZ (100 a second).
    (f[3] + f[4]) * 10_000_000
}

fn ncpus() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Whole-machine busy time over `f`, in ns, with its wall time.
fn busy<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (i0, t0) = (idle_ns(), Instant::now());
    let out = f();
    let wall = t0.elapsed().as_nanos() as f64;
    let idle = (idle_ns() - i0) as f64;
    (out, (wall * ncpus() - idle).max(0.0), wall)
}

/// (run time ns, run count) of the newest loaded program called `name`.
fn prog_stats(name: &str) -> (u64, u64) {
    loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some(name))
        .max_by_key(|p| p.id())
        .map_or((0, 0), |p| (p.run_time().as_nanos() as u64, p.run_count()))
}

/// The reference program attached in `ns` on `dev`, until dropped.
struct Reference {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Reference {
    fn attach(ns: &Netns, dev: &'static str, mode: XdpMode) -> Reference {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = ns.spawn(move || {
            let mut l = Loaded::load_object(
                crate::cost::BENCH_OBJECT,
                &LoadOptions {
                    flows: 1024,
                    new_flows: 1024,
                    ..LoadOptions::default()
                },
            )
            .expect("loading the reference");
            let ifindex = rstguard::iface::Iface::by_name(dev)
                .expect("the device")
                .index;
            l.other_xdp("bench_drop_rst")
                .expect("the reference program")
                .attach_to_if_index(ifindex, mode)
                .expect("attaching the reference");
            ready_tx.send(()).unwrap();
            let _ = stop_rx.recv();
            drop(l);
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the reference attached");
        Reference {
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What a configuration holds while it is in force.
enum Holder {
    None,
    Reference(Reference),
    Daemon(Daemon),
}

fn set_up(pair: &Pair, c: Config) -> Holder {
    match c {
        Config::Bare => Holder::None,
        Config::Conntrack => {
            pair.server.exec(&[
                "nft",
                "add table inet rgbench; add chain inet rgbench pre { type filter hook prerouting priority -150; }; \
                 add rule inet rgbench pre ct state invalid drop",
            ]);
            Holder::None
        }
        Config::Reference(m) => Holder::Reference(Reference::attach(&pair.server, "s0", m)),
        Config::Rstguard(m) | Config::RstguardSocket(m) => {
            let mode = if m == XdpMode::Skb { "skb" } else { "native" };
            let state = if matches!(c, Config::RstguardSocket(_)) {
                "socket"
            } else {
                "track"
            };
            let mut args = vec![
                "attach",
                "s0",
                "--state",
                state,
                "--policy",
                "enforce",
                "--mode",
                mode,
                "--interval",
                "0",
                "--no-metrics",
            ];
            // Extra daemon flags for experiments (e.g. `--event-sample 0`).
            let extra = std::env::var("RSTGUARD_BENCH_DAEMON_ARGS").unwrap_or_default();
            args.extend(extra.split_whitespace());
            Holder::Daemon(Daemon::start(&pair.server, &args))
        }
    }
}

fn tear_down(pair: &Pair, c: Config, h: Holder) {
    match h {
        Holder::Daemon(mut d) => {
            d.stop();
        }
        Holder::Reference(r) => drop(r),
        Holder::None => {}
    }
    if c == Config::Conntrack {
        pair.server.exec(&["nft", "delete table inet rgbench"]);
    }
}

pub fn measure(rounds: usize, flood_secs: f64) -> Vec<FloodResult> {
    let _ = std::process::Command::new("sysctl")
        .args(["-q", "-w", "kernel.bpf_stats_enabled=1"])
        .status();
    let mut results: Vec<FloodResult> = CONFIGS
        .iter()
        .map(|&config| FloodResult {
            config,
            pps: Samples::default(),
            cpu_ns: Samples::default(),
            prog_ns: Samples::default(),
            goodput: Samples::default(),
        })
        .collect();
    for round in 0..rounds {
        for r in results.iter_mut() {
            // A fresh lab each time: nothing of the last configuration stays.
            let pair = Pair::new();
            let holder = set_up(&pair, r.config);
            let live = LiveTransfer::start(&pair.server, &pair.client, SERVER4, 5000);
            live.assert_flowing();
            thread::sleep(Duration::from_millis(500));
            // Without flood, for as long as the flood will last.
            let b0 = live.received();
            let ((), quiet_busy, quiet_wall) =
                busy(|| thread::sleep(Duration::from_secs_f64(flood_secs)));
            let quiet = (live.received() - b0) as f64 / quiet_wall;
            let frames = rst_frames(
                pair.client.mac("c0"),
                pair.server.mac("s0"),
                sockaddr(CLIENT4, live.client_port),
                sockaddr(SERVER4, 5000),
                4096,
            );
            let prog = match r.config {
                Config::Reference(_) => Some("bench_drop_rst"),
                Config::Rstguard(_) | Config::RstguardSocket(_) => Some("rstguard_xdp"),
                _ => None,
            };
            let s0 = prog.map(prog_stats);
            let b1 = live.received();
            let (sent, flood_busy, flood_wall) =
                busy(|| packet_flood(&pair.client, "c0", frames, flood_secs, 50_000_000));
            let during = (live.received() - b1) as f64 / flood_wall;
            if let (Some(p), Some((t0, n0))) = (prog, s0) {
                let (t1, n1) = prog_stats(p);
                if n1 > n0 {
                    r.prog_ns.push((t1 - t0) as f64 / (n1 - n0) as f64);
                }
            }
            let outcome = live.finish();
            assert!(
                outcome.sent.is_ok() && outcome.server_error.is_none(),
                "{}: the transfer failed: {outcome:?}",
                r.config.name()
            );
            let extra = flood_busy - quiet_busy * flood_wall / quiet_wall;
            r.pps.push(sent as f64 / (flood_wall / 1e9) / 1e6);
            r.cpu_ns.push(extra / sent as f64);
            r.goodput.push(during / quiet);
            tear_down(&pair, r.config, holder);
            eprintln!(
                "bench: flood round {}: {}: {:.2} Mpps, {:.0} ns CPU/packet, goodput {:.0}%",
                round + 1,
                r.config.name(),
                sent as f64 / (flood_wall / 1e9) / 1e6,
                extra / sent as f64,
                100.0 * during / quiet
            );
        }
    }
    let _ = std::process::Command::new("sysctl")
        .args(["-q", "-w", "kernel.bpf_stats_enabled=0"])
        .status();
    results
}
