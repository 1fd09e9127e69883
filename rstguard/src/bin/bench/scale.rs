//! Scale: the flow table filled to 1k .. 4M flows (in the kernel, with
//! `bench_new_flow`), the cost of a tracked-flow packet at each size, the
//! memory per flow, and a flood of new flows past capacity.

use rstguard::ebpf::Loaded;
use rstguard_common::FlowKey;

use crate::{
    cost::{load, run},
    frames::{self, Net, Tcp},
    stats::Samples,
};

pub const SIZES: [u32; 4] = [1_000, 100_000, 1_000_000, 4_000_000];

pub struct SizeResult {
    pub flows: u32,
    pub fill_ns: f64,
    pub lookup: Samples,
    pub bytes_per_flow: f64,
}

/// A segment from `base` + 1, + 2, ... (one address a run).
fn template(base: [u8; 4], syn: bool) -> Vec<u8> {
    frames::tcp(
        Net::V4,
        frames::v4(base),
        frames::v4([10, 99, 0, 1]),
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

/// Runs `bench_new_flow` on `frame` `n` times, in chunks the kernel's
/// u32 duration handles; returns ns per run.
fn sweep_runs(l: &mut Loaded, frame: &[u8], n: u32) -> f64 {
    run(l, "bench_new_flow", frame, n).0
}

pub fn sizes(rounds: usize) -> Vec<SizeResult> {
    let mut out = Vec::new();
    for &n in &SIZES {
        let mut l = load(n);
        // Fill: n SYNs, from 20.0.0.1 up.
        let fill_ns = sweep_runs(&mut l, &template([20, 0, 0, 0], true), n);
        // Each run a different existing flow: data from the same addresses.
        let data = template([20, 0, 0, 0], false);
        let per_call = n.min(1_000_000);
        let mut lookup = Samples::default();
        for _ in 0..rounds {
            lookup.push(sweep_runs(&mut l, &data, per_call));
        }
        let bytes = l.maps.flows_memory().unwrap_or(0) as f64 / f64::from(n);
        eprintln!("bench: scale, {n} flows done");
        out.push(SizeResult {
            flows: n,
            fill_ns,
            lookup,
            bytes_per_flow: bytes,
        });
    }
    out
}

pub struct Overflow {
    pub capacity: u32,
    pub established: u32,
    pub new_flows: u64,
    /// ns per new flow once the table is full (each evicts one).
    pub create_full_ns: Samples,
    /// Established flows left, with their traffic going on / idle.
    pub survived_active: u32,
    pub survived_idle: u32,
}

fn key(src: u32) -> FlowKey {
    FlowKey::new(
        frames::v4(src.to_be_bytes()),
        40000,
        frames::v4([10, 99, 0, 1]),
        443,
    )
    .0
}

fn survivors(l: &Loaded, base: u32, count: u32) -> u32 {
    (1..=count)
        .filter(|i| l.maps.flow(&key(base + i)).ok().flatten().is_some())
        .count() as u32
}

/// A table of 100k flows, 50k of them established; then a million new
/// flows (ten times the capacity) in chunks, with the established flows'
/// traffic going on between chunks, or idle.
pub fn overflow() -> Overflow {
    const CAP: u32 = 100_000;
    const EST: u32 = 50_000;
    const CHUNK: u32 = 50_000;
    const CHUNKS: u32 = 20;
    let est_base = u32::from_be_bytes([30, 0, 0, 0]);
    let mut create_full_ns = Samples::default();
    let mut survived = [0u32; 2];
    for (i, active) in [true, false].into_iter().enumerate() {
        let mut l = load(CAP);
        let est = template(est_base.to_be_bytes(), false);
        sweep_runs(&mut l, &est, EST);
        for k in 0..CHUNKS {
            if active {
                sweep_runs(&mut l, &est, EST);
            }
            let flood_base = u32::from_be_bytes([40, 0, 0, 0]) + k * CHUNK;
            let ns = sweep_runs(&mut l, &template(flood_base.to_be_bytes(), true), CHUNK);
            if active && k > 2 {
                create_full_ns.push(ns);
            }
        }
        survived[i] = survivors(&l, est_base, EST);
    }
    eprintln!("bench: overflow done");
    Overflow {
        capacity: CAP,
        established: EST,
        new_flows: u64::from(CHUNK) * u64::from(CHUNKS),
        create_full_ns,
        survived_active: survived[0],
        survived_idle: survived[1],
    }
}
