//! Layer 1: the cause of a RST, as a pure function of the flow rstguard
//! learned and the RST: one test per cause (the wire as each real cause
//! leaves it), the ways each can be fooled, and properties.

use proptest::prelude::*;
use rstguard_common::{
    clock::{seen, seen_from_secs, seen_to_secs},
    judge::cause::{self, Facts, Thresholds, EVIDENCE_DATA_UNREAD, EVIDENCE_SENDER_CLOSED},
    judge::{judge, Judgement},
    parse::{Segment, ACK, FIN, RST, SYN},
    state::track::{self, Origin},
    Action, Cause, Flow, FlowState, Level, Policy, Verdict,
};

const SEC: u64 = 1_000_000_000;
/// The time the connection starts (any value: the clock only moves on).
const T0: u64 = 1000 * SEC;
/// The client's segments leave with TTL 64; the server's arrive with 61
/// (three hops away).
const CLIENT_TTL: u8 = 64;
const SERVER_TTL: u8 = 61;
const CLIENT: bool = true;
const SERVER: bool = false;

fn seg(seq: u32, ack: u32, flags: u8, len: u32, ttl: u8) -> Segment {
    Segment {
        seq,
        ack,
        flags,
        payload_len: len,
        win: 1000,
        wscale: rstguard_common::state::WSCALE_NONE,
        ttl,
        ..Segment::default()
    }
}

fn policy(level: Level) -> Policy {
    Policy {
        level: level as u8,
        ..Policy::default()
    }
}

/// A connection seen from a router: client (lo) ISN 100, server (hi) ISN
/// 5000; `sent` bytes from the client, then `answered` from the server.
struct Conn {
    flow: Flow,
    /// Next sequence numbers of client and server.
    c: u32,
    s: u32,
    now: u64,
}

impl Conn {
    fn open() -> Conn {
        let mut flow = track::new_flow(&seg(100, 0, SYN, 0, CLIENT_TTL), CLIENT, Origin::Claim, T0);
        let mut conn = Conn {
            flow: Flow::default(),
            c: 101,
            s: 5001,
            now: T0,
        };
        track::learn(
            Some(&mut flow),
            SERVER,
            &seg(5000, 101, SYN | ACK, 0, SERVER_TTL),
            Origin::Claim,
            || false,
            T0,
        );
        conn.flow = flow;
        conn.send(CLIENT, 0, ACK);
        assert_eq!(conn.flow.state(), FlowState::Established);
        conn
    }

    fn send(&mut self, from_client: bool, len: u32, flags: u8) -> track::Step {
        let (seq, ack, ttl) = if from_client {
            (self.c, self.s, CLIENT_TTL)
        } else {
            (self.s, self.c, SERVER_TTL)
        };
        let segment = seg(seq, ack, flags, len, ttl);
        let step = track::learn(
            Some(&mut self.flow),
            from_client,
            &segment,
            Origin::Claim,
            || false,
            self.now,
        );
        let end = segment.end_seq();
        if from_client {
            self.c = end;
        } else {
            self.s = end;
        }
        step
    }

    fn wait(&mut self, secs: u64) {
        self.now += secs * SEC;
    }

    /// A RST from `from_client`'s side, judged at `policy`.
    fn rst(
        &mut self,
        from_client: bool,
        seq: u32,
        ack: Option<u32>,
        ttl: u8,
        p: &Policy,
    ) -> Judgement {
        let mut r = seg(seq, ack.unwrap_or(0), RST, 0, ttl);
        if ack.is_some() {
            r.flags |= ACK;
        }
        judge(Some(&mut self.flow), from_client, &r, false, p, self.now)
    }
}

#[test]
fn a_closed_port_is_refused() {
    let mut flow = track::new_flow(&seg(100, 0, SYN, 0, CLIENT_TTL), CLIENT, Origin::Claim, T0);
    // Linux answers a SYN for no listener with RST|ACK, sequence 0.
    let r = seg(0, 101, RST | ACK, 0, SERVER_TTL);
    let j = judge(
        Some(&mut flow),
        SERVER,
        &r,
        false,
        &policy(Level::Strict),
        T0,
    );
    assert_eq!(
        (j.verdict, j.action, j.cause),
        (Verdict::Exact, Action::Pass, Cause::Refused)
    );
    // The server was never seen: no distance to hold the RST against (a
    // firewall that rejects the SYN looks the same; README says so).
    assert_eq!(j.facts.peer_ttl, 0);
}

#[test]
fn a_peer_without_the_connection_answers_from_our_ack() {
    let mut conn = Conn::open();
    conn.send(CLIENT, 100, ACK);
    conn.send(SERVER, 50, ACK);
    conn.wait(5);
    // The server rebooted (or its socket was destroyed): our next segment
    // draws a RST whose sequence number is that segment's ACK, no ACK bit.
    conn.send(CLIENT, 10, ACK);
    let j = conn.rst(SERVER, conn.s, None, SERVER_TTL, &policy(Level::Strict));
    assert_eq!(
        (j.verdict, j.action, j.cause),
        (Verdict::Exact, Action::Pass, Cause::NoSocket)
    );
    assert_eq!(conn.flow.state(), FlowState::Closed);
}

#[test]
fn writing_after_the_peer_closed_is_peer_closed() {
    let mut conn = Conn::open();
    conn.send(SERVER, 20, ACK);
    conn.send(SERVER, 0, FIN | ACK);
    conn.send(CLIENT, 0, ACK);
    // We keep writing; the server's socket stopped reading: RST from the
    // ACK of our data, no ACK bit.
    conn.send(CLIENT, 100, ACK);
    let j = conn.rst(SERVER, conn.s, None, SERVER_TTL, &policy(Level::Strict));
    assert_eq!((j.verdict, j.cause), (Verdict::Exact, Cause::PeerClosed));
    assert_ne!(j.facts.evidence() & EVIDENCE_SENDER_CLOSED, 0);
}

#[test]
fn an_abort_says_when_our_data_lay_unread() {
    // Close with unread data: our data was the last to move.
    let mut conn = Conn::open();
    conn.send(SERVER, 20, ACK);
    conn.send(CLIENT, 300, ACK);
    conn.send(SERVER, 0, ACK);
    let j = conn.rst(
        SERVER,
        conn.s,
        Some(conn.c),
        SERVER_TTL,
        &policy(Level::Strict),
    );
    assert_eq!((j.verdict, j.cause), (Verdict::Exact, Cause::Abort));
    assert_ne!(
        j.facts.evidence() & EVIDENCE_DATA_UNREAD,
        0,
        "unread data shown"
    );

    // SO_LINGER 0 after the server's own answer: nothing of ours pending.
    let mut conn = Conn::open();
    conn.send(CLIENT, 300, ACK);
    conn.send(SERVER, 20, ACK);
    let j = conn.rst(
        SERVER,
        conn.s,
        Some(conn.c),
        SERVER_TTL,
        &policy(Level::Strict),
    );
    assert_eq!(j.cause, Cause::Abort);
    assert_eq!(j.facts.evidence() & EVIDENCE_DATA_UNREAD, 0);
}

#[test]
fn an_exact_rst_from_another_distance_is_a_middlebox_or_an_expired_one() {
    let strict = policy(Level::Strict);
    for (idle, ttl, expect) in [
        (5, SERVER_TTL + 2, Cause::Middlebox),
        (5, SERVER_TTL - 1, Cause::Middlebox),
        (120, SERVER_TTL + 2, Cause::IdleExpired),
        // From the peer's own distance: the peer, however long it idled.
        (120, SERVER_TTL, Cause::NoSocket),
    ] {
        let mut conn = Conn::open();
        conn.send(SERVER, 20, ACK);
        conn.wait(idle);
        conn.send(CLIENT, 10, ACK);
        let j = conn.rst(SERVER, conn.s, None, ttl, &strict);
        assert_eq!((j.verdict, j.action), (Verdict::Exact, Action::Pass));
        assert_eq!(j.cause, expect, "idle {idle} s, TTL {ttl}");
    }
    // The slack widens what counts as the peer's distance.
    let mut conn = Conn::open();
    let p = Policy {
        ttl_slack: 2,
        ..strict
    };
    let j = conn.rst(SERVER, conn.s, None, SERVER_TTL + 2, &p);
    assert_eq!(j.cause, Cause::NoSocket);
}

#[test]
fn the_segment_that_wakes_an_idle_flow_keeps_its_idle_time() {
    let mut conn = Conn::open();
    conn.send(SERVER, 20, ACK);
    let before = conn.flow.seen;
    conn.wait(600);
    conn.send(CLIENT, 10, ACK);
    assert_eq!(
        conn.flow.seen, before,
        "the waking segment leaves the gap visible"
    );
    // Once the flow carries on, the gap is over.
    conn.send(SERVER, 0, ACK);
    assert_ne!(conn.flow.seen, before);
    conn.send(CLIENT, 10, ACK);
    let j = conn.rst(SERVER, conn.s, None, SERVER_TTL + 3, &policy(Level::Strict));
    assert_eq!(
        j.cause,
        Cause::Middlebox,
        "a live flow is not an expired one"
    );
}

#[test]
fn drop_injected_drops_the_right_number_from_the_wrong_distance() {
    for level in Level::ALL {
        let mut conn = Conn::open();
        conn.send(SERVER, 20, ACK);
        let p = Policy {
            drop_injected: 1,
            ..policy(level)
        };
        let j = conn.rst(SERVER, conn.s, Some(conn.c), SERVER_TTL - 7, &p);
        let action = if level == Level::Monitor {
            Action::Pass
        } else {
            Action::Drop
        };
        assert_eq!(
            (j.verdict, j.action, j.cause),
            (Verdict::TtlMismatch, action, Cause::Middlebox)
        );
        assert_eq!(
            conn.flow.state(),
            FlowState::Established,
            "{level:?}: nothing closed"
        );
        // The real RST, from the peer's distance, still passes.
        let j = conn.rst(SERVER, conn.s, Some(conn.c), SERVER_TTL, &p);
        assert_eq!(
            (j.verdict, j.action, j.cause),
            (Verdict::Exact, Action::Pass, Cause::Abort)
        );
    }
}

#[test]
fn data_after_a_rst_proves_it_injected() {
    let strict = policy(Level::Strict);
    let mut conn = Conn::open();
    conn.send(SERVER, 1000, ACK);
    // An injector copies the live numbers and sends a RST as the server.
    let j = conn.rst(SERVER, conn.s, Some(conn.c), 50, &strict);
    assert_eq!(
        (j.verdict, j.action, j.cause),
        (Verdict::Exact, Action::Pass, Cause::Middlebox)
    );
    let f = conn.flow;
    // A retransmission of what came before the RST proves nothing (it
    // may have been on its way)...
    let old = seg(conn.s - 1000, conn.c, ACK, 1000, SERVER_TTL);
    assert!(!cause::proves_injection(&f, SERVER, &old, 0));
    // ...nor new data from the RST's distance, nor the client's data...
    let from_rst = seg(conn.s, conn.c, ACK, 1000, 50);
    assert!(!cause::proves_injection(&f, SERVER, &from_rst, 0));
    let client = seg(conn.c, conn.s, ACK, 100, CLIENT_TTL);
    assert!(!cause::proves_injection(&f, CLIENT, &client, 0));
    // ...but the server's next data from its own distance does.
    let next = seg(conn.s, conn.c, ACK, 1000, SERVER_TTL);
    assert!(cause::proves_injection(&f, SERVER, &next, 0));

    // A real abort: nothing follows, nothing is proven. A RST the peer
    // sent before its own late data could not be exact: the data's
    // sequence numbers were not sent yet.
    let mut conn = Conn::open();
    conn.send(SERVER, 1000, ACK);
    let j = conn.rst(SERVER, conn.s, Some(conn.c), SERVER_TTL, &strict);
    assert_eq!(j.cause, Cause::Abort);
    let retrans = seg(conn.s - 1000, conn.c, ACK, 1000, SERVER_TTL);
    assert!(!cause::proves_injection(&conn.flow, SERVER, &retrans, 0));
}

#[test]
fn a_burst_of_rsts_from_another_distance_is_injected() {
    let strict = policy(Level::Strict);
    let mut conn = Conn::open();
    conn.send(SERVER, 3000, ACK);
    conn.send(CLIENT, 0, ACK);
    let j = conn.rst(SERVER, conn.s, Some(conn.c), 48, &strict);
    assert_eq!(j.cause, Cause::Middlebox);
    // The injector's next RSTs aim further into the window.
    let j = conn.rst(SERVER, conn.s + 300, Some(conn.c), 48, &strict);
    assert_eq!((j.verdict, j.cause), (Verdict::InWindow, Cause::Injected));
    // A blind RST from the peer's own distance stays blind.
    let j = conn.rst(SERVER, conn.s + 600, Some(conn.c), SERVER_TTL, &strict);
    assert_eq!(j.cause, Cause::Blind);
    // After the peer's own RST (its distance), a blind RST from another
    // distance is a blind guess, not an injector's burst.
    let mut conn = Conn::open();
    conn.send(SERVER, 3000, ACK);
    conn.send(CLIENT, 0, ACK);
    let j = conn.rst(SERVER, conn.s, Some(conn.c), SERVER_TTL, &strict);
    assert_eq!(j.cause, Cause::Abort);
    let j = conn.rst(SERVER, conn.s + 300, Some(conn.c), 48, &strict);
    assert_eq!((j.verdict, j.cause), (Verdict::InWindow, Cause::Blind));
    let j = conn.rst(
        SERVER,
        conn.s.wrapping_add(1 << 30),
        Some(conn.c),
        48,
        &strict,
    );
    assert_eq!((j.verdict, j.cause), (Verdict::OutOfWindow, Cause::Blind));
    // Without a RST first, another distance alone is no burst.
    let mut conn = Conn::open();
    let j = conn.rst(SERVER, conn.s + 300, Some(conn.c), 48, &strict);
    assert_eq!((j.verdict, j.cause), (Verdict::InWindow, Cause::Blind));
}

#[test]
fn verdicts_without_evidence_name_no_cause() {
    let strict = policy(Level::Strict);
    let r = seg(1, 0, RST, 0, 64);
    assert_eq!(
        judge(None, true, &r, false, &strict, T0).cause,
        Cause::Unknown
    );
    let mut conn = Conn::open();
    assert_eq!(
        judge(Some(&mut conn.flow), true, &r, true, &strict, T0).cause,
        Cause::Unknown
    );
    let mut frag = r;
    frag.first_fragment = true;
    assert_eq!(
        judge(None, true, &frag, false, &strict, T0).cause,
        Cause::Hidden
    );
    // One side only: no ground.
    let mut one = track::new_flow(&seg(100, 5000, ACK, 10, 64), CLIENT, Origin::Claim, T0);
    let j = judge(
        Some(&mut one),
        SERVER,
        &seg(5000, 0, RST, 0, 61),
        false,
        &strict,
        T0,
    );
    assert_eq!((j.verdict, j.cause), (Verdict::OneSided, Cause::Unknown));
    let t = Thresholds::of(&strict);
    let f = Facts::default();
    for v in [
        Verdict::TinyFragment,
        Verdict::FragmentOverlap,
        Verdict::HeaderUnreachable,
    ] {
        assert_eq!(cause::of_rst(v, &f, &t, T0), Cause::Hidden);
    }
    assert_eq!(
        cause::of_rst(Verdict::TimeWait, &f, &t, T0),
        Cause::TimeWait
    );
    assert_eq!(
        cause::of_rst(Verdict::OutOfWindow, &f, &t, T0),
        Cause::Blind
    );
}

#[test]
fn this_hosts_own_rsts_say_by_their_flags_what_they_answer() {
    // Without a flow (socket mode, or untracked): Linux's reply to a SYN,
    // to a segment for no socket, and an abort.
    let own = |seq, flags| cause::of_own_rst(&Facts::of_own_rst(&seg(seq, 7, flags, 0, 64)));
    assert_eq!(own(0, RST | ACK), Cause::Refused);
    assert_eq!(own(9000, RST), Cause::NoSocket);
    assert_eq!(own(9000, RST | ACK), Cause::Abort);
    // With one: this host closed, and the peer kept writing.
    let mut conn = Conn::open();
    conn.send(CLIENT, 0, FIN | ACK);
    conn.send(SERVER, 100, ACK);
    let r = seg(conn.c, 0, RST, 0, CLIENT_TTL);
    let facts = Facts::of_flow(&conn.flow, CLIENT, &r);
    assert_eq!(cause::of_own_rst(&facts), Cause::PeerClosed);
}

#[test]
fn seen_units_round_trip_and_round_up() {
    assert_eq!(seen_from_secs(0), 1, "at least one unit");
    assert_eq!(seen_to_secs(seen_from_secs(60)), 60);
    assert!(seen_to_secs(seen_from_secs(61)) >= 61);
    assert_eq!(seen(u64::MAX), u16::MAX, "wraps");
    assert_eq!(seen_from_secs(u32::MAX), u16::MAX, "saturates");
    for c in Cause::ALL {
        assert_eq!(Cause::from_raw(c as u8), c);
    }
    assert_eq!(Cause::from_raw(200), Cause::Unknown);
}

fn any_facts() -> impl Strategy<Value = Facts> {
    (any::<[bool; 6]>(), any::<[u8; 3]>(), any::<u16>()).prop_map(
        |(
            [rst_ack, answers_syn, sender_closed, data_unread, after_rst, rst_on_record],
            [rst_ttl, peer_ttl, first_rst_ttl],
            last_seen,
        )| Facts {
            rst_ack,
            rst_ttl,
            answers_syn,
            sender_closed,
            peer_ttl,
            last_seen,
            data_unread,
            after_rst,
            first_rst_ttl,
            rst_on_record,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// An exact RST from the peer's own distance is named by what the peer
    /// did, never blamed on the path.
    #[test]
    fn the_peers_own_exact_rsts_are_never_blamed_on_the_path(
        mut f in any_facts(), slack in any::<u8>(), idle in any::<u16>(), now in any::<u64>()
    ) {
        f.rst_ttl = f.peer_ttl;
        let t = Thresholds { ttl_slack: slack, idle_secs: idle };
        let c = cause::of_rst(Verdict::Exact, &f, &t, now);
        prop_assert!(matches!(c, Cause::Refused | Cause::NoSocket | Cause::PeerClosed | Cause::Abort), "{c:?}");
        prop_assert_eq!(c, cause::of_own_rst(&f));
    }

    /// Only the sequence number makes a RST blind; a sequence number a
    /// peer uses is never called blind or injected at the time.
    #[test]
    fn exact_is_never_blind(f in any_facts(), slack in any::<u8>(), idle in any::<u16>(), now in any::<u64>()) {
        let t = Thresholds { ttl_slack: slack, idle_secs: idle };
        for v in [Verdict::Exact, Verdict::TtlMismatch] {
            let c = cause::of_rst(v, &f, &t, now);
            prop_assert!(!matches!(c, Cause::Blind | Cause::Injected | Cause::Unknown), "{c:?}");
        }
        for v in [Verdict::InWindow, Verdict::OutOfWindow, Verdict::RateLimited, Verdict::BadSynAck] {
            let c = cause::of_rst(v, &f, &t, now);
            prop_assert!(matches!(c, Cause::Blind | Cause::Injected), "{c:?}");
        }
    }

    /// Without --drop-injected, the cause never changes what happens to a
    /// RST: the verdict and action are those the judgement gave before
    /// causes existed (the TTL plays no part).
    #[test]
    fn causes_change_no_action_unless_asked(
        data in 0u32..2000, ttl in any::<u8>(), strict in any::<bool>(), seq_off in 0u32..4000
    ) {
        let level = if strict { Level::Strict } else { Level::Enforce };
        let mut a = Conn::open();
        a.send(SERVER, data, ACK);
        let mut b = Conn::open();
        b.send(SERVER, data, ACK);
        let (s, c) = (a.s, a.c);
        let ja = a.rst(SERVER, s.wrapping_add(seq_off), Some(c), ttl, &policy(level));
        let jb = b.rst(SERVER, s.wrapping_add(seq_off), Some(c), SERVER_TTL, &policy(level));
        prop_assert_eq!(ja.outcome(), jb.outcome());
    }
}
