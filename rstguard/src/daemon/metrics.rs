//! `/metrics`: Prometheus text (format 0.0.4), read from the maps at scrape
//! time. Every series that can exist exists from the first scrape (counters
//! start at 0). The `device` label is the interface name, as node_exporter
//! names it; no label ever carries an address or a port.

use std::{
    convert::Infallible,
    net::TcpListener as StdListener,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Method, Request, Response};
use hyper_util::rt::TokioIo;
use prometheus::{
    proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType},
    Encoder, TextEncoder,
};
use rstguard_common::{
    count::CounterKind, judge::socket::Source, Action, Cause, Counter as C, Direction, Verdict,
};
use tracing::debug;

use super::{lock, Shared};

/// Every metric family rstguard exports (the dashboard and the tests check
/// against this list).
pub const NAMES: &[&str] = &[
    "rstguard_rst_packets_total",
    "rstguard_rst_causes_total",
    "rstguard_packets_total",
    "rstguard_tcp_packets_total",
    "rstguard_host_rst_packets_total",
    "rstguard_forwarded_rst_packets_total",
    "rstguard_ignored_segments_total",
    "rstguard_parse_errors_total",
    "rstguard_non_first_fragments_total",
    "rstguard_flows_created_total",
    "rstguard_flow_create_failed_total",
    "rstguard_closed_flow_packets_total",
    "rstguard_events_lost_total",
    "rstguard_flows_assured_total",
    "rstguard_flow_table_entries",
    "rstguard_flow_table_capacity",
    "rstguard_flow_table_evictions_total",
    "rstguard_attached",
    "rstguard_policy_level",
    "rstguard_policy_auto",
    "rstguard_policy_transitions_total",
    "rstguard_events_total",
    "rstguard_events_suppressed_total",
    "rstguard_build_info",
    "rstguard_config_last_reload_successful",
    "rstguard_state_source",
    "rstguard_socket_rst_packets_total",
];

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: StdListener, shared: Arc<Mutex<Shared>>) -> anyhow::Result<()> {
    let listener = listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
        .context("cannot serve metrics")?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "metrics accept failed");
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(respond(&req, &shared)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "metrics connection failed");
            }
        });
    }
}

fn respond<B>(req: &Request<B>, shared: &Mutex<Shared>) -> Response<Full<Bytes>> {
    let reply = |status: u16, ctype: &str, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let families = collect(&lock(shared));
            let mut body = Vec::new();
            match TextEncoder::new().encode(&families, &mut body) {
                Ok(()) => reply(200, prometheus::TEXT_FORMAT, body),
                Err(e) => reply(500, "text/plain", e.to_string().into_bytes()),
            }
        }
        (&Method::GET, "/") => reply(
            200,
            "text/html",
            b"<html><body><a href=\"/metrics\">rstguard metrics</a></body></html>".to_vec(),
        ),
        _ => reply(404, "text/plain", b"not found: try /metrics\n".to_vec()),
    }
}

/// A family of one type; samples are added with [`Family::add`].
struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, t: MetricType) -> Family {
        let mut f = MetricFamily::default();
        f.set_name(name.into());
        f.set_help(help.into());
        f.set_field_type(t);
        Family(f)
    }

    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut m = Metric::default();
        m.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).into());
                    l.set_value((*v).into());
                    l
                })
                .collect(),
        );
        match self.0.get_field_type() {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        self.0.mut_metric().push(m);
    }
}

/// Every family, from the maps and the daemon's state, now.
pub fn collect(s: &Shared) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    let mut rst = Family::new(
        "rstguard_rst_packets_total",
        "RSTs judged at XDP ingress, by verdict and by what was done with them.",
        COUNTER,
    );
    let mut causes = Family::new(
        "rstguard_rst_causes_total",
        "RSTs by likely cause (refused, no_socket, peer_closed, abort, idle_expired, middlebox, \
         injected, blind, hidden, time_wait, unknown) and direction (ingress: arrived, judged at \
         XDP; egress: sent by this host). See `rstguard resets` for each one's evidence.",
        COUNTER,
    );
    let mut packets = Family::new(
        "rstguard_packets_total",
        "Frames seen, by hook (xdp: ingress, tc: egress).",
        COUNTER,
    );
    let mut tcp = Family::new(
        "rstguard_tcp_packets_total",
        "TCP segments seen, by hook.",
        COUNTER,
    );
    let mut own_rst = Family::new(
        "rstguard_host_rst_packets_total",
        "RSTs the host itself sent (seen at egress; never judged).",
        COUNTER,
    );
    let mut parse = Family::new(
        "rstguard_parse_errors_total",
        "Frames that could not be parsed (they pass), by kind.",
        COUNTER,
    );
    let mut frags = Family::new(
        "rstguard_non_first_fragments_total",
        "Non-first IP fragments (no TCP header; they pass).",
        COUNTER,
    );
    let mut created = Family::new(
        "rstguard_flows_created_total",
        "Flows created (in the table of new flows).",
        COUNTER,
    );
    let mut assured = Family::new(
        "rstguard_flows_assured_total",
        "Flows that proved themselves and moved into the assured table.",
        COUNTER,
    );
    let mut failed = Family::new(
        "rstguard_flow_create_failed_total",
        "Flow creations the table refused.",
        COUNTER,
    );
    let mut closed = Family::new(
        "rstguard_closed_flow_packets_total",
        "Segments on flows already closed by a RST.",
        COUNTER,
    );
    let mut forwarded_rst = Family::new(
        "rstguard_forwarded_rst_packets_total",
        "RSTs the host forwarded, seen at egress (judged where they came in).",
        COUNTER,
    );
    let mut ignored = Family::new(
        "rstguard_ignored_segments_total",
        "Segments that taught rstguard nothing (they pass), by reason: syn, seq_out_of_window, ack_out_of_range, fin_out_of_order, local_spoof.",
        COUNTER,
    );
    let mut by_socket = Family::new(
        "rstguard_socket_rst_packets_total",
        "RSTs judged against the host's own sockets (socket mode); the rest of rstguard_rst_packets_total was judged against the flow table.",
        COUNTER,
    );
    let mut lost = Family::new(
        "rstguard_events_lost_total",
        "Events the ring buffer had no room for.",
        COUNTER,
    );
    for (device, ifindex) in s.devices() {
        let c = s.maps.counters(ifindex).unwrap_or_default();
        let d = device.as_str();
        for v in Verdict::ALL {
            for a in [Action::Pass, Action::Drop] {
                rst.add(
                    &[("device", d), ("verdict", v.name()), ("action", a.past())],
                    c.rst(v, a) as f64,
                );
            }
        }
        for dir in Direction::ALL {
            for cause in Cause::ALL {
                causes.add(
                    &[
                        ("device", d),
                        ("direction", dir.name()),
                        ("cause", cause.name()),
                    ],
                    c.cause(dir, cause) as f64,
                );
            }
        }
        for counter in C::ALL {
            let value = c.get(counter) as f64;
            match counter.kind() {
                CounterKind::Hook(hook, "all") => {
                    packets.add(&[("device", d), ("hook", hook)], value)
                }
                CounterKind::Hook(hook, "tcp") => tcp.add(&[("device", d), ("hook", hook)], value),
                CounterKind::Hook("tc", "rst") => own_rst.add(&[("device", d)], value),
                CounterKind::Hook("tc", "forwarded_rst") => {
                    forwarded_rst.add(&[("device", d)], value)
                }
                CounterKind::Hook("xdp", "socket_rst") => by_socket.add(&[("device", d)], value),
                CounterKind::Hook(..) => {}
                CounterKind::ParseError(kind) => parse.add(&[("device", d), ("kind", kind)], value),
                CounterKind::Fragment => frags.add(&[("device", d)], value),
                CounterKind::Flow("created") => created.add(&[("device", d)], value),
                CounterKind::Flow("create_failed") => failed.add(&[("device", d)], value),
                CounterKind::Flow("assured") => assured.add(&[("device", d)], value),
                CounterKind::Flow("closed_flow_packets") => closed.add(&[("device", d)], value),
                // Counted into the table's evictions below.
                CounterKind::Flow(_) => {}
                CounterKind::EventsLost => lost.add(&[("device", d)], value),
                CounterKind::Ignored(why) => {
                    ignored.add(&[("device", d), ("reason", why.name())], value)
                }
            }
        }
    }

    let mut entries = Family::new(
        "rstguard_flow_table_entries",
        "Tracked flows, counted at the last sweep, by table: assured (proved themselves) or new.",
        GAUGE,
    );
    entries.add(&[("table", "assured")], s.state.flow_entries as f64);
    entries.add(&[("table", "new")], s.state.new_flow_entries as f64);
    let mut capacity = Family::new(
        "rstguard_flow_table_capacity",
        "Flow table capacity, by table (--flows, --new-flows).",
        GAUGE,
    );
    capacity.add(&[("table", "assured")], s.state.flow_capacity as f64);
    capacity.add(&[("table", "new")], s.state.new_flow_capacity as f64);
    let mut evictions = Family::new(
        "rstguard_flow_table_evictions_total",
        "Assured flows the full table evicted to make room for new assured ones (raise --flows).",
        COUNTER,
    );
    evictions.add(&[], s.state.assured_evicted as f64);

    let mut attached = Family::new(
        "rstguard_attached",
        "1 for each hook rstguard holds: hook xdp (mode native or skb), tc (mode tcx or clsact).",
        GAUGE,
    );
    let mut level = Family::new(
        "rstguard_policy_level",
        "Policy level in force per device: 0 monitor, 1 enforce, 2 strict.",
        GAUGE,
    );
    let mut auto = Family::new(
        "rstguard_policy_auto",
        "1 when auto mode moves this device's level; 0 for a fixed level or one an operator pinned.",
        GAUGE,
    );
    let mut transitions = Family::new(
        "rstguard_policy_transitions_total",
        "Auto-mode level changes, by direction (up, down).",
        COUNTER,
    );
    let mut source = Family::new(
        "rstguard_state_source",
        "1 for the state source each device's RSTs are judged from: socket (the host's own sockets), track (the flow table) or auto (socket for this host's addresses, track for the rest); 0 for the others.",
        GAUGE,
    );
    for a in &s.attached {
        let d = a.name.as_str();
        let in_force = s
            .state
            .ifaces
            .iter()
            .find(|i| i.ifindex == a.ifindex)
            .map_or(Source::Track, |i| Source::from_raw(u32::from(i.source)));
        for src in Source::ALL {
            source.add(
                &[("device", d), ("source", src.name())],
                f64::from(u8::from(src == in_force)),
            );
        }
        let controlled = s.auto.iter().any(|x| x.ifindex == a.ifindex && !x.pinned);
        auto.add(&[("device", d)], f64::from(u8::from(controlled)));
        let st = s.state.ifaces.iter().find(|i| i.ifindex == a.ifindex);
        transitions.add(
            &[("device", d), ("direction", "up")],
            st.map_or(0, |i| i.escalations) as f64,
        );
        transitions.add(
            &[("device", d), ("direction", "down")],
            st.map_or(0, |i| i.deescalations) as f64,
        );
        attached.add(
            &[("device", d), ("hook", "xdp"), ("mode", &a.xdp_mode)],
            1.0,
        );
        if a.tc_hook != "none" {
            attached.add(&[("device", d), ("hook", "tc"), ("mode", &a.tc_hook)], 1.0);
        }
        let l = s
            .maps
            .policy(a.ifindex)
            .ok()
            .flatten()
            .map(|p| p.level)
            .unwrap_or(0);
        level.add(&[("device", d)], l as f64);
    }

    let mut events = Family::new(
        "rstguard_events_total",
        "Events (sampled suspicious RSTs) the daemon received.",
        COUNTER,
    );
    events.add(&[], s.state.events_seen as f64);
    let mut suppressed = Family::new(
        "rstguard_events_suppressed_total",
        "Events left out of the log by its rate limit.",
        COUNTER,
    );
    suppressed.add(&[], s.state.events_suppressed as f64);
    let mut build = Family::new(
        "rstguard_build_info",
        "Always 1; the version is a label.",
        GAUGE,
    );
    build.add(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    let mut reload = Family::new(
        "rstguard_config_last_reload_successful",
        "1 when the last config (re)load succeeded, else 0.",
        GAUGE,
    );
    reload.add(&[], f64::from(s.state.config_ok));

    [
        rst,
        causes,
        packets,
        tcp,
        own_rst,
        forwarded_rst,
        ignored,
        parse,
        frags,
        created,
        assured,
        failed,
        closed,
        lost,
        entries,
        capacity,
        evictions,
        attached,
        level,
        auto,
        transitions,
        events,
        suppressed,
        build,
        reload,
        source,
        by_socket,
    ]
    .into_iter()
    .map(|f| f.0)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::NAMES;

    /// Every metric the dashboard queries is one rstguard exports.
    #[test]
    fn the_dashboard_uses_only_exported_metrics() {
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../../../packaging/grafana-dashboard.json"))
                .unwrap();
        assert_eq!(dash["__inputs"][0]["pluginId"], "prometheus");
        let mut used = 0;
        for panel in dash["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("rstguard_") {
                        assert!(
                            NAMES.contains(&word),
                            "the dashboard queries {word}, which is not exported"
                        );
                        used += 1;
                    }
                }
            }
        }
        assert!(used >= NAMES.len(), "the dashboard shows too little");
    }
}
