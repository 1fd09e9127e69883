//! Socket mode against the kernel itself. rstguard runs in monitor mode
//! with `--state socket` on the host's interface; live sockets on the host
//! are brought into every state a RST can meet (established, with data in
//! flight both ways, holding SACK blocks, after a FIN each way, SYN_SENT,
//! SYN_RECV, TIME_WAIT and its FIN_WAIT2 flavour), IPv4 and IPv6; RSTs are
//! aimed at them one at a time, around the numbers the sockets really hold
//! (read with TCP_REPAIR) and at random. For each one, rstguard's verdict
//! (its counters) is set beside the kernel's reaction to the very same
//! packet: the connection reset (the socket's state, or the TIME_WAIT or
//! request socket gone), a challenge ACK (nstat's TCPChallengeACK and
//! TCPACKSkippedChallenge, and the ACK itself in a capture on the peer's
//! side), or nothing. `exact` (and `time_wait`, a TIME_WAIT socket
//! ended) must be what resets, every time, and nothing else may.

mod aim;
mod lab;
mod targets;

use aim::aims;

use std::{
    collections::BTreeMap,
    fmt,
    io::Write,
    net::{IpAddr, Shutdown, SocketAddr, TcpStream},
    os::fd::{AsRawFd, OwnedFd},
    thread,
    time::{Duration, Instant},
};

use rand::Rng;
use rstguard::{maps::Maps, paths::PinDir};
use rstguard_common::{
    count::rst_slot, judge::socket::tcp_state, Action, Counter, Counters, Verdict,
};
use rstguard_lab::{
    kernel_tcp,
    spoof::{Forged, Spoofer},
    Daemon, Pair, CLIENT4, CLIENT6, SERVER4, SERVER6,
};
use socket2::{Domain, Socket, Type};

/// What the kernel did with one RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reaction {
    /// The connection (or the TIME_WAIT or request socket) ended.
    Reset,
    /// A challenge ACK (sent, or skipped by the per-socket rate limit).
    Challenge,
    /// Another ACK (a FIN_WAIT2 TIME_WAIT socket answers out-of-window
    /// segments).
    Ack,
    /// Nothing: dropped silently.
    Silent,
}

impl fmt::Display for Reaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reaction::Reset => "reset",
            Reaction::Challenge => "challenge ACK",
            Reaction::Ack => "ACK",
            Reaction::Silent => "silent drop",
        })
    }
}

/// The states RSTs are aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Established,
    InFlight,
    SackHeld,
    CloseWait,
    LastAck,
    FinWait1,
    FinWait2,
    Closing,
    SynSent,
    SynRecv,
    TimeWait,
    FinWait2Orphan,
}

const STATES: [State; 12] = [
    State::Established,
    State::InFlight,
    State::SackHeld,
    State::CloseWait,
    State::LastAck,
    State::FinWait1,
    State::FinWait2,
    State::Closing,
    State::SynSent,
    State::SynRecv,
    State::TimeWait,
    State::FinWait2Orphan,
];

/// The host (rstguard on its interface, in monitor mode, socket mode) and
/// its peer.
struct Lab {
    pair: Pair,
    _daemon: Daemon,
    maps: Maps,
    ifindex: u32,
    /// Packets arriving at the peer (AF_PACKET on c0).
    capture: OwnedFd,
    next_port: u16,
}

/// One socket on the host in a state, and what it holds.
struct Target {
    state: State,
    v6: bool,
    host: SocketAddr,
    peer: SocketAddr,
    /// The host's socket, where it still has one (TIME_WAIT and request
    /// sockets have none).
    sock: Option<Socket>,
    /// What keeps the scenario alive (the peer's sockets, the listener).
    _keep: Vec<Socket>,
    /// Where RSTs are aimed: RCV.NXT, or for SYN_SENT the ACK of its SYN.
    base: u32,
    /// The host's SND.NXT (an ACK for RST|ACKs), and a SACK edge it holds.
    snd_nxt: u32,
    sack_edge: Option<u32>,
}

/// The daemon's pinned maps (pinned just after it says it attached).
pub fn open_maps(pin_dir: &str) -> Maps {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Maps::open(&PinDir::new(pin_dir)) {
            Ok(m) => return m,
            Err(e) if Instant::now() > deadline => panic!("the pinned maps: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn socket(v6: bool) -> Socket {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    Socket::new(domain, Type::STREAM, None).expect("a socket")
}

fn settle() {
    thread::sleep(Duration::from_millis(40));
}

#[test]
fn socket_mode_agrees_with_the_kernel_on_every_rst() {
    let mut lab = Lab::new();
    let mut rng = rand::thread_rng();
    // (state, verdict, reaction) -> RSTs.
    let mut table: BTreeMap<(State, Verdict, Reaction), u32> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut total = 0u32;
    let mut uncaptured = 0u32;
    for v6 in [false, true] {
        for state in STATES {
            // One state only, when debugging (its name as in the table).
            if let Ok(only) = std::env::var("RSTGUARD_DIFF_STATE") {
                if format!("{state:?}") != only {
                    continue;
                }
            }
            let mut t = lab.target(state, v6);
            let shots = aims(state, t.sack_edge.is_some(), &mut rng, 24);
            for (seq, ack) in shots {
                if !t.alive(&lab) {
                    t = lab.target(state, v6);
                }
                let (seq, ack) = (seq.of(&t), ack.map(|a| a.of(&t)));
                let before = lab.counters();
                let mibs = lab.mibs();
                let _ = lab.acks_captured(t.host, t.peer);
                lab.spoof(v6, t.peer, t.host, &Forged::rst(seq, ack));
                let verdict = lab.verdict_since(&before);
                thread::sleep(Duration::from_millis(30));
                let after = lab.mibs();
                let d = |k: &str| after.get(k).unwrap_or(&0) - mibs.get(k).unwrap_or(&0);
                let acks = lab.acks_captured(t.host, t.peer);
                let reset = if state == State::SynRecv {
                    // A SYN the peer retransmits could make a new request
                    // before `ss` looks: the kernel's own count of dropped
                    // requests tells.
                    d("EmbryonicRsts") > 0
                } else {
                    !t.alive(&lab)
                };
                let reaction = if reset {
                    Reaction::Reset
                } else if d("TCPChallengeACK") + d("TCPACKSkippedChallenge") > 0 {
                    Reaction::Challenge
                } else if acks > 0 || d("TCPACKSkippedFinWait2") > 0 {
                    Reaction::Ack
                } else {
                    Reaction::Silent
                };
                // The capture shows every challenge ACK the kernel counted
                // as sent.
                if reaction == Reaction::Challenge && u64::from(acks) < d("TCPChallengeACK") {
                    uncaptured += 1;
                }
                total += 1;
                *table.entry((state, verdict, reaction)).or_default() += 1;
                let expected_reset = matches!(verdict, Verdict::Exact | Verdict::TimeWait);
                let consistent = match verdict {
                    Verdict::Exact | Verdict::TimeWait => reaction == Reaction::Reset,
                    Verdict::InWindow => reaction == Reaction::Challenge,
                    _ => matches!(reaction, Reaction::Silent | Reaction::Ack),
                };
                if std::env::var("RSTGUARD_DIFF_TRACE").is_ok()
                    || !consistent
                    || expected_reset != (reaction == Reaction::Reset)
                {
                    let moved: Vec<String> = after
                        .iter()
                        .filter(|(k, v)| mibs.get(*k) != Some(v))
                        .map(|(k, v)| format!("{k}+{}", v - mibs.get(k).unwrap_or(&0)))
                        .collect();
                    let ss = lab.pair.server.exec(&[
                        "ss",
                        "-Htanie",
                        &format!("( sport = :{} )", t.host.port()),
                    ]);
                    mismatches.push(format!(
                        "ss: {ss} {state:?} v6={v6} seq={seq} ack={ack:?} base={} verdict={verdict} kernel={reaction} acks={acks} mibs={}",
                        t.base,
                        moved.join(",")
                    ));
                }
            }
        }
    }
    eprintln!("\n{total} RSTs; verdict against the kernel's reaction:");
    eprintln!(
        "{:<16} {:<14} {:<14} {:>6}",
        "state", "verdict", "kernel", "RSTs"
    );
    for ((state, verdict, reaction), n) in &table {
        eprintln!(
            "{:<16} {:<14} {:<14} {n:>6}",
            format!("{state:?}"),
            verdict.name(),
            reaction.to_string()
        );
    }
    let mut by_verdict: BTreeMap<(Verdict, Reaction), u32> = BTreeMap::new();
    for ((_, v, r), n) in &table {
        *by_verdict.entry((*v, *r)).or_default() += n;
    }
    eprintln!("\nby verdict:");
    for ((v, r), n) in &by_verdict {
        eprintln!("{:<14} {:<14} {n:>6}", v.name(), r.to_string());
    }
    assert_eq!(uncaptured, 0, "challenge ACKs counted but not captured");
    assert!(
        mismatches.is_empty(),
        "{} of {total} RSTs judged unlike the kernel:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    for state in STATES {
        assert!(
            table
                .keys()
                .any(|(s, _, r)| *s == state && *r == Reaction::Reset),
            "{state:?}: no RST reset it"
        );
    }
}
