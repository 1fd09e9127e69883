//! Special states and sources: SYN-SENT, TIME-WAIT and no flow follow
//! their own rules and actions; trusted sources always pass; a middlebox
//! judges both directions.

use rstguard_common::{Action, Counter, FlowState, Level, Verdict};

use crate::harness::*;

use Action::{Drop, Pass};
use Level::{Enforce, Monitor, Strict};

#[test]
fn syn_sent_accepts_only_the_ack_of_the_syn() {
    for (name, net) in nets() {
        for level in LEVELS {
            // The server (local) connects out; a RST|ACK comes back.
            let mut lab = Lab::with_net(level, net);
            lab.send(Server.syn()); // through TC
            assert_eq!(lab.flow().state(), FlowState::SynSent);
            let right = lab.s.nxt; // ISN + 1
            let f = lab.rst_frame(0, Some(right), 0);
            assert_eq!(
                lab.h.judge(&f),
                (Verdict::Exact, Pass),
                "{name} {level:?} right ACK"
            );
            assert_eq!(lab.flow().state(), FlowState::Closed);

            let mut lab = Lab::with_net(level, net);
            lab.send(Server.syn());
            let f = lab.rst_frame(0, Some(right + 1), 0);
            assert_eq!(
                lab.h.judge(&f),
                (Verdict::BadSynAck, at(level, Drop)),
                "{name} {level:?} wrong ACK"
            );
            let f = lab.rst_frame(0, None, 0);
            assert_eq!(
                lab.h.judge(&f),
                (Verdict::BadSynAck, at(level, Drop)),
                "{name} {level:?} no ACK"
            );
            let f = lab.flow();
            assert_eq!(f.state(), FlowState::SynSent, "{name} {level:?} {f:?}");
        }
    }
}

#[test]
fn time_wait_follows_its_own_action() {
    for (action, level) in [
        (Pass, Enforce),
        (Drop, Enforce),
        (Drop, Strict),
        (Drop, Monitor),
    ] {
        let mut lab = Lab::new(level);
        lab.h.set_policy(|p| p.time_wait = action as u8);
        lab.established();
        lab.send(Server.fin());
        lab.send(Client.fin());
        lab.send(Server.ack());
        assert_eq!(lab.flow().state(), FlowState::TimeWait);
        assert_eq!(
            lab.rst(lab.c.nxt),
            (Verdict::TimeWait, at(level, action)),
            "{level:?} time_wait={action:?}"
        );
    }
}

#[test]
fn no_flow_follows_its_own_action() {
    for (action, level) in [(Pass, Strict), (Drop, Enforce), (Drop, Monitor)] {
        let mut lab = Lab::new(level);
        lab.h.set_policy(|p| p.no_flow = action as u8);
        assert_eq!(
            lab.rst(12345),
            (Verdict::NoFlow, at(level, action)),
            "{level:?} {action:?}"
        );
    }
}

#[test]
fn trusted_sources_always_pass() {
    for (name, net, prefix) in [
        ("ipv4", Net::default(), "10.0.0.0/24"),
        (
            "ipv6",
            Net {
                v6: true,
                ..Net::default()
            },
            "fd00::/64",
        ),
    ] {
        let mut lab = Lab::with_net(Strict, net);
        lab.h.set_policy(|p| p.no_flow = Drop as u8);
        lab.h.trust(prefix);
        lab.established();
        assert_eq!(
            lab.rst(lab.c.nxt + 1_000_000),
            (Verdict::Trusted, Pass),
            "{name}"
        );
        let mut fresh = Lab::with_net(Strict, net);
        fresh.h.set_policy(|p| p.no_flow = Drop as u8);
        fresh.h.trust(prefix);
        assert_eq!(
            fresh.rst(1),
            (Verdict::Trusted, Pass),
            "{name} without a flow"
        );
    }
    // Outside the prefix, the usual verdicts.
    let mut lab = Lab::new(Strict);
    lab.h.trust("10.9.0.0/16");
    lab.established();
    assert_eq!(lab.rst(lab.c.nxt + 1_000_000), (Verdict::OutOfWindow, Drop));
}

#[test]
fn middlebox_sees_both_directions_at_xdp() {
    let mut lab = Lab::new(Strict);
    lab.middlebox = true;
    lab.established();
    assert_eq!(lab.h.counters().get(Counter::TcTcp), 0);
    // RSTs aimed at either endpoint are judged.
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass));
    let mut lab = Lab::new(Strict);
    lab.middlebox = true;
    lab.established();
    let f = lab.rst_to_client_frame(lab.s.nxt + 5_000_000, Some(lab.s.rcv));
    assert_eq!(lab.h.judge(&f), (Verdict::OutOfWindow, Drop));
    let f = lab.rst_to_client_frame(lab.s.nxt, Some(lab.s.rcv));
    assert_eq!(lab.h.judge(&f), (Verdict::Exact, Pass));
}
