//! Layer 1: socket mode's judgement as a pure function, over arbitrary
//! sockets and RSTs: properties that hold whatever the numbers (the
//! differential network test holds it to the kernel itself).

use proptest::prelude::*;
use rstguard_common::{
    judge::socket::{classify, judge, sequence_ok, tcp_state, Kind, Sock},
    parse::{Segment, ACK, FIN, RST},
    seq::{after, before},
    Action, Level, Policy, Verdict,
};

fn policy(level: Level) -> Policy {
    Policy {
        level: level as u8,
        ..Policy::default()
    }
}

const SYNCHRONIZED: [u8; 7] = [
    tcp_state::ESTABLISHED,
    tcp_state::FIN_WAIT1,
    tcp_state::FIN_WAIT2,
    tcp_state::CLOSE_WAIT,
    tcp_state::LAST_ACK,
    tcp_state::CLOSING,
    tcp_state::SYN_RECV,
];

prop_compose! {
    fn any_sock()(
        kind in 0u8..3,
        state_i in 0usize..SYNCHRONIZED.len() + 2,
        rcv_nxt in any::<u32>(),
        behind in 0u32..5000,
        rcv_wnd in prop_oneof![Just(0u32), 1u32..(1 << 20), any::<u32>()],
        snd_una in any::<u32>(),
        sent in 0u32..3000,
        qlen in 0u32..3,
        sack_ok in any::<bool>(),
        num_sacks in 0u8..5,
        sack_offsets in prop::array::uniform4(0u32..(1 << 20)),
        fw2 in any::<bool>(),
    ) -> Sock {
        let kind = match kind { 0 => Kind::Full, 1 => Kind::TimeWait, _ => Kind::Request };
        let state = match kind {
            Kind::Full => match state_i {
                i if i < SYNCHRONIZED.len() => SYNCHRONIZED[i],
                i if i == SYNCHRONIZED.len() => tcp_state::SYN_SENT,
                _ => tcp_state::LISTEN,
            },
            Kind::TimeWait => if fw2 { tcp_state::FIN_WAIT2 } else { tcp_state::TIME_WAIT },
            Kind::Request => tcp_state::NEW_SYN_RECV,
        };
        Sock {
            kind,
            state,
            rcv_nxt,
            rcv_wup: rcv_nxt.wrapping_sub(behind),
            rcv_wnd,
            snd_una,
            snd_nxt: snd_una.wrapping_add(1 + sent),
            rcv_queue_len: qlen,
            sack_ok,
            num_sacks: num_sacks.min(4),
            sack_ends: sack_offsets.map(|o| rcv_nxt.wrapping_add(o)),
        }
    }
}

prop_compose! {
    fn any_rst(s: Sock)(
        pick in 0u8..4,
        delta in -70_000i64..70_000,
        anywhere in any::<u32>(),
        ack in any::<u32>(),
        with_ack in any::<bool>(),
        payload in prop_oneof![Just(0u32), 1u32..2000],
        fin in any::<bool>(),
    ) -> Segment {
        let seq = match pick {
            0 => s.rcv_nxt,
            1 => s.rcv_nxt.wrapping_add(delta as u32),
            2 => s.sack_ends[0],
            _ => anywhere,
        };
        Segment {
            seq,
            ack: if pick == 0 && s.state == tcp_state::SYN_SENT { s.snd_nxt } else { ack },
            flags: RST | if with_ack { ACK } else { 0 } | if fin { FIN } else { 0 },
            payload_len: payload,
            ..Segment::default()
        }
    }
}

fn sock_and_rst() -> impl Strategy<Value = (Sock, Segment)> {
    any_sock().prop_flat_map(|s| (Just(s), any_rst(s)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// Monitor drops nothing, whatever the socket and the RST.
    #[test]
    fn monitor_never_drops((s, r) in sock_and_rst()) {
        prop_assert_eq!(judge(Some(&s), &r, false, 0, &policy(Level::Monitor)).1, Action::Pass);
    }

    /// What the kernel resets on is never dropped, at any level.
    #[test]
    fn exact_and_trusted_always_pass((s, r) in sock_and_rst(), trusted in any::<bool>()) {
        for level in Level::ALL {
            let (v, a) = judge(Some(&s), &r, trusted, 0, &policy(level));
            if matches!(v, Verdict::Exact | Verdict::Trusted) {
                prop_assert_eq!(a, Action::Pass);
            }
        }
    }

    /// In a synchronized state, `exact` only ever means RCV.NXT, RCV.NXT - 1
    /// after a FIN, or the highest SACK edge held: a blind RST has no other
    /// way to reset.
    #[test]
    fn exact_is_only_what_the_kernel_resets_on((s, r) in sock_and_rst()) {
        if s.kind == Kind::Full && SYNCHRONIZED.contains(&s.state)
            && classify(Some(&s), &r) == Verdict::Exact
        {
            let after_fin = matches!(
                s.state,
                tcp_state::CLOSE_WAIT | tcp_state::LAST_ACK | tcp_state::CLOSING
            ) && r.seq == s.rcv_nxt.wrapping_sub(1);
            prop_assert!(r.seq == s.rcv_nxt || after_fin || s.max_sack() == Some(r.seq));
        }
    }

    /// `in_window` is inside what tcp_sequence accepts, `out_of_window`
    /// outside it (but for RCV.NXT - 1 after a FIN, which resets anyway).
    #[test]
    fn window_verdicts_follow_tcp_sequence((s, r) in sock_and_rst()) {
        if s.kind == Kind::Full && SYNCHRONIZED.contains(&s.state) {
            match classify(Some(&s), &r) {
                Verdict::InWindow => prop_assert!(sequence_ok(&s, &r)),
                Verdict::OutOfWindow => prop_assert!(!sequence_ok(&s, &r)),
                _ => {}
            }
        }
    }

    /// The verdict depends on sequence numbers only relative to each other:
    /// the same socket and RST moved anywhere in the 2^32 space judge the
    /// same.
    #[test]
    fn verdicts_are_the_same_across_the_wrap((s, r) in sock_and_rst(), shift in any::<u32>()) {
        let m = |v: u32| v.wrapping_add(shift);
        let s2 = Sock {
            rcv_nxt: m(s.rcv_nxt),
            rcv_wup: m(s.rcv_wup),
            snd_una: m(s.snd_una),
            snd_nxt: m(s.snd_nxt),
            sack_ends: s.sack_ends.map(m),
            ..s
        };
        let r2 = Segment { seq: m(r.seq), ack: m(r.ack), ..r };
        prop_assert_eq!(classify(Some(&s), &r), classify(Some(&s2), &r2));
    }

    /// SYN_SENT looks at the ACK alone.
    #[test]
    fn syn_sent_takes_only_the_ack_of_its_syn((s, r) in sock_and_rst()) {
        if s.kind == Kind::Full && s.state == tcp_state::SYN_SENT {
            let ok = r.has(ACK) && after(r.ack, s.snd_una) && !after(r.ack, s.snd_nxt);
            let v = classify(Some(&s), &r);
            prop_assert_eq!(v, if ok { Verdict::Exact } else { Verdict::BadSynAck });
        }
    }

    /// Out of window is dropped at enforce and strict; in window only at
    /// strict; no socket as the policy says.
    #[test]
    fn levels_do_what_they_say((s, r) in sock_and_rst()) {
        let v = classify(Some(&s), &r);
        let enforce = judge(Some(&s), &r, false, 0, &policy(Level::Enforce)).1;
        let strict = judge(Some(&s), &r, false, 0, &policy(Level::Strict)).1;
        match v {
            Verdict::OutOfWindow | Verdict::BadSynAck => {
                prop_assert_eq!(enforce, Action::Drop);
                prop_assert_eq!(strict, Action::Drop);
            }
            Verdict::InWindow => {
                prop_assert_eq!(enforce, Action::Pass);
                prop_assert_eq!(strict, Action::Drop);
            }
            _ => {}
        }
        prop_assert_eq!(classify(None, &r), Verdict::NoFlow);
    }
}

#[test]
fn a_rst_before_rcv_wup_is_out_of_window_unless_its_data_reaches_it() {
    let mut s = Sock::full(tcp_state::ESTABLISHED, 10_000, 1000);
    s.rcv_wup = 9_000;
    let r = |seq: u32, len: u32| Segment {
        seq,
        payload_len: len,
        flags: RST,
        ..Segment::default()
    };
    assert!(before(8_999, s.rcv_wup));
    assert_eq!(classify(Some(&s), &r(8_999, 0)), Verdict::OutOfWindow);
    assert_eq!(classify(Some(&s), &r(8_999, 1)), Verdict::InWindow);
}
