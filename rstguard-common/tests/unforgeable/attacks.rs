//! The attacks, one by one. Each forges packets with no knowledge of the
//! live sequence numbers (X is the attacker's own choice), then a RST at
//! the value the forgery would have taught. Before, every one of these
//! RSTs passed as exact.

use super::*;

/// A router's view of an established flow: client (lo) ISN 1000, server
/// (hi) ISN 50_000, scale 7 both ways, data exchanged and acknowledged.
fn router_flow() -> Flow {
    let mut w = World::new(Placement::Router, false, true, 1000, 50_000);
    w.apply(&Op::Send {
        client: true,
        len: 100,
        fin: false,
        loss: Loss::None,
    });
    w.apply(&Op::Send {
        client: false,
        len: 300,
        fin: false,
        loss: Loss::None,
    });
    w.apply(&Op::Ack {
        client: true,
        loss: Loss::None,
    });
    w.flow.unwrap()
}

const X: u32 = 3_000_000_000;

fn forged(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
    Segment {
        seq,
        ack,
        flags,
        payload_len: len,
        win: 65535,
        wscale: WSCALE_NONE,
        ttl: 50,
        ..Segment::default()
    }
}

fn rst_verdict(f: &Flow, from_lo: bool, seq: u32, ack: Option<u32>) -> Verdict {
    let strict = Policy {
        level: Level::Strict as u8,
        ..Policy::default()
    };
    let rst = Segment {
        seq,
        ack: ack.unwrap_or(0),
        flags: RST | if ack.is_some() { ACK } else { 0 },
        wscale: WSCALE_NONE,
        ..Segment::default()
    };
    judge(Some(&mut f.clone()), from_lo, &rst, false, &strict, NOW).verdict
}

#[test]
fn forged_fin_syn_synack_data_ack_and_sack_teach_nothing() {
    // (what is forged, as whom, the packet, the RST the forgery aims at)
    let cases: [(&str, bool, Segment, u32); 7] = [
        ("FIN at X", true, forged(FIN | ACK, X, 0, 0), X),
        ("bare FIN at X", true, forged(FIN, X, 0, 0), X),
        ("SYN at X", true, forged(SYN, X, 0, 0), X.wrapping_add(1)),
        (
            "SYN-ACK at X",
            false,
            forged(SYN | ACK, X, 1101, 0),
            X.wrapping_add(1),
        ),
        (
            "data at X",
            true,
            forged(ACK, X, 50_301, 500),
            X.wrapping_add(500),
        ),
        ("ACK of X", false, forged(ACK, 50_301, X, 0), X),
        ("data without ACK", true, forged(0, 1101, 0, 500), 1601),
    ];
    // (Contiguous data without an ACK aims inside the window: it would
    // have been exact; it is only in the window.)
    for (what, from_client, seg, aim) in cases {
        let mut f = router_flow();
        let before = f;
        let step = track::learn(Some(&mut f), from_client, &seg, Origin::Claim, || true, NOW);
        assert!(matches!(step, Step::Ignored(_)), "{what}: {step:?}");
        assert_eq!(f, before, "{what}: the flow changed");
        // The RST aimed at what the forgery would have taught, from the
        // side it claimed to be, and toward it.
        for from in [from_client, !from_client] {
            let v = rst_verdict(&f, from, aim, None);
            let in_window = aim == 1601 && from;
            assert_eq!(
                v,
                if in_window {
                    Verdict::InWindow
                } else {
                    Verdict::OutOfWindow
                },
                "{what}"
            );
        }
    }
    // A forged SACK block past what the client sent.
    let mut f = router_flow();
    let mut sack = forged(ACK, 50_301, 1101, 0);
    sack.has_sack = true;
    sack.sack_right = 1101 + 5000;
    track::learn(Some(&mut f), false, &sack, Origin::Claim, || true, NOW);
    assert!(!f.hi.has(HALF_SACK), "a SACK of bytes never sent");
    assert_eq!(rst_verdict(&f, true, 6101, None), Verdict::InWindow);
}

#[test]
fn a_forged_syn_does_not_wipe_an_established_flow() {
    let mut f = router_flow();
    let before = f;
    let step = track::learn(
        Some(&mut f),
        false,
        &forged(SYN, X, 0, 0),
        Origin::Claim,
        || true,
        NOW,
    );
    assert_eq!(step, Step::Ignored(Ignore::Syn));
    assert_eq!(f, before);
    // The flow's real RSTs are still judged against its real state.
    assert_eq!(rst_verdict(&f, true, 1101, None), Verdict::Exact);
}

#[test]
fn on_a_host_a_segment_from_outside_claiming_the_host_is_a_spoof() {
    // The server (hi) is local.
    let mut w = World::new(Placement::Host, false, true, 1000, 50_000);
    w.apply(&Op::Send {
        client: false,
        len: 300,
        fin: false,
        loss: Loss::None,
    });
    let mut f = w.flow.unwrap();
    let before = f;
    let seg = forged(ACK, 50_301, 1001, 100);
    let step = track::learn(Some(&mut f), false, &seg, Origin::Claim, || true, NOW);
    assert_eq!(step, Step::Ignored(Ignore::LocalSpoof));
    assert_eq!(f, before);
}

#[test]
fn one_sided_flows_never_drop_a_rst() {
    // A router that sees only the client's direction (the server's
    // segments take another path): picked up, or from the SYN.
    for from_syn in [false, true] {
        let first = if from_syn {
            forged(SYN, 1000, 0, 0)
        } else {
            forged(ACK, 1001, 50_001, 0)
        };
        let mut f = track::new_flow(&first, true, Origin::Claim, NOW);
        let data = forged(ACK, 1001, 50_001, 400);
        track::learn(Some(&mut f), true, &data, Origin::Claim, || true, NOW);
        assert!(!f.both_seen());
        // The server aborts; its segments were lost, the client's
        // challenge ACK goes the other way, and the server's no-socket
        // reply (at the client's RCV.NXT, which this router never saw)
        // comes through here.
        for seq in [50_001, 77_777, X] {
            assert_eq!(
                rst_verdict(&f, false, seq, None),
                Verdict::OneSided,
                "from the server {seq}"
            );
        }
        assert_eq!(
            rst_verdict(&f, true, 1401, None),
            Verdict::OneSided,
            "from the client"
        );
    }
    // The other way round: only the server's direction is seen.
    let mut f = track::new_flow(&forged(ACK, 50_001, 1001, 100), false, Origin::Claim, NOW);
    track::learn(
        Some(&mut f),
        false,
        &forged(ACK, 50_101, 1001, 100),
        Origin::Claim,
        || true,
        NOW,
    );
    assert_eq!(rst_verdict(&f, true, 1001, None), Verdict::OneSided);
    assert_eq!(rst_verdict(&f, true, X, None), Verdict::OneSided);
}

#[test]
fn a_pickup_from_a_forgery_gives_way_to_the_real_flow() {
    // A forged segment creates the flow before the real one shows up.
    let mut f = track::new_flow(&forged(ACK, X, X, 10), true, Origin::Claim, NOW);
    // The real server's segment does not fit it: the pickup starts over.
    let real = forged(ACK, 50_001, 1001, 100);
    assert_eq!(
        track::learn(Some(&mut f), false, &real, Origin::Claim, || true, NOW),
        Step::Create
    );
    let mut f = track::new_flow(&real, false, Origin::Claim, NOW);
    // The real client then fits and the flow is judged as usual.
    track::learn(
        Some(&mut f),
        true,
        &forged(ACK, 1001, 50_101, 0),
        Origin::Claim,
        || true,
        NOW,
    );
    assert!(f.both_seen());
    assert_eq!(rst_verdict(&f, true, 1001, None), Verdict::Exact);
    assert_eq!(rst_verdict(&f, true, X, None), Verdict::OutOfWindow);
}

#[test]
fn tcp_fast_open_any_ack_of_the_syn_or_its_data_resets_syn_sent() {
    // The client (lo) sends a SYN with 200 bytes of data.
    let syn = forged(SYN, 1000, 0, 200);
    let f = track::new_flow(&syn, true, Origin::Local, NOW);
    for ack in [1001, 1101, 1201] {
        assert_eq!(
            rst_verdict(&f, false, 0, Some(ack)),
            Verdict::Exact,
            "ack {ack}"
        );
    }
    for ack in [1000, 1202, X] {
        assert_eq!(
            rst_verdict(&f, false, 0, Some(ack)),
            Verdict::BadSynAck,
            "ack {ack}"
        );
    }
    assert_eq!(
        rst_verdict(&f, false, 0, None),
        Verdict::BadSynAck,
        "no ACK"
    );
    // The SYN-ACK that acknowledges only the SYN is the answer too.
    let mut g = f;
    let synack = forged(SYN | ACK, 50_000, 1001, 0);
    assert_eq!(
        track::learn(Some(&mut g), false, &synack, Origin::Claim, || true, NOW),
        Step::Learned
    );
    assert_eq!(g.state(), FlowState::SynRecv);
}

#[test]
fn a_second_syn_soon_after_the_first_is_not_believed() {
    let mut f = track::new_flow(&forged(SYN, 1000, 0, 0), true, Origin::Claim, NOW);
    let forged_syn = forged(SYN, X, 0, 0);
    assert_eq!(
        track::learn(
            Some(&mut f),
            true,
            &forged_syn,
            Origin::Claim,
            || true,
            NOW + 1000
        ),
        Step::Ignored(Ignore::Syn)
    );
    assert_eq!(
        rst_verdict(&f, false, 0, Some(X.wrapping_add(1))),
        Verdict::BadSynAck
    );
    assert_eq!(rst_verdict(&f, false, 0, Some(1001)), Verdict::Exact);
    // After the first retransmission timeout, a new attempt starts over.
    let later = NOW + track::SYN_RETRY_NS + 1;
    assert_eq!(
        track::learn(
            Some(&mut f),
            true,
            &forged(SYN, 7000, 0, 0),
            Origin::Claim,
            || true,
            later
        ),
        Step::Create
    );
}

#[test]
fn port_reuse_after_a_silent_death() {
    // The client rebooted; the server still holds the old connection (the
    // router still tracks it). The new incarnation's SYN is not believed...
    let mut f = router_flow();
    let new_syn = forged(SYN, 9_000_000, 0, 0);
    assert_eq!(
        track::learn(Some(&mut f), true, &new_syn, Origin::Claim, || true, NOW),
        Step::Ignored(Ignore::Syn)
    );
    // ...the server answers it with a challenge ACK of the old connection,
    // and the client (SYN_SENT, an ACK it did not expect) resets at its
    // ACK number: exact, so it passes and closes the old flow...
    let challenge = forged(ACK, 50_301, 1101, 0);
    assert_eq!(
        track::learn(Some(&mut f), false, &challenge, Origin::Claim, || true, NOW),
        Step::Learned
    );
    let strict = Policy {
        level: Level::Strict as u8,
        ..Policy::default()
    };
    let rst = forged(RST, 1101, 0, 0);
    assert_eq!(
        judge(Some(&mut f), true, &rst, false, &strict, NOW).outcome(),
        (Verdict::Exact, Action::Pass)
    );
    assert_eq!(f.state(), FlowState::Closed);
    // ...and the retransmitted SYN starts the flow afresh.
    assert_eq!(
        track::learn(Some(&mut f), true, &new_syn, Origin::Claim, || true, NOW),
        Step::Create
    );

    // On the server itself, its own SYN-ACK to the new SYN (the old socket
    // was gone too) is the evidence: the kernel accepted a new connection.
    let mut w = World::new(Placement::Host, false, true, 1000, 50_000);
    let mut f = w.flow.take().unwrap();
    assert_eq!(
        track::learn(Some(&mut f), true, &new_syn, Origin::Claim, || true, NOW),
        Step::Ignored(Ignore::Syn)
    );
    let synack = forged(SYN | ACK, 70_000, 9_000_001, 0);
    assert_eq!(
        track::learn(Some(&mut f), false, &synack, Origin::Local, || true, NOW),
        Step::Create
    );
    let g = track::new_flow(&synack, false, Origin::Local, NOW);
    assert_eq!(g.state(), FlowState::SynRecv);
    assert!(!g.has(FLOW_HI_INITIATOR), "the client (lo) initiated");
    assert_eq!(rst_verdict(&g, true, 9_000_001, None), Verdict::Exact);
    assert_eq!(
        rst_verdict(&g, true, 1101, None),
        Verdict::OutOfWindow,
        "the old incarnation"
    );
}
