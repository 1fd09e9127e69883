//! Sockets on the host brought into each state a RST can meet, and checked
//! to be there.

use super::*;

impl Lab {
    /// Brings a socket on the host into `state`.
    pub(super) fn target(&mut self, state: State, v6: bool) -> Target {
        use State::*;
        let mut t = match state {
            SynSent => {
                let (h, p) = Lab::addrs(v6);
                let host = SocketAddr::new(h, self.port());
                let peer = SocketAddr::new(p, self.port());
                self.peer_ignores(host.port());
                let sock = self.pair.server.run(move || {
                    let s = socket(v6);
                    s.bind(&host.into()).unwrap();
                    s.set_nonblocking(true).unwrap();
                    let _ = s.connect(&peer.into());
                    s
                });
                settle();
                let k = kernel_tcp::seqs(&sock).unwrap();
                Target {
                    state,
                    v6,
                    host,
                    peer,
                    sock: Some(sock),
                    _keep: vec![],
                    base: k.write_seq,
                    snd_nxt: k.write_seq,
                    sack_edge: None,
                }
            }
            SynRecv => {
                let (h, p) = Lab::addrs(v6);
                let host = SocketAddr::new(h, self.port());
                let peer = SocketAddr::new(p, self.port());
                let listener = self.pair.server.run(move || {
                    let l = socket(v6);
                    l.bind(&host.into()).unwrap();
                    l.listen(8).unwrap();
                    l
                });
                self.peer_ignores(host.port());
                let client = self.pair.client.run(move || {
                    let s = socket(v6);
                    s.bind(&peer.into()).unwrap();
                    s.set_nonblocking(true).unwrap();
                    let _ = s.connect(&host.into());
                    s
                });
                settle();
                // The peer's ISN + 1 is the request's RCV.NXT.
                let k = kernel_tcp::seqs(&client).unwrap();
                Target {
                    state,
                    v6,
                    host,
                    peer,
                    sock: None,
                    _keep: vec![listener, client],
                    base: k.write_seq,
                    snd_nxt: 0,
                    sack_edge: None,
                }
            }
            _ => {
                let (sock, peer_sock, listener, host, peer) = self.connect(v6);
                let stream = |s: &Socket| -> TcpStream { s.try_clone().unwrap().into() };
                stream(&sock).write_all(&[1u8; 2000]).unwrap();
                stream(&peer_sock).write_all(&[2u8; 3000]).unwrap();
                settle();
                let mut buf = vec![0u8; 3000];
                std::io::Read::read_exact(&mut stream(&sock), &mut buf).unwrap();
                let mut buf = vec![0u8; 2000];
                std::io::Read::read_exact(&mut stream(&peer_sock), &mut buf).unwrap();
                let mut sack_edge = None;
                let mut keep_host = true;
                match state {
                    Established => {}
                    InFlight => {
                        self.peer_ignores(host.port());
                        self.peer_mute(host.port());
                        stream(&sock).write_all(&[3u8; 5000]).unwrap();
                        stream(&peer_sock).write_all(&[4u8; 5000]).unwrap();
                    }
                    SackHeld => {
                        settle();
                        let k = kernel_tcp::seqs(&sock).unwrap();
                        let ooo = Forged {
                            seq: k.rcv_nxt.wrapping_add(1000),
                            ack: Some(k.write_seq),
                            payload: 100,
                            ..Forged::default()
                        };
                        self.spoof(v6, peer, host, &ooo);
                        sack_edge = Some(k.rcv_nxt.wrapping_add(1100));
                    }
                    CloseWait => peer_sock.shutdown(Shutdown::Write).unwrap(),
                    LastAck => {
                        peer_sock.shutdown(Shutdown::Write).unwrap();
                        settle();
                        self.peer_ignores(host.port());
                        sock.shutdown(Shutdown::Write).unwrap();
                    }
                    FinWait1 => {
                        self.peer_ignores(host.port());
                        sock.shutdown(Shutdown::Write).unwrap();
                    }
                    FinWait2 => sock.shutdown(Shutdown::Write).unwrap(),
                    Closing => {
                        self.peer_ignores(host.port());
                        sock.shutdown(Shutdown::Write).unwrap();
                        settle();
                        peer_sock.shutdown(Shutdown::Write).unwrap();
                    }
                    TimeWait => {
                        sock.shutdown(Shutdown::Write).unwrap();
                        settle();
                        peer_sock.shutdown(Shutdown::Write).unwrap();
                        keep_host = false;
                    }
                    FinWait2Orphan => keep_host = false,
                    SynSent | SynRecv => unreachable!(),
                }
                settle();
                let k = kernel_tcp::seqs(&sock).unwrap();
                let mut base = k.rcv_nxt;
                let keep = vec![peer_sock, listener];
                let sock = if keep_host {
                    Some(sock)
                } else {
                    if state == TimeWait {
                        // The peer's FIN is in: TIME_WAIT's RCV.NXT is past
                        // it (k was read after it arrived).
                        base = k.rcv_nxt;
                    }
                    // FinWait2Orphan: closed with nothing unread, the FIN
                    // goes out and is acknowledged, and the orphan waits in
                    // a TIME_WAIT socket of the FIN_WAIT2 flavour.
                    drop(sock);
                    None
                };
                settle();
                Target {
                    state,
                    v6,
                    host,
                    peer,
                    sock,
                    _keep: keep,
                    base,
                    snd_nxt: k.write_seq,
                    sack_edge,
                }
            }
        };
        t.check_state(self);
        t
    }
}

impl Target {
    /// Whether the host's socket (or its TIME_WAIT or request socket) is
    /// still there.
    pub(super) fn alive(&self, lab: &Lab) -> bool {
        match &self.sock {
            Some(s) => {
                let st = kernel_tcp::state(s).unwrap();
                st != tcp_state::CLOSE
            }
            None => {
                let filter = format!(
                    "( sport = :{} and dport = :{} )",
                    self.host.port(),
                    self.peer.port()
                );
                let out = lab.pair.server.exec(&["ss", "-Htan", &filter]);
                !out.trim().is_empty()
            }
        }
    }

    /// Waits (up to 3 s: the machine may be loaded) until the host's socket
    /// is in the state the scenario built.
    pub(super) fn check_state(&mut self, lab: &Lab) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let (ok, got) = self.in_state(lab);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} (v6 {}): the socket is {got}",
                self.state,
                self.v6
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn in_state(&self, lab: &Lab) -> (bool, String) {
        let want = match self.state {
            State::Established | State::InFlight | State::SackHeld => tcp_state::ESTABLISHED,
            State::CloseWait => tcp_state::CLOSE_WAIT,
            State::LastAck => tcp_state::LAST_ACK,
            State::FinWait1 => tcp_state::FIN_WAIT1,
            State::FinWait2 => tcp_state::FIN_WAIT2,
            State::Closing => tcp_state::CLOSING,
            State::SynSent => tcp_state::SYN_SENT,
            State::SynRecv | State::TimeWait | State::FinWait2Orphan => {
                let name = match self.state {
                    State::SynRecv => "SYN-RECV",
                    State::TimeWait => "TIME-WAIT",
                    _ => "FIN-WAIT-2",
                };
                let out = lab.pair.server.exec(&[
                    "ss",
                    "-Htan",
                    &format!("( sport = :{} )", self.host.port()),
                ]);
                return (out.contains(name), out);
            }
        };
        let got = kernel_tcp::state(self.sock.as_ref().unwrap()).unwrap();
        (got == want, tcp_state::name(got).to_string())
    }
}
