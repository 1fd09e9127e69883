//! `rstguard status`: the daemon, its interfaces and hooks, the policy, the
//! flow table's fill, and the most attacked flows and ports.

use std::collections::BTreeMap;

use rstguard_common::judge::socket::Source;
use serde::Serialize;

use super::{cstr, iface_name, print_json};
use crate::{
    attach::{link_exists, TcHook, XdpModeInForce},
    host::clock::unix_now,
    host::paths::PinDir,
    maps::Maps,
    show::explain::endpoints,
    show::policy::{describe, PolicyView},
};
use rstguard_common::{
    act::POLICY_PINNED, state::track::Ignore, status::LINK_IP, Action, Cause, Counter,
    DaemonStatus, Direction, Level, Policy, Verdict,
};

#[derive(Serialize)]
struct Status {
    running: bool,
    pid: u32,
    version: String,
    uptime_secs: u64,
    pin_dir: String,
    policy: PolicyView,
    auto: bool,
    config_ok: bool,
    config_reloads: u64,
    flow_table: FlowTable,
    interfaces: Vec<IfaceStatus>,
    top_flows: Vec<TopFlowView>,
    top_ports: Vec<TopPortView>,
    events_seen: u64,
    events_suppressed: u64,
    /// RSTs by direction and likely cause over the last `secs` seconds.
    recent_causes: RecentCauses,
}

#[derive(Serialize)]
struct RecentCauses {
    secs: u64,
    ingress: BTreeMap<Cause, u64>,
    egress: BTreeMap<Cause, u64>,
}

impl RecentCauses {
    fn of(s: &DaemonStatus) -> RecentCauses {
        let side = |d: Direction| {
            Cause::ALL
                .into_iter()
                .map(|c| (c, s.recent_causes[d as usize][c as usize]))
                .filter(|(_, n)| *n > 0)
                .collect()
        };
        RecentCauses {
            secs: s.recent_secs,
            ingress: side(Direction::Ingress),
            egress: side(Direction::Egress),
        }
    }

    /// "abort 2, refused 1" (most first), or "none".
    fn line(causes: &BTreeMap<Cause, u64>) -> String {
        let mut v: Vec<_> = causes.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if v.is_empty() {
            return "none".into();
        }
        v.iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Serialize)]
struct FlowTable {
    /// Assured flows (they proved themselves; `--flows`).
    entries: u64,
    capacity: u32,
    fill: f64,
    /// Flows not assured yet (`--new-flows`).
    new_entries: u64,
    new_capacity: u32,
    /// Assured flows evicted to make room for new assured ones: the table
    /// is too small (raise `--flows`).
    evicted: u64,
    counted_secs_ago: Option<u64>,
}

#[derive(Serialize)]
struct IfaceStatus {
    device: String,
    ifindex: u32,
    xdp_mode: Option<XdpModeInForce>,
    egress: Option<TcHook>,
    xdp_attached: bool,
    egress_attached: bool,
    /// What its frames start with: `ethernet`, or `ip` (no link-layer
    /// header: tun, WireGuard, tunnels).
    link: &'static str,
    level: Level,
    /// Under auto: the range it moves in, and whether an operator pinned it.
    auto: Option<AutoStatus>,
    escalations: u32,
    deescalations: u32,
    last_change_secs_ago: Option<u64>,
    /// RSTs on flows seen in one direction only: never dropped. Many of
    /// them mean asymmetric routing through this interface.
    one_sided_rsts: u64,
    /// Segments that taught rstguard nothing (forged-looking), all reasons.
    ignored_segments: u64,
    /// Where its RSTs are judged from (`socket`, `track`, `auto`), and why.
    state: &'static str,
    state_why: &'static str,
    /// RSTs judged against the host's own sockets.
    socket_rsts: u64,
}

#[derive(Serialize)]
struct AutoStatus {
    floor: Level,
    ceiling: Level,
    pinned: bool,
}

#[derive(Serialize)]
struct TopFlowView {
    a: String,
    b: String,
    suspicious_rsts: u64,
}

#[derive(Serialize)]
struct TopPortView {
    port: u16,
    suspicious_rsts: u64,
}

pub fn run(pins: &PinDir, json: bool) -> anyhow::Result<()> {
    let maps = Maps::open(pins)?;
    let s = maps.state()?;
    let running = pins.is_locked();
    let policy = maps.default_policy()?;
    let now = unix_now();
    let status = Status {
        running,
        pid: s.pid,
        version: cstr(&s.version),
        uptime_secs: if running {
            now.saturating_sub(s.started_unix)
        } else {
            0
        },
        pin_dir: pins.dir().display().to_string(),
        policy: PolicyView::from(&policy),
        auto: s.auto != 0,
        config_ok: s.config_ok != 0,
        config_reloads: s.config_reloads,
        flow_table: FlowTable {
            entries: s.flow_entries,
            capacity: s.flow_capacity,
            fill: if s.flow_capacity == 0 {
                0.0
            } else {
                s.flow_entries as f64 / s.flow_capacity as f64
            },
            new_entries: s.new_flow_entries,
            new_capacity: s.new_flow_capacity,
            evicted: s.assured_evicted,
            counted_secs_ago: (s.flows_counted_unix != 0)
                .then(|| now.saturating_sub(s.flows_counted_unix)),
        },
        interfaces: s
            .ifaces
            .iter()
            .take(s.n_ifaces as usize)
            .map(|i| {
                let c = maps.counters(i.ifindex).unwrap_or_default();
                IfaceStatus {
                    device: iface_name(Some(&s), i.ifindex),
                    ifindex: i.ifindex,
                    xdp_mode: XdpModeInForce::from_raw(i.xdp_mode),
                    egress: TcHook::from_raw(i.tc_hook),
                    xdp_attached: running && link_exists(i.xdp_link_id),
                    // A clsact filter is no link: it is there while the
                    // daemon that attached it runs (it removes it on exit;
                    // after a crash `detach` does).
                    egress_attached: running
                        && (TcHook::from_raw(i.tc_hook) == Some(TcHook::Clsact)
                            || link_exists(i.tc_link_id)),
                    link: if i.link == LINK_IP { "ip" } else { "ethernet" },
                    state: Source::from_raw(u32::from(i.source)).name(),
                    state_why: crate::socket::describe(
                        Source::from_raw(u32::from(i.source)),
                        i.source_why,
                    ),
                    socket_rsts: c.get(rstguard_common::Counter::SocketRst),
                    level: maps
                        .policy(i.ifindex)
                        .ok()
                        .flatten()
                        .map_or(policy.level(), |p: Policy| p.level()),
                    auto: (s.auto != 0).then(|| AutoStatus {
                        floor: Level::from_raw(i.floor),
                        ceiling: Level::from_raw(i.ceiling),
                        pinned: maps
                            .policy(i.ifindex)
                            .ok()
                            .flatten()
                            .is_some_and(|p| p.flags & POLICY_PINNED != 0),
                    }),
                    escalations: i.escalations,
                    deescalations: i.deescalations,
                    last_change_secs_ago: (i.last_change_unix != 0)
                        .then(|| now.saturating_sub(i.last_change_unix)),
                    one_sided_rsts: c.rst(Verdict::OneSided, Action::Pass),
                    ignored_segments: Ignore::ALL
                        .iter()
                        .map(|&why| c.get(Counter::ignored(why)))
                        .sum(),
                }
            })
            .collect(),
        top_flows: s
            .top_flows
            .iter()
            .filter(|t| t.count > 0)
            .map(|t| {
                let (a, b) = endpoints(&t.ends);
                TopFlowView {
                    a,
                    b,
                    suspicious_rsts: t.count,
                }
            })
            .collect(),
        top_ports: s
            .top_ports
            .iter()
            .filter(|t| t.count > 0)
            .map(|t| TopPortView {
                port: t.port,
                suspicious_rsts: t.count,
            })
            .collect(),
        events_seen: s.events_seen,
        events_suppressed: s.events_suppressed,
        recent_causes: RecentCauses::of(&s),
    };
    if json {
        return print_json(&status);
    }
    if running {
        println!(
            "rstguard {}: running, pid {}, up {}",
            status.version,
            status.pid,
            human_secs(status.uptime_secs)
        );
    } else {
        println!(
            "rstguard {}: NOT running (pid {} left this state; nothing of it stays attached). \
             `rstguard detach --all` removes it.",
            status.version, status.pid
        );
    }
    println!("pin dir:    {}", status.pin_dir);
    println!(
        "policy:     {}{}",
        describe(&policy),
        if status.auto { " (auto)" } else { "" }
    );
    println!(
        "config:     {} ({} reload(s))",
        if status.config_ok {
            "ok"
        } else {
            "LAST RELOAD FAILED: the previous policy is in force"
        },
        status.config_reloads
    );
    let t = &status.flow_table;
    println!(
        "flow table: {} of {} assured ({:.2}%), {} of {} new{}",
        t.entries,
        t.capacity,
        t.fill * 100.0,
        t.new_entries,
        t.new_capacity,
        t.counted_secs_ago
            .map_or(String::new(), |a| format!(", counted {a}s ago"))
    );
    if t.evicted > 0 {
        println!(
            "            WARNING: {} assured flow(s) evicted to make room: the table is full, raise --flows",
            t.evicted
        );
    }
    println!("interfaces:");
    for i in &status.interfaces {
        let yes = |b: bool| if b { "attached" } else { "DETACHED" };
        let egress = match i.egress {
            Some(TcHook::Off) => "none (socket mode needs none)".to_string(),
            other => format!(
                "{} ({})",
                other.map_or("?".into(), |m| m.to_string()),
                yes(i.egress_attached)
            ),
        };
        let auto = match &i.auto {
            Some(a) => format!(
                " (auto {}..{}{}; {} up, {} down{})",
                a.floor,
                a.ceiling,
                if a.pinned {
                    ", PINNED by the operator"
                } else {
                    ""
                },
                i.escalations,
                i.deescalations,
                i.last_change_secs_ago
                    .map_or(String::new(), |s| format!(", last change {s}s ago"))
            ),
            None => String::new(),
        };
        println!(
            "  {:<12} {}, xdp {} ({}), egress {}, level {}{}",
            i.device,
            i.link,
            i.xdp_mode.map_or("?".into(), |m| m.to_string()),
            yes(i.xdp_attached),
            egress,
            i.level,
            auto
        );
        println!(
            "  {:<12} state {}: {} ({} RST(s) judged by socket)",
            "",
            i.state,
            i.state_why
                .split_once(": ")
                .map_or(i.state_why, |(_, why)| why),
            i.socket_rsts
        );
        if i.one_sided_rsts > 0 {
            println!(
                "  {:<12} {} one-sided RST(s) passed: flows seen in one direction only \
                 (asymmetric routing?); never dropped",
                "", i.one_sided_rsts
            );
        }
        if i.ignored_segments > 0 {
            println!(
                "  {:<12} {} segment(s) ignored as forged-looking (`rstguard stats` has the reasons)",
                "", i.ignored_segments
            );
        }
    }
    let rc = &status.recent_causes;
    println!(
        "RST causes, last {}: arrived: {}; sent by this host: {} (`rstguard resets` explains each)",
        human_secs(rc.secs),
        RecentCauses::line(&rc.ingress),
        RecentCauses::line(&rc.egress)
    );
    if !status.top_flows.is_empty() {
        println!("most attacked flows (sampled suspicious RSTs):");
        for t in &status.top_flows {
            println!("  {:>8}  {} <-> {}", t.suspicious_rsts, t.a, t.b);
        }
        println!("most attacked ports:");
        for t in &status.top_ports {
            println!("  {:>8}  port {}", t.suspicious_rsts, t.port);
        }
    }
    Ok(())
}

fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}
