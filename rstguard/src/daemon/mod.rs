//! The daemon behind `rstguard attach`.
//!
//! Start-up, in an order that leaves nothing half-done on failure: lock the
//! pin directory (one daemon per directory), bind the metrics socket, load
//! the object, write the policy and trusted prefixes, attach to every
//! interface (undone on any failure), pin the maps, publish the state.
//! Then it serves: counter summaries, `/metrics`, events, flow sweeps, and
//! SIGHUP reloads. SIGINT and SIGTERM detach everything, remove the pins,
//! and exit 0.
//!
//! What happens when it dies without that (kill -9, a crash): the kernel
//! closes its file descriptors, and with them the XDP and TCX links, so the
//! programs detach at once: filtering stops, traffic flows unfiltered (fail
//! open), and nothing is left that only rstguard could remove. The pinned
//! maps stay, so `rstguard stats` still shows the last counters;
//! `rstguard detach --all` (or the next daemon) removes them.

pub mod causes;
pub mod events;
pub mod metrics;

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use rstguard_common::{
    act::POLICY_PINNED,
    layout::POLICY_DEFAULT,
    status::{IfaceStatus, LINK_ETHERNET, LINK_IP, MAX_IFACES},
    DaemonStatus, Policy,
};
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::{
    attach::{attach_all, detach_all, Attachment, TcHook, XdpModeInForce},
    cli::AttachArgs,
    clock::{monotonic_ns, unix_now},
    config::{self, Settings},
    controller::{Controller, Direction, Sample},
    counters::{summary_line, Named},
    ebpf::LoadOptions,
    iface::{Iface, LinkType},
    maps::{FlowTable, Maps, SweepTtl},
    paths::PinDir,
    policy::describe,
    privileges::{self, ATTACH},
    socket::{self, LocalAddrs, StateArg},
};

/// How long a flow closed by a RST stays in the table, and a flow in
/// TIME_WAIT (Linux's TIME_WAIT lasts 60 s).
const CLOSED_TTL: Duration = Duration::from_secs(10);
const TIME_WAIT_TTL: Duration = Duration::from_secs(60);
/// How often the flow table is swept (and its entries counted).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One attached interface, as the daemon reports it.
#[derive(Clone, Debug)]
pub struct AttachedView {
    pub name: String,
    pub ifindex: u32,
    pub xdp_mode: String,
    pub tc_hook: String,
}

/// Auto mode on one interface.
pub struct AutoIface {
    pub ifindex: u32,
    pub name: String,
    pub controller: Controller,
    /// An operator pinned the level (`policy set level=...`).
    pub pinned: bool,
}

/// What the daemon's tasks share.
pub struct Shared {
    pub maps: Maps,
    pub state: DaemonStatus,
    pub attached: Vec<AttachedView>,
    pub top: events::Top,
    /// One controller per interface under `--policy auto` (else empty).
    pub auto: Vec<AutoIface>,
    /// The causes of the last minutes.
    pub causes: causes::Window,
    /// This host's own addresses, for socket mode (when it is on).
    pub local: Option<LocalAddrs>,
}

impl Shared {
    /// (name, ifindex) of every attached interface.
    pub fn devices(&self) -> Vec<(String, u32)> {
        self.attached
            .iter()
            .map(|a| (a.name.clone(), a.ifindex))
            .collect()
    }

    pub fn iface_name(&self, ifindex: u32) -> &str {
        self.attached
            .iter()
            .find(|a| a.ifindex == ifindex)
            .map_or("?", |a| a.name.as_str())
    }

    /// One second of auto mode: feeds each controller its interface's
    /// counters and applies what it decides (unless an operator pinned the
    /// level, which pauses it until `policy set level=auto`).
    fn control(&mut self, now: f64) {
        for i in 0..self.auto.len() {
            let ifindex = self.auto[i].ifindex;
            let counters = match self.maps.counters(ifindex) {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "auto: reading counters failed");
                    continue;
                }
            };
            let mut policy = match self.maps.policy(ifindex) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    warn!(error = %e, "auto: reading the policy failed");
                    continue;
                }
            };
            let a = &mut self.auto[i];
            let decision = a.controller.step(now, Sample::from_counters(&counters));
            let pinned = policy.flags & POLICY_PINNED != 0;
            if pinned || a.pinned {
                if pinned != a.pinned {
                    info!(
                        device = %a.name,
                        level = %policy.level(),
                        "{}",
                        if pinned {
                            "auto: the operator pinned the level; auto control paused"
                        } else {
                            "auto: the operator handed the level back; auto control resumed"
                        }
                    );
                }
                a.pinned = pinned;
                a.controller.resume_at(policy.level());
                continue;
            }
            let Some(d) = decision else { continue };
            policy.level = d.to as u8;
            if let Err(e) = self.maps.set_policy(ifindex, &policy) {
                warn!(device = %a.name, error = %e, "auto: writing the new level failed");
                a.controller.resume_at(d.from);
                continue;
            }
            info!(
                device = %a.name,
                from = %d.from,
                to = %d.to,
                why = %d.why,
                invalid_rate = format!("{:.1}/s", d.invalid_rate),
                legit_rate = format!("{:.1}/s", d.legit_rate),
                "{}",
                match d.direction {
                    Direction::Up => "auto: policy escalated",
                    Direction::Down => "auto: policy relaxed",
                }
            );
            if let Some(st) = self.state.ifaces.iter_mut().find(|x| x.ifindex == ifindex) {
                st.level = d.to as u8;
                st.last_change_unix = unix_now();
                match d.direction {
                    Direction::Up => st.escalations += 1,
                    Direction::Down => st.deescalations += 1,
                }
            }
        }
    }

    /// Samples the cause counters of every interface for `status`.
    fn sample_causes(&mut self, secs: u64) {
        let counters: Vec<_> = self
            .devices()
            .into_iter()
            .filter_map(|(_, ifindex)| self.maps.counters(ifindex).ok())
            .collect();
        self.causes.push(secs, causes::totals(&counters));
        (self.state.recent_causes, self.state.recent_secs) = self.causes.recent();
    }

    /// Writes the published state (with the current top lists) to its map.
    fn publish(&mut self) {
        self.state.top_flows = self.top.top_flows();
        self.state.top_ports = self.top.top_ports();
        if let Err(e) = self.maps.set_state(&self.state) {
            warn!(error = %e, "publishing the daemon state failed");
        }
    }
}

/// The signals the daemon handles, registered before anything is attached
/// so that a SIGTERM at any moment detaches cleanly.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

pub fn run(args: AttachArgs, pins: PinDir) -> anyhow::Result<()> {
    privileges::require("rstguard attach", ATTACH)?;
    let settings = config::load(&args)?;
    let ifaces = Iface::resolve_all(&settings.interfaces)?;
    if ifaces.len() > MAX_IFACES {
        anyhow::bail!("at most {MAX_IFACES} interfaces per daemon");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // A parent may have left these blocked (a blocked mask survives exec):
    // the daemon must see them whatever started it.
    let mut handled = nix::sys::signal::SigSet::empty();
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        handled.add(sig);
    }
    handled
        .thread_unblock()
        .context("unblocking SIGINT, SIGTERM and SIGHUP")?;
    let signals = {
        let _in_runtime = runtime.enter();
        Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        }
    };
    let lock = pins.claim()?;
    let result = run_claimed(&args, settings, &ifaces, &pins, runtime, signals);
    if let Err(e) = pins.remove() {
        warn!(error = %e, "removing the pinned maps failed");
    }
    drop(lock);
    result
}

fn run_claimed(
    args: &AttachArgs,
    settings: Settings,
    ifaces: &[Iface],
    pins: &PinDir,
    runtime: tokio::runtime::Runtime,
    signals: Signals,
) -> anyhow::Result<()> {
    let metrics = match settings.metrics {
        Some(addr) => Some(TcpListener::bind(addr).with_context(|| {
            format!("cannot serve metrics on {addr} (choose another with --metrics ADDR:PORT, or --no-metrics)")
        })?),
        None => None,
    };
    let wanted: Vec<StateArg> = ifaces.iter().map(|i| settings.state_for(&i.name)).collect();
    let (mut loaded, availability) = socket::load(
        &LoadOptions {
            flows: settings.flows,
            new_flows: settings.new_flows,
            ..LoadOptions::default()
        },
        &wanted,
    )?;
    let mut local = match availability {
        socket::Availability::On => {
            let mut l = LocalAddrs::take(&mut loaded)?;
            let n = l.refresh()?;
            info!(
                addresses = n,
                "socket mode: this host's own addresses are judged by socket"
            );
            Some(l)
        }
        _ => None,
    };
    // Each interface gets its slot (counters, policy) and its state source
    // before anything runs.
    let mut sources = Vec::with_capacity(ifaces.len());
    for i in ifaces {
        loaded
            .maps
            .claim_slot(i.index, i.link == Some(LinkType::Ip))?;
        let (source, why) = socket::in_force(settings.state_for(&i.name), &availability);
        loaded.maps.set_source(i.index, source)?;
        info!(iface = %i.name, state = %source.name(), "{}", socket::describe(source, why));
        sources.push((i.index, source, why));
    }
    write_policy(
        &mut loaded.maps,
        ifaces.iter().map(|i| i.index),
        &settings.policy,
    )?;
    // Under auto, each interface starts at its own floor.
    let auto: Vec<AutoIface> = match &settings.auto {
        Some(a) => ifaces
            .iter()
            .map(|i| AutoIface {
                ifindex: i.index,
                name: i.name.clone(),
                controller: Controller::new(a.for_iface(&i.name)),
                pinned: false,
            })
            .collect(),
        None => Vec::new(),
    };
    for a in &auto {
        let p = Policy {
            level: a.controller.level() as u8,
            ..settings.policy
        };
        loaded.maps.set_policy(a.ifindex, &p)?;
    }
    for prefix in &settings.trust {
        loaded.maps.trust(prefix)?;
    }
    info!(policy = %describe(&settings.policy), flows = settings.flows, pin_dir = %pins.dir().display(), "programs loaded");
    for (table, capacity) in [
        (FlowTable::Assured, settings.flows),
        (FlowTable::Embryonic, settings.new_flows),
    ] {
        if let Some(bytes) = loaded.maps.flows_memory(table) {
            info!(
                table = ?table,
                flows = capacity,
                mib = format!("{:.1}", bytes as f64 / (1 << 20) as f64),
                bytes_per_flow = format!("{:.1}", bytes as f64 / f64::from(capacity)),
                "flow table memory"
            );
        }
    }

    // The programs take an event only from their budget: fill it before
    // they go live, so that the first RSTs are recorded too.
    if let Some(budget) = loaded.event_budget.as_mut() {
        events::refill(budget, events::per_tick(settings.event_budget));
    }
    // Socket mode learns nothing at egress: no classifier there.
    let egress_for = |name: &str| {
        !ifaces.iter().zip(&sources).any(|(i, (_, source, _))| {
            i.name == name && *source == rstguard_common::judge::socket::Source::Socket
        })
    };
    let attachments = attach_all(
        &mut loaded,
        ifaces,
        |name| settings.mode_for(name),
        egress_for,
    )?;
    if let Err(e) = loaded.maps.pin(pins) {
        detach_all(&mut loaded, attachments);
        return Err(e.into());
    }

    let ring = loaded.events.take().zip(loaded.event_budget.take());
    let mut state = DaemonStatus {
        pid: std::process::id(),
        started_unix: unix_now(),
        flow_capacity: settings.flows,
        new_flow_capacity: settings.new_flows,
        n_ifaces: attachments.len() as u32,
        config_ok: 1,
        auto: u8::from(settings.auto.is_some()),
        ..DaemonStatus::default()
    };
    copy_str(&mut state.version, env!("CARGO_PKG_VERSION"));
    for (slot, a) in state.ifaces.iter_mut().zip(&attachments) {
        *slot = iface_state(a, &settings.policy);
        if let Some((_, source, why)) = sources.iter().find(|(i, _, _)| *i == a.iface.index) {
            slot.source = *source as u8;
            slot.source_why = *why;
        }
        if let Some(ctl) = auto.iter().find(|x| x.ifindex == a.iface.index) {
            slot.level = ctl.controller.level() as u8;
            slot.floor = ctl.controller.config.floor as u8;
            slot.ceiling = ctl.controller.config.ceiling as u8;
        }
    }
    let maps = std::mem::replace(&mut loaded.maps, Maps::open(pins)?);
    let shared = Arc::new(Mutex::new(Shared {
        maps,
        state,
        attached: attachments.iter().map(view).collect(),
        top: events::Top::default(),
        auto,
        causes: causes::Window::started(),
        local: local.take(),
    }));
    shared.lock().expect("lock").publish();
    if let Some(l) = &metrics {
        info!(address = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics");
    }

    let json = settings.json;
    let cx = Context {
        args,
        pins,
        shared: &shared,
        attachments: &attachments,
    };
    let result = runtime.block_on(serve(cx, settings, metrics, ring, signals));
    report(&shared.lock().expect("lock").maps, &attachments, json);
    detach_all(&mut loaded, attachments);
    result
}

/// Writes `policy` as the default and for each interface.
fn write_policy(
    maps: &mut Maps,
    ifindexes: impl Iterator<Item = u32>,
    policy: &Policy,
) -> Result<(), crate::Error> {
    maps.set_policy(POLICY_DEFAULT, policy)?;
    for i in ifindexes {
        maps.set_policy(i, policy)?;
    }
    Ok(())
}

fn iface_state(a: &Attachment, policy: &Policy) -> IfaceStatus {
    let mut s = IfaceStatus {
        ifindex: a.iface.index,
        xdp_link_id: a.xdp_link_id,
        tc_link_id: a.tc_link_id,
        xdp_mode: a.xdp_mode.raw(),
        tc_hook: a.tc_hook.raw(),
        level: policy.level,
        link: if a.iface.link == Some(LinkType::Ip) {
            LINK_IP
        } else {
            LINK_ETHERNET
        },
        ..IfaceStatus::default()
    };
    copy_str(&mut s.name, &a.iface.name);
    s
}

fn view(a: &Attachment) -> AttachedView {
    AttachedView {
        name: a.iface.name.clone(),
        ifindex: a.iface.index,
        xdp_mode: a.xdp_mode.to_string(),
        tc_hook: a.tc_hook.to_string(),
    }
}

pub fn copy_str(dst: &mut [u8], s: &str) {
    let n = s.len().min(dst.len());
    dst.fill(0);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// What the serving loop works with.
struct Context<'a> {
    args: &'a AttachArgs,
    pins: &'a PinDir,
    shared: &'a Arc<Mutex<Shared>>,
    attachments: &'a [Attachment],
}

async fn serve(
    cx: Context<'_>,
    mut settings: Settings,
    metrics: Option<TcpListener>,
    ring: Option<(
        aya::maps::RingBuf<aya::maps::MapData>,
        aya::maps::PerCpuArray<aya::maps::MapData, u32>,
    )>,
    mut signals: Signals,
) -> anyhow::Result<()> {
    let Context {
        args,
        pins,
        shared,
        attachments,
    } = cx;
    let _metrics = metrics.map(|l| tokio::spawn(metrics::serve(l, Arc::clone(shared))));
    let _events = ring.map(|(r, budget)| {
        tokio::spawn(events::run(
            r,
            budget,
            events::per_tick(settings.event_budget),
            Arc::clone(shared),
            settings.log_events_per_sec,
        ))
    });
    let _sweeper = tokio::spawn(sweep_forever(pins.clone(), Arc::clone(shared)));

    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.tick().await;
    let clock = std::time::Instant::now();
    shared.lock().expect("lock").control(0.0);
    let mut seconds = 0u64;
    let mut vanished: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = signals.int.recv() => { info!("SIGINT: detaching"); return Ok(()); }
            _ = signals.term.recv() => { info!("SIGTERM: detaching"); return Ok(()); }
            _ = signals.hup.recv() => reload(args, &mut settings, shared),
            _ = second.tick() => {
                seconds += 1;
                for a in attachments {
                    if !a.iface.still_exists() && !vanished.contains(&a.iface.name) {
                        error!(iface = %a.iface.name, "interface vanished: the kernel removed rstguard's programs with it");
                        vanished.push(a.iface.name.clone());
                        shared.lock().expect("lock").attached.retain(|v| v.name != a.iface.name);
                    }
                }
                let mut s = shared.lock().expect("lock");
                // Addresses come and go: socket mode follows them within a
                // second (until then, RSTs to a new one are tracked).
                if let Some(Err(e)) = s.local.as_mut().map(LocalAddrs::refresh) {
                    warn!(error = %e, "socket mode: refreshing this host's addresses failed");
                }
                s.control(clock.elapsed().as_secs_f64());
                if seconds.is_multiple_of(causes::SAMPLE_SECS) {
                    s.sample_causes(seconds);
                }
                if settings.interval > 0 && seconds.is_multiple_of(settings.interval) {
                    report(&s.maps, attachments, settings.json);
                }
                s.publish();
            }
        }
    }
}

/// SIGHUP: re-reads the config file and applies its policy and trusted
/// prefixes live. A bad file changes nothing (the old policy stays) and is
/// reported with its line.
fn reload(args: &AttachArgs, settings: &mut Settings, shared: &Arc<Mutex<Shared>>) {
    let new = match config::load(args) {
        Ok(new) => new,
        Err(e) => {
            error!(error = %e, "SIGHUP: config rejected; the old policy stays in force");
            let mut s = shared.lock().expect("lock");
            s.state.config_ok = 0;
            s.publish();
            return;
        }
    };
    let mut s = shared.lock().expect("lock");
    if new.auto.is_some() != settings.auto.is_some() {
        error!(
            "SIGHUP: config rejected: switching between --policy auto and a fixed level needs a \
             restart; the old policy stays in force"
        );
        s.state.config_ok = 0;
        s.publish();
        return;
    }
    let ifindexes: Vec<u32> = s.attached.iter().map(|a| a.ifindex).collect();
    let auto_levels: Vec<(u32, Policy)> = s
        .auto
        .iter()
        .map(|a| {
            let level = match &new.auto {
                Some(n) => a
                    .controller
                    .level()
                    .clamp(n.for_iface(&a.name).floor, n.for_iface(&a.name).ceiling),
                None => a.controller.level(),
            };
            let flags = s
                .maps
                .policy(a.ifindex)
                .ok()
                .flatten()
                .map_or(0, |p| p.flags);
            (
                a.ifindex,
                Policy {
                    level: level as u8,
                    flags,
                    ..new.policy
                },
            )
        })
        .collect();
    let applied = write_policy(&mut s.maps, ifindexes.into_iter(), &new.policy).and_then(|()| {
        // Auto keeps each interface's own level (and an operator's pin).
        for (ifindex, p) in &auto_levels {
            s.maps.set_policy(*ifindex, p)?;
        }
        for old in &settings.trust {
            if !new.trust.contains(old) {
                s.maps.distrust(old)?;
            }
        }
        for p in &new.trust {
            s.maps.trust(p)?;
        }
        Ok(())
    });
    if let Err(e) = applied {
        error!(error = %e, "SIGHUP: applying the new policy failed");
        s.state.config_ok = 0;
        s.publish();
        return;
    }
    for field in config::restart_needed(settings, &new) {
        warn!(
            field,
            "SIGHUP: this setting changed in the config but needs a restart"
        );
    }
    if let Some(n) = &new.auto {
        for a in s.auto.iter_mut() {
            let level = a.controller.level();
            a.controller.config = n.for_iface(&a.name);
            a.controller.resume_at(level);
        }
    }
    let levels: Vec<(u32, u8)> = s
        .auto
        .iter()
        .map(|a| (a.ifindex, a.controller.level() as u8))
        .collect();
    for slot in s.state.ifaces.iter_mut().filter(|i| i.ifindex != 0) {
        slot.level = levels
            .iter()
            .find(|(i, _)| *i == slot.ifindex)
            .map_or(new.policy.level, |(_, l)| *l);
    }
    s.state.config_ok = 1;
    s.state.config_reloads += 1;
    s.publish();
    info!(
        policy = %describe(&new.policy),
        trusted = new.trust.len(),
        file = %new.config_path.as_ref().map_or("(none)".into(), |p| p.display().to_string()),
        "SIGHUP: config reloaded"
    );
    // What needs a restart keeps its running value.
    let running = std::mem::replace(settings, new);
    settings.interfaces = running.interfaces;
    settings.mode = running.mode;
    settings.iface_modes = running.iface_modes;
    settings.state = running.state;
    settings.iface_states = running.iface_states;
    settings.flows = running.flows;
    settings.metrics = running.metrics;
}

/// How many assured flows the table evicted to make room, as far as the
/// counters tell: flows that entered it, less those the programs removed
/// (a new incarnation), those the sweeps removed, and those still there.
pub fn assured_evicted<'a>(
    state: &DaemonStatus,
    counters: impl Iterator<Item = &'a rstguard_common::Counters>,
) -> u64 {
    let (mut entered, mut restarted) = (0u64, 0u64);
    for c in counters {
        entered = entered.wrapping_add(c.get(rstguard_common::Counter::FlowsAssured));
        restarted = restarted.wrapping_add(c.get(rstguard_common::Counter::AssuredRestarted));
    }
    entered
        .saturating_sub(restarted)
        .saturating_sub(state.assured_swept)
        .saturating_sub(state.flow_entries)
}

/// Removes expired closed and TIME_WAIT flows every `SWEEP_EVERY`, and
/// counts the table's entries, through its own handles on the pinned maps
/// (a sweep of a large table must not hold up scrapes).
async fn sweep_forever(pins: PinDir, shared: Arc<Mutex<Shared>>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let pins = pins.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let mut maps = Maps::open(&pins)?;
            let ttl = SweepTtl {
                closed_ns: CLOSED_TTL.as_nanos() as u64,
                time_wait_ns: TIME_WAIT_TTL.as_nanos() as u64,
            };
            maps.sweep(&ttl, monotonic_ns())
        })
        .await;
        match swept {
            Ok(Ok(swept)) => {
                let mut s = shared.lock().expect("lock");
                let counters = s.maps.all_counters().unwrap_or_default();
                let st = &mut s.state;
                st.flow_entries = swept.assured;
                st.new_flow_entries = swept.embryonic;
                st.assured_swept += swept.assured_removed;
                st.flows_counted_unix = unix_now();
                let evicted = assured_evicted(st, counters.values());
                if evicted > st.assured_evicted {
                    warn!(
                        evicted = evicted - st.assured_evicted,
                        capacity = st.flow_capacity,
                        "the assured flow table is full: established flows were evicted to make room \
                         (raise --flows)"
                    );
                    st.assured_evicted = evicted;
                }
                let removed = swept.assured_removed + swept.embryonic_removed;
                if removed > 0 {
                    tracing::debug!(removed, ?swept, "swept expired flows");
                }
            }
            Ok(Err(e)) => warn!(error = %e, "sweeping the flow table failed"),
            Err(e) => warn!(error = %e, "the sweeper panicked"),
        }
    }
}

#[derive(Serialize)]
struct IfaceReport<'a> {
    device: &'a str,
    ifindex: u32,
    xdp_mode: XdpModeInForce,
    egress: TcHook,
    #[serde(flatten)]
    counters: Named,
}

/// Prints each interface's counters: one line each, or one JSON object.
fn report(maps: &Maps, attachments: &[Attachment], json: bool) {
    let mut reports = Vec::with_capacity(attachments.len());
    for a in attachments {
        let counters = match maps.counters(a.iface.index) {
            Ok(c) => c,
            Err(e) => {
                error!(iface = %a.iface.name, error = %e, "reading counters failed");
                continue;
            }
        };
        if json {
            reports.push(IfaceReport {
                device: &a.iface.name,
                ifindex: a.iface.index,
                xdp_mode: a.xdp_mode,
                egress: a.tc_hook,
                counters: Named::from_counters(&counters),
            });
        } else {
            println!(
                "{} [xdp {}, egress {}]",
                summary_line(&a.iface.name, &counters),
                a.xdp_mode,
                a.tc_hook
            );
        }
    }
    if json {
        match serde_json::to_string(&serde_json::json!({ "interfaces": reports })) {
            Ok(line) => println!("{line}"),
            Err(e) => error!(error = %e, "encoding counters as JSON failed"),
        }
    }
}
