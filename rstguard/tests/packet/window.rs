//! The receive window and the levels: in-window and out-of-window RSTs at
//! each level, window scaling, sequence wrap-around, the per-flow budget
//! for inexact RSTs.

use rstguard_common::{Action, Level, Verdict};

use crate::harness::*;

use Action::{Drop, Pass};
use Level::{Enforce, Monitor, Strict};

/// RSTs at the edges of the server's window (256 << 7 = 32768 bytes past
/// the client's SND.NXT): (what, offset from SND.NXT, verdict, action at
/// monitor, enforce and strict, as in [`LEVELS`]).
const WINDOW_EDGES: [(&str, i32, Verdict, [Action; 3]); 3] = [
    (
        "last in-window byte",
        32767,
        Verdict::InWindow,
        [Pass, Pass, Drop],
    ),
    (
        "first byte past the window",
        32768,
        Verdict::OutOfWindow,
        [Pass, Drop, Drop],
    ),
    (
        "just before the window",
        -1,
        Verdict::OutOfWindow,
        [Pass, Drop, Drop],
    ),
];

#[test]
fn every_level_on_in_window_and_out_of_window() {
    for (name, net) in nets() {
        for (i, level) in LEVELS.into_iter().enumerate() {
            let mut lab = Lab::with_net(level, net);
            lab.established();
            let base = lab.c.nxt;
            for (what, offset, verdict, actions) in WINDOW_EDGES {
                assert_eq!(
                    lab.rst(base.wrapping_add_signed(offset)),
                    (verdict, actions[i]),
                    "{name} {level:?} {what}"
                );
            }
        }
    }
}

#[test]
fn window_scale_applies_only_when_both_syns_carry_it() {
    // Only the client offers scaling: the server's window is unscaled.
    let mut lab = Lab::new(Enforce);
    lab.s.ws = None;
    lab.established();
    assert_eq!(lab.rst(lab.c.nxt + 255).0, Verdict::InWindow);
    assert_eq!(lab.rst(lab.c.nxt + 256), (Verdict::OutOfWindow, Drop));
}

#[test]
fn unknown_window_scale_takes_the_liberal_bound() {
    // Picked up mid-stream: the server's window is taken as raw << 14.
    let mut lab = Lab::new(Enforce);
    lab.send(Client.data(10));
    lab.send(Server.data(10));
    let window = 256u32 << 14;
    assert_eq!(lab.rst(lab.c.nxt + window - 1).0, Verdict::InWindow);
    assert_eq!(lab.rst(lab.c.nxt + window), (Verdict::OutOfWindow, Drop));
}

#[test]
fn sequence_space_wraps() {
    for level in [Enforce, Strict] {
        let mut lab = Lab::new(level);
        lab.c.nxt = u32::MAX - 50;
        lab.established(); // the client's data crosses 2^32
        assert!(lab.c.nxt < 1000, "the model wrapped");
        assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass));
        let mut lab = Lab::new(level);
        lab.c.nxt = u32::MAX - 50;
        lab.established();
        assert_eq!(lab.rst(lab.c.nxt.wrapping_sub(1)).0, Verdict::OutOfWindow);
        assert_eq!(lab.rst(lab.c.nxt + 100).0, Verdict::InWindow);
    }
}

#[test]
fn inexact_budget_is_per_flow_and_then_rate_limits() {
    for level in [Monitor, Enforce] {
        let mut lab = Lab::new(level);
        lab.h.set_policy(|p| p.set_inexact_per_sec(3));
        lab.established();
        for i in 0..3 {
            assert_eq!(
                lab.rst(lab.c.nxt + 10 + i),
                (Verdict::InWindow, Pass),
                "{level:?} #{i}"
            );
        }
        assert_eq!(
            lab.rst(lab.c.nxt + 20),
            (Verdict::RateLimited, at(level, Drop)),
            "{level:?} over budget"
        );
        // Another flow, through the same programs, has its own budget.
        let mut other = Lab {
            c: Side {
                port: 41000,
                nxt: 9_000,
                rcv: 0,
                ..lab.c.clone()
            },
            s: Side {
                rcv: 0,
                ..lab.s.clone()
            },
            ..lab
        };
        other.established();
        assert_eq!(
            other.rst(other.c.nxt + 10).0,
            Verdict::InWindow,
            "{level:?} other flow"
        );
    }
    // A budget of 0 lets no inexact RST through at enforce.
    let mut lab = Lab::new(Enforce);
    lab.h.set_policy(|p| p.set_inexact_per_sec(0));
    lab.established();
    assert_eq!(lab.rst(lab.c.nxt + 10), (Verdict::RateLimited, Drop));
}
