//! Host tests of socket mode's judgement and causes.

use super::{cause::*, *};
use crate::{
    act::Level,
    judge::cause::{Cause, Thresholds},
    parse::{RST, SYN},
};

fn rst(seq: u32) -> Segment {
    Segment {
        seq,
        flags: RST,
        ..Segment::default()
    }
}

fn rst_ack(seq: u32, ack: u32) -> Segment {
    Segment {
        seq,
        ack,
        flags: RST | ACK,
        ..Segment::default()
    }
}

const EST: u8 = tcp_state::ESTABLISHED;

#[test]
fn established_as_rfc_5961() {
    let s = Sock::full(EST, 1000, 500);
    assert_eq!(classify(Some(&s), &rst(1000)), Verdict::Exact);
    assert_eq!(classify(Some(&s), &rst(1001)), Verdict::InWindow);
    // The right edge itself passes tcp_sequence: a challenge ACK.
    assert_eq!(classify(Some(&s), &rst(1500)), Verdict::InWindow);
    assert_eq!(classify(Some(&s), &rst(1501)), Verdict::OutOfWindow);
    assert_eq!(classify(Some(&s), &rst(999)), Verdict::OutOfWindow);
    assert_eq!(classify(None, &rst(1000)), Verdict::NoFlow);
}

#[test]
fn rcv_wup_extends_the_window_to_the_left() {
    // A delayed ACK: RCV.NXT moved past RCV.WUP, which the peer may not
    // know yet.
    let mut s = Sock::full(EST, 1000, 500);
    s.rcv_wup = 900;
    assert_eq!(classify(Some(&s), &rst(900)), Verdict::InWindow);
    assert_eq!(classify(Some(&s), &rst(899)), Verdict::OutOfWindow);
    // The window still ends at RCV.WUP + RCV.WND.
    assert_eq!(classify(Some(&s), &rst(1400)), Verdict::InWindow);
    assert_eq!(classify(Some(&s), &rst(1401)), Verdict::OutOfWindow);
}

#[test]
fn a_zero_window_accepts_only_rcv_nxt() {
    let s = Sock::full(EST, 1000, 0);
    assert_eq!(classify(Some(&s), &rst(1000)), Verdict::Exact);
    assert_eq!(classify(Some(&s), &rst(1001)), Verdict::OutOfWindow);
}

#[test]
fn a_rst_with_payload_past_the_window_needs_an_empty_queue() {
    let mut s = Sock::full(EST, 1000, 100);
    let mut r = rst(1050);
    r.payload_len = 100;
    assert_eq!(classify(Some(&s), &r), Verdict::InWindow);
    s.rcv_queue_len = 1;
    assert_eq!(classify(Some(&s), &r), Verdict::OutOfWindow);
    // Only its FIN past the window: accepted whatever the queue.
    let mut f = rst(1050);
    f.payload_len = 50;
    f.flags |= FIN;
    assert_eq!(classify(Some(&s), &f), Verdict::InWindow);
    // And data ending at or after RCV.WUP counts, even when it starts
    // before it.
    let mut old = rst(990);
    old.payload_len = 10;
    assert_eq!(classify(Some(&s), &old), Verdict::InWindow);
}

#[test]
fn rcv_nxt_minus_one_after_a_fin() {
    for state in [
        tcp_state::CLOSE_WAIT,
        tcp_state::LAST_ACK,
        tcp_state::CLOSING,
    ] {
        let s = Sock::full(state, 1000, 500);
        assert_eq!(classify(Some(&s), &rst(999)), Verdict::Exact, "{state}");
    }
    for state in [EST, tcp_state::FIN_WAIT1, tcp_state::FIN_WAIT2] {
        let s = Sock::full(state, 1000, 500);
        assert_eq!(
            classify(Some(&s), &rst(999)),
            Verdict::OutOfWindow,
            "{state}"
        );
    }
}

#[test]
fn the_highest_sack_edge_resets() {
    let mut s = Sock::full(EST, 1000, 10_000);
    s.sack_ok = true;
    s.num_sacks = 3;
    s.sack_ends = [3000, 5000, 4000, 9999];
    assert_eq!(classify(Some(&s), &rst(5000)), Verdict::Exact);
    assert_eq!(classify(Some(&s), &rst(3000)), Verdict::InWindow);
    // Blocks past num_sacks are stale.
    assert_eq!(classify(Some(&s), &rst(9999)), Verdict::InWindow);
    s.sack_ok = false;
    assert_eq!(classify(Some(&s), &rst(5000)), Verdict::InWindow);
    // Across the 2^32 wrap.
    let mut w = Sock::full(EST, u32::MAX - 100, 10_000);
    w.sack_ok = true;
    w.num_sacks = 2;
    w.sack_ends = [u32::MAX - 10, 50, 0, 0];
    assert_eq!(classify(Some(&w), &rst(50)), Verdict::Exact);
}

#[test]
fn syn_sent_wants_the_ack_of_its_syn() {
    let mut s = Sock::full(tcp_state::SYN_SENT, 0, 0);
    s.snd_una = 5000;
    s.snd_nxt = 5001;
    assert_eq!(classify(Some(&s), &rst_ack(1, 5001)), Verdict::Exact);
    assert_eq!(classify(Some(&s), &rst_ack(1, 5000)), Verdict::BadSynAck);
    assert_eq!(classify(Some(&s), &rst_ack(1, 5002)), Verdict::BadSynAck);
    assert_eq!(classify(Some(&s), &rst(5001)), Verdict::BadSynAck);
    // Fast Open data widens it.
    s.snd_nxt = 5101;
    assert_eq!(classify(Some(&s), &rst_ack(1, 5050)), Verdict::Exact);
}

#[test]
fn request_sockets_reset_only_at_rcv_nxt() {
    let s = Sock {
        kind: Kind::Request,
        state: tcp_state::NEW_SYN_RECV,
        rcv_nxt: 1000,
        rcv_wup: 0,
        rcv_wnd: 1 << 20,
        snd_una: 0,
        snd_nxt: 7001,
        rcv_queue_len: 0,
        sack_ok: false,
        num_sacks: 0,
        sack_ends: [0; 4],
    };
    assert_eq!(classify(Some(&s), &rst(1000)), Verdict::Exact);
    assert_eq!(classify(Some(&s), &rst(2000)), Verdict::InWindow);
    // The SYN-ACK's window is at most 65535, right edge included.
    assert_eq!(classify(Some(&s), &rst(1000 + 65535)), Verdict::InWindow);
    assert_eq!(classify(Some(&s), &rst(1000 + 65536)), Verdict::OutOfWindow);
    assert_eq!(classify(Some(&s), &rst(999)), Verdict::OutOfWindow);
    // The ACK field does not count.
    assert_eq!(classify(Some(&s), &rst_ack(1000, 7001)), Verdict::Exact);
    assert_eq!(classify(Some(&s), &rst_ack(1000, 7000)), Verdict::Exact);
    assert_eq!(classify(Some(&s), &rst_ack(1500, 1)), Verdict::InWindow);
}

#[test]
fn time_wait_sockets() {
    let tw = Sock {
        kind: Kind::TimeWait,
        state: tcp_state::TIME_WAIT,
        ..Sock::full(0, 1000, 500)
    };
    assert_eq!(classify(Some(&tw), &rst(1000)), Verdict::TimeWait);
    assert_eq!(classify(Some(&tw), &rst(1001)), Verdict::OutOfWindow);
    let fw2 = Sock {
        state: tcp_state::FIN_WAIT2,
        ..tw
    };
    assert_eq!(classify(Some(&fw2), &rst(1000)), Verdict::TimeWait);
    assert_eq!(classify(Some(&fw2), &rst(1499)), Verdict::TimeWait);
    assert_eq!(classify(Some(&fw2), &rst(1500)), Verdict::TimeWait);
    assert_eq!(classify(Some(&fw2), &rst(1501)), Verdict::OutOfWindow);
    assert_eq!(classify(Some(&fw2), &rst(999)), Verdict::OutOfWindow);
}

#[test]
fn a_listener_holds_no_connection() {
    let l = Sock::full(tcp_state::LISTEN, 0, 0);
    assert_eq!(classify(Some(&l), &rst(0)), Verdict::NoFlow);
}

#[test]
fn policy_applies_as_in_tracking_mode() {
    let s = Sock::full(EST, 1000, 500);
    let strict = Policy {
        level: Level::Strict as u8,
        ..Policy::default()
    };
    let enforce = Policy {
        level: Level::Enforce as u8,
        ..Policy::default()
    };
    assert_eq!(
        judge(Some(&s), &rst(1001), false, 0, &strict),
        (Verdict::InWindow, Action::Drop)
    );
    assert_eq!(
        judge(Some(&s), &rst(1001), false, 0, &enforce),
        (Verdict::InWindow, Action::Pass)
    );
    assert_eq!(
        judge(Some(&s), &rst(5000), false, 0, &enforce),
        (Verdict::OutOfWindow, Action::Drop)
    );
    assert_eq!(
        judge(Some(&s), &rst(5000), true, 0, &strict),
        (Verdict::Trusted, Action::Pass)
    );
    let mut frag = rst(1000);
    frag.first_fragment = true;
    assert_eq!(
        judge(Some(&s), &frag, false, 0, &enforce),
        (Verdict::FragmentedRst, Action::Drop)
    );
}

#[test]
fn source_bits_round_trip() {
    for s in Source::ALL {
        let word = 7 | s.slot_bits() | (1 << 16);
        assert_eq!(Source::from_slot_word(word), s);
    }
    assert_eq!(Source::from_slot_word(5), Source::Track);
}

const SECOND: u64 = 1_000_000_000;

fn thresholds() -> Thresholds {
    Thresholds {
        ttl_slack: 0,
        idle_secs: 60,
    }
}

fn ttl(mut seg: Segment, ttl: u8) -> Segment {
    seg.ttl = ttl;
    seg
}

/// The cause of `rst` against `sock`, with `peer` on record and the
/// socket idle for `idle` ns, at 1000 s.
fn cause_of(sock: &Sock, peer: Option<&Peer>, rst: &Segment, idle: u64) -> Cause {
    let now = 1000 * SECOND;
    let (verdict, _) = judge(
        Some(sock),
        rst,
        false,
        peer.map_or(0, |p| p.ttl),
        &Policy::default(),
    );
    let facts = facts(Some(sock), peer, rst, idle, now);
    cause(verdict, &facts, &thresholds(), now)
}

#[test]
fn exact_rsts_are_named_from_the_peers_distance_and_the_sockets_idle_time() {
    let est = Sock::full(tcp_state::ESTABLISHED, 1000, 4096);
    let peer = Peer {
        ttl: 61,
        ..Peer::default()
    };
    // From the peer's distance: what the socket's state says.
    assert_eq!(
        cause_of(&est, Some(&peer), &ttl(rst_ack(1000, 5), 61), 0),
        Cause::Abort
    );
    assert_eq!(
        cause_of(&est, Some(&peer), &ttl(rst(1000), 61), 0),
        Cause::NoSocket
    );
    let closing = Sock::full(tcp_state::CLOSE_WAIT, 1000, 4096);
    assert_eq!(
        cause_of(&closing, Some(&peer), &ttl(rst(1000), 61), 0),
        Cause::PeerClosed
    );
    // From another distance: a middlebox, or a NAT that forgot an idle
    // flow once the socket idled past the threshold.
    let near = ttl(rst(1000), 63);
    assert_eq!(
        cause_of(&est, Some(&peer), &near, 5 * SECOND),
        Cause::Middlebox
    );
    assert_eq!(
        cause_of(&est, Some(&peer), &near, 61 * SECOND),
        Cause::IdleExpired
    );
    // The peer's distance unknown (no handshake seen): never another one.
    assert_eq!(cause_of(&est, None, &near, 61 * SECOND), Cause::NoSocket);
    // A refusal from another distance than the SYN-ACK would come from
    // is a firewall's.
    let mut syn_sent = Sock::full(tcp_state::SYN_SENT, 0, 0);
    (syn_sent.snd_una, syn_sent.snd_nxt) = (99, 100);
    assert_eq!(
        cause_of(&syn_sent, None, &ttl(rst_ack(0, 100), 64), 0),
        Cause::Refused
    );
    assert_eq!(
        cause_of(&syn_sent, Some(&peer), &ttl(rst_ack(0, 100), 64), 0),
        Cause::Middlebox
    );
    // Blind ones stay blind, whatever the distance.
    assert_eq!(
        cause_of(&est, Some(&peer), &ttl(rst(1500), 63), 0),
        Cause::Blind
    );
}

#[test]
fn drop_injected_turns_an_exact_rst_from_another_distance_into_ttl_mismatch() {
    let est = Sock::full(tcp_state::ESTABLISHED, 1000, 4096);
    let policy = Policy {
        drop_injected: 1,
        ttl_slack: 1,
        level: Level::Enforce as u8,
        ..Policy::default()
    };
    let v = |rst_ttl, peer_ttl| {
        judge(
            Some(&est),
            &ttl(rst(1000), rst_ttl),
            false,
            peer_ttl,
            &policy,
        )
    };
    assert_eq!(v(63, 61), (Verdict::TtlMismatch, Action::Drop));
    assert_eq!(
        v(62, 61),
        (Verdict::Exact, Action::Pass),
        "within the slack"
    );
    assert_eq!(
        v(63, 0),
        (Verdict::Exact, Action::Pass),
        "the peer's distance unknown"
    );
    let off = Policy {
        level: Level::Enforce as u8,
        ..Policy::default()
    };
    assert_eq!(
        judge(Some(&est), &ttl(rst(1000), 63), false, 61, &off),
        (Verdict::Exact, Action::Pass),
        "off by default"
    );
}

#[test]
fn only_handshakes_the_socket_vouches_for_teach_the_peers_ttl() {
    let syn = Segment {
        flags: SYN,
        ..Segment::default()
    };
    let listener = Sock::full(tcp_state::LISTEN, 0, 0);
    let est = Sock::full(tcp_state::ESTABLISHED, 1000, 4096);
    assert!(teaches_ttl(Some(&listener), &syn));
    // A SYN for a connection that exists (forged, or a retransmission
    // the socket will ignore) teaches nothing; nor does one for no socket.
    assert!(!teaches_ttl(Some(&est), &syn));
    assert!(!teaches_ttl(None, &syn));
    let mut syn_sent = Sock::full(tcp_state::SYN_SENT, 0, 0);
    (syn_sent.snd_una, syn_sent.snd_nxt) = (99, 100);
    let syn_ack = |ack| Segment {
        flags: SYN | ACK,
        ack,
        ..Segment::default()
    };
    assert!(teaches_ttl(Some(&syn_sent), &syn_ack(100)));
    // A blind SYN-ACK does not know the ISN.
    assert!(!teaches_ttl(Some(&syn_sent), &syn_ack(7)));
    assert!(!teaches_ttl(Some(&listener), &syn_ack(100)));
    // Data teaches nothing.
    let data = Segment {
        flags: ACK,
        payload_len: 10,
        ..Segment::default()
    };
    assert!(!teaches_ttl(Some(&listener), &data));
}

#[test]
fn data_past_a_passed_rst_from_the_peers_distance_proves_it_injected() {
    let mut peer = Peer {
        ttl: 61,
        ..Peer::default()
    };
    let data = |seq, len, ttl| Segment {
        seq,
        flags: ACK,
        payload_len: len,
        ttl,
        ..Segment::default()
    };
    // No RST on record: nothing to prove.
    assert!(!proves_injection(&peer, &data(1000, 100, 61), 0));
    note_rst(&mut peer, &ttl(rst(1000), 63), 4096);
    assert_eq!((peer.rst_seq, peer.rst_ttl, peer.rst_wnd), (1000, 63, 4096));
    assert!(proves_injection(&peer, &data(1000, 100, 61), 0));
    // Data the peer sent before its RST, arriving late, ends at it.
    assert!(!proves_injection(&peer, &data(900, 100, 61), 0));
    // A pure ACK carries nothing past it.
    assert!(!proves_injection(&peer, &data(1000, 0, 61), 0));
    // From another distance than the peer's: not the peer's data.
    assert!(!proves_injection(&peer, &data(1000, 100, 63), 0));
    assert!(proves_injection(&peer, &data(1000, 100, 62), 1));
    // Inside the window the socket offered, and no further: data forged
    // far ahead is no segment the peer could send.
    assert!(proves_injection(&peer, &data(1000 + 4096, 100, 61), 0));
    assert!(!proves_injection(&peer, &data(1000 + 4097, 100, 61), 0));
    assert!(!proves_injection(
        &peer,
        &data(1000 + (1 << 30), 100, 61),
        0
    ));
}

#[test]
fn idle_time_comes_from_jiffies_at_the_kernels_hz() {
    assert_eq!(idle_ns(1250, 1000, 250), SECOND);
    // The socket's stamp is 32 bits; jiffies64 wraps it.
    assert_eq!(idle_ns((1u64 << 32) + 10, u32::MAX - 239, 250), SECOND);
    assert_eq!(idle_ns(5000, 1000, 0), 0, "HZ unknown: no idle time");
}

#[test]
fn the_injection_watch_spreads_one_servers_flows_over_its_buckets() {
    use crate::{Endpoints, FlowKey};
    let server = crate::key::v4_mapped([10, 0, 0, 1]);
    let mut seen = [0u32; WATCH_BUCKETS as usize];
    for i in 0..1000u32 {
        // Clients of one server, on consecutive ports of a few addresses:
        // what a busy host's flows look like.
        let client = crate::key::v4_mapped([10, 0, 1, (i % 4) as u8]);
        let (e, _) = Endpoints::new(client, 40_000 + i as u16, server, 443);
        let b = watch_bucket(&FlowKey::of(&e, false, &[1, 2]));
        assert!(b < WATCH_BUCKETS);
        seen[b as usize] += 1;
    }
    let used = seen.iter().filter(|&&n| n > 0).count();
    // 1,000 flows thrown at random into 1,024 buckets fill about 628.
    assert!(used > 550, "1,000 flows in only {used} buckets");
    assert!(seen.iter().all(|&n| n <= 6), "a bucket holds {seen:?}");
}
