//! Flow state a blind attacker cannot teach, through the real object: each
//! forgery that used to teach a sequence number, then the RST aimed at it;
//! one-sided flows; Fast Open; port reuse; the sweep race; router egress.

use rstguard::maps::{FlowTable, SweepTtl};
use rstguard_common::{state::track::Ignore, Action, Counter, FlowState, Level, Verdict};

use crate::harness::*;

use Action::{Drop, Pass};
use Level::{Enforce, Monitor, Strict};

/// The attacker's own number: nothing to do with the live flow's.
const X: u32 = 3_000_000_000;

/// Where rstguard runs: on the server (its segments leave through TC), or
/// on a router (both directions arrive at XDP).
fn placements() -> [(&'static str, bool); 2] {
    [("host", false), ("router", true)]
}

fn lab(level: Level, middlebox: bool) -> Lab {
    let mut lab = Lab::new(level);
    lab.middlebox = middlebox;
    lab.established();
    lab
}

/// A forged segment claiming to come from the client (`true`) or the
/// server, arriving at XDP; returns which ignored counter moved.
fn forge(lab: &mut Lab, from_client: bool, seg: Seg) -> Vec<Counter> {
    let (from, to) = if from_client {
        ((lab.c.addr, lab.c.port), (lab.s.addr, lab.s.port))
    } else {
        ((lab.s.addr, lab.s.port), (lab.c.addr, lab.c.port))
    };
    let frame = tcp_frame(&lab.net, from, to, &seg);
    let before = lab.h.counters();
    assert_eq!(lab.h.xdp(&frame), XDP_PASS, "a forged segment must pass");
    let d = lab.h.counters().delta(&before);
    Ignore::ALL
        .iter()
        .map(|&why| Counter::ignored(why))
        .filter(|&c| d.get(c) > 0)
        .collect()
}

/// Judges a RST from the client (`true`) or the server at `seq`.
fn rst_from(lab: &mut Lab, from_client: bool, seq: u32, ack: Option<u32>) -> (Verdict, Action) {
    let frame = if from_client {
        lab.rst_frame(seq, ack, 0)
    } else {
        lab.rst_to_client_frame(seq, ack)
    };
    lab.h.judge(&frame)
}

#[test]
fn forged_fin_syn_synack_data_ack_and_sack_teach_nothing() {
    // (name, forged as the client?, the segment, the RST's sequence number
    // the forgery would have made exact, the reason it is ignored at a
    // router)
    let cases: Vec<(&str, bool, Seg, u32, Ignore)> = vec![
        (
            "bare FIN at X",
            true,
            Seg {
                seq: X,
                fin: true,
                ..Seg::default()
            },
            X,
            Ignore::AckOutOfRange,
        ),
        (
            "FIN|ACK at X",
            true,
            Seg {
                seq: X,
                ack: Some(X),
                fin: true,
                ..Seg::default()
            },
            X,
            Ignore::AckOutOfRange,
        ),
        (
            "SYN at X",
            true,
            Seg {
                seq: X,
                syn: true,
                ..Seg::default()
            },
            X.wrapping_add(1),
            Ignore::Syn,
        ),
        (
            "SYN|ACK at X",
            false,
            Seg {
                seq: X,
                ack: Some(1_001),
                syn: true,
                ..Seg::default()
            },
            X.wrapping_add(1),
            Ignore::Syn,
        ),
        (
            "data at X",
            true,
            Seg {
                seq: X,
                ack: Some(X),
                payload: 500,
                ..Seg::default()
            },
            X.wrapping_add(500),
            Ignore::AckOutOfRange,
        ),
        (
            "ACK of X",
            false,
            Seg {
                seq: X,
                ack: Some(X),
                ..Seg::default()
            },
            X,
            Ignore::AckOutOfRange,
        ),
    ];
    for (placement, middlebox) in placements() {
        for level in [Enforce, Strict] {
            for (what, from_client, seg, aim, why) in &cases {
                let mut lab = lab(level, middlebox);
                let before = lab.flow();
                let moved = forge(&mut lab, *from_client, seg.clone());
                // On the host, a segment from outside claiming to be the
                // (local) server is a spoof whatever it holds.
                let why = if !middlebox && !from_client {
                    Ignore::LocalSpoof
                } else {
                    *why
                };
                assert_eq!(
                    moved,
                    vec![Counter::ignored(why)],
                    "{placement} {level:?} {what}"
                );
                assert_eq!(
                    lab.flow(),
                    before,
                    "{placement} {level:?} {what}: the flow changed"
                );
                for rst_from_client in [true, false] {
                    if !middlebox && !rst_from_client {
                        continue; // the host's own RSTs are not judged
                    }
                    let (v, a) = rst_from(&mut lab, rst_from_client, *aim, None);
                    assert_eq!(
                        (v, a),
                        (Verdict::OutOfWindow, Drop),
                        "{placement} {level:?} {what}: RST from the {} at the taught value",
                        if rst_from_client { "client" } else { "server" }
                    );
                }
            }
        }
    }
}

#[test]
fn a_forged_sack_teaches_no_edge() {
    let mut lab = lab(Strict, true);
    let edge = lab.c.nxt + 20_000;
    let (seq, ack, win) = (lab.s.nxt, lab.s.rcv, lab.s.win);
    let moved = forge(
        &mut lab,
        false,
        Seg {
            seq,
            ack: Some(ack),
            win,
            opts: vec![etherparse::TcpOptionElement::SelectiveAcknowledgement(
                (edge - 100, edge),
                [None; 3],
            )],
            ..Seg::default()
        },
    );
    // A duplicate ACK carrying a SACK of bytes the client never sent: the
    // ACK itself fits, the block does not and is not kept.
    assert!(moved.is_empty(), "{moved:?}");
    assert_eq!(lab.rst(edge), (Verdict::InWindow, Drop));
}

#[test]
fn a_forged_syn_on_a_live_flow_leaves_its_real_rsts_judged_as_before() {
    for (placement, middlebox) in placements() {
        let mut lab = lab(Strict, middlebox);
        let created = lab.h.counters().get(Counter::FlowsCreated);
        forge(
            &mut lab,
            true,
            Seg {
                seq: X,
                syn: true,
                ..Seg::default()
            },
        );
        assert_eq!(
            lab.h.counters().get(Counter::FlowsCreated),
            created,
            "{placement}"
        );
        assert_eq!(lab.flow().state(), FlowState::Established, "{placement}");
        assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass), "{placement}");
    }
}

#[test]
fn one_sided_flows_never_drop_a_rst_either_way() {
    for level in [Monitor, Enforce, Strict] {
        // A router that sees only the client's direction.
        let mut lab = Lab::new(level);
        lab.middlebox = true;
        lab.h.set_policy(|p| p.no_flow = Drop as u8);
        lab.send(Client.syn());
        lab.s.nxt = lab.s.nxt.wrapping_add(1); // the SYN-ACK went another way
        lab.c.rcv = lab.s.nxt;
        lab.send(Client.ack());
        lab.send(Client.data(400));
        assert!(!lab.flow().both_seen());
        for seq in [lab.s.nxt, lab.s.nxt + 77_777, X] {
            assert_eq!(
                rst_from(&mut lab, false, seq, None),
                (Verdict::OneSided, Pass),
                "{level:?} from the unseen server at {seq}"
            );
        }
        assert_eq!(
            rst_from(&mut lab, true, X, None),
            (Verdict::OneSided, Pass),
            "{level:?} to the unseen server"
        );
        // And one that sees only the server's direction (picked up).
        let mut lab = Lab::new(level);
        lab.middlebox = true;
        lab.c.rcv = lab.s.nxt;
        lab.s.rcv = lab.c.nxt;
        lab.send(Server.data(100));
        lab.send(Server.data(100));
        for seq in [lab.s.rcv, X] {
            assert_eq!(
                rst_from(&mut lab, true, seq, None),
                (Verdict::OneSided, Pass),
                "{level:?} from the unseen client at {seq}"
            );
        }
        let c = lab.h.counters();
        assert!(c.rst(Verdict::OneSided, Pass) >= 2);
    }
}

#[test]
fn fast_open_any_ack_of_the_syn_or_its_data_resets_syn_sent() {
    for level in [Enforce, Strict] {
        // The server (local) connects out with 200 bytes in its SYN.
        let mut lab = Lab::new(level);
        let isn = lab.s.nxt;
        lab.send(Server.syn().data(200));
        assert_eq!(lab.flow().state(), FlowState::SynSent);
        for ack in [isn + 1, isn + 101, isn + 201] {
            let mut l = Lab::new(level);
            l.send(Server.syn().data(200));
            let f = l.rst_frame(0, Some(ack), 0);
            assert_eq!(l.h.judge(&f), (Verdict::Exact, Pass), "{level:?} ack {ack}");
        }
        for ack in [isn, isn + 202] {
            let f = lab.rst_frame(0, Some(ack), 0);
            assert_eq!(
                lab.h.judge(&f),
                (Verdict::BadSynAck, Drop),
                "{level:?} ack {ack}"
            );
        }
    }
}

#[test]
fn port_reuse_after_a_silent_death() {
    for (placement, middlebox) in placements() {
        let mut lab = lab(Strict, middlebox);
        let created = lab.h.counters().get(Counter::FlowsCreated);
        // The client rebooted and connects again from the same port.
        let new_isn = 777_777;
        let moved = forge(
            &mut lab,
            true,
            Seg {
                seq: new_isn,
                syn: true,
                ..Seg::default()
            },
        );
        assert_eq!(moved, vec![Counter::IgnoredSyn], "{placement}");
        // The server still holds the old connection: a challenge ACK...
        lab.send(Server.ack());
        // ...which the client's new incarnation answers with a RST at its
        // ACK number: exact, it closes the old flow...
        let challenge_ack = lab.s.rcv;
        assert_eq!(
            rst_from(&mut lab, true, challenge_ack, None),
            (Verdict::Exact, Pass),
            "{placement}"
        );
        assert_eq!(lab.flow().state(), FlowState::Closed, "{placement}");
        // ...and the SYN, retransmitted, starts the flow afresh.
        forge(
            &mut lab,
            true,
            Seg {
                seq: new_isn,
                syn: true,
                ..Seg::default()
            },
        );
        assert_eq!(lab.flow().state(), FlowState::SynSent, "{placement}");
        assert_eq!(
            lab.h.counters().get(Counter::FlowsCreated),
            created + 1,
            "{placement}"
        );
    }
    // On the server, when its old socket was gone too: its own SYN-ACK to
    // the new SYN (seen at TC, authentic) starts the new incarnation.
    let mut lab = lab(Strict, false);
    let new_isn = 777_777u32;
    forge(
        &mut lab,
        true,
        Seg {
            seq: new_isn,
            syn: true,
            ..Seg::default()
        },
    );
    lab.c.nxt = new_isn + 1;
    lab.s.rcv = new_isn + 1;
    lab.s.nxt = 9_000_000;
    lab.send(Server.syn());
    assert_eq!(lab.flow().state(), FlowState::SynRecv);
    assert_eq!(lab.rst(new_isn + 1), (Verdict::Exact, Pass));
}

#[test]
fn the_sweep_spares_a_flow_restarted_while_it_walks_the_table() {
    let mut lab = lab(Strict, false);
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass));
    assert_eq!(lab.flow().state(), FlowState::Closed);
    let ttl = SweepTtl {
        closed_ns: 0,
        time_wait_ns: 0,
    };
    let now = u64::MAX / 2;
    let (count, stale) = lab
        .h
        .loaded
        .maps
        .expired_flows(FlowTable::Assured, &ttl, now)
        .expect("walking the table");
    assert_eq!((count, stale.clone()), (1, vec![lab.key()]));
    // A new connection on the same four-tuple, mid-sweep.
    forge(
        &mut lab,
        true,
        Seg {
            seq: 5_555,
            syn: true,
            ..Seg::default()
        },
    );
    assert_eq!(lab.flow().state(), FlowState::SynSent);
    let removed = lab
        .h
        .loaded
        .maps
        .remove_expired(FlowTable::Assured, &stale, &ttl, now)
        .expect("sweeping");
    assert_eq!(removed, 0, "the restarted flow was swept");
    assert_eq!(lab.flow().state(), FlowState::SynSent);
    // Once closed again and expired, it goes.
    let f = lab.rst_to_client_frame(0, Some(5_556));
    assert_eq!(lab.h.judge(&f).0, Verdict::Exact);
    // (A new connection is not assured: it lives in the other table.)
    let t = FlowTable::Embryonic;
    let (_, stale) = lab
        .h
        .loaded
        .maps
        .expired_flows(t, &ttl, now)
        .expect("walking");
    assert_eq!(
        lab.h
            .loaded
            .maps
            .remove_expired(t, &stale, &ttl, now)
            .expect("sweeping"),
        1
    );
    assert!(lab.h.flow(&lab.key()).is_none());
}

#[test]
fn a_forwarded_rst_leaving_through_tc_changes_nothing() {
    if !Harness::test_run_forwards() {
        eprintln!("skipped: this kernel's BPF_PROG_TEST_RUN takes no ingress interface");
        return;
    }
    // A router: an inexact RST that enforce lets through leaves through TC
    // egress; it was judged where it came in, and changes no state.
    let mut lab = lab(Enforce, true);
    let frame = lab.rst_frame(lab.c.nxt + 10, None, 0);
    assert_eq!(lab.h.judge(&frame), (Verdict::InWindow, Pass));
    let before = lab.h.counters();
    assert_eq!(lab.h.tc_forwarded(&frame, 7), TC_NEXT);
    let d = lab.h.counters().delta(&before);
    assert_eq!(d.get(Counter::TcForwardedRst), 1);
    assert_eq!(d.get(Counter::TcRst), 0);
    assert_eq!(lab.flow().state(), FlowState::Established);
    // The host's own RST (no ingress interface) closes it.
    let own = lab.rst_to_client_frame(lab.s.nxt, Some(lab.s.rcv));
    assert_eq!(lab.h.tc(&own), TC_NEXT);
    assert_eq!(lab.flow().state(), FlowState::Closed);
}

#[test]
fn forwarded_segments_are_claims_and_are_learned_once() {
    if !Harness::test_run_forwards() {
        eprintln!("skipped: this kernel's BPF_PROG_TEST_RUN takes no ingress interface");
        return;
    }
    // A forwarded segment at TC egress is not this host's own: it teaches
    // only what fits, like any claim.
    let mut lab = lab(Strict, true);
    let before = lab.flow();
    let forged = tcp_frame(
        &lab.net,
        (lab.c.addr, lab.c.port),
        (lab.s.addr, lab.s.port),
        &Seg {
            seq: X,
            ack: Some(X),
            fin: true,
            ..Seg::default()
        },
    );
    let c0 = lab.h.counters();
    assert_eq!(lab.h.tc_forwarded(&forged, 7), TC_NEXT);
    assert_eq!(
        lab.h
            .counters()
            .delta(&c0)
            .get(Counter::IgnoredAckOutOfRange),
        1
    );
    assert_eq!(lab.flow(), before);
    // Forwarded from an interface rstguard is attached to, XDP saw it
    // already: TC leaves it alone.
    let slot_if = 9;
    lab.h
        .loaded
        .maps
        .claim_slot(slot_if, false)
        .expect("a slot");
    let c0 = lab.h.counters();
    assert_eq!(lab.h.tc_forwarded(&forged, slot_if), TC_NEXT);
    let d = lab.h.counters().delta(&c0);
    assert_eq!(d.get(Counter::IgnoredAckOutOfRange), 0);
    assert_eq!(d.get(Counter::TcTcp), 1);
}
