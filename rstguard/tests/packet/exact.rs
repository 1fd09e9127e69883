//! The exact sequence numbers: a RST at the receiver's ACK, the sender's
//! SND.NXT, a FIN's sequence or a SACK block's right edge passes at every
//! level; one past each is only in the window.

use rstguard_common::{state::HALF_FIN, Action, Level, Verdict};

use crate::harness::*;

use Action::{Drop, Pass};
use Level::Strict;

#[test]
fn exact_at_the_receivers_ack_and_at_the_senders_snd_nxt_pass_at_every_level() {
    for (name, net) in nets() {
        for level in LEVELS {
            let mut lab = Lab::with_net(level, net);
            lab.established();
            // The client sends data the server has not acknowledged yet:
            // R.ack (what the server announced) and S.snd_nxt now differ.
            let r_ack = lab.c.nxt;
            lab.send(Client.data(500));
            let s_nxt = lab.c.nxt;
            assert_eq!(
                lab.rst(r_ack),
                (Verdict::Exact, Pass),
                "{name} {level:?} R.ack"
            );
            let mut lab2 = Lab::with_net(level, net);
            lab2.established();
            lab2.send(Client.data(500));
            assert_eq!(
                lab2.rst(s_nxt),
                (Verdict::Exact, Pass),
                "{name} {level:?} S.snd_nxt"
            );
            // One past each is only in the window.
            let mut lab3 = Lab::with_net(level, net);
            lab3.established();
            lab3.send(Client.data(500));
            assert_eq!(
                lab3.rst(r_ack + 1),
                (
                    Verdict::InWindow,
                    at(level, if level == Strict { Drop } else { Pass })
                ),
                "{name} {level:?} R.ack+1"
            );
            assert_eq!(
                lab3.rst(s_nxt + 1).0,
                Verdict::InWindow,
                "{name} {level:?} S.snd_nxt+1"
            );
        }
    }
}

#[test]
fn exact_at_the_fin_sequence_after_a_fin() {
    for level in LEVELS {
        let mut lab = Lab::new(level);
        lab.established();
        lab.send(Client.fin()); // at seq nxt
        let fin_seq = lab.c.nxt - 1;
        let f = lab.flow();
        assert!(f.lo.has(HALF_FIN) || f.hi.has(HALF_FIN));
        // macOS-style: FIN, then RST at the FIN's sequence number.
        assert_eq!(lab.rst(fin_seq), (Verdict::Exact, Pass), "{level:?}");
    }
    // Without a FIN, the same number (acknowledged already) is not exact.
    let mut lab = Lab::new(Strict);
    lab.established();
    lab.send(Client.data(1));
    lab.send(Server.ack());
    assert_eq!(lab.rst(lab.c.nxt - 1), (Verdict::OutOfWindow, Drop));
}

#[test]
fn exact_at_the_sack_right_edge() {
    for level in LEVELS {
        let mut lab = Lab::new(level);
        lab.established();
        // The server SACKs a block beyond what it acknowledged.
        let edge = lab.c.nxt + 3000;
        lab.s.sack = Some((lab.c.nxt + 1000, edge));
        lab.send(Server.ack());
        assert_eq!(lab.rst(edge), (Verdict::Exact, Pass), "{level:?}");
        let mut lab = Lab::new(level);
        lab.established();
        lab.s.sack = Some((lab.c.nxt + 1000, edge));
        lab.send(Server.ack());
        assert_eq!(
            lab.rst(edge + 1),
            (Verdict::InWindow, if level == Strict { Drop } else { Pass }),
            "{level:?} one past"
        );
    }
}

#[test]
fn rst_with_payload_and_rst_without_ack_are_judged_on_seq() {
    let mut lab = Lab::new(Strict);
    lab.established();
    let frame = lab.rst_frame(lab.c.nxt, Some(lab.c.rcv), 64);
    assert_eq!(lab.h.judge(&frame), (Verdict::Exact, Pass));

    let mut lab = Lab::new(Strict);
    lab.established();
    let frame = lab.rst_frame(lab.c.nxt, None, 0);
    assert_eq!(lab.h.judge(&frame), (Verdict::Exact, Pass));
    let frame = lab.rst_frame(lab.c.nxt + 7, None, 20);
    assert_eq!(lab.h.judge(&frame), (Verdict::InWindow, Drop));
}
