//! Per-CPU, per-interface counters. One [`Counters`] value per interface
//! index; the kernel bumps slots with plain increments (a per-CPU slot has a
//! single writer) and user space sums them over all possible CPUs with
//! wrapping arithmetic.

use crate::{
    act::Action,
    judge::cause::{Cause, Direction},
    judge::verdict::Verdict,
    state::track::Ignore,
};

/// Counters that are not RST verdicts. RST verdicts follow them, two slots
/// per verdict (passed, dropped): see [`rst_slot`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Frames seen by the XDP (ingress) program.
    XdpPackets = 0,
    /// TCP segments seen at XDP.
    XdpTcp,
    /// TCP RSTs seen at XDP (each is also counted by verdict).
    XdpRst,
    /// Frames seen by the TC (egress) program.
    TcPackets,
    /// TCP segments seen at TC.
    TcTcp,
    /// TCP RSTs the host itself sent (seen at TC egress, never judged).
    TcRst,
    /// TCP RSTs the host forwarded (seen at TC egress, judged where they
    /// entered; they change nothing more).
    TcForwardedRst,
    /// Flows created (on a SYN, or on mid-stream pickup).
    FlowsCreated,
    /// Flow creations (or moves into the assured table) that the map
    /// refused.
    FlowCreateFailed,
    /// Flows that proved themselves and moved into the assured table.
    FlowsAssured,
    /// Assured flows removed because a new incarnation started.
    AssuredRestarted,
    /// Non-RST segments on a flow already closed by a RST.
    ClosedFlowPackets,
    /// Non-first IP fragments: they carry no TCP header and pass.
    NonFirstFragment,
    /// Frame shorter than an Ethernet header.
    TruncatedEthernet,
    /// VLAN tag cut short, or more tags than the parser follows.
    BadVlan,
    /// IPv4 header cut short.
    TruncatedIpv4,
    /// IPv4 IHL below 5.
    BadIpv4Ihl,
    /// IPv4/IPv6 length field smaller than the headers it must hold.
    BadIpLength,
    /// IPv6 header or an extension header cut short.
    TruncatedIpv6,
    /// IPv6 extension header chain longer than the parser follows.
    Ipv6ExtTooLong,
    /// TCP header cut short.
    TruncatedTcp,
    /// TCP data offset below 5.
    BadTcpDoff,
    /// TCP option with a bad length (options ignored, segment still used).
    BadTcpOptions,
    /// Events the ring buffer had no room for.
    EventsLost,
    /// Segments that taught nothing, by [`Ignore`] reason (they pass).
    IgnoredSyn,
    IgnoredSeqOutOfWindow,
    IgnoredAckOutOfRange,
    IgnoredFinOutOfOrder,
    IgnoredLocalSpoof,
    /// RSTs judged against the host's own sockets (socket mode); the others
    /// were judged against the flow table. Its slot comes after the causes
    /// (see [`SOCKET_RST_SLOT`]): the slots before it keep their places.
    SocketRst = 79,
}

/// Slot of [`Counter::SocketRst`]: the last one.
pub const SOCKET_RST_SLOT: usize = CAUSE_SLOTS + Direction::COUNT * Cause::COUNT;
const _: () = assert!(Counter::SocketRst as usize == SOCKET_RST_SLOT);

/// Number of [`Counter`] slots before the RST verdict slots.
pub const FIXED_COUNTERS: usize = Counter::IgnoredLocalSpoof as usize + 1;
/// First slot of the RST causes, after the verdicts.
pub const CAUSE_SLOTS: usize = FIXED_COUNTERS + Verdict::COUNT * 2;
/// Total number of slots in [`Counters`].
pub const COUNTER_SLOTS: usize = SOCKET_RST_SLOT + 1;

/// Slot of the counter for RSTs judged `verdict` and given `action`.
#[inline(always)]
pub const fn rst_slot(verdict: Verdict, action: Action) -> usize {
    FIXED_COUNTERS + verdict as usize * 2 + action as usize
}

/// Slot of the counter for RSTs going `direction` with likely `cause`.
#[inline(always)]
pub const fn cause_slot(direction: Direction, cause: Cause) -> usize {
    CAUSE_SLOTS + direction as usize * Cause::COUNT + cause as usize
}

/// The counters of one interface (one CPU's copy, in the kernel).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub slots: [u64; COUNTER_SLOTS],
}

const _: () = assert!(core::mem::size_of::<Counters>() == COUNTER_SLOTS * 8);

impl Default for Counters {
    fn default() -> Self {
        Self {
            slots: [0; COUNTER_SLOTS],
        }
    }
}

impl Counters {
    #[inline(always)]
    pub fn get(&self, c: Counter) -> u64 {
        self.slots[c as usize]
    }

    #[inline(always)]
    pub fn rst(&self, verdict: Verdict, action: Action) -> u64 {
        self.slots[rst_slot(verdict, action)]
    }

    #[inline(always)]
    pub fn cause(&self, direction: Direction, cause: Cause) -> u64 {
        self.slots[cause_slot(direction, cause)]
    }

    /// Adds `other` slot by slot, wrapping (used to sum per-CPU copies).
    pub fn add(&mut self, other: &Counters) {
        for (a, b) in self.slots.iter_mut().zip(other.slots.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Slot-by-slot difference `self - earlier`, wrapping (rates).
    pub fn delta(&self, earlier: &Counters) -> Counters {
        let mut d = *self;
        for (a, b) in d.slots.iter_mut().zip(earlier.slots.iter()) {
            *a = a.wrapping_sub(*b);
        }
        d
    }
}

/// What a [`Counter`] measures, for naming it in user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind {
    /// Packets through a hook (`"xdp"` or `"tc"`) of a class (`"all"`,
    /// `"tcp"`, `"rst"`).
    Hook(&'static str, &'static str),
    /// A flow-table event.
    Flow(&'static str),
    /// A packet that could not be parsed, by kind.
    ParseError(&'static str),
    /// Non-first fragments.
    Fragment,
    /// Ring-buffer events lost.
    EventsLost,
    /// A segment that taught nothing, by reason.
    Ignored(Ignore),
}

impl Counter {
    pub const ALL: [Counter; FIXED_COUNTERS + 1] = [
        Counter::XdpPackets,
        Counter::XdpTcp,
        Counter::XdpRst,
        Counter::TcPackets,
        Counter::TcTcp,
        Counter::TcRst,
        Counter::TcForwardedRst,
        Counter::FlowsCreated,
        Counter::FlowCreateFailed,
        Counter::FlowsAssured,
        Counter::AssuredRestarted,
        Counter::ClosedFlowPackets,
        Counter::NonFirstFragment,
        Counter::TruncatedEthernet,
        Counter::BadVlan,
        Counter::TruncatedIpv4,
        Counter::BadIpv4Ihl,
        Counter::BadIpLength,
        Counter::TruncatedIpv6,
        Counter::Ipv6ExtTooLong,
        Counter::TruncatedTcp,
        Counter::BadTcpDoff,
        Counter::BadTcpOptions,
        Counter::EventsLost,
        Counter::IgnoredSyn,
        Counter::IgnoredSeqOutOfWindow,
        Counter::IgnoredAckOutOfRange,
        Counter::IgnoredFinOutOfOrder,
        Counter::IgnoredLocalSpoof,
        Counter::SocketRst,
    ];

    /// The counter of segments ignored for `why`.
    #[inline(always)]
    pub const fn ignored(why: Ignore) -> Counter {
        match why {
            Ignore::Syn => Counter::IgnoredSyn,
            Ignore::SeqOutOfWindow => Counter::IgnoredSeqOutOfWindow,
            Ignore::AckOutOfRange => Counter::IgnoredAckOutOfRange,
            Ignore::FinOutOfOrder => Counter::IgnoredFinOutOfOrder,
            Ignore::LocalSpoof => Counter::IgnoredLocalSpoof,
        }
    }

    pub const fn kind(self) -> CounterKind {
        use CounterKind::*;
        match self {
            Counter::XdpPackets => Hook("xdp", "all"),
            Counter::XdpTcp => Hook("xdp", "tcp"),
            Counter::XdpRst => Hook("xdp", "rst"),
            Counter::TcPackets => Hook("tc", "all"),
            Counter::TcTcp => Hook("tc", "tcp"),
            Counter::TcRst => Hook("tc", "rst"),
            Counter::TcForwardedRst => Hook("tc", "forwarded_rst"),
            Counter::FlowsCreated => Flow("created"),
            Counter::FlowCreateFailed => Flow("create_failed"),
            Counter::FlowsAssured => Flow("assured"),
            Counter::AssuredRestarted => Flow("assured_restarted"),
            Counter::ClosedFlowPackets => Flow("closed_flow_packets"),
            Counter::NonFirstFragment => Fragment,
            Counter::TruncatedEthernet => ParseError("truncated_ethernet"),
            Counter::BadVlan => ParseError("bad_vlan"),
            Counter::TruncatedIpv4 => ParseError("truncated_ipv4"),
            Counter::BadIpv4Ihl => ParseError("bad_ipv4_ihl"),
            Counter::BadIpLength => ParseError("bad_ip_length"),
            Counter::TruncatedIpv6 => ParseError("truncated_ipv6"),
            Counter::Ipv6ExtTooLong => ParseError("ipv6_ext_too_long"),
            Counter::TruncatedTcp => ParseError("truncated_tcp"),
            Counter::BadTcpDoff => ParseError("bad_tcp_doff"),
            Counter::BadTcpOptions => ParseError("bad_tcp_options"),
            Counter::EventsLost => EventsLost,
            Counter::IgnoredSyn => Ignored(Ignore::Syn),
            Counter::IgnoredSeqOutOfWindow => Ignored(Ignore::SeqOutOfWindow),
            Counter::IgnoredAckOutOfRange => Ignored(Ignore::AckOutOfRange),
            Counter::IgnoredFinOutOfOrder => Ignored(Ignore::FinOutOfOrder),
            Counter::IgnoredLocalSpoof => Ignored(Ignore::LocalSpoof),
            Counter::SocketRst => Hook("xdp", "socket_rst"),
        }
    }

    /// A stable snake_case name, used in `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::XdpPackets => "xdp_packets",
            Counter::XdpTcp => "xdp_tcp",
            Counter::XdpRst => "xdp_rst",
            Counter::TcPackets => "tc_packets",
            Counter::TcTcp => "tc_tcp",
            Counter::TcRst => "tc_rst",
            Counter::TcForwardedRst => "tc_forwarded_rst",
            Counter::FlowsCreated => "flows_created",
            Counter::FlowCreateFailed => "flow_create_failed",
            Counter::FlowsAssured => "flows_assured",
            Counter::AssuredRestarted => "assured_restarted",
            Counter::ClosedFlowPackets => "closed_flow_packets",
            Counter::NonFirstFragment => "non_first_fragments",
            Counter::EventsLost => "events_lost",
            Counter::IgnoredSyn => "ignored_syn",
            Counter::IgnoredSeqOutOfWindow => "ignored_seq_out_of_window",
            Counter::IgnoredAckOutOfRange => "ignored_ack_out_of_range",
            Counter::IgnoredFinOutOfOrder => "ignored_fin_out_of_order",
            Counter::IgnoredLocalSpoof => "ignored_local_spoof",
            Counter::SocketRst => "xdp_socket_rst",
            other => match other.kind() {
                CounterKind::ParseError(kind) => kind,
                _ => "unnamed",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_counter_in_order() {
        for (i, c) in Counter::ALL[..FIXED_COUNTERS].iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        assert_eq!(Counter::ALL[FIXED_COUNTERS], Counter::SocketRst);
    }

    #[test]
    fn every_ignore_reason_has_its_own_counter() {
        for why in Ignore::ALL {
            let c = Counter::ignored(why);
            assert_eq!(c.kind(), CounterKind::Ignored(why));
            assert!(c.name().ends_with(why.name()));
        }
    }

    #[test]
    fn rst_slots_are_distinct_and_in_range() {
        let mut seen = [false; COUNTER_SLOTS];
        for v in Verdict::ALL {
            for a in [Action::Pass, Action::Drop] {
                let s = rst_slot(v, a);
                assert!((FIXED_COUNTERS..COUNTER_SLOTS).contains(&s));
                assert!(!seen[s]);
                seen[s] = true;
            }
        }
    }

    #[test]
    fn cause_slots_follow_the_verdicts_and_fill_the_rest() {
        let mut seen = [false; COUNTER_SLOTS];
        for d in Direction::ALL {
            for c in Cause::ALL {
                let s = cause_slot(d, c);
                assert!(s > rst_slot(Verdict::ALL[Verdict::COUNT - 1], Action::Drop));
                assert!(!seen[s]);
                seen[s] = true;
            }
        }
        assert_eq!(
            seen.iter().filter(|s| **s).count(),
            SOCKET_RST_SLOT - CAUSE_SLOTS
        );
    }

    #[test]
    fn sum_and_delta_wrap() {
        let mut a = Counters::default();
        a.slots[0] = u64::MAX;
        let mut b = Counters::default();
        b.slots[0] = 2;
        a.add(&b);
        assert_eq!(a.slots[0], 1);
        assert_eq!(a.delta(&b).slots[0], u64::MAX);
    }
}
