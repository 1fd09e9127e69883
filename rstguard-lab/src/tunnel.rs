//! Two namespaces joined by tun devices: a device without a link-layer
//! header, as tun, WireGuard and IP tunnels are. Each namespace has a `tun0`
//! (IFF_TUN, no packet information: reads and writes are bare IP packets);
//! a forwarder thread of this process carries each packet read from one
//! device's file descriptor to the other's, as a VPN daemon would.
//!
//! ```text
//!  client tun0 ==(forwarder thread)== tun0 server
//!  10.201.20.2                        10.201.20.1
//!  fd01:20::2                         fd01:20::1
//!                                      ^ inject(): packets "from the tunnel"
//! ```
//!
//! [`Tunnel::inject`] writes packets into the server's device as if they
//! had come through the tunnel: an attacker whose packets the tunnel
//! carries (a compromised peer, or one whose inner source addresses the
//! tunnel does not check).

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Read, Write},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{netns::Netns, require_root, routed::Host};

pub const TUN_SERVER: Host = Host {
    v4: "10.201.20.1",
    v6: "fd01:20::1",
};
pub const TUN_CLIENT: Host = Host {
    v4: "10.201.20.2",
    v6: "fd01:20::2",
};

/// The device's name in each namespace.
pub const TUN: &str = "tun0";

/// How long the forwarder runs at most, whatever happens to the test.
const FORWARDER_LIFETIME: Duration = Duration::from_secs(600);

/// The two namespaces and the forwarder between their tun devices; the
/// forwarder stops and the namespaces go on drop.
pub struct Tunnel {
    /// First, so that the devices go before their namespaces.
    server_tun: Arc<File>,
    pub client: Netns,
    pub server: Netns,
    stop: Arc<AtomicBool>,
    /// Packets carried, either way.
    carried: Arc<AtomicU64>,
    forwarder: Option<JoinHandle<()>>,
}

/// Opens `/dev/net/tun` and creates device `name` (IFF_TUN | IFF_NO_PI) in
/// the network namespace of the calling thread, non-blocking.
fn open_tun(name: &str) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("opening /dev/net/tun");
    // SAFETY: ifreq is plain old data; all zeros is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    assert!(name.len() < libc::IFNAMSIZ, "interface name too long");
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: a valid fd and a valid ifreq that outlives the call.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    assert_eq!(
        r,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fcntl on our own fd.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        assert!(flags >= 0, "F_GETFL");
        assert_eq!(
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK),
            0,
            "F_SETFL O_NONBLOCK"
        );
    }
    file
}

fn configure(ns: &Netns, host: Host) {
    ns.ip(&["addr", "add", &format!("{}/24", host.v4), "dev", TUN]);
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{}/64", host.v6),
        "dev",
        TUN,
        "nodad",
    ]);
    ns.ip(&["link", "set", TUN, "up"]);
}

impl Tunnel {
    #[expect(
        clippy::new_without_default,
        reason = "creates network namespaces and tun devices: nothing a default value should do"
    )]
    pub fn new() -> Tunnel {
        require_root();
        let client = Netns::new("tcli");
        let server = Netns::new("tsrv");
        let client_tun = Arc::new(client.run(|| open_tun(TUN)));
        let server_tun = Arc::new(server.run(|| open_tun(TUN)));
        configure(&client, TUN_CLIENT);
        configure(&server, TUN_SERVER);
        let stop = Arc::new(AtomicBool::new(false));
        let carried = Arc::new(AtomicU64::new(0));
        let forwarder = {
            let (a, b) = (Arc::clone(&client_tun), Arc::clone(&server_tun));
            let (stop, carried) = (Arc::clone(&stop), Arc::clone(&carried));
            thread::spawn(move || forward(&a, &b, &stop, &carried))
        };
        Tunnel {
            server_tun,
            client,
            server,
            stop,
            carried,
            forwarder: Some(forwarder),
        }
    }

    /// Writes `packet` (a bare IP packet) into the server's tun device: the
    /// server's stack receives it from `tun0`, as if it had come through
    /// the tunnel.
    pub fn inject(&self, packet: &[u8]) {
        let mut f: &File = &self.server_tun;
        f.write_all(packet).expect("writing into the server's tun");
    }

    /// Packets the forwarder has carried, either way.
    pub fn carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.forwarder.take() {
            let _ = h.join();
        }
    }
}

/// Carries packets between the two devices until `stop` (or
/// [`FORWARDER_LIFETIME`]): poll both, read every packet waiting on one,
/// write it to the other. A write the other device refuses (it is down, its
/// queue is full) loses the packet, as a tunnel would.
fn forward(a: &File, b: &File, stop: &AtomicBool, carried: &AtomicU64) {
    let deadline = Instant::now() + FORWARDER_LIFETIME;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut fds = [
            libc::pollfd {
                fd: a.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: b.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, 50) };
        if r <= 0 {
            continue;
        }
        for (i, (mut from, mut to)) in [(a, b), (b, a)].into_iter().enumerate() {
            if fds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            // Drain what is waiting, a bounded number at a time so that the
            // other direction gets its turn.
            for _ in 0..256 {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => {
                        if to.write(&buf[..k]).is_ok() {
                            carried.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => panic!("reading a tun device: {e}"),
                }
            }
        }
    }
}
