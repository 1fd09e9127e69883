//! The flow table a flood cannot flush, through the real CLI: an idle
//! established connection, a flood of SYNs from random spoofed sources
//! twenty times the tables, then blind RSTs at the idle connection: they
//! are judged against its real state (not `no_flow`), and the connection
//! carries on byte-exact.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Duration,
};

use rstguard_lab::{
    n,
    routed::{Routed, CLIENT, SERVER},
    spoof::{random_rsts, syn_flood},
};

use crate::placement::{rsts, start, Placement};

const FLOOD: u32 = 20_000;
const RSTS: u64 = 2_000;

#[test]
fn a_syn_flood_does_not_flush_an_idle_established_connection() {
    let lab = Routed::new();
    for (i, level) in ["enforce", "strict"].into_iter().enumerate() {
        let mut daemons = start(
            &lab,
            Placement::Router,
            &["--policy", level, "--flows", "1024", "--new-flows", "1024"],
        );
        let port = 8600 + i as u16;
        let addr = SERVER.addr(false, port);
        let (ready_tx, ready_rx) = mpsc::channel();
        // An echo server: whatever comes in goes back.
        let server = lab.server.spawn(move || {
            let l = TcpListener::bind(addr).unwrap();
            ready_tx.send(()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut echoed = 0u64;
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return echoed,
                    Ok(k) => {
                        s.write_all(&buf[..k]).unwrap();
                        echoed += k as u64;
                    }
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (port_tx, port_rx) = mpsc::channel();
        let client = lab.client.spawn(move || {
            let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            port_tx.send(c.local_addr().unwrap().port()).unwrap();
            let exchange = |c: &mut TcpStream, what: &[u8]| {
                c.write_all(what).unwrap();
                let mut back = vec![0u8; what.len()];
                c.read_exact(&mut back).map(|()| back == what)
            };
            let first = exchange(&mut c, &[1u8; 3000]);
            // Idle while the flood and the blind RSTs come.
            go_rx.recv_timeout(Duration::from_secs(60)).unwrap();
            let second = exchange(&mut c, &[2u8; 3000]);
            (first.ok(), second.map_err(|e| e.kind()))
        });
        let cport = port_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(300));

        let flooded = syn_flood(&lab.attacker, addr, FLOOD);
        assert_eq!(flooded, u64::from(FLOOD));
        let before = rsts(&lab.router, "r2");
        random_rsts(&lab.attacker, CLIENT.addr(false, cport), addr, RSTS as u32);
        let after = rsts(&lab.router, "r2");
        let moved = |v: &str, a: &str| n(&after[v][a]) - n(&before[v][a]);
        let dropped: u64 = ["out_of_window", "in_window", "rate_limited"]
            .iter()
            .map(|v| moved(v, "dropped"))
            .sum();
        let no_flow = moved("no_flow", "passed") + moved("no_flow", "dropped");
        assert_eq!(no_flow, 0, "{level}: the idle flow was flushed: {after}");
        assert!(
            dropped * 100 >= RSTS * 97,
            "{level}: {dropped} of {RSTS} blind RSTs dropped: {after}"
        );

        go_tx.send(()).unwrap();
        let (first, second) = client.join().unwrap();
        assert_eq!(first, Some(true), "{level}: the first exchange");
        assert_eq!(second, Ok(true), "{level}: after the flood, byte-exact");
        assert_eq!(server.join().unwrap(), 6000, "{level}");
        // The flood did churn the table of new flows (20 times over).
        let stats = lab.router.cli_json(&["stats"]);
        let r2 = stats["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["device"] == "r2")
            .unwrap();
        let created = n(&r2["counters"]["flows"]["created"]);
        assert!(
            created >= u64::from(FLOOD) * 9 / 10,
            "{level}: only {created} flows created by the flood"
        );
        let status = lab.router.cli_json(&["status"]);
        assert!(
            n(&status["flow_table"]["new_entries"]) <= 1024,
            "{level}: {status}"
        );
        for d in &mut daemons {
            assert_eq!(d.stop().0, 0);
        }
    }
}
