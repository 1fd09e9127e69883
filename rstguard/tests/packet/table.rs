//! The flow table a flood cannot flush: flows that proved themselves live
//! in a table new flows never enter, so a flood of SYNs or of mid-stream
//! segments from random sources (many times the capacity) leaves every
//! established flow tracked and judged.

use rstguard::maps::FlowTable;
use rstguard_common::{Action, Counter, FlowState, Level, Verdict};

use crate::harness::*;

/// Established flows, each a Lab sharing one harness: client port
/// 20000 + i, handshake and data both ways.
fn established(h: Harness, n: u16) -> (Harness, Vec<(Side, Side)>) {
    let mut lab = Lab::from_harness(h);
    let mut sides = Vec::new();
    for i in 0..n {
        lab.c.port = 20000 + i;
        lab.c.nxt = 1000 + u32::from(i) * 100_000;
        lab.c.rcv = 0;
        lab.s.nxt = 9_000_000 + u32::from(i) * 100_000;
        lab.s.rcv = 0;
        lab.established();
        sides.push((lab.c.clone(), lab.s.clone()));
    }
    (lab.h, sides)
}

/// A frame from a random IPv4 source to the server's port 80.
fn from_random_source(rng: &mut impl FnMut() -> u32, syn: bool) -> Vec<u8> {
    let a = rng().to_be_bytes();
    let src = (
        ip(&format!("10.{}.{}.{}", a[1], a[2], a[3])),
        (rng() % 60000) as u16 + 1024,
    );
    let seg = Seg {
        seq: rng(),
        ack: (!syn).then(&mut *rng),
        syn,
        win: 1000,
        payload: if syn { 0 } else { 100 },
        ..Seg::default()
    };
    tcp_frame(&Net::default(), src, (ip("10.0.0.2"), 80), &seg)
}

#[test]
fn a_flood_ten_times_the_tables_leaves_every_assured_flow_tracked_and_judged() {
    const CAPACITY: u32 = 64;
    // A small xorshift: the same flood every run.
    let mut state = 0x1234_5678u32;
    let mut rng = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for (what, syn) in [("SYNs", true), ("mid-stream segments (pickup)", false)] {
        let h = Harness::with_flows(Level::Strict, CAPACITY, CAPACITY);
        let (mut h, sides) = established(h, (CAPACITY / 2) as u16);
        let c0 = h.counters();
        assert_eq!(
            c0.get(Counter::FlowsAssured),
            u64::from(CAPACITY / 2),
            "{what}"
        );
        for _ in 0..10 * 2 * CAPACITY {
            assert_eq!(h.xdp(&from_random_source(&mut rng, syn)), XDP_PASS);
        }
        let d = h.counters().delta(&c0);
        assert_eq!(
            d.get(Counter::FlowsCreated),
            u64::from(20 * CAPACITY),
            "{what}: all created"
        );
        assert_eq!(
            d.get(Counter::FlowsAssured),
            0,
            "{what}: none proved itself"
        );
        for (c, s) in &sides {
            let key = h.key_of((c.addr, c.port), (s.addr, s.port));
            let (flow, table) = h
                .loaded
                .maps
                .find(&key)
                .expect("reading the tables")
                .unwrap_or_else(|| panic!("{what}: the flow of port {} was flushed", c.port));
            assert_eq!(table, FlowTable::Assured, "{what}");
            assert_eq!(flow.state(), FlowState::Established, "{what}");
            // Still judged: its exact RST passes, a blind one is dropped.
            let blind = rst_between(c, s, c.nxt.wrapping_add(2_000_000_000));
            assert_eq!(
                h.judge(&blind),
                (Verdict::OutOfWindow, Action::Drop),
                "{what}"
            );
            let exact = rst_between(c, s, c.nxt);
            assert_eq!(h.judge(&exact), (Verdict::Exact, Action::Pass), "{what}");
        }
    }
}

#[test]
fn a_full_assured_table_evicts_the_least_recently_used_and_counts_it() {
    // Room for 4 assured flows; 6 complete their handshakes.
    let h = Harness::with_flows(Level::Strict, 4, 64);
    let (h, sides) = established(h, 6);
    let c = h.counters();
    assert_eq!(c.get(Counter::FlowsAssured), 6);
    let tracked = sides
        .iter()
        .filter(|(c, s)| {
            let key = h.key_of((c.addr, c.port), (s.addr, s.port));
            h.loaded.maps.find(&key).expect("reading").is_some()
        })
        .count();
    assert!(tracked <= 4, "{tracked} of 6 tracked in a table of 4");
    // What the daemon reports as evicted, from the counters and the sweep.
    let state = rstguard_common::DaemonStatus {
        flow_entries: tracked as u64,
        ..Default::default()
    };
    assert_eq!(
        rstguard::daemon::assured_evicted(&state, [c].iter()),
        6 - tracked as u64
    );
    // The newest ones are there.
    let (c, s) = sides.last().unwrap();
    let key = h.key_of((c.addr, c.port), (s.addr, s.port));
    assert!(h.flow(&key).is_some());
}

fn rst_between(c: &Side, s: &Side, seq: u32) -> Vec<u8> {
    let seg = Seg {
        seq,
        rst: true,
        ..Seg::default()
    };
    tcp_frame(&Net::default(), (c.addr, c.port), (s.addr, s.port), &seg)
}
