//! Every metric family rstguard exports, and the one table that says which
//! family (and labels) each counter slot is exported as. The exporter
//! (`collect`), the tests and the dashboard's test all read these.

use prometheus::proto::MetricType::{self, COUNTER, GAUGE};
use rstguard_common::{state::track::Ignore, Action, Cause, Counter, Counters, Direction, Verdict};

/// A metric family, in the order of the scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fam {
    RstPackets,
    RstCauses,
    Packets,
    TcpPackets,
    HostRst,
    ForwardedRst,
    Ignored,
    ParseErrors,
    NonFirstFragments,
    FlowsCreated,
    FlowsAssured,
    FlowCreateFailed,
    ClosedFlowPackets,
    EventsLost,
    FlowTableEntries,
    FlowTableCapacity,
    FlowTableEvictions,
    Attached,
    PolicyLevel,
    PolicyAuto,
    PolicyTransitions,
    Events,
    EventsSuppressed,
    BuildInfo,
    ConfigReload,
    StateSource,
    SocketRst,
}

/// A family's name, help text and type.
pub struct FamilyDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
}

const fn def(name: &'static str, help: &'static str, kind: MetricType) -> FamilyDef {
    FamilyDef { name, help, kind }
}

/// Every family, indexed by [`Fam`].
pub const FAMILIES: [FamilyDef; 27] = [
    def(
        "rstguard_rst_packets_total",
        "RSTs judged at XDP ingress, by verdict and by what was done with them.",
        COUNTER,
    ),
    def(
        "rstguard_rst_causes_total",
        "RSTs by likely cause (refused, no_socket, peer_closed, abort, idle_expired, middlebox, \
         injected, blind, hidden, time_wait, unknown) and direction (ingress: arrived, judged at \
         XDP; egress: sent by this host). See `rstguard resets` for each one's evidence.",
        COUNTER,
    ),
    def(
        "rstguard_packets_total",
        "Frames seen, by hook (xdp: ingress, tc: egress).",
        COUNTER,
    ),
    def(
        "rstguard_tcp_packets_total",
        "TCP segments seen, by hook.",
        COUNTER,
    ),
    def(
        "rstguard_host_rst_packets_total",
        "RSTs the host itself sent (seen at egress; never judged).",
        COUNTER,
    ),
    def(
        "rstguard_forwarded_rst_packets_total",
        "RSTs the host forwarded, seen at egress (judged where they came in).",
        COUNTER,
    ),
    def(
        "rstguard_ignored_segments_total",
        "Segments that taught rstguard nothing (they pass), by reason: syn, seq_out_of_window, ack_out_of_range, fin_out_of_order, local_spoof.",
        COUNTER,
    ),
    def(
        "rstguard_parse_errors_total",
        "Frames that could not be parsed (they pass), by kind.",
        COUNTER,
    ),
    def(
        "rstguard_non_first_fragments_total",
        "Non-first IP fragments (no TCP header; they pass).",
        COUNTER,
    ),
    def(
        "rstguard_flows_created_total",
        "Flows created (in the table of new flows).",
        COUNTER,
    ),
    def(
        "rstguard_flows_assured_total",
        "Flows that proved themselves and moved into the assured table.",
        COUNTER,
    ),
    def(
        "rstguard_flow_create_failed_total",
        "Flow creations the table refused.",
        COUNTER,
    ),
    def(
        "rstguard_closed_flow_packets_total",
        "Segments on flows already closed by a RST.",
        COUNTER,
    ),
    def(
        "rstguard_events_lost_total",
        "Events the ring buffer had no room for.",
        COUNTER,
    ),
    def(
        "rstguard_flow_table_entries",
        "Tracked flows, counted at the last sweep, by table: assured (proved themselves) or new.",
        GAUGE,
    ),
    def(
        "rstguard_flow_table_capacity",
        "Flow table capacity, by table (--flows, --new-flows).",
        GAUGE,
    ),
    def(
        "rstguard_flow_table_evictions_total",
        "Assured flows the full table evicted to make room for new assured ones (raise --flows).",
        COUNTER,
    ),
    def(
        "rstguard_attached",
        "1 for each hook rstguard holds: hook xdp (mode native or skb), tc (mode tcx or clsact).",
        GAUGE,
    ),
    def(
        "rstguard_policy_level",
        "Policy level in force per device: 0 monitor, 1 enforce, 2 strict.",
        GAUGE,
    ),
    def(
        "rstguard_policy_auto",
        "1 when auto mode moves this device's level; 0 for a fixed level or one an operator pinned.",
        GAUGE,
    ),
    def(
        "rstguard_policy_transitions_total",
        "Auto-mode level changes, by direction (up, down).",
        COUNTER,
    ),
    def(
        "rstguard_events_total",
        "Events (sampled suspicious RSTs) the daemon received.",
        COUNTER,
    ),
    def(
        "rstguard_events_suppressed_total",
        "Events left out of the log by its rate limit.",
        COUNTER,
    ),
    def(
        "rstguard_build_info",
        "Always 1; the version is a label.",
        GAUGE,
    ),
    def(
        "rstguard_config_last_reload_successful",
        "1 when the last config (re)load succeeded, else 0.",
        GAUGE,
    ),
    def(
        "rstguard_state_source",
        "1 for the state source each device's RSTs are judged from: socket (the host's own sockets), track (the flow table) or auto (socket for this host's addresses, track for the rest); 0 for the others.",
        GAUGE,
    ),
    def(
        "rstguard_socket_rst_packets_total",
        "RSTs judged against the host's own sockets (socket mode); the rest of rstguard_rst_packets_total was judged against the flow table.",
        COUNTER,
    ),
];

const fn names() -> [&'static str; FAMILIES.len()] {
    let mut out = [""; FAMILIES.len()];
    let mut i = 0;
    while i < FAMILIES.len() {
        out[i] = FAMILIES[i].name;
        i += 1;
    }
    out
}

/// Every metric family rstguard exports (the dashboard and the tests check
/// against this list).
pub const NAMES: &[&str] = &names();

impl Fam {
    pub fn def(self) -> &'static FamilyDef {
        &FAMILIES[self as usize]
    }
}

/// A label (name, value).
pub type Label = (&'static str, &'static str);

/// The family and labels (besides `device`) a counter is exported as, or
/// None for one that is not exported by itself. Every counter is listed:
/// a new one does not compile until it is given its family here.
pub fn counter_metric(c: Counter) -> Option<(Fam, Option<Label>)> {
    use Counter::*;
    Some(match c {
        XdpPackets => (Fam::Packets, Some(("hook", "xdp"))),
        TcPackets => (Fam::Packets, Some(("hook", "tc"))),
        XdpTcp => (Fam::TcpPackets, Some(("hook", "xdp"))),
        TcTcp => (Fam::TcpPackets, Some(("hook", "tc"))),
        // Ingress RSTs are exported by verdict (rstguard_rst_packets_total).
        XdpRst => return None,
        TcRst => (Fam::HostRst, None),
        TcForwardedRst => (Fam::ForwardedRst, None),
        SocketRst => (Fam::SocketRst, None),
        FlowsCreated => (Fam::FlowsCreated, None),
        FlowCreateFailed => (Fam::FlowCreateFailed, None),
        FlowsAssured => (Fam::FlowsAssured, None),
        // Counted into the table's evictions (rstguard_flow_table_evictions_total).
        AssuredRestarted => return None,
        ClosedFlowPackets => (Fam::ClosedFlowPackets, None),
        NonFirstFragment => (Fam::NonFirstFragments, None),
        TruncatedEthernet | BadVlan | TruncatedIpv4 | BadIpv4Ihl | BadIpLength | TruncatedIpv6
        | Ipv6ExtTooLong | TruncatedTcp | BadTcpDoff | BadTcpOptions => {
            (Fam::ParseErrors, Some(("kind", c.name())))
        }
        EventsLost => (Fam::EventsLost, None),
        IgnoredSyn
        | IgnoredSeqOutOfWindow
        | IgnoredAckOutOfRange
        | IgnoredFinOutOfOrder
        | IgnoredLocalSpoof => {
            let why = Ignore::ALL
                .into_iter()
                .find(|w| Counter::ignored(*w) == c)?;
            (Fam::Ignored, Some(("reason", why.name())))
        }
    })
}

/// Where one per-device sample's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Counter(Counter),
    Rst(Verdict, Action),
    Cause(Direction, Cause),
}

impl Slot {
    pub fn read(self, c: &Counters) -> u64 {
        match self {
            Slot::Counter(counter) => c.get(counter),
            Slot::Rst(v, a) => c.rst(v, a),
            Slot::Cause(d, cause) => c.cause(d, cause),
        }
    }
}

/// One per-device series: its family, its labels besides `device`, and
/// the slot it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    pub family: Fam,
    pub labels: Vec<Label>,
    pub slot: Slot,
}

/// Every series exported for each device, in the scrape's order: RSTs by
/// verdict and action, causes by direction, then the counters.
pub fn device_series() -> Vec<Series> {
    let mut out = Vec::new();
    for v in Verdict::ALL {
        for a in [Action::Pass, Action::Drop] {
            out.push(Series {
                family: Fam::RstPackets,
                labels: vec![("verdict", v.name()), ("action", a.past())],
                slot: Slot::Rst(v, a),
            });
        }
    }
    for dir in Direction::ALL {
        for cause in Cause::ALL {
            out.push(Series {
                family: Fam::RstCauses,
                labels: vec![("direction", dir.name()), ("cause", cause.name())],
                slot: Slot::Cause(dir, cause),
            });
        }
    }
    for counter in Counter::ALL {
        if let Some((family, label)) = counter_metric(counter) {
            out.push(Series {
                family,
                labels: label.into_iter().collect(),
                slot: Slot::Counter(counter),
            });
        }
    }
    out
}
