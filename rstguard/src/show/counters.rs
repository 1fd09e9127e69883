//! Naming and presenting one interface's counters.

use std::collections::BTreeMap;

use rstguard_common::{count::CounterKind, Action, Counter, Counters, Verdict};
use serde::Serialize;

/// Passed and dropped RSTs of one verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PassDrop {
    pub passed: u64,
    pub dropped: u64,
}

/// One interface's counters, by name: the shape of `--json` output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Named {
    /// Per hook (`xdp`, `tc`): `packets`, `tcp`, `rst`.
    pub hooks: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// RSTs judged at XDP, per verdict.
    pub rst: BTreeMap<&'static str, PassDrop>,
    /// Flow-table events.
    pub flows: BTreeMap<&'static str, u64>,
    /// Parse errors by kind.
    pub parse_errors: BTreeMap<&'static str, u64>,
    pub non_first_fragments: u64,
    pub events_lost: u64,
    /// Segments that taught nothing, by reason (they passed).
    pub ignored: BTreeMap<&'static str, u64>,
}

impl Named {
    pub fn from_counters(c: &Counters) -> Named {
        let mut n = Named::default();
        for counter in Counter::ALL {
            let v = c.get(counter);
            match counter.kind() {
                CounterKind::Hook(hook, class) => {
                    let class = if class == "all" { "packets" } else { class };
                    n.hooks.entry(hook).or_default().insert(class, v);
                }
                CounterKind::Flow(what) => {
                    n.flows.insert(what, v);
                }
                CounterKind::ParseError(kind) => {
                    n.parse_errors.insert(kind, v);
                }
                CounterKind::Fragment => n.non_first_fragments = v,
                CounterKind::EventsLost => n.events_lost = v,
                CounterKind::Ignored(why) => {
                    n.ignored.insert(why.name(), v);
                }
            }
        }
        for verdict in Verdict::ALL {
            n.rst.insert(
                verdict.name(),
                PassDrop {
                    passed: c.rst(verdict, Action::Pass),
                    dropped: c.rst(verdict, Action::Drop),
                },
            );
        }
        n
    }
}

/// A one-line human summary of an interface's counters. Zero verdicts and
/// zero error kinds are left out to keep the line short.
pub fn summary_line(device: &str, c: &Counters) -> String {
    let mut line = format!(
        "{device}: ingress {} pkts, {} tcp, {} rst | egress {} pkts, {} tcp, {} rst",
        c.get(Counter::XdpPackets),
        c.get(Counter::XdpTcp),
        c.get(Counter::XdpRst),
        c.get(Counter::TcPackets),
        c.get(Counter::TcTcp),
        c.get(Counter::TcRst),
    );
    let verdicts: Vec<String> = Verdict::ALL
        .iter()
        .flat_map(|&v| [Action::Pass, Action::Drop].map(move |a| (v, a, c.rst(v, a))))
        .filter(|&(_, _, n)| n > 0)
        .map(|(v, a, n)| format!("{} {} {n}", v.name(), a.past()))
        .collect();
    if !verdicts.is_empty() {
        line.push_str(" | rst: ");
        line.push_str(&verdicts.join(", "));
    }
    line.push_str(&format!(
        " | flows created {}",
        c.get(Counter::FlowsCreated)
    ));
    let failed = c.get(Counter::FlowCreateFailed);
    if failed > 0 {
        line.push_str(&format!(", create failed {failed}"));
    }
    let errors: Vec<String> = Counter::ALL
        .iter()
        .filter_map(|&k| match k.kind() {
            CounterKind::ParseError(kind) if c.get(k) > 0 => Some(format!("{kind} {}", c.get(k))),
            _ => None,
        })
        .collect();
    if !errors.is_empty() {
        line.push_str(" | parse errors: ");
        line.push_str(&errors.join(", "));
    }
    let ignored: Vec<String> = Counter::ALL
        .iter()
        .filter_map(|&k| match k.kind() {
            CounterKind::Ignored(why) if c.get(k) > 0 => {
                Some(format!("{} {}", why.name(), c.get(k)))
            }
            _ => None,
        })
        .collect();
    if !ignored.is_empty() {
        line.push_str(" | ignored: ");
        line.push_str(&ignored.join(", "));
    }
    let frags = c.get(Counter::NonFirstFragment);
    if frags > 0 {
        line.push_str(&format!(" | non-first fragments {frags}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use rstguard_common::count::rst_slot;

    use super::*;

    #[test]
    fn names_every_slot() {
        let mut c = Counters::default();
        for (i, s) in c.slots.iter_mut().enumerate() {
            *s = i as u64 + 1;
        }
        let n = Named::from_counters(&c);
        assert_eq!(n.hooks["xdp"]["packets"], 1);
        assert_eq!(n.hooks["tc"]["rst"], Counter::TcRst as u64 + 1);
        assert_eq!(
            n.rst["out_of_window"].dropped,
            rst_slot(Verdict::OutOfWindow, Action::Drop) as u64 + 1
        );
        assert_eq!(
            n.parse_errors["bad_ipv4_ihl"],
            Counter::BadIpv4Ihl as u64 + 1
        );
        assert_eq!(n.parse_errors.len(), 10);
        assert_eq!(n.rst.len(), Verdict::COUNT);
    }

    #[test]
    fn summary_shows_only_what_happened() {
        let mut c = Counters::default();
        c.slots[Counter::XdpPackets as usize] = 10;
        c.slots[rst_slot(Verdict::OutOfWindow, Action::Drop)] = 3;
        let line = summary_line("veth0", &c);
        assert!(line.starts_with("veth0: ingress 10 pkts"), "{line}");
        assert!(line.contains("out_of_window dropped 3"), "{line}");
        assert!(!line.contains("exact"), "{line}");
        assert!(!line.contains("parse errors"), "{line}");
    }
}
