//! The cause of every RST, through the real object: each cause as its
//! real sender leaves it on the wire (IPv4 and IPv6), counted by direction
//! and cause, reported in an event with its evidence; `--drop-injected`.

use rstguard_common::{
    count::cause_slot,
    judge::cause::{EVIDENCE_DATA_AFTER, EVIDENCE_DATA_UNREAD, EVIDENCE_TTL_KNOWN},
    Action, Cause, Counter, Counters, Direction, FlowState, Level, RstEvent, Verdict,
};

use crate::harness::*;

use Action::{Drop, Pass};
use Cause::*;
use Direction::{Egress, Ingress};
use Level::{Enforce, Strict};

/// The server's segments arrive with TTL 60 (four hops away); the client's
/// with 64.
const SERVER_TTL: u8 = 60;

/// A conversation seen from a router (both directions at XDP), IPv4 or
/// IPv6, with the event ring open.
fn router(level: Level, net: Net) -> Lab {
    let mut lab = Lab::with_net(level, net);
    lab.middlebox = true;
    lab.s.ttl = SERVER_TTL;
    lab.h.open_events();
    lab
}

/// A conversation with this host as the server (its segments at TC).
fn host(level: Level, net: Net) -> Lab {
    let mut lab = Lab::with_net(level, net);
    lab.h.open_events();
    lab
}

/// The one cause counter that moved since `before`.
fn moved_cause(h: &Harness, before: &Counters) -> (Direction, Cause) {
    let d = h.counters().delta(before);
    let mut moved = Vec::new();
    for dir in Direction::ALL {
        for c in Cause::ALL {
            match d.slots[cause_slot(dir, c)] {
                0 => {}
                1 => moved.push((dir, c)),
                n => panic!("{dir:?}/{c:?} moved by {n}"),
            }
        }
    }
    assert_eq!(moved.len(), 1, "cause counters moved: {moved:?}");
    moved[0]
}

/// Sends a RST from the server to the client through XDP: its verdict,
/// action and cause, and the event that reported it.
fn rst_from_server(
    lab: &mut Lab,
    seq: u32,
    ack: Option<u32>,
    ttl: u8,
) -> (Verdict, Action, Cause, RstEvent) {
    let seg = Seg {
        seq,
        ack,
        rst: true,
        ttl: Some(ttl),
        ..Seg::default()
    };
    let frame = tcp_frame(
        &lab.net,
        (lab.s.addr, lab.s.port),
        (lab.c.addr, lab.c.port),
        &seg,
    );
    let before = lab.h.counters();
    let (v, a) = lab.h.judge(&frame);
    let (dir, cause) = moved_cause(&lab.h, &before);
    assert_eq!(dir, Ingress);
    let mut ev = lab.h.events();
    assert_eq!(ev.len(), 1, "one event for the RST");
    let e = ev.pop().unwrap();
    assert_eq!(
        (e.verdict, e.action, e.cause, e.direction),
        (v as u8, a as u8, cause as u8, Ingress as u8)
    );
    assert_eq!((e.seq, e.ttl), (seq, ttl));
    (v, a, cause, e)
}

/// This host (the server, at TC) sends a RST to the client: its cause
/// and event.
fn own_rst(lab: &mut Lab, seq: u32, ack: Option<u32>) -> (Cause, RstEvent) {
    let frame = lab.rst_to_client_frame(seq, ack);
    let before = lab.h.counters();
    assert_eq!(lab.h.tc(&frame), TC_NEXT);
    let (dir, cause) = moved_cause(&lab.h, &before);
    assert_eq!(dir, Egress);
    let d = lab.h.counters().delta(&before);
    assert_eq!(d.get(Counter::TcRst), 1);
    assert_eq!(
        d.get(Counter::XdpRst),
        0,
        "the host's own RSTs are never judged"
    );
    let mut ev = lab.h.events();
    assert_eq!(ev.len(), 1, "one event for the host's RST");
    let e = ev.pop().unwrap();
    assert_eq!((e.cause, e.direction), (cause as u8, Egress as u8));
    (cause, e)
}

#[test]
fn each_cause_a_peer_leaves_on_the_wire_is_named_at_every_level() {
    for (name, net) in nets() {
        for level in LEVELS {
            let what = format!("{name} {level:?}");
            // Refused: the server answers the SYN with RST|ACK from 0.
            let mut lab = router(level, net);
            lab.send(Client.syn());
            let ack = lab.c.nxt;
            let (v, a, c, e) = rst_from_server(&mut lab, 0, Some(ack), SERVER_TTL);
            assert_eq!((v, a, c), (Verdict::Exact, Pass, Refused), "{what}");
            assert_eq!(
                e.evidence & EVIDENCE_TTL_KNOWN,
                0,
                "{what}: the server was never seen"
            );

            // No socket: the server lost the connection; our next segment
            // draws a RST from its ACK, without an ACK.
            let mut lab = router(level, net);
            lab.established();
            lab.send(Client.data(10));
            let seq = lab.c.rcv;
            let (v, a, c, e) = rst_from_server(&mut lab, seq, None, SERVER_TTL);
            assert_eq!((v, a, c), (Verdict::Exact, Pass, NoSocket), "{what}");
            assert_eq!(
                (e.peer_ttl, e.evidence & EVIDENCE_TTL_KNOWN),
                (SERVER_TTL, EVIDENCE_TTL_KNOWN)
            );
            assert_eq!(lab.flow().state(), FlowState::Closed, "{what}");

            // Peer closed: the server sent its FIN; we kept writing.
            let mut lab = router(level, net);
            lab.established();
            lab.send(Server.fin());
            lab.send(Client.ack());
            lab.send(Client.data(50));
            let seq = lab.c.rcv;
            let (v, _, c, _) = rst_from_server(&mut lab, seq, None, SERVER_TTL);
            assert_eq!((v, c), (Verdict::Exact, PeerClosed), "{what}");

            // Abort with our data unread, then SO_LINGER 0 after the
            // server's own data.
            for (last, unread) in [(Client, EVIDENCE_DATA_UNREAD), (Server, 0)] {
                let mut lab = router(level, net);
                lab.established();
                lab.send(last.data(300));
                lab.send(last.other().ack());
                let (seq, ack) = (lab.s.nxt, lab.s.rcv);
                let (v, _, c, e) = rst_from_server(&mut lab, seq, Some(ack), SERVER_TTL);
                assert_eq!((v, c), (Verdict::Exact, Abort), "{what}");
                assert_eq!(e.evidence & EVIDENCE_DATA_UNREAD, unread, "{what}");
            }

            // A middlebox: the right number from 4 hops closer.
            let mut lab = router(level, net);
            lab.established();
            lab.send(Client.data(10));
            let seq = lab.c.rcv;
            let (v, a, c, e) = rst_from_server(&mut lab, seq, None, SERVER_TTL + 4);
            assert_eq!((v, a, c), (Verdict::Exact, Pass, Middlebox), "{what}");
            assert_eq!(e.peer_ttl, SERVER_TTL);
        }
    }
}

#[test]
fn blind_hidden_time_wait_and_untracked_rsts_name_what_they_are() {
    for (name, net) in nets() {
        let mut lab = router(Strict, net);
        lab.established();
        let base = lab.c.rcv;
        let (v, a, c, _) = rst_from_server(&mut lab, base.wrapping_add(1 << 30), None, SERVER_TTL);
        assert_eq!((v, a, c), (Verdict::OutOfWindow, Drop, Blind), "{name}");
        let (v, a, c, _) = rst_from_server(&mut lab, base.wrapping_add(10), None, SERVER_TTL);
        assert_eq!((v, a, c), (Verdict::InWindow, Drop, Blind), "{name}");
        // Both FINs: TIME_WAIT.
        lab.send(Client.fin());
        lab.send(Server.fin());
        lab.send(Client.ack());
        let seq = lab.c.rcv;
        let (v, _, c, _) = rst_from_server(&mut lab, seq, None, SERVER_TTL);
        assert_eq!((v, c), (Verdict::TimeWait, TimeWait), "{name}");
        // No flow at all.
        let mut lab = router(Strict, net);
        let (v, _, c, _) = rst_from_server(&mut lab, 1, None, 64);
        assert_eq!((v, c), (Verdict::NoFlow, Unknown), "{name}");
    }
}

#[test]
fn an_injected_rst_is_named_when_the_peers_data_goes_on() {
    for (name, net) in nets() {
        let mut lab = router(Enforce, net);
        lab.established();
        lab.send(Server.data(1000));
        lab.send(Client.ack());
        // An injector copies the live numbers; its TTL gives it away only
        // as a middlebox at first.
        let (seq, ack) = (lab.s.nxt, lab.s.rcv);
        let (v, a, c, _) = rst_from_server(&mut lab, seq, Some(ack), 45);
        assert_eq!((v, a, c), (Verdict::Exact, Pass, Middlebox), "{name}");
        // The server goes on sending: the RST was forged.
        let before = lab.h.counters();
        lab.send(Server.data(1000));
        assert_eq!(moved_cause(&lab.h, &before), (Ingress, Injected), "{name}");
        let ev = lab.h.events();
        assert_eq!(ev.len(), 1, "{name}: one event proves it");
        assert_eq!(ev[0].cause, Injected as u8);
        assert_ne!(ev[0].evidence & EVIDENCE_DATA_AFTER, 0);
        assert_eq!(ev[0].ttl, SERVER_TTL, "{name}: the data's own TTL");
        // Counted once: more data proves nothing new.
        let before = lab.h.counters();
        lab.send(Server.data(1000));
        assert_eq!(
            lab.h.counters().delta(&before).cause(Ingress, Injected),
            0,
            "{name}"
        );

        // The injector's burst: a second RST, further into the window.
        let mut lab = router(Enforce, net);
        lab.established();
        let (seq, ack) = (lab.s.nxt, lab.s.rcv);
        rst_from_server(&mut lab, seq, Some(ack), 45);
        let (v, _, c, _) = rst_from_server(&mut lab, seq.wrapping_add(1460), Some(ack), 45);
        assert_eq!((v, c), (Verdict::InWindow, Injected), "{name}");
    }
}

#[test]
fn drop_injected_drops_the_right_number_from_the_wrong_distance_and_nothing_else() {
    for (name, net) in nets() {
        for level in LEVELS {
            let mut lab = router(level, net);
            lab.h.set_policy(|p| p.drop_injected = 1);
            lab.established();
            let (seq, ack) = (lab.s.nxt, lab.s.rcv);
            let (v, a, c, _) = rst_from_server(&mut lab, seq, Some(ack), 45);
            assert_eq!(
                (v, a, c),
                (Verdict::TtlMismatch, at(level, Drop), Middlebox),
                "{name} {level:?}"
            );
            assert_eq!(
                lab.flow().state(),
                FlowState::Established,
                "{name}: nothing closed"
            );
            // Within the slack it is the peer's own.
            lab.h.set_policy(|p| p.ttl_slack = 20);
            let (v, a, c, _) = rst_from_server(&mut lab, seq, Some(ack), 45);
            assert_eq!((v, a, c), (Verdict::Exact, Pass, Abort), "{name} {level:?}");
        }
        // Off (the default), the same RST passes as a middlebox's.
        let mut lab = router(Strict, net);
        lab.established();
        let (seq, ack) = (lab.s.nxt, lab.s.rcv);
        let (v, a, c, _) = rst_from_server(&mut lab, seq, Some(ack), 45);
        assert_eq!((v, a, c), (Verdict::Exact, Pass, Middlebox), "{name}");
    }
}

#[test]
fn the_hosts_own_rsts_are_named_by_what_they_answer() {
    for (name, net) in nets() {
        // A SYN to a closed port: RST|ACK from sequence number 0.
        let mut lab = host(Strict, net);
        lab.send(Client.syn());
        let ack = lab.c.nxt;
        assert_eq!(own_rst(&mut lab, 0, Some(ack)).0, Refused, "{name}");
        // A segment for no socket: RST from its ACK, no ACK.
        let mut lab = host(Strict, net);
        lab.established();
        lab.send(Client.data(10));
        let seq = lab.s.nxt;
        assert_eq!(own_rst(&mut lab, seq, None).0, NoSocket, "{name}");
        assert_eq!(lab.flow().state(), FlowState::Closed);
        // This host closed; the client kept writing.
        let mut lab = host(Strict, net);
        lab.established();
        lab.send(Server.fin());
        lab.send(Client.ack());
        lab.send(Client.data(40));
        let seq = lab.s.nxt;
        assert_eq!(own_rst(&mut lab, seq, None).0, PeerClosed, "{name}");
        // An abort with the client's data unread.
        let mut lab = host(Strict, net);
        lab.established();
        lab.send(Client.data(300));
        let (seq, ack) = (lab.s.nxt, lab.s.rcv);
        let (c, e) = own_rst(&mut lab, seq, Some(ack));
        assert_eq!(c, Abort, "{name}");
        assert_ne!(e.evidence & EVIDENCE_DATA_UNREAD, 0, "{name}");
        // Untracked: the flags alone.
        let mut lab = host(Strict, net);
        assert_eq!(own_rst(&mut lab, 0, Some(1)).0, Refused, "{name}");
        assert_eq!(own_rst(&mut lab, 77, None).0, NoSocket, "{name}");
        assert_eq!(own_rst(&mut lab, 77, Some(1)).0, Abort, "{name}");
    }
}

#[test]
fn an_exact_rst_from_another_distance_after_idling_is_idle_expired() {
    // Both families idle together: one wait.
    let mut labs: Vec<(&str, Lab)> = nets()
        .into_iter()
        .map(|(name, net)| {
            let mut lab = router(Enforce, net);
            lab.h.set_policy(|p| p.idle_after_secs = 2);
            lab.established();
            (name, lab)
        })
        .collect();
    // Over two units of the flows' idle clock (2^31 ns each) and the
    // threshold: the segment that wakes the flow keeps the gap visible.
    std::thread::sleep(std::time::Duration::from_millis(6_600));
    for (name, lab) in &mut labs {
        lab.send(Client.data(10));
        let seq = lab.c.rcv;
        let (v, a, c, e) = rst_from_server(lab, seq, None, 64);
        assert_eq!((v, a, c), (Verdict::Exact, Pass, IdleExpired), "{name}");
        assert!(e.idle >= 2, "{name}: idle {} units", e.idle);
    }
}
