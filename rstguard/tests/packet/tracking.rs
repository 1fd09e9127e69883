//! Flow tracking: what the programs learn from a conversation (both halves,
//! windows, scales, TTLs), how a flow moves through its states, and what a
//! RST does to it.

use rstguard_common::{
    state::{FLOW_PICKED_UP, WSCALE_UNKNOWN},
    Action, Counter, Endpoints, FlowState, Level, Verdict,
};

use crate::harness::*;

use Action::{Drop, Pass};
use Level::{Enforce, Monitor, Strict};

#[test]
fn handshake_and_data_learn_both_halves() {
    for (name, net) in nets() {
        let mut lab = Lab::with_net(Monitor, net);
        lab.send(Client.syn());
        assert_eq!(lab.flow().state(), FlowState::SynSent, "{name}");
        lab.send(Server.syn());
        assert_eq!(lab.flow().state(), FlowState::SynRecv, "{name}");
        lab.send(Client.ack());
        assert_eq!(lab.flow().state(), FlowState::Established, "{name}");
        lab.send(Client.data(100));
        lab.send(Server.data(1000));

        let f = lab.flow();
        let client_is_lo = Endpoints::new(
            addr16(lab.c.addr),
            lab.c.port,
            addr16(lab.s.addr),
            lab.s.port,
        )
        .1;
        let (c, s) = if client_is_lo {
            (f.lo, f.hi)
        } else {
            (f.hi, f.lo)
        };
        assert_eq!(c.snd_nxt, lab.c.nxt, "{name}: client SND.NXT");
        assert_eq!(s.snd_nxt, lab.s.nxt, "{name}: server SND.NXT");
        assert_eq!(s.ack, lab.c.nxt, "{name}: server ACK");
        assert_eq!(f.wscale(client_is_lo), 7, "{name}");
        assert_eq!(f.wscale(!client_is_lo), 7, "{name}");
        assert_eq!(
            f.window(!client_is_lo),
            256 << 7,
            "{name}: scaled server window"
        );
        assert_eq!(
            f.window(client_is_lo),
            512 << 7,
            "{name}: scaled client window"
        );
        assert_eq!(s.ttl, 64, "{name}");
        let counters = lab.h.counters();
        assert_eq!(counters.get(Counter::FlowsCreated), 1, "{name}");
        assert_eq!(
            counters.get(Counter::FlowsAssured),
            1,
            "{name}: assured once established"
        );
        assert_eq!(counters.get(Counter::XdpTcp), 3, "{name}");
        assert_eq!(counters.get(Counter::TcTcp), 2, "{name}");
    }
}

#[test]
fn fins_both_ways_reach_time_wait() {
    let mut lab = Lab::new(Monitor);
    lab.established();
    lab.send(Server.fin());
    assert_eq!(lab.flow().state(), FlowState::FinSeen);
    lab.send(Client.fin()); // acks the server's
    lab.send(Server.ack()); // acks the client's FIN
    assert_eq!(lab.flow().state(), FlowState::TimeWait);
}

#[test]
fn a_new_syn_starts_a_closed_flow_afresh_but_a_retransmitted_one_does_not() {
    let mut lab = Lab::new(Monitor);
    lab.established();
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass));
    let created = lab.h.counters().get(Counter::FlowsCreated);
    // The client reconnects from the same port: a bare SYN.
    lab.c.rcv = 0;
    lab.c.nxt = 777_777;
    lab.send(Client.syn());
    assert_eq!(lab.flow().state(), FlowState::SynSent);
    assert_eq!(lab.h.counters().get(Counter::FlowsCreated), created + 1);
    // The same SYN again: a retransmission.
    lab.c.rcv = 0;
    lab.c.nxt = 777_777;
    lab.send(Client.syn());
    assert_eq!(lab.h.counters().get(Counter::FlowsCreated), created + 1);
    assert_eq!(lab.h.counters().get(Counter::IgnoredSyn), 0);
}

#[test]
fn pickup_creates_flows_mid_stream_only_when_allowed() {
    let mut lab = Lab::new(Enforce);
    lab.send(Client.data(100));
    let f = lab.flow();
    assert!(f.has(FLOW_PICKED_UP));
    assert_eq!(f.state(), FlowState::Established);
    assert_eq!(
        (f.wscale(true), f.wscale(false)),
        (WSCALE_UNKNOWN, WSCALE_UNKNOWN)
    );

    let mut lab = Lab::new(Enforce);
    lab.h.set_policy(|p| p.pickup = 0);
    lab.send(Client.data(100));
    assert!(lab.h.flow(&lab.key()).is_none());
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::NoFlow, Pass));
}

#[test]
fn the_hosts_own_rst_closes_the_flow_without_a_verdict() {
    let mut lab = Lab::new(Strict);
    lab.established();
    let before = lab.h.counters();
    let frame = lab.rst_to_client_frame(lab.s.nxt, Some(lab.s.rcv));
    assert_eq!(lab.h.tc(&frame), TC_NEXT);
    let d = lab.h.counters().delta(&before);
    assert_eq!(d.get(Counter::TcRst), 1);
    assert_eq!(d.get(Counter::XdpRst), 0);
    assert_eq!(lab.flow().state(), FlowState::Closed);
}

#[test]
fn an_exact_rst_that_passes_closes_the_flow_and_later_talk_is_noticed() {
    let mut lab = Lab::new(Strict);
    lab.established();
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass));
    assert_eq!(lab.flow().state(), FlowState::Closed);
    lab.send(Client.data(10));
    assert_eq!(lab.h.counters().get(Counter::ClosedFlowPackets), 1);
}

#[test]
fn a_dropped_or_inexact_rst_changes_no_state() {
    let mut lab = Lab::new(Enforce);
    lab.established();
    let before = lab.flow();
    assert_eq!(
        lab.rst(lab.c.nxt.wrapping_add(1_000_000)),
        (Verdict::OutOfWindow, Drop)
    );
    assert_eq!(lab.rst(lab.c.nxt + 10), (Verdict::InWindow, Pass));
    let after = lab.flow();
    assert_eq!(after.state(), FlowState::Established);
    assert_eq!((after.lo, after.hi), (before.lo, before.hi));
}
