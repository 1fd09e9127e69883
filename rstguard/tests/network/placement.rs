//! Where rstguard runs in the routed lab, and reading its RST counters.

use rstguard_lab::{
    n,
    routed::{Routed, ROUTER_IFACES},
    Daemon, Netns,
};
use serde_json::Value;

/// Where rstguard runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Placement {
    /// On the endpoints that receive the RSTs.
    Endpoints,
    /// On every interface of the router.
    Router,
}

/// Starts rstguard for `placement`; returns the daemons and, for each
/// spoofed direction, (namespace, device) where those RSTs are judged.
pub fn start(lab: &Routed, placement: Placement, extra: &[&str]) -> Vec<Daemon> {
    let common = |devs: &[&str]| {
        let mut a = vec!["attach"];
        a.extend_from_slice(devs);
        a.extend(["--interval", "0", "--no-metrics"]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |ns: &Netns, devs: &[&str]| {
        let args = common(devs);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Daemon::start(ns, &args)
    };
    match placement {
        Placement::Endpoints => vec![run(&lab.client, &["c0"]), run(&lab.server, &["s0"])],
        Placement::Router => vec![run(&lab.router, &ROUTER_IFACES)],
    }
}

/// The RST counters of `dev` in `ns`: verdict -> (passed, dropped).
pub fn rsts(ns: &Netns, dev: &str) -> Value {
    let stats = ns.cli_json(&["stats"]);
    stats["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["device"] == dev)
        .unwrap_or_else(|| panic!("no {dev}: {stats}"))["counters"]["rst"]
        .clone()
}

pub fn total(rst: &Value) -> u64 {
    rst.as_object()
        .unwrap()
        .values()
        .map(|v| n(&v["passed"]) + n(&v["dropped"]))
        .sum()
}

/// Where RSTs aimed at the server / at the client are judged.
pub fn judged_at(lab: &Routed, placement: Placement, at_server: bool) -> (&Netns, &'static str) {
    match (placement, at_server) {
        (Placement::Router, _) => (&lab.router, "r2"),
        (Placement::Endpoints, true) => (&lab.server, "s0"),
        (Placement::Endpoints, false) => (&lab.client, "c0"),
    }
}

/// The segments of `dev` in `ns` that taught nothing, by reason.
pub fn ignored(ns: &Netns, dev: &str) -> Value {
    let stats = ns.cli_json(&["stats"]);
    stats["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["device"] == dev)
        .unwrap_or_else(|| panic!("no {dev}: {stats}"))["counters"]["ignored"]
        .clone()
}
