//! A legacy TCP stack: a smoltcp endpoint on a TAP device. Like RFC 793
//! stacks (and unlike Linux since 3.6), smoltcp closes a connection on any
//! RST inside its receive window, exact or not. It reassembles IPv4
//! fragments (smoltcp's `proto-ipv4-fragmentation`, enabled in the
//! workspace), as embedded stacks do: a RST cut into fragments reaches it
//! whole.
//!
//! The peer runs on a thread of this process that has entered the peer's
//! namespace, so the TAP device is created there.

use std::{
    fs::File,
    os::fd::{AsFd, AsRawFd},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
};

use nix::sched::{setns, CloneFlags};
use smoltcp::{
    iface::{Config, Interface, SocketSet},
    phy::{wait as phy_wait, Medium, TunTapInterface},
    socket::tcp,
    time::{Duration, Instant},
    wire::{EthernetAddress, IpCidr, Ipv4Address},
};

/// The peer's receive buffer: with window scaling (which Linux offers and
/// smoltcp accepts) it is also the window it advertises.
pub const WINDOW: usize = 256 * 1024;

/// What the peer reports.
#[derive(Clone, Default)]
pub struct Stats {
    /// Bytes received on the current connection.
    pub received: Arc<AtomicU64>,
    /// Connections it accepted.
    pub accepted: Arc<AtomicU32>,
    /// Connections that ended without both FINs: a RST closed them.
    pub resets: Arc<AtomicU32>,
}

/// A running smoltcp peer, stopped on drop.
pub struct LegacyPeer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub stats: Stats,
}

impl LegacyPeer {
    /// Starts a peer in namespace `netns` on a new TAP device `tap`, with
    /// address `addr/24`, default route via `gateway`, listening on `port`.
    pub fn start(
        netns: &str,
        tap: &str,
        addr: Ipv4Address,
        gateway: Ipv4Address,
        port: u16,
    ) -> LegacyPeer {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Stats::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let (stop, stats, netns, tap) = (
                Arc::clone(&stop),
                stats.clone(),
                netns.to_string(),
                tap.to_string(),
            );
            thread::spawn(move || {
                let ns = File::open(PathBuf::from("/var/run/netns").join(&netns))
                    .expect("opening the namespace");
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).expect("entering the namespace");
                let device =
                    TunTapInterface::new(&tap, Medium::Ethernet).expect("creating the TAP device");
                ready_tx.send(()).expect("signalling readiness");
                serve(device, addr, gateway, port, &stop, &stats);
            })
        };
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the TAP device was created");
        LegacyPeer {
            stop,
            handle: Some(handle),
            stats,
        }
    }

    pub fn received(&self) -> u64 {
        self.stats.received.load(Ordering::Relaxed)
    }

    pub fn resets(&self) -> u32 {
        self.stats.resets.load(Ordering::Relaxed)
    }
}

impl Drop for LegacyPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    mut device: TunTapInterface,
    addr: Ipv4Address,
    gateway: Ipv4Address,
    port: u16,
    stop: &AtomicBool,
    stats: &Stats,
) {
    let fd = device.as_raw_fd();
    let mut config = Config::new(EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]).into());
    config.random_seed = rand::random();
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(addr.into(), 24)).expect("one address");
    });
    iface
        .routes_mut()
        .add_default_ipv4_route(gateway)
        .expect("a default route");
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; WINDOW]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    );
    let mut sockets = SocketSet::new(vec![]);
    let handle = sockets.add(socket);
    let mut was_active = false;
    let mut closing = false;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        iface.poll(Instant::now(), &mut device, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(handle);
        if s.is_active() && !was_active {
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            stats.received.store(0, Ordering::Relaxed);
            closing = false;
        }
        if matches!(
            s.state(),
            tcp::State::CloseWait
                | tcp::State::LastAck
                | tcp::State::FinWait1
                | tcp::State::FinWait2
                | tcp::State::TimeWait
                | tcp::State::Closing
        ) {
            closing = true;
        }
        if !s.is_active() && was_active && !closing {
            // From a live connection straight to CLOSED, without the close
            // sequence: a RST ended it.
            stats.resets.fetch_add(1, Ordering::Relaxed);
        }
        was_active = s.is_active();
        while s.can_recv() {
            match s.recv_slice(&mut buf) {
                Ok(k) if k > 0 => {
                    stats.received.fetch_add(k as u64, Ordering::Relaxed);
                }
                _ => break,
            }
        }
        if s.state() == tcp::State::CloseWait {
            s.close();
        }
        if !s.is_open() {
            s.listen(port).expect("listening");
        }
        let delay = iface
            .poll_delay(Instant::now(), &sockets)
            .unwrap_or(Duration::from_millis(20));
        let _ = phy_wait(fd, Some(delay.min(Duration::from_millis(20))));
    }
}
