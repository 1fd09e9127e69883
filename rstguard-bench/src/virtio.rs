//! Native XDP on a real driver: a VM (one of the kernel matrix's kernels,
//! booted with virtme-ng under QEMU) whose NIC is a virtio-net device
//! backed by a multiqueue tap. The tap lives in a network namespace this
//! run creates (10.206.0.1/24; the guest is 10.206.0.2), and the flood
//! comes from there: an AF_PACKET sender spoofing RSTs for a live
//! connection into the guest. Inside the guest, this same binary runs as
//! an agent (`--guest-agent`, see `virtio_guest.rs`) that sets each
//! configuration up and measures what the guest did with the flood; the
//! host measures what the tap handed QEMU. Nothing outside the namespace
//! is touched: QEMU itself runs in it.
//!
//! Under TCG (no KVM here) every guest instruction is emulated: absolute
//! rates are far below a real machine's, and only ratios within the run
//! mean anything.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use rstguard_lab::{
    sockaddr,
    spoof::{packet_flood, rst_frames},
    Netns,
};
use serde_json::Value;

use crate::stats::Samples;

/// The tap in the host-side namespace, and its address.
pub const TAP: &str = "rgv0";
pub const HOST_ADDR: &str = "10.206.0.1";
/// The guest's address and MAC (the agent finds its NIC by the MAC).
pub const GUEST_ADDR: &str = "10.206.0.2";
pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x20, 0x06, 0x02];
/// The agent's control port and the live connection's port.
pub const CONTROL_PORT: u16 = 5000;
pub const LIVE_PORT: u16 = 5001;
/// Queue pairs the virtio-net device offers: two for the guest's two CPUs
/// and two more, so that XDP gets a transmit queue per CPU (with fewer,
/// virtio-net falls back to a shared, locked queue for XDP_TX).
const QUEUES: u32 = 4;

/// One configuration of the guest, measured in turn within each round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmConfig {
    /// The guest's own stack (RFC 5961), nothing attached.
    Bare,
    /// nftables `ct state invalid drop` in prerouting.
    Conntrack,
    /// An XDP program in native mode that passes everything: the cost of
    /// the driver's XDP path itself.
    XdpPass,
    /// A program that drops every RST, native (the limit of any filter).
    Reference,
    /// `rstguard attach --mode auto` at enforce (auto must pick native on
    /// virtio-net).
    RstguardAuto,
    /// `rstguard attach --mode skb` at enforce.
    RstguardSkb,
}

pub const CONFIGS: [VmConfig; 6] = [
    VmConfig::Bare,
    VmConfig::Conntrack,
    VmConfig::XdpPass,
    VmConfig::Reference,
    VmConfig::RstguardAuto,
    VmConfig::RstguardSkb,
];

impl VmConfig {
    /// The name the agent knows it by.
    pub fn key(self) -> &'static str {
        match self {
            VmConfig::Bare => "bare",
            VmConfig::Conntrack => "conntrack",
            VmConfig::XdpPass => "xdp-pass",
            VmConfig::Reference => "reference",
            VmConfig::RstguardAuto => "rstguard-auto",
            VmConfig::RstguardSkb => "rstguard-skb",
        }
    }

    pub fn from_key(k: &str) -> Option<VmConfig> {
        CONFIGS.into_iter().find(|c| c.key() == k)
    }

    pub fn name(self) -> &'static str {
        match self {
            VmConfig::Bare => "no filter (kernel RFC 5961)",
            VmConfig::Conntrack => "nftables ct state invalid drop",
            VmConfig::XdpPass => "XDP pass-through, native",
            VmConfig::Reference => "reference XDP drop-every-RST, native",
            VmConfig::RstguardAuto => "rstguard enforce, tracking, --mode auto",
            VmConfig::RstguardSkb => "rstguard enforce, tracking, skb",
        }
    }
}

/// What one configuration did, over the rounds.
pub struct VmResult {
    pub config: VmConfig,
    /// What the configuration said when set up (rstguard: the XDP mode in
    /// force).
    pub detail: String,
    /// Spoofed RSTs that reached the tap (taken in plus dropped there),
    /// thousands a second.
    pub offered_kpps: Samples,
    /// Frames the tap handed QEMU (the guest took in), thousands a second.
    pub taken_kpps: Samples,
    /// Frames the tap dropped because QEMU did not read them fast enough,
    /// thousands a second.
    pub tap_dropped_kpps: Samples,
    /// Frames virtio-net's XDP dropped in the driver, thousands a second.
    pub xdp_drop_kpps: Samples,
    /// The guest's CPUs busy over the measurement, percent of both.
    pub guest_busy_pct: Samples,
    /// Guest CPU time per frame taken in, ns.
    pub guest_ns_per_frame: Samples,
}

/// Everything the run found, for the report.
pub struct VirtioRun {
    pub kernel: String,
    /// `rstguard check` on the guest's NIC, its interface line.
    pub check_line: String,
    /// The guest NIC's channels and driver, as the agent found them.
    pub nic: String,
    pub results: Vec<VmResult>,
    pub secs: f64,
    pub rounds: usize,
}

/// Where virtme-ng and the kernel are (the kernel matrix's cache; `cargo
/// xtask bench --native-virtio` passes them).
pub struct VmSpec {
    pub vng: PathBuf,
    pub vmlinuz: PathBuf,
    /// Where the guest's console and the agent's log go.
    pub out: PathBuf,
}

/// This machine's lock for network test runs and QEMU benchmarks: they
/// measure rates and would starve each other of CPU.
fn lock() -> std::fs::File {
    let f = std::fs::File::create("/run/rstguard-network-tests.lock")
        .expect("creating /run/rstguard-network-tests.lock");
    if f.try_lock().is_err() {
        eprintln!("bench: virtio: waiting for /run/rstguard-network-tests.lock");
        f.lock().expect("locking /run/rstguard-network-tests.lock");
    }
    f
}

/// QEMU under virtme-ng, in its own process group (stopped with it).
struct Vm {
    child: Child,
}

impl Vm {
    fn boot(ns: &Netns, spec: &VmSpec) -> Vm {
        std::fs::create_dir_all(&spec.out).expect("creating the output directory");
        let agent = std::env::current_exe().expect("this binary");
        let venv_bin = spec.vng.parent().expect("vng's directory");
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mac = GUEST_MAC
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let qemu = format!(
            "-netdev tap,id=rgv,ifname={TAP},script=no,downscript=no,queues={QUEUES},vhost=off \
             -device virtio-net-pci,netdev=rgv,mq=on,vectors={},mac={mac}",
            2 * QUEUES + 2
        );
        let console = std::fs::File::create(spec.out.join("console.log")).expect("console.log");
        let stderr = std::fs::File::create(spec.out.join("vng.stderr")).expect("vng.stderr");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name])
            .arg(&spec.vng)
            .arg("-r")
            .arg(&spec.vmlinuz)
            .args(["--disable-kvm", "--cpus", "2", "--memory", "2G"])
            .arg("--rwdir")
            .arg(&spec.out)
            .arg(format!("--qemu-opts={qemu}"))
            .arg("--exec")
            .arg(format!(
                "{} --guest-agent --agent-log {}",
                agent.display(),
                spec.out.join("agent.log").display()
            ))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(stderr)
            .process_group(0);
        eprintln!(
            "bench: virtio: booting {} under QEMU (TCG) with a virtio-net NIC on {TAP}",
            spec.vmlinuz.display()
        );
        Vm {
            child: c.spawn().expect("starting vng"),
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The agent quits and the guest powers off; else, its group.
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(200));
            }
            let pgid = self.child.id() as i32;
            // SAFETY: signalling the process group this run started.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// The control connection to the agent: a line out, a line back.
struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    fn connect(ns: &Netns, within: Duration) -> Control {
        let to = sockaddr(GUEST_ADDR, CONTROL_PORT);
        let stream = ns.run(move || {
            let deadline = Instant::now() + within;
            loop {
                match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
                    Ok(s) => return s,
                    Err(e) if Instant::now() > deadline => {
                        panic!("the guest agent never answered on {to}: {e}")
                    }
                    Err(_) => thread::sleep(Duration::from_millis(500)),
                }
            }
        });
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("a read timeout");
        Control {
            reader: BufReader::new(stream.try_clone().expect("cloning the stream")),
            writer: stream,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.writer, "{line}").expect("writing to the agent");
        let mut reply = String::new();
        self.reader
            .read_line(&mut reply)
            .unwrap_or_else(|e| panic!("no answer from the agent to {line:?}: {e}"));
        let reply = reply.trim().to_string();
        match reply.strip_prefix("ok ") {
            Some(r) => r.to_string(),
            None if reply == "ok" => String::new(),
            None => panic!("the agent answered {line:?} with {reply:?}"),
        }
    }
}

/// A connection into the guest that sends a little data every 20 ms for as
/// long as it lives: the flow the spoofed RSTs aim at, which must survive.
struct Live {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Result<u64, String>>>,
    pub local: SocketAddr,
}

impl Live {
    fn start(ns: &Netns) -> Live {
        let to = sockaddr(GUEST_ADDR, LIVE_PORT);
        let stream = ns.run(move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(20)).expect("the live connection")
        });
        let local = stream.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = thread::spawn(move || {
            let mut stream = stream;
            let chunk = [0x5au8; 512];
            let mut sent = 0u64;
            while !s.load(Ordering::Relaxed) {
                stream
                    .write_all(&chunk)
                    .map_err(|e| format!("after {sent} bytes: {e}"))?;
                sent += chunk.len() as u64;
                thread::sleep(Duration::from_millis(20));
            }
            Ok(sent)
        });
        Live {
            stop,
            handle: Some(handle),
            local,
        }
    }

    /// Bytes sent, or how the connection died.
    fn finish(mut self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("the live sender panicked")
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn measure(spec: &VmSpec, rounds: usize, secs: f64) -> VirtioRun {
    let _turn = lock();
    let ns = Netns::new("virtio");
    ns.ip(&["tuntap", "add", "mode", "tap", "name", TAP, "multi_queue"]);
    ns.ip(&["addr", "add", &format!("{HOST_ADDR}/24"), "dev", TAP]);
    ns.ip(&["link", "set", TAP, "up"]);
    let vm = Vm::boot(&ns, spec);
    let run = measure_in(&ns, spec, rounds, secs);
    // Waits for the guest to power off (or stops it).
    drop(vm);
    let _ = Command::new("ip")
        .args(["-n", &ns.name, "link", "del", TAP])
        .status();
    run
}

fn measure_in(ns: &Netns, spec: &VmSpec, rounds: usize, secs: f64) -> VirtioRun {
    let mut ctl = Control::connect(ns, Duration::from_secs(300));
    let hello: Value = serde_json::from_str(&ctl.ask("hello")).expect("the agent's hello");
    eprintln!("bench: virtio: agent up: {hello}");
    let kernel = hello["kernel"].as_str().unwrap_or("?").to_string();
    let check_line = hello["check"].as_str().unwrap_or("?").to_string();
    let nic = hello["nic"].as_str().unwrap_or("?").to_string();
    let live = Live::start(ns);
    let frames = rst_frames(
        ns.mac(TAP),
        GUEST_MAC,
        live.local,
        sockaddr(GUEST_ADDR, LIVE_PORT),
        4096,
    );
    let mut results: Vec<VmResult> = CONFIGS
        .iter()
        .map(|&config| VmResult {
            config,
            detail: String::new(),
            offered_kpps: Samples::default(),
            taken_kpps: Samples::default(),
            tap_dropped_kpps: Samples::default(),
            xdp_drop_kpps: Samples::default(),
            guest_busy_pct: Samples::default(),
            guest_ns_per_frame: Samples::default(),
        })
        .collect();
    let warmup = Duration::from_millis(700);
    for round in 0..rounds {
        for r in results.iter_mut() {
            r.detail = ctl.ask(&format!("setup {}", r.config.key()));
            // virtio-net has native XDP: `--mode auto` must use it.
            assert!(
                r.config != VmConfig::RstguardAuto || r.detail == "XDP mode native",
                "rstguard --mode auto on virtio-net: {}",
                r.detail
            );
            // The live flow's next segments are seen (and tracked) first.
            thread::sleep(Duration::from_millis(1500));
            writeln!(
                ctl.writer,
                "measure {} {}",
                warmup.as_millis(),
                (secs * 1000.0) as u64
            )
            .expect("writing to the agent");
            // The host's window: the same as the agent's, by the clock.
            let window = {
                let ns_name = ns.name.clone();
                thread::spawn(move || {
                    let ns = NsRef(ns_name);
                    thread::sleep(warmup);
                    let (a, t0) = (ns.tap(), Instant::now());
                    thread::sleep(Duration::from_secs_f64(secs));
                    let (b, t1) = (ns.tap(), Instant::now());
                    (a, b, (t1 - t0).as_secs_f64())
                })
            };
            let flood_for = warmup.as_secs_f64() + secs + 0.5;
            let sent = packet_flood(ns, TAP, frames.clone(), flood_for, 200_000_000);
            let ((p0, d0), (p1, d1), wall) = window.join().expect("the tap window");
            let mut reply = String::new();
            ctl.reader
                .read_line(&mut reply)
                .expect("the agent's measurement");
            let m: Value = serde_json::from_str(
                reply
                    .trim()
                    .strip_prefix("ok ")
                    .unwrap_or_else(|| panic!("the agent's measurement: {reply:?}")),
            )
            .expect("the agent's JSON");
            ctl.ask("teardown");
            let f = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k} in {m}"));
            let (gsecs, busy_ns, xdp_drops) = (f("secs"), f("busy_ns"), f("xdp_drops"));
            let taken = (p1 - p0) as f64;
            let offered = (p1 - p0 + d1 - d0) as f64 / wall / 1e3;
            r.offered_kpps.push(offered);
            r.taken_kpps.push(taken / wall / 1e3);
            r.tap_dropped_kpps.push((d1 - d0) as f64 / wall / 1e3);
            r.xdp_drop_kpps.push(xdp_drops / gsecs / 1e3);
            r.guest_busy_pct
                .push(100.0 * busy_ns / (gsecs * 1e9 * f("cpus")));
            // Per frame the tap handed QEMU (rates over the two windows:
            // 6.12's virtio-net no longer reports per-queue packet counts
            // in `ethtool -S`, and its netdev counter is read apart from
            // the XDP drops).
            let per_frame = (busy_ns / gsecs) / (taken / wall).max(1.0);
            r.guest_ns_per_frame.push(per_frame);
            eprintln!(
                "bench: virtio round {}: {} [{}]: {} frames sent, {:.1} kpps at the tap, taken in {:.1} kpps (tap dropped {:.1} kpps), \
                 XDP drops in the driver {:.1} kpps, guest busy {:.0}%, {:.0} ns of guest CPU per frame",
                round + 1,
                r.config.name(),
                r.detail,
                sent,
                offered,
                taken / wall / 1e3,
                (d1 - d0) as f64 / wall / 1e3,
                xdp_drops / gsecs / 1e3,
                100.0 * busy_ns / (gsecs * 1e9 * f("cpus")),
                per_frame,
            );
        }
    }
    let bytes = live.finish();
    assert!(
        bytes.is_ok(),
        "the live connection into the guest died under the floods: {bytes:?}"
    );
    let _ = ctl.ask("quit");
    eprintln!(
        "bench: virtio: guest console and agent log in {}",
        spec.out.display()
    );
    VirtioRun {
        kernel,
        check_line,
        nic,
        results,
        secs,
        rounds,
    }
}

/// The namespace by name, for a thread that reads the tap's counters:
/// (tx_packets, tx_dropped), frames QEMU read and frames the tap dropped
/// because its queue was full.
struct NsRef(String);

impl NsRef {
    fn tap(&self) -> (u64, u64) {
        let out = Command::new("ip")
            .args(["-n", &self.0, "-s", "-j", "link", "show", TAP])
            .output()
            .expect("ip -s link");
        let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
        let tx = &v[0]["stats64"]["tx"];
        (
            tx["packets"].as_u64().expect("tx packets"),
            tx["dropped"].as_u64().expect("tx dropped"),
        )
    }
}

/// The table, one row per configuration, ratios against the bare stack
/// (rate taken in, guest CPU per frame) and against XDP pass-through.
pub fn table(run: &VirtioRun) -> String {
    let find = |c: VmConfig| run.results.iter().find(|r| r.config == c);
    let bare = find(VmConfig::Bare).expect("the bare row");
    let pass = find(VmConfig::XdpPass).expect("the pass-through row");
    let mut s = String::new();
    s.push_str(
        "| configuration | in force | RSTs at the tap, kpps | taken in by the guest, kpps | vs bare stack | vs XDP pass-through | dropped by XDP in the driver, kpps | guest CPU busy | guest CPU per frame taken in, ns | vs bare stack |\n",
    );
    s.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for r in &run.results {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {:.0}% | {} | {:.2} |\n",
            r.config.name(),
            if r.detail.is_empty() { "-" } else { &r.detail },
            r.offered_kpps.show(1),
            r.taken_kpps.show(1),
            r.taken_kpps.median() / bare.taken_kpps.median(),
            r.taken_kpps.median() / pass.taken_kpps.median(),
            r.xdp_drop_kpps.show(1),
            r.guest_busy_pct.median(),
            r.guest_ns_per_frame.show(0),
            r.guest_ns_per_frame.median() / bare.guest_ns_per_frame.median(),
        ));
    }
    s
}
