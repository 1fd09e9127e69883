//! Socket mode's cost: ns per packet through BPF_PROG_TEST_RUN against real
//! sockets (the test run looks them up in the caller's network namespace:
//! a private one, on a thread of its own), beside the parser alone and the
//! parser plus one socket lookup, loaded in the same run.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

use rstguard::{
    ebpf::{LoadOptions, Loaded},
    socket::prepare,
};
use rstguard_common::{
    judge::socket::{cause::watch_bucket, Source},
    layout::POLICY_DEFAULT,
    Endpoints, FlowKey, Level, Policy,
};
use rstguard_lab::kernel_tcp;

use crate::{
    cost::run,
    frames::{self, Net, Tcp},
    stats::Samples,
};

/// The baselines: the parser alone, and the parser plus a socket lookup.
pub const BASELINES: [&str; 2] = ["bench_parse", "bench_sk_lookup"];

pub struct SocketResult {
    pub name: &'static str,
    pub rst: bool,
    pub rstguard: Samples,
    /// `BASELINES`, in order.
    pub baselines: [Samples; 2],
}

impl SocketResult {
    /// Against the parser alone (non-RST segments), or the parser plus a
    /// socket lookup (RSTs).
    pub fn ratio(&self) -> f64 {
        let b = if self.rst { 1 } else { 0 };
        self.rstguard.ratio_to(&self.baselines[b])
    }
}

/// The injection watch's bucket of the IPv4 connection `a`-`b`.
fn bucket(a: SocketAddr, b: SocketAddr) -> u32 {
    let (ends, _) = Endpoints::new(addr(a), a.port(), addr(b), b.port());
    // IPv4 keys hold the addresses: the secret plays no part.
    watch_bucket(&FlowKey::of(&ends, false, &[0, 0]))
}

fn addr(a: SocketAddr) -> [u8; 16] {
    match a {
        SocketAddr::V4(v4) => frames::v4(v4.ip().octets()),
        SocketAddr::V6(v6) => v6.ip().octets(),
    }
}

/// Runs `rounds` rounds of every class on a thread in a private network
/// namespace with real sockets.
pub fn measure(rounds: usize, repeat: u32) -> Vec<SocketResult> {
    thread::spawn(move || measure_here(rounds, repeat))
        .join()
        .expect("the socket benchmark thread")
}

fn measure_here(rounds: usize, repeat: u32) -> Vec<SocketResult> {
    kernel_tcp::private_netns();
    let fields = prepare().expect("socket mode is available on this machine");
    let mut l = Loaded::load_object(
        crate::cost::BENCH_OBJECT,
        &LoadOptions {
            flows: 1024,
            new_flows: 1024,
            sock_fields: fields,
        },
    )
    .expect("loading the bench object with socket mode");
    let p = Policy {
        level: Level::Enforce as u8,
        ..Policy::default()
    };
    l.maps.set_policy(POLICY_DEFAULT, &p).expect("the policy");
    // Interface 1 (lo), where test runs happen, judges by socket.
    l.maps.set_source(1, Source::Socket).expect("the source");

    // An established connection, idle, everything read.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(&[1; 100]).unwrap();
    let mut buf = [0u8; 100];
    server.read_exact(&mut buf).unwrap();
    thread::sleep(Duration::from_millis(50));
    let k = kernel_tcp::seqs(&server).unwrap();
    let (c, s) = (client.local_addr().unwrap(), server.local_addr().unwrap());
    // Another, the data row's: a connection with no RST on record (the RST
    // rows' exact RSTs put the first on the injection watch, whose data
    // row is measured on its own), in another bucket of the watch.
    let (quiet_client, quiet_server) = (0..8)
        .map(|_| {
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            (client, server)
        })
        .find(|(qc, qs)| bucket(qc.local_addr().unwrap(), qs.local_addr().unwrap()) != bucket(c, s))
        .expect("a connection in another bucket of the injection watch");
    let qk = kernel_tcp::seqs(&quiet_server).unwrap();
    let (qc, qs) = (
        quiet_client.local_addr().unwrap(),
        quiet_server.local_addr().unwrap(),
    );
    // A TIME_WAIT socket: another connection, closed by its client first.
    let tw_client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (tw_server, _) = listener.accept().unwrap();
    let tw_k = kernel_tcp::seqs(&tw_client).unwrap();
    let (twc, tws) = (
        tw_client.local_addr().unwrap(),
        tw_server.local_addr().unwrap(),
    );
    tw_client.shutdown(Shutdown::Both).unwrap();
    thread::sleep(Duration::from_millis(20));
    drop(tw_server);
    thread::sleep(Duration::from_millis(50));
    drop(tw_client);

    let seg =
        |from: SocketAddr, to: SocketAddr, t: Tcp| frames::tcp(Net::V4, addr(from), addr(to), &t);
    let tcp = |seq: u32, ack: Option<u32>, rst: bool, payload: usize, from: SocketAddr| Tcp {
        sport: from.port(),
        dport: 0,
        seq,
        ack,
        syn: false,
        rst,
        payload,
    };
    let to = |t: Tcp, dst: SocketAddr| Tcp {
        dport: dst.port(),
        ..t
    };
    let no_socket = SocketAddr::new(s.ip(), 1);
    // (name, frame, XDP verdict at enforce, RST)
    let classes: Vec<(&'static str, Vec<u8>, u32, bool)> = vec![
        (
            "TCP data to a local socket",
            seg(
                qc,
                qs,
                to(tcp(qk.rcv_nxt, Some(qk.write_seq), false, 100, qc), qs),
            ),
            2,
            false,
        ),
        (
            "RST exact",
            seg(c, s, to(tcp(k.rcv_nxt, Some(k.write_seq), true, 0, c), s)),
            2,
            true,
        ),
        (
            "TCP data within 10 s of an exact RST on its connection",
            seg(
                c,
                s,
                to(tcp(k.rcv_nxt, Some(k.write_seq), false, 100, c), s),
            ),
            2,
            false,
        ),
        (
            "RST in window",
            seg(
                c,
                s,
                to(tcp(k.rcv_nxt + 5000, Some(k.write_seq), true, 0, c), s),
            ),
            2,
            true,
        ),
        (
            "RST out of window",
            seg(
                c,
                s,
                to(
                    tcp(
                        k.rcv_nxt.wrapping_add(1 << 31),
                        Some(k.write_seq),
                        true,
                        0,
                        c,
                    ),
                    s,
                ),
            ),
            1,
            true,
        ),
        (
            "RST, no socket",
            seg(c, no_socket, to(tcp(1, Some(1), true, 0, c), no_socket)),
            2,
            true,
        ),
        (
            "RST at a TIME_WAIT socket",
            seg(tws, twc, to(tcp(tw_k.rcv_nxt + 1, None, true, 0, tws), twc)),
            2,
            true,
        ),
    ];
    let mut results: Vec<SocketResult> = classes
        .iter()
        .map(|(name, _, _, rst)| SocketResult {
            name,
            rst: *rst,
            rstguard: Samples::default(),
            baselines: Default::default(),
        })
        .collect();
    for round in 0..rounds {
        for ((name, frame, expect, _), r) in classes.iter().zip(results.iter_mut()) {
            // Every other round the baselines run first: a drift of the
            // machine within a round then falls on both sides alike.
            let mut measure = |first: bool| {
                if first == (round % 2 == 0) {
                    let (ns, ret) = run(&mut l, "bench_socket_xdp", frame, repeat);
                    assert_eq!(ret, *expect, "{name}: rstguard returned {ret}");
                    r.rstguard.push(ns);
                } else {
                    for (i, b) in BASELINES.iter().enumerate() {
                        r.baselines[i].push(run(&mut l, b, frame, repeat).0);
                    }
                }
            };
            measure(true);
            measure(false);
        }
    }
    drop((client, server, quiet_client, quiet_server, listener));
    results
}
