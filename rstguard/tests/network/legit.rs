//! Legitimate RSTs must still reset, at every policy level: the six causes
//! of DESIGN.md, over IPv4 and IPv6, with rstguard on the endpoint that
//! receives the RST and on the router between, and once without rstguard.
//! The application must see the same outcome every time.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    thread,
    time::Duration,
};

use rstguard_lab::{
    n,
    routed::{Routed, ROUTER_IFACES, SERVER},
    spoof::Spoofer,
    Daemon, Netns,
};
use socket2::SockRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// connect to a port with no listener
    Refused,
    /// the server closes with unread data in its receive queue
    UnreadData,
    /// the server closes with SO_LINGER {on, 0} and unsent data
    Linger0,
    /// the server's socket vanishes without a FIN; the client sends
    HalfOpen,
    /// a firewall answers with `reject with tcp reset` mid-connection
    FirewallReset,
    /// a FIN, then a RST at the FIN's sequence number (macOS-style)
    FinThenRst,
}

const CAUSES: [Cause; 6] = [
    Cause::Refused,
    Cause::UnreadData,
    Cause::Linger0,
    Cause::HalfOpen,
    Cause::FirewallReset,
    Cause::FinThenRst,
];

/// What the application sees, as the kernel reports it.
fn expected(cause: Cause) -> ErrorKind {
    match cause {
        Cause::Refused => ErrorKind::ConnectionRefused,
        Cause::FinThenRst => ErrorKind::BrokenPipe,
        _ => ErrorKind::ConnectionReset,
    }
}

/// How long anything may take (stretched on slow machines, see
/// `rstguard_lab::time_scale`).
fn timeout() -> Duration {
    rstguard_lab::patience(Duration::from_secs(5))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect_timeout(&addr, timeout()).expect("connecting");
    c.set_read_timeout(Some(timeout())).unwrap();
    c
}

/// Reads until an error (the outcome) or EOF (no reset: a failure).
fn read_until_error(mut c: &TcpStream) -> ErrorKind {
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return ErrorKind::UnexpectedEof,
            Ok(_) => continue,
            Err(e) => return e.kind(),
        }
    }
}

/// Puts a socket in repair mode and reads (write_seq, rcv_nxt); closing it
/// afterwards sends nothing: the socket just vanishes.
fn repair(s: &TcpStream) -> (u32, u32) {
    let fd = s.as_raw_fd();
    let set = |opt: libc::c_int, v: libc::c_int| {
        // SAFETY: a valid socket fd and a c_int option value.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                opt,
                (&v as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(
            r,
            0,
            "setsockopt {opt}: {}",
            std::io::Error::last_os_error()
        );
    };
    let get = || {
        let mut v: u32 = 0;
        let mut len: libc::socklen_t = 4;
        // SAFETY: v and len are valid for the call.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUEUE_SEQ,
                (&mut v as *mut u32).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "TCP_QUEUE_SEQ: {}", std::io::Error::last_os_error());
        v
    };
    set(libc::TCP_REPAIR, 1);
    set(libc::TCP_REPAIR_QUEUE, 2); // TCP_SEND_QUEUE
    let write_seq = get();
    set(libc::TCP_REPAIR_QUEUE, 1); // TCP_RECV_QUEUE
    let rcv_nxt = get();
    (write_seq, rcv_nxt)
}

fn tcp_state(s: &TcpStream) -> u8 {
    // SAFETY: tcp_info is plain old data; the kernel fills at most len bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd, and a buffer of len bytes.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0);
    info.tcpi_state
}

/// Reproduces `cause` for real between the client and the server (port
/// `port`), and returns what the client application saw.
fn reproduce(lab: &Routed, cause: Cause, v6: bool, port: u16) -> ErrorKind {
    let server_addr = SERVER.addr(v6, port);
    if cause == Cause::Refused {
        return lab.client.run(move || {
            TcpStream::connect_timeout(&server_addr, timeout())
                .map_or_else(|e| e.kind(), |_| ErrorKind::Other)
        });
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<u16>();
    let server = lab.server.spawn(move || {
        let l = TcpListener::bind(server_addr).expect("binding");
        ready_tx.send(()).unwrap();
        let (s, peer) = l.accept().expect("accepting");
        s.set_read_timeout(Some(timeout())).unwrap();
        match cause {
            Cause::UnreadData => {
                // Wait until the client's bytes sit unread in the queue.
                let mut b = [0u8; 16];
                s.peek(&mut b).expect("peeking");
                drop(s);
            }
            Cause::Linger0 => {
                SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
                let _ = (&s).write(&vec![7u8; 1 << 20]);
                drop(s);
            }
            Cause::HalfOpen => {
                repair(&s);
                drop(s); // vanishes without a FIN
            }
            Cause::FirewallReset => {
                // Keep the socket open and read; the firewall interrupts.
                let _ = go_rx.recv_timeout(timeout());
                let _ = (&s).read(&mut [0u8; 1024]);
                thread::sleep(Duration::from_millis(500));
            }
            Cause::FinThenRst => {
                s.shutdown(Shutdown::Write).unwrap();
                thread::sleep(Duration::from_millis(100));
                let (write_seq, rcv_nxt) = repair(&s);
                drop(s);
                // What macOS does: a RST at the FIN's sequence number.
                let fin_seq = write_seq.wrapping_sub(1);
                Spoofer::new(v6).rst(server_addr, peer, fin_seq, Some(rcv_nxt));
            }
            Cause::Refused => unreachable!(),
        }
    });
    ready_rx
        .recv_timeout(timeout())
        .expect("the server listens");
    let router = &lab.router;
    let outcome = match cause {
        Cause::UnreadData => lab.client.run(move || {
            let c = connect(server_addr);
            (&c).write_all(b"unread bytes").unwrap();
            read_until_error(&c)
        }),
        Cause::Linger0 => lab
            .client
            .run(move || read_until_error(&connect(server_addr))),
        Cause::HalfOpen => lab.client.run(move || {
            let c = connect(server_addr);
            thread::sleep(Duration::from_millis(200));
            (&c).write_all(b"anyone there?").unwrap();
            read_until_error(&c)
        }),
        Cause::FirewallReset => {
            let (cport_tx, cport_rx) = std::sync::mpsc::channel();
            let (fw_tx, fw_rx) = std::sync::mpsc::channel::<()>();
            let client = lab.client.spawn(move || {
                let c = connect(server_addr);
                cport_tx.send(c.local_addr().unwrap().port()).unwrap();
                fw_rx.recv_timeout(timeout()).expect("the firewall rule");
                (&c).write_all(b"through the firewall?").unwrap();
                read_until_error(&c)
            });
            let _cport = cport_rx.recv_timeout(timeout()).expect("connected");
            router.exec(&[
                "nft",
                &format!(
                    "add table inet rgtest; \
                     add chain inet rgtest rejecter {{ type filter hook forward priority 0; }}; \
                     add rule inet rgtest rejecter tcp dport {port} reject with tcp reset"
                ),
            ]);
            fw_tx.send(()).unwrap();
            let outcome = client.join().expect("the client thread");
            router.exec(&["nft", "delete", "table", "inet", "rgtest"]);
            let _ = go_tx.send(port);
            outcome
        }
        Cause::FinThenRst => lab.client.run(move || {
            let c = connect(server_addr);
            let mut b = [0u8; 16];
            assert_eq!((&c).read(&mut b).expect("reading"), 0, "the FIN");
            thread::sleep(Duration::from_millis(400));
            // TCP_CLOSE is 7: the RST was accepted; 8 is CLOSE_WAIT.
            let state = tcp_state(&c);
            if state != 7 {
                return ErrorKind::Other;
            }
            (&c).write(b"x")
                .map_or_else(|e| e.kind(), |_| ErrorKind::Other)
        }),
        Cause::Refused => unreachable!(),
    };
    server.join().expect("the server thread");
    outcome
}

/// Runs every cause over both families, checks each outcome.
fn all_causes(lab: &Routed, what: &str, base_port: u16) {
    let mut port = base_port;
    for v6 in [false, true] {
        for cause in CAUSES {
            port += 1;
            let got = reproduce(lab, cause, v6, port);
            assert_eq!(
                got,
                expected(cause),
                "{what}: {cause:?} over {} gave {got:?}",
                if v6 { "IPv6" } else { "IPv4" }
            );
        }
    }
}

/// No RST was dropped at any of the daemon's interfaces that the receiving
/// stack would have acted on. A real peer's RST can arrive ahead of the
/// data it follows (the RST takes another queue, hence another CPU, than
/// the socket's data: seen under emulation) or answer a stale segment:
/// then it is outside the window, which RFC 793 and RFC 5961 stacks alike
/// ignore, and at strict inside it, where an RFC 5961 stack only answers
/// with a challenge ACK. Dropping those changes nothing for the
/// connection (every cause's outcome is asserted by `all_causes`); any
/// other drop fails.
fn nothing_dropped(ns: &Netns, level: &str) {
    let stats = ns.cli_json(&["stats"]);
    let mut judged = 0;
    for i in stats["interfaces"].as_array().unwrap() {
        for (verdict, v) in i["counters"]["rst"].as_object().unwrap() {
            let ignored_anyway =
                verdict == "out_of_window" || (verdict == "in_window" && level == "strict");
            if n(&v["dropped"]) != 0 && !ignored_anyway {
                // What was dropped, with the numbers it was judged on.
                let (_, resets, _) = ns.cli(&["resets", "--limit", "1024"]);
                panic!(
                    "{level}: a legitimate RST was dropped as {verdict} on {}; the RSTs the daemon \
                     recorded:\n{resets}",
                    i["device"]
                );
            }
            judged += n(&v["passed"]);
        }
    }
    assert!(judged > 0, "{level}: rstguard judged no RST at all");
}

#[test]
fn legitimate_rsts_reset_without_rstguard() {
    let lab = Routed::new();
    all_causes(&lab, "without rstguard", 7000);
}

#[test]
fn legitimate_rsts_reset_with_rstguard_on_the_receiving_endpoint() {
    let lab = Routed::new();
    // By the client's own sockets (socket mode) and by tracking.
    let cases = ["socket", "track"]
        .into_iter()
        .flat_map(|state| ["monitor", "enforce", "strict"].map(|level| (state, level)));
    for (i, (state, level)) in cases.enumerate() {
        let mut d = Daemon::start(
            &lab.client,
            &[
                "attach",
                "c0",
                "--state",
                state,
                "--policy",
                level,
                "--interval",
                "0",
                "--no-metrics",
            ],
        );
        all_causes(
            &lab,
            &format!("rstguard {level} --state {state} on the client"),
            7100 + 20 * i as u16,
        );
        nothing_dropped(&lab.client, level);
        if state == "socket" {
            let st = lab.client.cli_json(&["stats"]);
            let c = &st["interfaces"][0]["counters"];
            assert!(
                rstguard_lab::n(&c["hooks"]["xdp"]["socket_rst"]) > 0,
                "{state}: no RST judged by socket: {st}"
            );
            assert_eq!(rstguard_lab::n(&c["flows"]["created"]), 0, "{state}: {st}");
        }
        assert_eq!(d.stop().0, 0);
    }
}

#[test]
fn legitimate_rsts_reset_with_rstguard_on_the_router() {
    let lab = Routed::new();
    for (i, level) in ["monitor", "enforce", "strict"].into_iter().enumerate() {
        let mut args = vec!["attach"];
        args.extend(ROUTER_IFACES);
        args.extend(["--policy", level, "--interval", "0", "--no-metrics"]);
        let mut d = Daemon::start(&lab.router, &args);
        all_causes(
            &lab,
            &format!("rstguard {level} on the router"),
            7200 + 20 * i as u16,
        );
        nothing_dropped(&lab.router, level);
        assert_eq!(d.stop().0, 0);
    }
}
