//! Frames the parser must follow or step over: VLAN, QinQ, IPv4 options
//! and IPv6 extension headers are followed; truncated, malformed,
//! fragmented and non-TCP frames pass and are counted; a full flow table
//! fails open.

use rstguard_common::{Action, Counter, FlowState, Level, Verdict};

use crate::harness::*;

use Action::{Drop, Pass};
use Level::Strict;

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
    // (what, offset in the IPv4 frame, bytes written there, counter)
    let cases: [(&str, usize, &[u8], Counter); 3] = [
        ("ihl 4", 14, &[0x44], Counter::BadIpv4Ihl),
        ("doff 4", 14 + 20 + 12, &[0x40], Counter::BadTcpDoff),
        // Shorter than the two headers (20 + 20).
        (
            "total length 30",
            14 + 2,
            &30u16.to_be_bytes(),
            Counter::BadIpLength,
        ),
    ];
    for (what, offset, bytes, counter) in cases {
        let mut bad = good.clone();
        bad[offset..offset + bytes.len()].copy_from_slice(bytes);
        passes_and_counts(&mut h, &bad, counter, what);
    }

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
