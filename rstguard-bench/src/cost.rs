//! Program cost: ns per packet through BPF_PROG_TEST_RUN, per packet class,
//! against three baselines loaded in the same run.

use aya::programs::{TestRun, TestRunOptions};
use rstguard::ebpf::{LoadOptions, Loaded};
use rstguard_common::{layout::POLICY_DEFAULT, Level, Policy};

use crate::{
    frames::{self, Net, Tcp},
    stats::Samples,
};

/// The benchmark object: rstguard's programs and the baselines they are
/// measured against (`rstguard-ebpf/src/bin/rstguard-bench.rs`), built by
/// `build.rs`.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rstguard-bench"));

/// The baselines, cheapest first.
pub const BASELINES: [&str; 3] = ["bench_pass", "bench_parse", "bench_lookup"];
/// Driver plus XDP_DROP, per packet (Høiland-Jørgensen et al., CoNEXT 2018).
pub const DRIVER_NS: f64 = 42.0;
/// 10GbE line rate with minimum-size frames: 14.88 Mpps, 67.2 ns apart.
pub const LINE_RATE_NS: f64 = 67.2;

pub fn load(flows: u32) -> Loaded {
    load_with(flows, 1 << 20)
}

/// The bench object with room for `flows` assured flows and `new_flows`
/// others, at enforce with a budget no run exhausts.
pub fn load_with(flows: u32, new_flows: u32) -> Loaded {
    let mut l = Loaded::load_object(
        BENCH_OBJECT,
        &LoadOptions {
            flows,
            new_flows,
            ..LoadOptions::default()
        },
    )
    .expect("loading the bench object");
    let mut p = Policy {
        level: Level::Enforce as u8,
        ..Policy::default()
    };
    // A budget no run exhausts: every in-window RST takes the in-window path.
    p.set_inexact_per_sec(1_000_000);
    l.maps
        .set_policy(POLICY_DEFAULT, &p)
        .expect("writing the policy");
    l
}

/// ns per run of `prog` on `frame`, `repeat` times (the kernel's average).
pub fn run(l: &mut Loaded, prog: &'static str, frame: &[u8], repeat: u32) -> (f64, u32) {
    let p = l.other_xdp(prog).expect("a bench program");
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    (r.duration.as_nanos() as f64, r.return_value)
}

/// One packet class.
pub struct Class {
    pub name: &'static str,
    /// The program that runs rstguard for it (`bench_new_flow` makes every
    /// run a new flow).
    pub program: &'static str,
    pub frame: Vec<u8>,
    /// The XDP verdict rstguard must return (1 drop, 2 pass): a check that
    /// the class takes the path it claims.
    pub expect: u32,
    pub rst: bool,
}

pub struct ClassResult {
    pub name: &'static str,
    pub rst: bool,
    pub rstguard: Samples,
    pub baselines: [Samples; 3],
}

impl ClassResult {
    pub fn ratio(&self) -> f64 {
        self.rstguard.ratio_to(&self.baselines[2])
    }

    pub fn mpps(&self) -> f64 {
        1000.0 / (DRIVER_NS + self.rstguard.median())
    }
}

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [10, 0, 0, 2];

fn seg(sport: u16, seq: u32, ack: Option<u32>) -> Tcp {
    Tcp {
        sport,
        dport: 80,
        seq,
        ack,
        syn: false,
        rst: false,
        payload: 0,
    }
}

/// A handshake and some data, through the XDP program (a router's view),
/// so that the flow on `sport` is tracked with known numbers: the client
/// is at 1101, the server acknowledged 1101 and is at 5001.
fn establish(l: &mut Loaded, net: Net, c: [u8; 16], s: [u8; 16], sport: u16) {
    let back = |t: Tcp| Tcp {
        sport: 80,
        dport: t.sport,
        ..t
    };
    let steps = [
        (
            true,
            Tcp {
                syn: true,
                ..seg(sport, 1000, None)
            },
        ),
        (
            false,
            back(Tcp {
                syn: true,
                ..seg(sport, 5000, Some(1001))
            }),
        ),
        (true, seg(sport, 1001, Some(5001))),
        (
            true,
            Tcp {
                payload: 100,
                ..seg(sport, 1001, Some(5001))
            },
        ),
        (false, back(seg(sport, 5001, Some(1101)))),
    ];
    for (from_client, t) in steps {
        let f = if from_client {
            frames::tcp(net, c, s, &t)
        } else {
            frames::tcp(net, s, c, &t)
        };
        run(l, "rstguard_xdp", &f, 1);
    }
}

/// The classes, each on a flow of its own, set up in `l`.
pub fn classes(l: &mut Loaded) -> Vec<Class> {
    let (c, s) = (frames::v4(C), frames::v4(S));
    let mut out = Vec::new();
    out.push(Class {
        name: "non-TCP (UDP)",
        program: "rstguard_xdp",
        frame: frames::udp(),
        expect: 2,
        rst: false,
    });
    establish(l, Net::V4, c, s, 1001);
    out.push(Class {
        name: "TCP data, tracked flow",
        program: "rstguard_xdp",
        frame: frames::tcp(
            Net::V4,
            c,
            s,
            &Tcp {
                payload: 100,
                ..seg(1001, 1101, Some(5001))
            },
        ),
        expect: 2,
        rst: false,
    });
    let syn = frames::tcp(
        Net::V4,
        c,
        s,
        &Tcp {
            syn: true,
            ..seg(1002, 7000, None)
        },
    );
    out.push(Class {
        name: "SYN (flow creation)",
        program: "bench_new_flow",
        frame: syn.clone(),
        expect: 2,
        rst: false,
    });
    out.push(Class {
        name: "SYN, the same creation on per-CPU LRU lists (comparison)",
        program: "bench_new_flow_per_cpu",
        frame: syn,
        expect: 2,
        rst: false,
    });
    for (sport, name, seq, expect) in [
        (1003, "RST exact", 1101u32, 2),
        (1004, "RST in window", 1101 + 5000, 2),
        (1005, "RST out of window", 1101u32.wrapping_add(1 << 31), 1),
    ] {
        establish(l, Net::V4, c, s, sport);
        out.push(Class {
            name,
            program: "rstguard_xdp",
            frame: frames::tcp(
                Net::V4,
                c,
                s,
                &Tcp {
                    rst: true,
                    ..seg(sport, seq, Some(5001))
                },
            ),
            expect,
            rst: true,
        });
    }
    out.push(Class {
        name: "RST, no flow",
        program: "rstguard_xdp",
        frame: frames::tcp(
            Net::V4,
            c,
            s,
            &Tcp {
                rst: true,
                ..seg(1006, 1, Some(1))
            },
        ),
        expect: 2,
        rst: true,
    });
    let (c6, s6) = (frames::v6(1), frames::v6(2));
    establish(l, Net::V6, c6, s6, 1007);
    out.push(Class {
        name: "IPv6 TCP data",
        program: "rstguard_xdp",
        frame: frames::tcp(
            Net::V6,
            c6,
            s6,
            &Tcp {
                payload: 100,
                ..seg(1007, 1101, Some(5001))
            },
        ),
        expect: 2,
        rst: false,
    });
    establish(l, Net::Vlan, c, s, 1008);
    out.push(Class {
        name: "VLAN-tagged TCP data",
        program: "rstguard_xdp",
        frame: frames::tcp(
            Net::Vlan,
            c,
            s,
            &Tcp {
                payload: 100,
                ..seg(1008, 1101, Some(5001))
            },
        ),
        expect: 2,
        rst: false,
    });
    out
}

/// Runs `rounds` rounds; classes and programs alternate within a round so
/// that noise spreads over all of them.
pub fn measure(rounds: usize, repeat: u32) -> Vec<ClassResult> {
    let mut l = load(1 << 20);
    let classes = classes(&mut l);
    let mut results: Vec<ClassResult> = classes
        .iter()
        .map(|c| ClassResult {
            name: c.name,
            rst: c.rst,
            rstguard: Samples::default(),
            baselines: Default::default(),
        })
        .collect();
    for round in 0..rounds {
        // Flow creation needs room for every run: a fresh table each round.
        let mut fresh = load(1 << 20);
        for (c, r) in classes.iter().zip(results.iter_mut()) {
            let creates = c.program.starts_with("bench_new_flow");
            let target = if creates { &mut fresh } else { &mut l };
            let n = if creates { repeat / 2 } else { repeat };
            let (ns, ret) = run(target, c.program, &c.frame, n);
            assert_eq!(ret, c.expect, "{}: rstguard returned {ret}", c.name);
            r.rstguard.push(ns);
            for (i, b) in BASELINES.iter().enumerate() {
                r.baselines[i].push(run(&mut l, b, &c.frame, repeat).0);
            }
        }
        eprintln!("bench: program cost, round {} of {rounds} done", round + 1);
    }
    results
}
