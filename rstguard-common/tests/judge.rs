//! Layer 1: the judgement and the tracking, as pure functions: a unit test
//! per rule of DESIGN.md, and properties over arbitrary flows.

use proptest::prelude::*;
use rstguard_common::{
    judge::{action_for, classify, judge, take_token},
    parse::{Segment, ACK, FIN, RST, SYN},
    state::track::{self, Origin::Claim},
    state::{
        FLOW_HI_INITIATOR, HALF_ACK, HALF_FIN, HALF_SACK, HALF_SEEN, HALF_SYN, HALF_SYN_WIN,
        WSCALE_NONE, WSCALE_UNKNOWN,
    },
    Action, Flow, FlowHalf, FlowState, Level, Policy, Verdict,
};

fn new_flow(syn: &Segment, sender_is_lo: bool, now: u64) -> Flow {
    track::new_flow(syn, sender_is_lo, Claim, now)
}

/// Learns a claimed segment on a tracked flow (as seen from a router).
fn learn(f: &mut Flow, sender_is_lo: bool, seg: &Segment, now: u64) -> track::Step {
    track::learn(Some(f), sender_is_lo, seg, Claim, || true, now)
}

fn policy(level: Level) -> Policy {
    Policy {
        level: level as u8,
        ..Policy::default()
    }
}

fn rst(seq: u32) -> Segment {
    Segment {
        seq,
        flags: RST | ACK,
        wscale: WSCALE_NONE,
        ..Segment::default()
    }
}

fn seg(seq: u32, ack: u32, flags: u8, len: u32, win: u16) -> Segment {
    Segment {
        seq,
        ack,
        flags,
        payload_len: len,
        win,
        wscale: WSCALE_NONE,
        ttl: 64,
        ..Segment::default()
    }
}

fn syn(seq: u32, ws: Option<u8>) -> Segment {
    Segment {
        wscale: ws.unwrap_or(WSCALE_NONE),
        ..seg(seq, 0, SYN, 0, 1000)
    }
}

/// lo = client (sends the SYN), hi = server. Client ISN 100, server 9000,
/// both scale 2; then the client sends 10 bytes, the server acks them.
fn established() -> Flow {
    let now = 1;
    let mut f = new_flow(&syn(100, Some(2)), true, now);
    let mut synack = syn(9000, Some(2));
    synack.flags |= ACK;
    synack.ack = 101;
    learn(&mut f, false, &synack, now);
    learn(&mut f, true, &seg(101, 9001, ACK, 10, 1000), now);
    learn(&mut f, false, &seg(9001, 111, ACK, 0, 500), now);
    f
}

// ---- One unit test per rule -------------------------------------------

#[test]
fn rule_3_syn_sent_needs_the_ack_of_the_syn() {
    // hi (server side, receiver of the RST) sent the SYN.
    let f = new_flow(&syn(7000, None), false, 1);
    assert_eq!(f.state(), FlowState::SynSent);
    let mut r = rst(0);
    r.ack = 7001;
    assert_eq!(classify(&f, true, &r), Verdict::Exact);
    r.ack = 7002;
    assert_eq!(classify(&f, true, &r), Verdict::BadSynAck);
    r.ack = 7001;
    r.flags = RST;
    assert_eq!(classify(&f, true, &r), Verdict::BadSynAck, "no ACK bit");
}

#[test]
fn rule_4_time_wait() {
    let mut f = established();
    learn(&mut f, true, &seg(111, 9001, ACK | FIN, 0, 1000), 2);
    learn(&mut f, false, &seg(9001, 112, ACK | FIN, 0, 500), 2);
    assert_eq!(f.state(), FlowState::FinSeen);
    learn(&mut f, true, &seg(112, 9002, ACK, 0, 1000), 2);
    assert_eq!(f.state(), FlowState::TimeWait);
    assert_eq!(classify(&f, true, &rst(112)), Verdict::TimeWait);
    let mut p = policy(Level::Strict);
    assert_eq!(action_for(Verdict::TimeWait, &p), Action::Pass);
    p.time_wait = Action::Drop as u8;
    assert_eq!(action_for(Verdict::TimeWait, &p), Action::Drop);
}

#[test]
fn rule_5_every_exact_number() {
    let f = established();
    // RST from the client (lo) to the server (hi).
    assert_eq!(f.hi.ack, 111);
    assert_eq!(classify(&f, true, &rst(111)), Verdict::Exact, "R.ack");
    let mut g = f;
    learn(&mut g, true, &seg(111, 9001, ACK, 50, 1000), 2);
    assert_eq!(g.lo.snd_nxt, 161);
    assert_eq!(classify(&g, true, &rst(161)), Verdict::Exact, "S.snd_nxt");
    assert_eq!(
        classify(&g, true, &rst(111)),
        Verdict::Exact,
        "R.ack, still"
    );
    assert_eq!(classify(&g, true, &rst(130)), Verdict::InWindow, "between");
    let mut h = f;
    learn(&mut h, true, &seg(111, 9001, ACK | FIN, 0, 1000), 2);
    assert!(h.lo.has(HALF_FIN));
    assert!(h.lo.fin_confirmed());
    assert_eq!(h.lo.snd_nxt, 112);
    // After the server acks the FIN, R.ack is 112: the FIN's own number is
    // still exact (RCV.NXT - 1 after a FIN).
    learn(&mut h, false, &seg(9001, 112, ACK, 0, 500), 2);
    assert_eq!(classify(&h, true, &rst(111)), Verdict::Exact, "fin_seq");
    let mut s = f;
    // The client sends a block past a gap; the server SACKs it.
    learn(&mut s, true, &seg(500, 9001, ACK, 500, 1000), 2);
    let mut sack = seg(9001, 111, ACK, 0, 500);
    sack.has_sack = true;
    sack.sack_right = 1000;
    learn(&mut s, false, &sack, 2);
    assert_eq!(classify(&s, true, &rst(1000)), Verdict::Exact, "sack_right");
    assert_eq!(classify(&s, true, &rst(1001)), Verdict::InWindow);
}

#[test]
fn rule_6_and_7_window_edges() {
    let f = established();
    // The server's last window: 500 << 2 = 2000 from R.ack 111.
    assert_eq!(f.window(false), 2000);
    assert_eq!(classify(&f, true, &rst(112)), Verdict::InWindow);
    assert_eq!(classify(&f, true, &rst(111 + 1999)), Verdict::InWindow);
    assert_eq!(classify(&f, true, &rst(111 + 2000)), Verdict::OutOfWindow);
    assert_eq!(classify(&f, true, &rst(110)), Verdict::OutOfWindow);
}

#[test]
fn the_window_in_a_syn_is_never_scaled_and_scaling_needs_both_syns() {
    let mut f = new_flow(&syn(100, Some(5)), true, 1);
    assert_eq!(f.window(true), 1000, "SYN window unscaled");
    let mut synack = syn(9000, None);
    synack.flags |= ACK;
    synack.ack = 101;
    learn(&mut f, false, &synack, 1);
    learn(&mut f, true, &seg(101, 9001, ACK, 0, 1000), 1);
    assert_eq!(f.window(true), 1000, "only one SYN had the option");
    assert_eq!(track::window_shift(5, WSCALE_NONE), 0);
    assert_eq!(track::window_shift(5, 3), 5);
    assert_eq!(track::window_shift(WSCALE_UNKNOWN, WSCALE_UNKNOWN), 14);
    // The other SYN unseen: the sender's own scale, which is what is in
    // force if the other agreed, and more than nothing if it did not.
    assert_eq!(track::window_shift(5, WSCALE_UNKNOWN), 5);
}

#[test]
fn levels_and_actions() {
    use Verdict::*;
    let table = [
        // verdict, monitor, enforce, strict
        (Exact, Action::Pass, Action::Pass, Action::Pass),
        (Trusted, Action::Pass, Action::Pass, Action::Pass),
        (InWindow, Action::Pass, Action::Pass, Action::Drop),
        (OutOfWindow, Action::Pass, Action::Drop, Action::Drop),
        (BadSynAck, Action::Pass, Action::Drop, Action::Drop),
        (RateLimited, Action::Pass, Action::Drop, Action::Drop),
        (NoFlow, Action::Pass, Action::Pass, Action::Pass),
        (OneSided, Action::Pass, Action::Pass, Action::Pass),
        (TinyFragment, Action::Pass, Action::Drop, Action::Drop),
        (FragmentOverlap, Action::Pass, Action::Drop, Action::Drop),
        (FragmentedRst, Action::Pass, Action::Drop, Action::Drop),
        (HeaderUnreachable, Action::Pass, Action::Pass, Action::Drop),
        (TimeWait, Action::Pass, Action::Pass, Action::Pass),
        (TtlMismatch, Action::Pass, Action::Drop, Action::Drop),
    ];
    assert_eq!(table.len(), Verdict::COUNT, "every verdict has a row");
    for (v, m, e, s) in table {
        assert_eq!(action_for(v, &policy(Level::Monitor)), m, "{v:?} monitor");
        assert_eq!(action_for(v, &policy(Level::Enforce)), e, "{v:?} enforce");
        assert_eq!(action_for(v, &policy(Level::Strict)), s, "{v:?} strict");
    }
    // `unparsed` decides for unreachable headers at enforce only.
    let mut p = policy(Level::Enforce);
    p.unparsed = Action::Drop as u8;
    assert_eq!(action_for(HeaderUnreachable, &p), Action::Drop);
    p.level = Level::Monitor as u8;
    assert_eq!(action_for(HeaderUnreachable, &p), Action::Pass);
}

#[test]
fn a_rst_in_a_first_fragment_is_its_own_verdict_even_when_exact() {
    let mut f = established();
    let mut r = rst(111);
    r.first_fragment = true;
    let p = policy(Level::Enforce);
    assert_eq!(
        judge(Some(&mut f), true, &r, false, &p, 10).outcome(),
        (Verdict::FragmentedRst, Action::Drop)
    );
    assert_eq!(f.state(), FlowState::Established, "it closed nothing");
    assert_eq!(
        judge(Some(&mut f), true, &r, true, &p, 10).outcome(),
        (Verdict::Trusted, Action::Pass),
        "trusted sources pass whatever they send"
    );
}

#[test]
fn budget_is_a_token_bucket() {
    let (interval, burst) = (100, 3);
    let mut tat = 0;
    assert!(take_token(&mut tat, 1000, interval, burst));
    assert!(take_token(&mut tat, 1000, interval, burst));
    assert!(take_token(&mut tat, 1000, interval, burst));
    assert!(!take_token(&mut tat, 1000, interval, burst), "burst spent");
    assert!(take_token(&mut tat, 1100, interval, burst), "one came back");
    assert!(!take_token(&mut tat, 1100, interval, burst));
    let mut none = 0;
    assert!(!take_token(&mut none, 5, 1, 0), "budget 0");
}

#[test]
fn judge_closes_on_a_passing_exact_rst_only() {
    let mut f = established();
    let p = policy(Level::Enforce);
    assert_eq!(
        judge(Some(&mut f), true, &rst(112), false, &p, 10).outcome(),
        (Verdict::InWindow, Action::Pass)
    );
    assert_eq!(f.state(), FlowState::Established);
    assert_eq!(
        judge(Some(&mut f), true, &rst(111), false, &p, 10).outcome(),
        (Verdict::Exact, Action::Pass)
    );
    assert_eq!(f.state(), FlowState::Closed);
    assert_eq!(
        judge(None, true, &rst(1), false, &p, 10).outcome(),
        (Verdict::NoFlow, Action::Pass)
    );
    assert_eq!(
        judge(None, true, &rst(1), true, &p, 10).outcome(),
        (Verdict::Trusted, Action::Pass)
    );
}

// ---- Properties -------------------------------------------------------

fn any_half() -> impl Strategy<Value = FlowHalf> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        0u8..128,
    )
        .prop_map(
            |(snd_nxt, ack, win, max_end, sack_right, ttl, flags)| FlowHalf {
                snd_nxt,
                ack,
                win,
                max_end,
                sack_right,
                ttl,
                flags: flags
                    & (HALF_SEEN | HALF_ACK | HALF_FIN | HALF_SACK | HALF_SYN | HALF_SYN_WIN),
            },
        )
}

fn any_wscale() -> impl Strategy<Value = u8> {
    prop_oneof![0u8..=14, Just(WSCALE_NONE)]
}

fn any_flow() -> impl Strategy<Value = Flow> {
    (
        any_half(),
        any_half(),
        1u8..=6,
        any::<bool>(),
        any::<u32>(),
        any_wscale(),
        any_wscale(),
    )
        .prop_map(|(lo, hi, state, hi_init, timer, lo_ws, hi_ws)| {
            let mut f = Flow {
                lo,
                hi,
                timer,
                flags: if hi_init { FLOW_HI_INITIATOR } else { 0 },
                wscales: 0,
                seen: 0,
            };
            f.put_state(FlowState::from_raw(state));
            f.set_wscale(true, lo_ws);
            f.set_wscale(false, hi_ws);
            f
        })
}

fn any_policy() -> impl Strategy<Value = Policy> {
    (0u8..3, 0u8..2, 0u8..2, 0u32..20).prop_map(|(level, no_flow, time_wait, budget)| {
        let mut p = Policy {
            level,
            no_flow,
            time_wait,
            ..Policy::default()
        };
        p.set_inexact_per_sec(budget);
        p
    })
}

/// Adds `k` to every sequence-space number of a flow and a RST.
fn shift(f: &Flow, r: &Segment, k: u32) -> (Flow, Segment) {
    let mut f = *f;
    for h in [&mut f.lo, &mut f.hi] {
        h.snd_nxt = h.snd_nxt.wrapping_add(k);
        h.ack = h.ack.wrapping_add(k);
        h.max_end = h.max_end.wrapping_add(k);
        h.sack_right = h.sack_right.wrapping_add(k);
    }
    let mut r = *r;
    r.seq = r.seq.wrapping_add(k);
    r.ack = r.ack.wrapping_add(k);
    (f, r)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// A RST at exactly the receiver's announced ACK is never dropped, at
    /// any level, outside the two states with rules of their own (SYN_SENT
    /// judges the ACK; TIME_WAIT follows its own action).
    #[test]
    fn rst_at_the_receivers_ack_is_never_dropped(
        mut f in any_flow(), lo in any::<bool>(), p in any_policy(), now in any::<u64>()
    ) {
        // Shape the arbitrary flow into the property's domain.
        if f.state() == FlowState::TimeWait {
            f.put_state(FlowState::Established);
        }
        if f.state() == FlowState::SynSent && f.is_initiator(!lo) {
            f.flags ^= FLOW_HI_INITIATOR;
        }
        let (s, r) = f.halves_mut(lo);
        s.flags |= HALF_SEEN;
        r.flags |= HALF_ACK | HALF_SEEN;
        let seq = r.ack;
        let (v, a) = judge(Some(&mut f), lo, &rst(seq), false, &p, now).outcome();
        prop_assert_eq!(v, Verdict::Exact);
        prop_assert_eq!(a, Action::Pass);
    }

    #[test]
    fn monitor_never_drops(
        mut f in any_flow(), lo in any::<bool>(), seq in any::<u32>(), ack in any::<u32>(),
        tracked in any::<bool>(), trusted in any::<bool>(), mut p in any_policy(), now in any::<u64>()
    ) {
        p.level = Level::Monitor as u8;
        let mut r = rst(seq);
        r.ack = ack;
        let flow = if tracked { Some(&mut f) } else { None };
        let (_, a) = judge(flow, lo, &r, trusted, &p, now).outcome();
        prop_assert_eq!(a, Action::Pass);
    }

    #[test]
    fn out_of_window_never_passes_under_enforce_or_strict(
        mut f in any_flow(), lo in any::<bool>(), seq in any::<u32>(), mut p in any_policy(),
        strict in any::<bool>(), now in any::<u64>()
    ) {
        p.level = if strict { Level::Strict } else { Level::Enforce } as u8;
        let (v, a) = judge(Some(&mut f), lo, &rst(seq), false, &p, now).outcome();
        if v == Verdict::OutOfWindow || v == Verdict::BadSynAck || v == Verdict::RateLimited {
            prop_assert_eq!(a, Action::Drop);
        }
        if strict && v == Verdict::InWindow {
            prop_assert_eq!(a, Action::Drop);
        }
    }

    #[test]
    fn verdicts_are_the_same_across_the_wrap(
        f in any_flow(), lo in any::<bool>(), seq in any::<u32>(), ack in any::<u32>(),
        k in any::<u32>()
    ) {
        let mut r = rst(seq);
        r.ack = ack;
        let (g, s) = shift(&f, &r, k);
        prop_assert_eq!(classify(&f, lo, &r), classify(&g, lo, &s));
    }

    /// Tracking learns the same state wherever in sequence space the
    /// conversation happens.
    #[test]
    fn tracking_is_the_same_across_the_wrap(
        c_isn in any::<u32>(), s_isn in any::<u32>(), k in any::<u32>(),
        lens in proptest::collection::vec(0u32..3000, 1..8)
    ) {
        let run = |c: u32, s: u32| {
            let mut f = new_flow(&syn(c, Some(7)), true, 1);
            let mut sa = syn(s, Some(7));
            sa.flags |= ACK;
            sa.ack = c.wrapping_add(1);
            learn(&mut f, false, &sa, 1);
            let (mut cn, mut sn) = (c.wrapping_add(1), s.wrapping_add(1));
            for (i, len) in lens.iter().enumerate() {
                if i % 2 == 0 {
                    learn(&mut f, true, &seg(cn, sn, ACK, *len, 100), 1);
                    cn = cn.wrapping_add(*len);
                } else {
                    learn(&mut f, false, &seg(sn, cn, ACK, *len, 100), 1);
                    sn = sn.wrapping_add(*len);
                }
            }
            f
        };
        let a = run(c_isn, s_isn);
        let b = run(c_isn.wrapping_add(k), s_isn.wrapping_add(k));
        let (b_shifted_back, _) = shift(&b, &rst(0), k.wrapping_neg());
        prop_assert_eq!(a.lo.snd_nxt, b_shifted_back.lo.snd_nxt);
        prop_assert_eq!(a.hi.snd_nxt, b_shifted_back.hi.snd_nxt);
        prop_assert_eq!(a.lo.ack, b_shifted_back.lo.ack);
        prop_assert_eq!(a.hi.ack, b_shifted_back.hi.ack);
        prop_assert_eq!(a.state(), b.state());
    }

    /// Whatever bytes the options hold, parsing stays inside the buffer and
    /// yields a clamped scale.
    #[test]
    fn option_parsing_never_fails_badly(bytes in proptest::collection::vec(any::<u8>(), 0..64), len in 0usize..80) {
        let mut buf = [0u8; rstguard_common::parse::OPTION_BUF];
        buf[..bytes.len()].copy_from_slice(&bytes);
        let mut s = Segment { wscale: WSCALE_NONE, ..Segment::default() };
        rstguard_common::parse::parse_options(&buf, len, &mut s);
        prop_assert!(s.wscale <= 14 || s.wscale == WSCALE_NONE);
    }
}
