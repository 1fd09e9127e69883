//! Evasion: a RST that rstguard cannot parse must not slip past it. Tiny
//! and overlapping fragments (RFC 1858, RFC 3128), RSTs in first
//! fragments, IPv6 first fragments without the TCP header (RFC 7112),
//! headers past the parser's bounds, and devices without a link-layer
//! header; legitimate fragmented data still passes.

use etherparse::PacketBuilder;
use rstguard_common::{Action, Counter, Level, Verdict};

use crate::harness::*;

use Action::{Drop, Pass};
use Level::{Enforce, Monitor, Strict};

const ETH: usize = 14;

/// Runs `frame` through XDP and returns the verdict counted for it (at
/// most one may move) and the program's return value.
fn verdict_of(h: &mut Harness, frame: &[u8]) -> (Option<(Verdict, Action)>, u32) {
    let before = h.counters();
    let ret = h.xdp(frame);
    let d = h.counters().delta(&before);
    let mut moved = Vec::new();
    for v in Verdict::ALL {
        for a in [Pass, Drop] {
            if d.rst(v, a) > 0 {
                moved.push((v, a));
            }
        }
    }
    assert!(moved.len() <= 1, "{moved:?}");
    (moved.first().copied(), ret)
}

/// Asserts `frame` gets `verdict`, dropped or passed as `action`.
fn judged(h: &mut Harness, frame: &[u8], verdict: Verdict, action: Action, what: &str) {
    let (got, ret) = verdict_of(h, frame);
    assert_eq!(got, Some((verdict, action)), "{what}");
    let expected = if action == Drop { XDP_DROP } else { XDP_PASS };
    assert_eq!(ret, expected, "{what}: XDP returned {ret}");
}

/// A whole TCP segment from 10.0.0.1:40000 (fd00::1) to 10.0.0.2:80
/// (fd00::2), as an Ethernet frame.
fn segment(v6: bool, seg: &Seg) -> Vec<u8> {
    let net = Net {
        v6,
        ..Net::default()
    };
    let (a, b) = if v6 {
        (ip("fd00::1"), ip("fd00::2"))
    } else {
        (ip("10.0.0.1"), ip("10.0.0.2"))
    };
    tcp_frame(&net, (a, 40000), (b, 80), seg)
}

/// Cuts an IPv4 frame's TCP segment into a fragment: `len` bytes of it
/// from byte `offset_units * 8`, with more-fragments set when `more`.
fn v4_fragment(frame: &[u8], offset_units: u16, len: usize, more: bool) -> Vec<u8> {
    let ip = &frame[ETH..ETH + 20];
    let l4 = &frame[ETH + 20..];
    let start = usize::from(offset_units) * 8;
    let mut out = frame[..ETH].to_vec();
    let mut hdr = ip.to_vec();
    hdr[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
    let frag = offset_units | if more { 0x2000 } else { 0 };
    hdr[6..8].copy_from_slice(&frag.to_be_bytes());
    out.extend_from_slice(&hdr);
    out.extend_from_slice(&l4[start..start + len]);
    // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header
    // plus this; real frames are padded to 60 bytes anyway.
    out.resize(out.len().max(60), 0);
    out
}

/// Cuts an IPv6 frame's TCP segment into a first fragment (a fragment
/// header, offset 0, more fragments) holding `len` bytes of it.
fn v6_first_fragment(frame: &[u8], len: usize) -> Vec<u8> {
    let ip = &frame[ETH..ETH + 40];
    let l4 = &frame[ETH + 40..];
    let mut out = frame[..ETH].to_vec();
    let mut hdr = ip.to_vec();
    hdr[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    hdr[6] = 44; // fragment header
    out.extend_from_slice(&hdr);
    // next header TCP, reserved, offset 0 with M set, identification.
    out.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0x12, 0x34]);
    out.extend_from_slice(&l4[..len]);
    out
}

fn rst(seq: u32) -> Seg {
    Seg {
        seq,
        ack: Some(1),
        rst: true,
        ..Seg::default()
    }
}

#[test]
fn tiny_first_fragments_are_judged_and_dropped_at_enforce() {
    for level in LEVELS {
        let mut h = Harness::new(level);
        // Ptacek and Newsham's split: 8 bytes (ports, sequence number),
        // then 8 (ACK, offset, flags, window), then 4.
        let whole = segment(false, &rst(5000));
        let first = v4_fragment(&whole, 0, 8, true);
        judged(
            &mut h,
            &first,
            Verdict::TinyFragment,
            at(level, Drop),
            &format!("{level:?} 8 bytes"),
        );
        // 16 bytes: the flags are there, the header is not whole.
        let first = v4_fragment(&whole, 0, 16, true);
        judged(
            &mut h,
            &first,
            Verdict::TinyFragment,
            at(level, Drop),
            &format!("{level:?} 16 bytes"),
        );
        // A header with options, cut inside them.
        let mut opts = rst(5000);
        opts.opts = vec![etherparse::TcpOptionElement::Timestamp(1, 2)];
        let whole = segment(false, &opts);
        let first = v4_fragment(&whole, 0, 24, true);
        judged(
            &mut h,
            &first,
            Verdict::TinyFragment,
            at(level, Drop),
            &format!("{level:?} cut in the options"),
        );
        // The later fragments pass: they cannot be tied to a flow.
        let rest = v4_fragment(&segment(false, &rst(5000)), 1, 8, true);
        assert_eq!(
            verdict_of(&mut h, &rest).0,
            Some((Verdict::FragmentOverlap, at(level, Drop)))
        );
        let rest = v4_fragment(&segment(false, &rst(5000)), 2, 4, false);
        let before = h.counters();
        assert_eq!(
            verdict_of(&mut h, &rest),
            (None, XDP_PASS),
            "{level:?} the last"
        );
        assert_eq!(
            h.counters().delta(&before).get(Counter::NonFirstFragment),
            1
        );
        // IPv6: a first fragment without the whole TCP header (RFC 7112).
        let whole = segment(true, &rst(5000));
        let first = v6_first_fragment(&whole, 8);
        judged(
            &mut h,
            &first,
            Verdict::TinyFragment,
            at(level, Drop),
            &format!("{level:?} ipv6"),
        );
    }
}

#[test]
fn an_ipv4_fragment_at_offset_8_is_an_overlap_and_dropped_at_enforce() {
    for level in LEVELS {
        let mut h = Harness::new(level);
        let whole = segment(false, &rst(5000));
        let overlap = v4_fragment(&whole, 1, 12, false);
        judged(
            &mut h,
            &overlap,
            Verdict::FragmentOverlap,
            at(level, Drop),
            &format!("{level:?}"),
        );
    }
}

#[test]
fn a_rst_in_a_first_fragment_is_dropped_at_enforce_even_when_exact() {
    for v6 in [false, true] {
        for level in LEVELS {
            let mut lab = Lab::with_net(
                level,
                Net {
                    v6,
                    ..Net::default()
                },
            );
            lab.established();
            // Exact, but in a first fragment (header whole, then 8 bytes
            // of the RST's data in a later fragment).
            let whole = lab.rst_frame(lab.c.nxt, Some(lab.c.rcv), 16);
            let first = if v6 {
                v6_first_fragment(&whole, 24)
            } else {
                v4_fragment(&whole, 0, 24, true)
            };
            judged(
                &mut lab.h,
                &first,
                Verdict::FragmentedRst,
                at(level, Drop),
                &format!("v6={v6} {level:?}"),
            );
            // The flow was not closed by it; the same RST unfragmented is
            // exact.
            assert_eq!(
                lab.rst(lab.c.nxt),
                (Verdict::Exact, Pass),
                "v6={v6} {level:?}"
            );
        }
    }
}

#[test]
fn fragmented_data_with_its_header_whole_passes_and_teaches_its_ack() {
    for v6 in [false, true] {
        for level in LEVELS {
            let mut lab = Lab::with_net(
                level,
                Net {
                    v6,
                    ..Net::default()
                },
            );
            lab.established();
            let before = lab.flow();
            // The client's next data, 3000 bytes, fragmented on the way:
            // the first fragment carries the header whole and 1196 bytes.
            let seg = Seg {
                seq: lab.c.nxt,
                ack: Some(lab.c.rcv),
                win: lab.c.win,
                payload: 3000,
                ..Seg::default()
            };
            let whole = tcp_frame(
                &lab.net,
                (lab.c.addr, lab.c.port),
                (lab.s.addr, lab.s.port),
                &seg,
            );
            let first = if v6 {
                v6_first_fragment(&whole, 20 + 1196)
            } else {
                v4_fragment(&whole, 0, 20 + 1196, true)
            };
            let c0 = lab.h.counters();
            assert_eq!(
                verdict_of(&mut lab.h, &first),
                (None, XDP_PASS),
                "v6={v6} {level:?}"
            );
            let d = lab.h.counters().delta(&c0);
            assert_eq!(d.get(Counter::XdpTcp), 1, "v6={v6} {level:?}");
            // Where the segment ends is unknown: nothing learned of it but
            // its (unchanged) ACK.
            assert_eq!(lab.flow(), before, "v6={v6} {level:?}");
            if !v6 {
                let rest = v4_fragment(&whole, 152, 1804, false);
                assert_eq!(verdict_of(&mut lab.h, &rest), (None, XDP_PASS));
            }
        }
    }
}

#[test]
fn headers_past_the_parsers_bounds_are_dropped_at_strict_and_at_enforce_on_request() {
    let lab = Lab::with_net(
        Strict,
        Net {
            v6: true,
            ..Net::default()
        },
    );
    let deep = |n: usize| {
        let mut frame = lab.rst_frame(1, Some(1), 0);
        add_ipv6_dest_opts(&mut frame, n);
        frame
    };
    let tags = |n: usize| -> Vec<u8> {
        let mut frame = Lab::new(Strict).rst_frame(1, Some(1), 0);
        for k in 0..n {
            // Each tag: TPID 802.1Q, VLAN id; the EtherType follows.
            frame.splice(12..12, [0x81, 0x00, 0x00, (k + 1) as u8]);
        }
        frame
    };
    for (what, parsed, beyond, counter) in [
        (
            "ipv6 extension headers",
            deep(8),
            deep(9),
            Counter::Ipv6ExtTooLong,
        ),
        ("vlan tags", tags(4), tags(5), Counter::BadVlan),
    ] {
        for (level, unparsed, expected) in [
            (Monitor, Drop, Pass),
            (Enforce, Pass, Pass),
            (Enforce, Drop, Drop),
            (Strict, Pass, Drop),
        ] {
            let mut h = Harness::new(level);
            h.set_policy(|p| p.unparsed = unparsed as u8);
            // Within the bound: parsed and judged as a RST.
            assert_eq!(h.judge(&parsed).0, Verdict::NoFlow, "{what} {level:?}");
            let c0 = h.counters();
            judged(
                &mut h,
                &beyond,
                Verdict::HeaderUnreachable,
                expected,
                &format!("{what} {level:?} unparsed={unparsed:?}"),
            );
            assert_eq!(
                h.counters().delta(&c0).get(counter),
                1,
                "{what}: still counted by kind"
            );
        }
    }
}

/// A packet as a device without a link-layer header carries it: the IP
/// header first.
fn raw_ip(v6: bool, src: u16, seg: &Seg) -> Vec<u8> {
    let b = if v6 {
        PacketBuilder::ipv6(ip_octets16("fd00::1"), ip_octets16("fd00::2"), 64)
    } else {
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
    };
    let mut tcp = b.tcp(src, 80, seg.seq, seg.win);
    if let Some(a) = seg.ack {
        tcp = tcp.ack(a);
    }
    if seg.syn {
        tcp = tcp.syn();
    }
    if seg.rst {
        tcp = tcp.rst();
    }
    let mut out = Vec::new();
    tcp.write(&mut out, &vec![0u8; seg.payload])
        .expect("a packet");
    out
}

fn ip_octets16(s: &str) -> [u8; 16] {
    match ip(s) {
        std::net::IpAddr::V6(a) => a.octets(),
        std::net::IpAddr::V4(_) => unreachable!(),
    }
}

#[test]
fn on_a_device_without_link_layer_header_frames_start_at_ip() {
    for v6 in [false, true] {
        let mut h = Harness::new(Strict);
        // The loopback interface the test runs on, marked as a raw-IP
        // device (as attach does for tun and WireGuard).
        h.loaded.maps.claim_slot(1, true).expect("a slot");
        // The handshake and some data from the client.
        let syn = Seg {
            seq: 1000,
            syn: true,
            win: 1000,
            ..Seg::default()
        };
        assert_eq!(h.xdp(&raw_ip(v6, 40000, &syn)), XDP_PASS);
        let synack = raw_ip_reply(
            v6,
            &Seg {
                seq: 9000,
                ack: Some(1001),
                syn: true,
                win: 1000,
                ..Seg::default()
            },
        );
        assert_eq!(h.xdp(&synack), XDP_PASS);
        let data = Seg {
            seq: 1001,
            ack: Some(9001),
            win: 1000,
            payload: 100,
            ..Seg::default()
        };
        assert_eq!(h.xdp(&raw_ip(v6, 40000, &data)), XDP_PASS);
        let c = h.counters();
        assert_eq!(c.get(Counter::XdpTcp), 3, "v6={v6}: parsed as TCP");
        assert_eq!(c.get(Counter::FlowsCreated), 1, "v6={v6}");
        // Exact passes; blind guesses are dropped.
        let rst_at = |seq| {
            raw_ip(
                v6,
                40000,
                &Seg {
                    seq,
                    rst: true,
                    ..Seg::default()
                },
            )
        };
        assert_eq!(h.judge(&rst_at(1101)), (Verdict::Exact, Pass), "v6={v6}");
        let mut h2 = Harness::new(Strict);
        h2.loaded.maps.claim_slot(1, true).expect("a slot");
        h2.xdp(&raw_ip(v6, 40000, &syn));
        h2.xdp(&synack);
        h2.xdp(&raw_ip(v6, 40000, &data));
        assert_eq!(
            h2.judge(&rst_at(3_000_000_000)),
            (Verdict::OutOfWindow, Drop),
            "v6={v6}"
        );
        assert_eq!(
            h2.judge(&rst_at(1200)),
            (Verdict::InWindow, Drop),
            "v6={v6}"
        );
    }
}

fn raw_ip_reply(v6: bool, seg: &Seg) -> Vec<u8> {
    let b = if v6 {
        PacketBuilder::ipv6(ip_octets16("fd00::2"), ip_octets16("fd00::1"), 64)
    } else {
        PacketBuilder::ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
    };
    let mut tcp = b.tcp(80, 40000, seg.seq, seg.win).ack(seg.ack.unwrap_or(0));
    if seg.syn {
        tcp = tcp.syn();
    }
    let mut out = Vec::new();
    tcp.write(&mut out, &[]).expect("a packet");
    out
}
