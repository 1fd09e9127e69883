//! Scale: the assured table filled to 1k .. 4M established flows, the cost
//! of a tracked-flow packet at each size, the memory per flow, the cost of
//! creating flows, and a flood of new flows past capacity.

use rstguard::{ebpf::Loaded, maps::FlowTable};
use rstguard_common::{
    key::v4_mapped,
    parse::{Segment, ACK, SYN},
    state::track::{self, Origin, Step},
    Endpoints, Flow, FlowKey,
};

use crate::{
    cost::{load_with, run},
    frames::{self, Net, Tcp},
    stats::Samples,
};

/// Powers of two, as the kernel sizes a table's buckets (1k, 128k, 1M,
/// 4M).
pub const SIZES: [u32; 4] = [1 << 10, 1 << 17, 1 << 20, 1 << 22];

/// The server every flow of these tables talks to.
const SERVER: [u8; 4] = [10, 99, 0, 1];

pub struct SizeResult {
    pub flows: u32,
    pub lookup: Samples,
    /// Kernel memory of the assured table and of the table of new flows
    /// (of the same capacity), per flow.
    pub bytes_per_flow: f64,
    pub new_bytes_per_flow: f64,
}

impl SizeResult {
    /// How far the assured table's memory exceeds 128 bytes a flow, in
    /// bytes (negative: under).
    pub fn beyond_128(&self) -> i64 {
        (self.bytes_per_flow * f64::from(self.flows)).round() as i64 - 128 * i64::from(self.flows)
    }
}

/// A segment from `base` + 1, + 2, ... (one address a run of
/// `bench_new_flow`).
fn template(base: [u8; 4], syn: bool) -> Vec<u8> {
    frames::tcp(
        Net::V4,
        frames::v4(base),
        frames::v4(SERVER),
        &Tcp {
            sport: 40000,
            dport: 443,
            seq: 1000,
            ack: (!syn).then_some(1),
            syn,
            rst: false,
            payload: if syn { 0 } else { 100 },
        },
    )
}

fn seg(seq: u32, ack: Option<u32>, flags: u8) -> Segment {
    Segment {
        seq,
        ack: ack.unwrap_or(0),
        flags: flags | if ack.is_some() { ACK } else { 0 },
        win: 1000,
        wscale: 7,
        ttl: 64,
        ..Segment::default()
    }
}

/// The state of an established flow between `client` (port 40000) and the
/// server's port 443, as rstguard's own tracking learns it from a
/// handshake: the client at 1000 (the template's data fits), the server
/// at 1. Every flow of a filled table holds this value.
fn established(client: [u8; 4]) -> (Endpoints, Flow) {
    let (ends, client_is_lo) = Endpoints::new(v4_mapped(client), 40000, v4_mapped(SERVER), 443);
    let mut f = track::new_flow(&seg(999, None, SYN), client_is_lo, Origin::Claim, 0);
    for (from_client, s) in [
        (false, seg(0, Some(1000), SYN)),
        (true, seg(1000, Some(1), 0)),
    ] {
        let step = track::learn(
            Some(&mut f),
            from_client == client_is_lo,
            &s,
            Origin::Claim,
            || true,
            0u64,
        );
        assert_eq!(step, Step::Learned, "the handshake");
    }
    assert!(f.assured());
    (ends, f)
}

/// Fills the assured table with `n` established flows from `base` + 1 ..
/// + n, written from user space (a million writes take a few seconds).
fn fill(l: &mut Loaded, base: u32, n: u32) {
    let (_, flow) = established([1, 2, 3, 4]);
    for i in 1..=n {
        let key = key(l, base + i);
        l.maps
            .insert_flow(FlowTable::Assured, &key, &flow)
            .expect("filling the table");
    }
}

fn key(l: &Loaded, src: u32) -> FlowKey {
    let (ends, _) = established(src.to_be_bytes());
    FlowKey::of(&ends, false, &l.key_secret)
}

/// Runs `bench_new_flow` on `frame` `n` times; ns per run.
fn sweep_runs(l: &mut Loaded, frame: &[u8], n: u32) -> f64 {
    run(l, "bench_new_flow", frame, n).0
}

pub fn sizes(rounds: usize) -> Vec<SizeResult> {
    let mut out = Vec::new();
    for &n in &SIZES {
        let mut l = load_with(n, n);
        let base = u32::from_be_bytes([20, 0, 0, 0]);
        fill(&mut l, base, n);
        // Each run a different established flow.
        let data = template(base.to_be_bytes(), false);
        let per_call = n.min(1_000_000);
        let mut lookup = Samples::default();
        for _ in 0..rounds {
            lookup.push(sweep_runs(&mut l, &data, per_call));
        }
        let per_flow = |t| l.maps.flows_memory(t).unwrap_or(0) as f64 / f64::from(n);
        eprintln!("bench: scale, {n} flows done");
        out.push(SizeResult {
            flows: n,
            lookup,
            bytes_per_flow: per_flow(FlowTable::Assured),
            new_bytes_per_flow: per_flow(FlowTable::Embryonic),
        });
    }
    out
}

pub struct Overflow {
    pub capacity: u32,
    pub new_capacity: u32,
    pub established: u32,
    pub new_flows: u64,
    /// ns per new flow once the table of new flows is full (each evicts
    /// one).
    pub create_full_ns: Samples,
    /// Established flows left, with their traffic going on / idle.
    pub survived_active: u32,
    pub survived_idle: u32,
}

fn survivors(l: &Loaded, base: u32, count: u32) -> u32 {
    (1..=count)
        .filter(|i| {
            matches!(
                l.maps.find(&key(l, base + i)).ok().flatten(),
                Some((_, FlowTable::Assured))
            )
        })
        .count() as u32
}

/// An assured table of 100k flows, 50k of them established; then a
/// million new flows (ten times the capacity) in chunks, with the
/// established flows' traffic going on between chunks, or idle.
pub fn overflow() -> Overflow {
    const CAP: u32 = 100_000;
    const NEW: u32 = 65_536;
    const EST: u32 = 50_000;
    const CHUNK: u32 = 50_000;
    const CHUNKS: u32 = 20;
    let est_base = u32::from_be_bytes([30, 0, 0, 0]);
    let mut create_full_ns = Samples::default();
    let mut survived = [0u32; 2];
    for (i, active) in [true, false].into_iter().enumerate() {
        let mut l = load_with(CAP, NEW);
        fill(&mut l, est_base, EST);
        let est = template(est_base.to_be_bytes(), false);
        for k in 0..CHUNKS {
            if active {
                sweep_runs(&mut l, &est, EST);
            }
            let flood_base = u32::from_be_bytes([40, 0, 0, 0]) + k * CHUNK;
            let ns = sweep_runs(&mut l, &template(flood_base.to_be_bytes(), true), CHUNK);
            if k > 2 {
                create_full_ns.push(ns);
            }
        }
        survived[i] = survivors(&l, est_base, EST);
    }
    eprintln!("bench: overflow done");
    Overflow {
        capacity: CAP,
        new_capacity: NEW,
        established: EST,
        new_flows: u64::from(CHUNK) * u64::from(CHUNKS),
        create_full_ns,
        survived_active: survived[0],
        survived_idle: survived[1],
    }
}
