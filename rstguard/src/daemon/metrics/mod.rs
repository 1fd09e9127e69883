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
use rstguard_common::{judge::socket::Source, Counters};
use tracing::debug;

mod families;

pub use self::families::{
    counter_metric, device_series, Fam, FamilyDef, Series, Slot, FAMILIES, NAMES,
};
use super::{lock, Shared};

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
    let mut f = Families::new();
    let devices: Vec<(String, Counters)> = s
        .devices()
        .into_iter()
        .map(|(device, ifindex)| (device, s.maps.counters(ifindex).unwrap_or_default()))
        .collect();
    f.add_devices(&devices);

    let st = &s.state;
    for (table, entries, capacity) in [
        ("assured", st.flow_entries, st.flow_capacity),
        ("new", st.new_flow_entries, st.new_flow_capacity),
    ] {
        f.add(Fam::FlowTableEntries, &[("table", table)], entries as f64);
        f.add(
            Fam::FlowTableCapacity,
            &[("table", table)],
            f64::from(capacity),
        );
    }
    f.add(Fam::FlowTableEvictions, &[], s.state.assured_evicted as f64);

    for a in &s.attached {
        let d = a.name.as_str();
        let st = s.state.ifaces.iter().find(|i| i.ifindex == a.ifindex);
        let in_force = st.map_or(Source::Track, |i| Source::from_raw(u32::from(i.source)));
        for src in Source::ALL {
            f.add(
                Fam::StateSource,
                &[("device", d), ("source", src.name())],
                f64::from(u8::from(src == in_force)),
            );
        }
        let controlled = s.auto.iter().any(|x| x.ifindex == a.ifindex && !x.pinned);
        f.add(
            Fam::PolicyAuto,
            &[("device", d)],
            f64::from(u8::from(controlled)),
        );
        f.add(
            Fam::PolicyTransitions,
            &[("device", d), ("direction", "up")],
            st.map_or(0, |i| i.escalations) as f64,
        );
        f.add(
            Fam::PolicyTransitions,
            &[("device", d), ("direction", "down")],
            st.map_or(0, |i| i.deescalations) as f64,
        );
        f.add(
            Fam::Attached,
            &[("device", d), ("hook", "xdp"), ("mode", &a.xdp_mode)],
            1.0,
        );
        if a.tc_hook != "none" {
            f.add(
                Fam::Attached,
                &[("device", d), ("hook", "tc"), ("mode", &a.tc_hook)],
                1.0,
            );
        }
        let l = s
            .maps
            .policy(a.ifindex)
            .ok()
            .flatten()
            .map(|p| p.level)
            .unwrap_or(0);
        f.add(Fam::PolicyLevel, &[("device", d)], l as f64);
    }

    f.add(Fam::Events, &[], s.state.events_seen as f64);
    f.add(Fam::EventsSuppressed, &[], s.state.events_suppressed as f64);
    f.add(
        Fam::BuildInfo,
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    f.add(Fam::ConfigReload, &[], f64::from(s.state.config_ok));
    f.done()
}

/// Every family of the table, filled sample by sample.
struct Families(Vec<Family>);

impl Families {
    fn new() -> Families {
        Families(
            FAMILIES
                .iter()
                .map(|d| Family::new(d.name, d.help, d.kind))
                .collect(),
        )
    }

    fn add(&mut self, fam: Fam, labels: &[(&str, &str)], value: f64) {
        self.0[fam as usize].add(labels, value);
    }

    /// The per-device series of the table ([`device_series`]).
    fn add_devices(&mut self, devices: &[(String, Counters)]) {
        let series = device_series();
        for (device, c) in devices {
            for s in &series {
                let mut labels = vec![("device", device.as_str())];
                labels.extend(s.labels.iter().copied());
                self.add(s.family, &labels, s.slot.read(c) as f64);
            }
        }
    }

    fn done(self) -> Vec<MetricFamily> {
        self.0.into_iter().map(|f| f.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rstguard_common::{Counter, Counters};

    use super::*;

    /// Counters whose every slot holds a different value (its index + 1).
    fn distinct() -> Counters {
        let mut c = Counters::default();
        for (i, v) in c.slots.iter_mut().enumerate() {
            *v = i as u64 + 1;
        }
        c
    }

    /// The samples of one family: (labels, value).
    fn samples(families: &[MetricFamily], name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        let f = families
            .iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("{name} is not exported"));
        f.get_metric()
            .iter()
            .map(|m| {
                let labels = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                let value = match f.get_field_type() {
                    MetricType::COUNTER => m.get_counter().get_value(),
                    _ => m.get_gauge().get_value(),
                };
                (labels, value)
            })
            .collect()
    }

    #[test]
    fn the_table_names_each_family_once_in_the_order_of_fam() {
        let unique: BTreeSet<_> = NAMES.iter().collect();
        assert_eq!(unique.len(), NAMES.len());
        assert_eq!(Fam::SocketRst as usize + 1, FAMILIES.len());
        assert_eq!(Fam::RstPackets.def().name, "rstguard_rst_packets_total");
        assert_eq!(
            Fam::SocketRst.def().name,
            "rstguard_socket_rst_packets_total"
        );
    }

    /// Every counter is exported where the table says, with its labels and
    /// its value, and nowhere else.
    #[test]
    fn every_counter_is_exported_as_the_table_says() {
        let c = distinct();
        let mut f = Families::new();
        f.add_devices(&[("eth0".to_string(), c)]);
        let families = f.done();
        let mut expected = 0;
        for series in device_series() {
            let name = series.family.def().name;
            let mut labels = vec![("device".to_string(), "eth0".to_string())];
            labels.extend(
                series
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            let found = samples(&families, name);
            let value = series.slot.read(&c) as f64;
            assert!(
                found.contains(&(labels.clone(), value)),
                "{name}{labels:?} = {value} is missing"
            );
            expected += 1;
        }
        let exported: usize = families.iter().map(|f| f.get_metric().len()).sum();
        assert_eq!(exported, expected, "samples the table does not list");
        // What the table leaves out is exported nowhere.
        for counter in Counter::ALL {
            if counter_metric(counter).is_none() {
                let v = c.get(counter) as f64;
                for name in NAMES {
                    assert!(
                        samples(&families, name).iter().all(|(_, x)| *x != v),
                        "{counter:?} shows up in {name}"
                    );
                }
            }
        }
        assert_eq!(counter_metric(Counter::XdpRst), None);
        assert_eq!(counter_metric(Counter::AssuredRestarted), None);
    }

    /// The dashboard shows every family rstguard exports, queries no
    /// other, and filters only on label values the table exports.
    #[test]
    fn the_dashboard_and_the_table_agree() {
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../../../../packaging/grafana-dashboard.json"))
                .unwrap();
        assert_eq!(dash["__inputs"][0]["pluginId"], "prometheus");
        let series = device_series();
        let mut used = BTreeSet::new();
        for panel in dash["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let mut rest = expr;
                while let Some(at) = rest.find("rstguard_") {
                    rest = &rest[at..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    let name = &rest[..end];
                    assert!(
                        NAMES.contains(&name),
                        "the dashboard queries {name}, which is not exported"
                    );
                    used.insert(name.to_string());
                    rest = &rest[end..];
                    let Some(selector) = rest.strip_prefix('{') else {
                        continue;
                    };
                    let selector = &selector[..selector.find('}').unwrap()];
                    for matcher in selector.split(',') {
                        let Some((label, value)) = matcher.split_once('=') else {
                            continue;
                        };
                        if label == "device" || label.ends_with('!') {
                            continue;
                        }
                        let value = value.trim_start_matches('~').trim_matches('"');
                        let known: BTreeSet<&str> = series
                            .iter()
                            .filter(|s| s.family.def().name == name)
                            .flat_map(|s| s.labels.iter())
                            .filter(|(k, _)| *k == label)
                            .map(|(_, v)| *v)
                            .collect();
                        if known.is_empty() {
                            continue;
                        }
                        for v in value.split('|') {
                            assert!(
                                known.contains(v),
                                "the dashboard filters {name} on {label}={v}, which is never exported"
                            );
                        }
                    }
                }
            }
        }
        let all: BTreeSet<String> = NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(used, all, "families the dashboard does not show");
    }
}
