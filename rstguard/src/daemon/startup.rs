//! Start-up, in an order that leaves nothing half-done on failure: bind
//! the metrics socket, load the object, give each interface its slot and
//! state source, write the policy and trusted prefixes, attach to every
//! interface (undone on any failure), pin the maps, build the state the
//! daemon publishes.

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use rstguard_common::{
    judge::socket::Source,
    layout::POLICY_DEFAULT,
    status::{IfaceStatus, LINK_ETHERNET, LINK_IP},
    DaemonStatus, Policy,
};
use tracing::info;

use super::{auto::AutoIface, causes, events, AttachedView, Shared};
use crate::{
    attach::{attach_all, detach_all, Attachment},
    config::{Settings, StateArg},
    controller::Controller,
    ebpf::{LoadOptions, Loaded},
    host::clock::unix_now,
    host::iface::{Iface, LinkType},
    host::paths::PinDir,
    maps::{FlowTable, Maps},
    show::policy::describe,
    socket::{self, LocalAddrs},
};

/// The event ring buffer and the per-CPU event budget.
pub type Ring = (RingBuf<MapData>, PerCpuArray<MapData, u32>);

/// A daemon that started: programs attached, maps pinned.
pub struct Started {
    pub loaded: Loaded,
    pub attachments: Vec<Attachment>,
    pub shared: Arc<Mutex<Shared>>,
    pub metrics: Option<TcpListener>,
    pub ring: Option<Ring>,
}

/// Binds, loads, attaches and pins (see the module's comment).
pub fn start(settings: &Settings, ifaces: &[Iface], pins: &PinDir) -> anyhow::Result<Started> {
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
    let local = match availability {
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
    let auto = auto_ifaces(settings, ifaces);
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
    log_table_memory(&loaded.maps, settings);

    // The programs take an event only from their budget: fill it before
    // they go live, so that the first RSTs are recorded too.
    if let Some(budget) = loaded.event_budget.as_mut() {
        events::refill(budget, events::per_tick(settings.event_budget));
    }
    // Socket mode learns nothing at egress: no classifier there.
    let egress_for = |name: &str| {
        !ifaces
            .iter()
            .zip(&sources)
            .any(|(i, (_, source, _))| i.name == name && *source == Source::Socket)
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
    let maps = match Maps::open(pins) {
        Ok(m) => std::mem::replace(&mut loaded.maps, m),
        Err(e) => {
            detach_all(&mut loaded, attachments);
            return Err(e.into());
        }
    };
    let shared = Arc::new(Mutex::new(Shared {
        maps,
        state,
        attached: attachments.iter().map(AttachedView::of).collect(),
        top: events::Top::default(),
        auto,
        causes: causes::Window::started(),
        local,
    }));
    super::lock(&shared).publish();
    if let Some(l) = &metrics {
        info!(address = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics");
    }
    Ok(Started {
        loaded,
        attachments,
        shared,
        metrics,
        ring,
    })
}

/// Under auto, one controller per interface, each starting at its own
/// floor.
fn auto_ifaces(settings: &Settings, ifaces: &[Iface]) -> Vec<AutoIface> {
    match &settings.auto {
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
    }
}

/// Logs what each flow table takes of kernel memory.
fn log_table_memory(maps: &Maps, settings: &Settings) {
    for (table, capacity) in [
        (FlowTable::Assured, settings.flows),
        (FlowTable::Embryonic, settings.new_flows),
    ] {
        if let Some(bytes) = maps.flows_memory(table) {
            info!(
                table = ?table,
                flows = capacity,
                mib = format!("{:.1}", bytes as f64 / (1 << 20) as f64),
                bytes_per_flow = format!("{:.1}", bytes as f64 / f64::from(capacity)),
                "flow table memory"
            );
        }
    }
}

/// Writes `policy` as the default and for each interface.
pub fn write_policy(
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

/// Copies `s` into a NUL-padded byte array (cut to fit).
pub fn copy_str(dst: &mut [u8], s: &str) {
    let n = s.len().min(dst.len());
    dst.fill(0);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}
