//! Layer 2: packet tests. The real eBPF object, loaded into the kernel and
//! run on crafted frames with BPF_PROG_TEST_RUN; each test replays a
//! conversation (handshake, data both ways through XDP and TC) and then the
//! RST, and checks the verdict, the action, the counters and the flow state.
//! Needs root.

mod causes;
mod evasion;
mod harness;
mod socket;
mod socket_causes;
mod table;
mod unforgeable;
mod verifier;

use harness::*;
use rstguard_common::{
    layout::{PROG_TC, PROG_XDP},
    state::{FLOW_PICKED_UP, HALF_FIN, WSCALE_UNKNOWN},
    Action, Counter, Endpoints, FlowState, Level, Verdict,
};

use Action::{Drop, Pass};
use Level::{Enforce, Monitor, Strict};

const LEVELS: [Level; 3] = [Monitor, Enforce, Strict];

/// What a level does with an inexact verdict: monitor passes everything.
fn at(level: Level, when_enforced: Action) -> Action {
    if level == Monitor {
        Pass
    } else {
        when_enforced
    }
}

fn nets() -> [(&'static str, Net); 2] {
    [
        ("ipv4", Net::default()),
        (
            "ipv6",
            Net {
                v6: true,
                ..Net::default()
            },
        ),
    ]
}

// ---- Flow tracking ----------------------------------------------------

#[test]
fn handshake_and_data_learn_both_halves() {
    for (name, net) in nets() {
        let mut lab = Lab::with_net(Monitor, net);
        lab.send(true, true, false, 0);
        assert_eq!(lab.flow().state(), FlowState::SynSent, "{name}");
        lab.send(false, true, false, 0);
        assert_eq!(lab.flow().state(), FlowState::SynRecv, "{name}");
        lab.send(true, false, false, 0);
        assert_eq!(lab.flow().state(), FlowState::Established, "{name}");
        lab.send(true, false, false, 100);
        lab.send(false, false, false, 1000);

        let f = lab.flow();
        let client_is_lo = Endpoints::new(
            addr16(lab.c.addr),
            lab.c.port,
            addr16(lab.s.addr),
            lab.s.port,
        )
        .1;
        let (c, s) = if client_is_lo {
            (f.lo, f.hi)
        } else {
            (f.hi, f.lo)
        };
        assert_eq!(c.snd_nxt, lab.c.nxt, "{name}: client SND.NXT");
        assert_eq!(s.snd_nxt, lab.s.nxt, "{name}: server SND.NXT");
        assert_eq!(s.ack, lab.c.nxt, "{name}: server ACK");
        assert_eq!(f.wscale(client_is_lo), 7, "{name}");
        assert_eq!(f.wscale(!client_is_lo), 7, "{name}");
        assert_eq!(
            f.window(!client_is_lo),
            256 << 7,
            "{name}: scaled server window"
        );
        assert_eq!(
            f.window(client_is_lo),
            512 << 7,
            "{name}: scaled client window"
        );
        assert_eq!(s.ttl, 64, "{name}");
        let counters = lab.h.counters();
        assert_eq!(counters.get(Counter::FlowsCreated), 1, "{name}");
        assert_eq!(
            counters.get(Counter::FlowsAssured),
            1,
            "{name}: assured once established"
        );
        assert_eq!(counters.get(Counter::XdpTcp), 3, "{name}");
        assert_eq!(counters.get(Counter::TcTcp), 2, "{name}");
    }
}

#[test]
fn fins_both_ways_reach_time_wait() {
    let mut lab = Lab::new(Monitor);
    lab.established();
    lab.send(false, false, true, 0); // server FIN
    assert_eq!(lab.flow().state(), FlowState::FinSeen);
    lab.send(true, false, true, 0); // client FIN, acks the server's
    lab.send(false, false, false, 0); // server acks the client's FIN
    assert_eq!(lab.flow().state(), FlowState::TimeWait);
}

#[test]
fn a_new_syn_starts_a_closed_flow_afresh_but_a_retransmitted_one_does_not() {
    let mut lab = Lab::new(Monitor);
    lab.established();
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass));
    let created = lab.h.counters().get(Counter::FlowsCreated);
    // The client reconnects from the same port: a bare SYN.
    lab.c.rcv = 0;
    lab.c.nxt = 777_777;
    lab.send(true, true, false, 0);
    assert_eq!(lab.flow().state(), FlowState::SynSent);
    assert_eq!(lab.h.counters().get(Counter::FlowsCreated), created + 1);
    // The same SYN again: a retransmission.
    lab.c.rcv = 0;
    lab.c.nxt = 777_777;
    lab.send(true, true, false, 0);
    assert_eq!(lab.h.counters().get(Counter::FlowsCreated), created + 1);
    assert_eq!(lab.h.counters().get(Counter::IgnoredSyn), 0);
}

#[test]
fn pickup_creates_flows_mid_stream_only_when_allowed() {
    let mut lab = Lab::new(Enforce);
    lab.send(true, false, false, 100);
    let f = lab.flow();
    assert!(f.has(FLOW_PICKED_UP));
    assert_eq!(f.state(), FlowState::Established);
    assert_eq!(
        (f.wscale(true), f.wscale(false)),
        (WSCALE_UNKNOWN, WSCALE_UNKNOWN)
    );

    let mut lab = Lab::new(Enforce);
    lab.h.set_policy(|p| p.pickup = 0);
    lab.send(true, false, false, 100);
    assert!(lab.h.flow(&lab.key()).is_none());
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::NoFlow, Pass));
}

#[test]
fn the_hosts_own_rst_closes_the_flow_without_a_verdict() {
    let mut lab = Lab::new(Strict);
    lab.established();
    let before = lab.h.counters();
    let seg = Seg {
        seq: lab.s.nxt,
        ack: Some(lab.s.rcv),
        rst: true,
        ..Seg::default()
    };
    let frame = tcp_frame(
        &lab.net,
        (lab.s.addr, lab.s.port),
        (lab.c.addr, lab.c.port),
        &seg,
    );
    assert_eq!(lab.h.tc(&frame), TC_NEXT);
    let d = lab.h.counters().delta(&before);
    assert_eq!(d.get(Counter::TcRst), 1);
    assert_eq!(d.get(Counter::XdpRst), 0);
    assert_eq!(lab.flow().state(), FlowState::Closed);
}

#[test]
fn an_exact_rst_that_passes_closes_the_flow_and_later_talk_is_noticed() {
    let mut lab = Lab::new(Strict);
    lab.established();
    assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass));
    assert_eq!(lab.flow().state(), FlowState::Closed);
    lab.send(true, false, false, 10);
    assert_eq!(lab.h.counters().get(Counter::ClosedFlowPackets), 1);
}

#[test]
fn a_dropped_or_inexact_rst_changes_no_state() {
    let mut lab = Lab::new(Enforce);
    lab.established();
    let before = lab.flow();
    assert_eq!(
        lab.rst(lab.c.nxt.wrapping_add(1_000_000)),
        (Verdict::OutOfWindow, Drop)
    );
    assert_eq!(lab.rst(lab.c.nxt + 10), (Verdict::InWindow, Pass));
    let after = lab.flow();
    assert_eq!(after.state(), FlowState::Established);
    assert_eq!((after.lo, after.hi), (before.lo, before.hi));
}

// ---- The exact sequence numbers ----------------------------------------

#[test]
fn exact_at_the_receivers_ack_and_at_the_senders_snd_nxt_pass_at_every_level() {
    for (name, net) in nets() {
        for level in LEVELS {
            let mut lab = Lab::with_net(level, net);
            lab.established();
            // The client sends data the server has not acknowledged yet:
            // R.ack (what the server announced) and S.snd_nxt now differ.
            let r_ack = lab.c.nxt;
            lab.send(true, false, false, 500);
            let s_nxt = lab.c.nxt;
            assert_eq!(
                lab.rst(r_ack),
                (Verdict::Exact, Pass),
                "{name} {level:?} R.ack"
            );
            let mut lab2 = Lab::with_net(level, net);
            lab2.established();
            lab2.send(true, false, false, 500);
            assert_eq!(
                lab2.rst(s_nxt),
                (Verdict::Exact, Pass),
                "{name} {level:?} S.snd_nxt"
            );
            // One past each is only in the window.
            let mut lab3 = Lab::with_net(level, net);
            lab3.established();
            lab3.send(true, false, false, 500);
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
        lab.send(true, false, true, 0); // client FIN at seq nxt
        let fin_seq = lab.c.nxt - 1;
        let f = lab.flow();
        assert!(f.lo.has(HALF_FIN) || f.hi.has(HALF_FIN));
        // macOS-style: FIN, then RST at the FIN's sequence number.
        assert_eq!(lab.rst(fin_seq), (Verdict::Exact, Pass), "{level:?}");
    }
    // Without a FIN, the same number (acknowledged already) is not exact.
    let mut lab = Lab::new(Strict);
    lab.established();
    lab.send(true, false, false, 1);
    lab.send(false, false, false, 0);
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
        lab.send(false, false, false, 0);
        assert_eq!(lab.rst(edge), (Verdict::Exact, Pass), "{level:?}");
        let mut lab = Lab::new(level);
        lab.established();
        lab.s.sack = Some((lab.c.nxt + 1000, edge));
        lab.send(false, false, false, 0);
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

// ---- Window and levels -------------------------------------------------

#[test]
fn every_level_on_in_window_and_out_of_window() {
    for (name, net) in nets() {
        for level in LEVELS {
            let mut lab = Lab::with_net(level, net);
            lab.established();
            let base = lab.c.nxt;
            // The server's window: 256 << 7 = 32768.
            assert_eq!(
                lab.rst(base + 32767),
                (
                    Verdict::InWindow,
                    at(level, if level == Strict { Drop } else { Pass })
                ),
                "{name} {level:?} last in-window byte"
            );
            assert_eq!(
                lab.rst(base + 32768),
                (Verdict::OutOfWindow, at(level, Drop)),
                "{name} {level:?} first byte past the window"
            );
            assert_eq!(
                lab.rst(base.wrapping_sub(1)),
                (Verdict::OutOfWindow, at(level, Drop)),
                "{name} {level:?} just before the window"
            );
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
    lab.send(true, false, false, 10);
    lab.send(false, false, false, 10);
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

// ---- Special states ----------------------------------------------------

#[test]
fn syn_sent_accepts_only_the_ack_of_the_syn() {
    for (name, net) in nets() {
        for level in LEVELS {
            // The server (local) connects out; a RST|ACK comes back.
            let mut lab = Lab::with_net(level, net);
            lab.send(false, true, false, 0); // server's SYN, through TC
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
            lab.send(false, true, false, 0);
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
        lab.send(false, false, true, 0);
        lab.send(true, false, true, 0);
        lab.send(false, false, false, 0);
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

// ---- Encapsulations ----------------------------------------------------

#[test]
fn vlan_qinq_ipv4_options_and_ipv6_extension_headers_are_followed() {
    let cases = [
        (
            "vlan",
            Net {
                encap: Encap::Vlan,
                ..Net::default()
            },
        ),
        (
            "qinq",
            Net {
                encap: Encap::QinQ,
                ..Net::default()
            },
        ),
        (
            "vlan ipv6",
            Net {
                v6: true,
                encap: Encap::Vlan,
                ..Net::default()
            },
        ),
        (
            "ipv4 options",
            Net {
                ipv4_options: true,
                ..Net::default()
            },
        ),
        (
            "ipv6 extension headers",
            Net {
                v6: true,
                ipv6_exts: true,
                ..Net::default()
            },
        ),
    ];
    for (name, net) in cases {
        let mut lab = Lab::with_net(Strict, net);
        lab.established();
        assert_eq!(lab.flow().state(), FlowState::Established, "{name}");
        assert_eq!(lab.rst(lab.c.nxt), (Verdict::Exact, Pass), "{name}");
        let mut lab = Lab::with_net(Strict, net);
        lab.established();
        assert_eq!(
            lab.rst(lab.c.nxt + 100_000),
            (Verdict::OutOfWindow, Drop),
            "{name}"
        );
        assert_eq!(lab.h.counters().get(Counter::BadVlan), 0, "{name}");
    }
}

// ---- Malformed and uninteresting frames --------------------------------

/// Runs `frame` through both hooks: it must pass and bump `counter` once
/// (and be judged as nothing).
fn passes_and_counts(h: &mut Harness, frame: &[u8], counter: Counter, what: &str) {
    let before = h.counters();
    assert_eq!(h.xdp(frame), XDP_PASS, "{what}: xdp");
    let d = h.counters().delta(&before);
    assert_eq!(d.get(counter), 1, "{what}: {counter:?} at xdp");
    assert_eq!(d.get(Counter::XdpPackets), 1, "{what}");
    assert_eq!(d.get(Counter::XdpRst), 0, "{what}: judged");
    // At TC, the kernel's test runner refuses to build an skb from some
    // truncated frames (as the stack would never build one): then there
    // is nothing for the classifier to see.
    let before = h.counters();
    match h.try_tc(frame) {
        Some(ret) => {
            assert_eq!(ret, TC_NEXT, "{what}: tc");
            let d = h.counters().delta(&before);
            assert_eq!(d.get(counter), 1, "{what}: {counter:?} at tc");
        }
        None => assert_eq!(h.counters(), before, "{what}: refused, yet counted"),
    }
}

#[test]
fn truncated_frames_at_every_header_boundary_pass_and_are_counted() {
    let lab4 = Lab::new(Strict);
    let v4 = lab4.rst_frame(1, Some(1), 0);
    let lab6 = Lab::with_net(
        Strict,
        Net {
            v6: true,
            ..Net::default()
        },
    );
    let v6 = lab6.rst_frame(1, Some(1), 0);
    let vlan = Lab::with_net(
        Strict,
        Net {
            encap: Encap::Vlan,
            ..Net::default()
        },
    )
    .rst_frame(1, Some(1), 0);
    let mut h = Harness::new(Strict);
    // (BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header,
    // so the parser's first check, TruncatedEthernet, cannot be run here.)
    let cases: [(&str, &[u8], Counter); 8] = [
        ("ipv4 header", &v4[..14 + 19], Counter::TruncatedIpv4),
        ("ipv4 empty", &v4[..14], Counter::TruncatedIpv4),
        (
            "tcp header (ipv4)",
            &v4[..14 + 20 + 19],
            Counter::TruncatedTcp,
        ),
        ("tcp empty (ipv4)", &v4[..14 + 20], Counter::TruncatedTcp),
        ("ipv6 header", &v6[..14 + 39], Counter::TruncatedIpv6),
        (
            "tcp header (ipv6)",
            &v6[..14 + 40 + 19],
            Counter::TruncatedTcp,
        ),
        ("vlan tag", &vlan[..14 + 2], Counter::BadVlan),
        ("ipv4 after vlan", &vlan[..18 + 10], Counter::TruncatedIpv4),
    ];
    for (what, frame, counter) in cases {
        passes_and_counts(&mut h, frame, counter, what);
    }
}

#[test]
fn bad_ihl_bad_doff_and_bad_lengths_pass_and_are_counted() {
    let lab = Lab::new(Strict);
    let good = lab.rst_frame(1, Some(1), 0);
    let mut h = Harness::new(Strict);

    let mut ihl4 = good.clone();
    ihl4[14] = 0x44; // IHL 4
    passes_and_counts(&mut h, &ihl4, Counter::BadIpv4Ihl, "ihl 4");

    let mut doff4 = good.clone();
    doff4[14 + 20 + 12] = 0x40; // data offset 4
    passes_and_counts(&mut h, &doff4, Counter::BadTcpDoff, "doff 4");

    let mut short_len = good.clone();
    short_len[14 + 2..14 + 4].copy_from_slice(&30u16.to_be_bytes()); // < 20 + 20
    passes_and_counts(&mut h, &short_len, Counter::BadIpLength, "total length 30");

    // A TCP option whose length runs past the header: the segment is still
    // used (counted as TCP), the options are flagged.
    let seg = Seg {
        seq: 1,
        syn: true,
        opts: vec![etherparse::TcpOptionElement::MaximumSegmentSize(1460)],
        ..Seg::default()
    };
    let mut bad_opt = tcp_frame(
        &Net::default(),
        (ip("10.0.0.1"), 1),
        (ip("10.0.0.2"), 2),
        &seg,
    );
    bad_opt[14 + 20 + 21] = 40; // MSS option claims 40 bytes
    let before = h.counters();
    assert_eq!(h.xdp(&bad_opt), XDP_PASS);
    let d = h.counters().delta(&before);
    assert_eq!(d.get(Counter::BadTcpOptions), 1);
    assert_eq!(d.get(Counter::XdpTcp), 1);
}

#[test]
fn non_first_fragments_pass_and_are_counted() {
    let mut h = Harness::new(Strict);
    h.set_policy(|p| p.no_flow = Drop as u8);
    let rst = Seg {
        seq: 1,
        rst: true,
        ..Seg::default()
    };
    passes_and_counts(
        &mut h,
        &ipv4_fragment(100, &rst),
        Counter::NonFirstFragment,
        "ipv4",
    );
    passes_and_counts(
        &mut h,
        &ipv6_fragment(100, &rst),
        Counter::NonFirstFragment,
        "ipv6",
    );
    // A first fragment carries the TCP header: it is judged (and no real
    // stack fragments a RST).
    assert_eq!(
        h.judge(&ipv4_fragment(0, &rst)),
        (Verdict::FragmentedRst, Drop)
    );
    assert_eq!(
        h.judge(&ipv6_fragment(0, &rst)),
        (Verdict::FragmentedRst, Drop)
    );
}

#[test]
fn non_tcp_passes_and_is_only_counted_as_a_packet() {
    let mut h = Harness::new(Strict);
    for net in [
        Net::default(),
        Net {
            v6: true,
            ..Net::default()
        },
    ] {
        let frame = udp_frame(&net);
        let before = h.counters();
        assert_eq!(h.xdp(&frame), XDP_PASS);
        assert_eq!(h.tc(&frame), TC_NEXT);
        let d = h.counters().delta(&before);
        assert_eq!(d.get(Counter::XdpPackets), 1);
        assert_eq!(d.get(Counter::TcPackets), 1);
        assert_eq!(d.get(Counter::XdpTcp) + d.get(Counter::TcTcp), 0);
    }
}

#[test]
fn a_full_flow_table_fails_open() {
    // Room for one flow: the LRU evicts the oldest, so inserts keep
    // succeeding and the newest flow is tracked.
    let mut h = Harness::with_flows(Strict, 1, 1);
    for port in 1..=3u16 {
        let seg = Seg {
            seq: 100,
            syn: true,
            ..Seg::default()
        };
        let f = tcp_frame(
            &Net::default(),
            (ip("10.0.0.1"), port),
            (ip("10.0.0.2"), 80),
            &seg,
        );
        assert_eq!(h.xdp(&f), XDP_PASS);
    }
    let c = h.counters();
    assert_eq!(
        c.get(Counter::FlowsCreated) + c.get(Counter::FlowCreateFailed),
        3
    );
    assert!(h
        .flow(&h.key_of((ip("10.0.0.1"), 3), (ip("10.0.0.2"), 80)))
        .is_some());
}

// ---- Verifier -----------------------------------------------------------

#[test]
fn the_programs_stay_far_inside_the_verifiers_limits() {
    let mut h = Harness::new(Strict);
    let xdp = h.loaded.xdp().expect("xdp").info().expect("program info");
    let tc = h.loaded.tc().expect("tc").info().expect("program info");
    for (name, info) in [(PROG_XDP, xdp), (PROG_TC, tc)] {
        let (reported, by_stats) = verifier::walked(name, &info);
        let size = info.size_translated().unwrap_or(0) / 8;
        eprintln!(
            "{name}: the verifier walked {} instructions (its statistics, loaded by hand: {by_stats}); \
             {size} instructions loaded",
            reported.map_or("an unreported number of".to_string(), |n| n.to_string())
        );
        // The limit is 1,000,000 instructions walked; today each program
        // takes about 50,000. Fail at a quarter of the limit, long before
        // new code could creep up to it. The size (about 4,100 instructions
        // each, with SipHash for IPv6 flow keys inlined) is far from the
        // privileged limit of a million; 8,192 catches runaway inlining.
        for verified in reported.into_iter().chain([by_stats]) {
            assert!(verified < 250_000, "{name}: {verified} instructions walked");
        }
        assert!(size < 8192, "{name}: {size} instructions");
    }
    // With socket mode on, its code is walked too (off, it is dead code
    // the verifier never walks).
    let fields = rstguard::socket::prepare().expect("socket mode is available here");
    let Some(mut on) = with_socket_mode(
        Strict,
        &rstguard::ebpf::LoadOptions {
            sock_fields: fields,
            ..rstguard::ebpf::LoadOptions::default()
        },
    ) else {
        return;
    };
    let info = on.loaded.xdp().expect("xdp").info().expect("program info");
    let size = info.size_translated().unwrap_or(0) / 8;
    match info.verified_instruction_count() {
        Some(walked) => {
            eprintln!("{PROG_XDP} (socket mode): the verifier walked {walked} instructions; {size} loaded");
            assert!(
                walked < 250_000,
                "socket mode: {walked} instructions walked"
            );
        }
        None => eprintln!("{PROG_XDP} (socket mode): this kernel reports no count; {size} loaded"),
    }
    assert!(size < 8192, "socket mode: {size} instructions");
}
