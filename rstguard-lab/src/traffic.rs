//! Traffic: live transfers, HTTP scrapes, reading sockets to the end.

use std::{
    io::Read,
    net::{IpAddr, SocketAddr},
    sync::{atomic::Ordering, mpsc, Arc},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::netns::Netns;

pub fn sockaddr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port)
}

/// Reads from a stream until EOF or error; returns the bytes read and the
/// error kind that ended it (None at a clean EOF).
pub fn drain(mut r: impl Read) -> (u64, Option<std::io::ErrorKind>) {
    let mut buf = [0u8; 65536];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (total, None),
            Ok(k) => total += k as u64,
            Err(e) => return (total, Some(e.kind())),
        }
    }
}

/// A live TCP transfer, client -> server, paced so that it does not
/// starve the rest of the test of CPU, until [`LiveTransfer::finish`].
pub struct LiveTransfer {
    pub client_port: u16,
    received: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Set: the server aborts (SO_LINGER 0, close): a legitimate RST.
    abort: Arc<std::sync::atomic::AtomicBool>,
    /// None when the server is not a kernel socket of this lab (a legacy peer).
    server: Option<JoinHandle<Option<std::io::ErrorKind>>>,
    client: JoinHandle<Result<u64, std::io::ErrorKind>>,
}

/// How a transfer ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub sent: Result<u64, std::io::ErrorKind>,
    pub received: u64,
    /// The error that ended the server's reads (None: a clean EOF).
    pub server_error: Option<std::io::ErrorKind>,
}

/// 16 KiB every millisecond (about 16 MB/s).
pub const FAST: (usize, u64) = (16384, 1);

/// How a transfer's client sends.
#[derive(Clone, Copy, Debug)]
pub struct ClientOpts {
    /// `pace.0` bytes every `pace.1` ms.
    pub pace: (usize, u64),
    /// Clear DF on its IPv4 packets (`IP_MTU_DISCOVER = IP_PMTUDISC_DONT`),
    /// so that a router with a smaller MTU fragments them rather than
    /// sending back "fragmentation needed".
    pub df_clear: bool,
}

impl Default for ClientOpts {
    fn default() -> Self {
        ClientOpts {
            pace: FAST,
            df_clear: false,
        }
    }
}

impl LiveTransfer {
    /// Server on `server_ip:port` in `server`, client in `client`.
    pub fn start(
        server: &Netns,
        client: &Netns,
        server_ip: &'static str,
        port: u16,
    ) -> LiveTransfer {
        let addr = sockaddr(server_ip, port);
        Self::between(server, client, addr)
    }

    /// Server on `addr` in `server`, client in `client`.
    pub fn between(server: &Netns, client: &Netns, addr: SocketAddr) -> LiveTransfer {
        Self::between_with(server, client, addr, ClientOpts::default())
    }

    /// Server on `addr` in `server`, a client sending as `opts` says in
    /// `client`.
    pub fn between_with(
        server: &Netns,
        client: &Netns,
        addr: SocketAddr,
        opts: ClientOpts,
    ) -> LiveTransfer {
        use std::{
            net::TcpListener,
            sync::atomic::{AtomicBool, AtomicU64},
        };
        let received = Arc::new(AtomicU64::new(0));
        let abort = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let server = {
            let received = Arc::clone(&received);
            let abort = Arc::clone(&abort);
            server.spawn(move || {
                let l = TcpListener::bind(addr).unwrap();
                ready_tx.send(()).unwrap();
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 65536];
                loop {
                    if abort.load(Ordering::Relaxed) {
                        socket2::SockRef::from(&s)
                            .set_linger(Some(Duration::ZERO))
                            .unwrap();
                        drop(s);
                        return None;
                    }
                    match s.read(&mut buf) {
                        Ok(0) => return None,
                        Ok(k) => {
                            received.fetch_add(k as u64, Ordering::Relaxed);
                        }
                        Err(e) => return Some(e.kind()),
                    }
                }
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server listens");
        let mut t = Self::to_with(client, addr, opts);
        t.received = received;
        t.server = Some(server);
        t.abort = abort;
        t
    }

    /// A client in `client` sending `pace.0` bytes every `pace.1` ms to
    /// `addr`, whatever listens there.
    pub fn to(client: &Netns, addr: SocketAddr, pace: (usize, u64)) -> LiveTransfer {
        Self::to_with(
            client,
            addr,
            ClientOpts {
                pace,
                ..ClientOpts::default()
            },
        )
    }

    /// A client in `client` sending to `addr` as `opts` says.
    pub fn to_with(client: &Netns, addr: SocketAddr, opts: ClientOpts) -> LiveTransfer {
        use std::{
            io::Write,
            net::Shutdown,
            sync::atomic::{AtomicBool, AtomicU64},
        };
        let pace = opts.pace;
        let stop = Arc::new(AtomicBool::new(false));
        let (port_tx, port_rx) = mpsc::channel();
        let client = {
            let stop = Arc::clone(&stop);
            client.spawn(move || {
                let mut c = connect(addr, opts.df_clear);
                port_tx.send(c.local_addr().unwrap().port()).unwrap();
                let chunk = vec![1u8; pace.0];
                let mut sent = 0u64;
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    c.write_all(&chunk).map_err(|e| e.kind())?;
                    sent += chunk.len() as u64;
                    thread::sleep(Duration::from_millis(pace.1));
                }
                c.shutdown(Shutdown::Write).map_err(|e| e.kind())?;
                // Wait for the peer's FIN (or its RST) so that all was read.
                let mut rest = Vec::new();
                let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                c.read_to_end(&mut rest).map_err(|e| e.kind())?;
                Ok(sent)
            })
        };
        let client_port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("connected");
        LiveTransfer {
            client_port,
            received: Arc::new(AtomicU64::new(0)),
            stop,
            abort: Arc::new(AtomicBool::new(false)),
            server: None,
            client,
        }
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until more bytes arrive: the flow is alive.
    pub fn assert_flowing(&self) {
        let before = self.received();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.received() == before {
            assert!(
                Instant::now() < deadline,
                "the transfer stalled at {before} bytes"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the legacy peer receives more bytes.
    pub fn assert_flowing_to(&self, peer: &crate::legacy::LegacyPeer) {
        let before = peer.received();
        let deadline = Instant::now() + Duration::from_secs(5);
        while peer.received() == before {
            assert!(
                Instant::now() < deadline,
                "the transfer to the legacy peer stalled"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the client has stopped (an error ended it).
    pub fn client_done(&self) -> bool {
        self.client.is_finished()
    }

    /// The server aborts the connection (SO_LINGER 0, then close: its
    /// kernel sends a RST), as soon as its next read returns; then waits
    /// (bounded) for the client to see it.
    pub fn abort_server(&self) {
        self.abort.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.client.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the client never saw the server's abort"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the client, waits for the server to read everything.
    pub fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.client.join().expect("the client thread panicked");
        let server_error = self
            .server
            .and_then(|s| s.join().expect("the server thread panicked"));
        Outcome {
            sent,
            received: self.received.load(Ordering::Relaxed),
            server_error,
        }
    }
}

/// Connects to `addr` (within 5 s), with DF cleared when `df_clear`.
fn connect(addr: SocketAddr, df_clear: bool) -> std::net::TcpStream {
    use std::os::fd::AsRawFd;
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("a TCP socket");
    if df_clear {
        assert!(addr.is_ipv4(), "IPv6 routers never fragment: DF is IPv4's");
        let dont: libc::c_int = libc::IP_PMTUDISC_DONT;
        // SAFETY: a valid socket and an int option of the right size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&dont as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "IP_MTU_DISCOVER: {}", std::io::Error::last_os_error());
    }
    s.connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connecting");
    s.into()
}

/// GET `path` over HTTP/1.0 from inside `ns`; returns (status, body).
pub fn http_get(ns: &Netns, addr: &'static str, path: &'static str) -> (u16, String) {
    ns.run(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).expect("connecting to the metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).expect("reading the response");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header and a body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status");
        (status, body.to_string())
    })
}

/// Runs `nstat` in `ns` and returns the absolute values of `counters`
/// (TcpExt... names), 0 for those it does not print.
pub fn nstat(ns: &Netns, counters: &[&str]) -> Vec<u64> {
    let out = ns.exec(&["nstat", "-az"]);
    counters
        .iter()
        .map(|c| {
            out.lines()
                .find_map(|l| {
                    let mut f = l.split_whitespace();
                    (f.next() == Some(*c))
                        .then(|| f.next().and_then(|v| v.parse().ok()).unwrap_or(0))
                })
                .unwrap_or(0)
        })
        .collect()
}

/// Binds a listener on `addr` in `ns`, waits until it is bound, and runs
/// `serve` on it there (on the namespace's thread).
pub fn serve_on<T: Send + 'static>(
    ns: &Netns,
    addr: SocketAddr,
    serve: impl FnOnce(std::net::TcpListener) -> T + Send + 'static,
) -> JoinHandle<T> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = ns.spawn(move || {
        let l = std::net::TcpListener::bind(addr).expect("binding the listener");
        ready_tx.send(()).expect("signalling readiness");
        serve(l)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the listener is bound");
    handle
}
