//! Words for what the programs saw: endpoints as text, and a RST's likely
//! cause with the evidence it rests on, in one line a person can read
//! (`rstguard resets`).

use std::{
    net::{IpAddr, Ipv6Addr},
    time::{Duration, UNIX_EPOCH},
};

use rstguard_common::{
    clock::seen_to_secs,
    judge::cause::{
        EVIDENCE_AFTER_RST, EVIDENCE_DATA_AFTER, EVIDENCE_DATA_UNREAD, EVIDENCE_SENDER_CLOSED,
        EVIDENCE_SOCKET, EVIDENCE_TTL_KNOWN,
    },
    parse::{ACK, FIN, PSH, RST, SYN},
    Action, Cause, Direction, Endpoints, ResetRecord, RstEvent, Verdict,
};
use serde::Serialize;

/// The two endpoints of a flow as `address:port` (IPv6 in brackets).
pub fn endpoints(key: &Endpoints) -> (String, String) {
    let addr = |a: [u8; 16]| {
        let v6 = Ipv6Addr::from(a);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    };
    let fmt = |a: IpAddr, p: u16| match a {
        IpAddr::V4(v4) => format!("{v4}:{p}"),
        IpAddr::V6(v6) => format!("[{v6}]:{p}"),
    };
    (
        fmt(addr(key.lo_addr), key.lo_port),
        fmt(addr(key.hi_addr), key.hi_port),
    )
}

/// The RST's sender and receiver as text.
pub fn sender_receiver(e: &RstEvent) -> (String, String) {
    let (lo, hi) = endpoints(&e.ends);
    if e.sender_is_lo != 0 {
        (lo, hi)
    } else {
        (hi, lo)
    }
}

/// TCP flags as `RST|ACK`.
pub fn flags(f: u8) -> String {
    let names = [
        (SYN, "SYN"),
        (FIN, "FIN"),
        (RST, "RST"),
        (PSH, "PSH"),
        (ACK, "ACK"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    set.join("|")
}

/// A verdict from its raw byte (an unknown one reads as `no_flow`, the
/// verdict that claims nothing).
pub fn verdict(v: u8) -> Verdict {
    Verdict::ALL
        .into_iter()
        .find(|x| *x as u8 == v)
        .unwrap_or(Verdict::NoFlow)
}

/// One recorded RST, as `rstguard resets --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ResetView {
    pub number: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub unix_ns: u64,
    pub device: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub verdict: Verdict,
    pub action: Action,
    pub cause: Cause,
    pub flags: String,
    pub seq: u32,
    /// The RST's ACK number, when it carries one.
    pub ack: Option<u32>,
    pub ttl: u8,
    /// The TTL / hop limit of the sender's own segments, when known.
    pub peer_ttl: Option<u8>,
    /// How long the flow had been idle (about 2 s resolution), when
    /// tracked.
    pub idle_secs: Option<u32>,
    /// The cause's evidence, in words.
    pub evidence: String,
}

impl ResetView {
    pub fn new(r: &ResetRecord, device: String) -> ResetView {
        let e = &r.event;
        let (from, to) = sender_receiver(e);
        let tracked = e.has_flow != 0;
        ResetView {
            number: r.number,
            time: humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(r.unix_ns))
                .to_string(),
            unix_ns: r.unix_ns,
            device,
            direction: Direction::from_raw(e.direction),
            from,
            to,
            verdict: verdict(e.verdict),
            action: Action::from_raw(e.action),
            cause: Cause::from_raw(e.cause),
            flags: flags(e.tcp_flags),
            seq: e.seq,
            ack: (e.tcp_flags & ACK != 0).then_some(e.ack),
            ttl: e.ttl,
            peer_ttl: (e.evidence & EVIDENCE_TTL_KNOWN != 0).then_some(e.peer_ttl),
            idle_secs: tracked.then(|| seen_to_secs(e.idle)),
            evidence: evidence(e),
        }
    }

    /// One line: when, where, which way, what was decided, and why.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} -> {} {} {} {}: {}",
            self.time,
            self.device,
            self.direction,
            self.from,
            self.to,
            self.verdict,
            self.action.past(),
            self.cause,
            self.evidence
        )
    }
}

/// "6 hops closer than the peer" (the same initial TTL assumed).
fn distance(ttl: u8, peer: u8) -> String {
    let d = i16::from(ttl) - i16::from(peer);
    let hops = |n: i16| {
        if n == 1 {
            "1 hop".to_string()
        } else {
            format!("{n} hops")
        }
    };
    match d {
        0 => "from the peer's distance".into(),
        d if d > 0 => format!("sent {} closer than the peer", hops(d)),
        d => format!(
            "sent {} further than the peer, or from another system",
            hops(-d)
        ),
    }
}

/// The evidence of an event's cause, in words.
pub fn evidence(e: &RstEvent) -> String {
    let has = |bit: u8| e.evidence & bit != 0;
    let ttl = |ttl: u8| {
        if has(EVIDENCE_TTL_KNOWN) {
            format!(
                "TTL {ttl}, the peer's segments arrive with {}: {}",
                e.peer_ttl,
                distance(ttl, e.peer_ttl)
            )
        } else {
            format!("TTL {ttl}; the peer's own TTL is not known")
        }
    };
    let idle = seen_to_secs(e.idle);
    let source = if has(EVIDENCE_SOCKET) {
        " (judged from the socket)"
    } else {
        ""
    };
    let v = verdict(e.verdict);
    let text = match Cause::from_raw(e.cause) {
        Cause::Refused => format!(
            "it answers the SYN (ACK {}): nothing listens on the port, or a firewall rejects the \
             connection",
            e.ack
        ),
        Cause::NoSocket => format!(
            "no ACK, its sequence number is the receiver's ACK: the sender has no such connection \
             (it closed, rebooted, or its socket was destroyed); {}",
            ttl(e.ttl)
        ),
        Cause::PeerClosed => format!(
            "after the sender's FIN, answering more data: it had closed and the other side kept \
             writing; {}",
            ttl(e.ttl)
        ),
        Cause::Abort if has(EVIDENCE_DATA_UNREAD) => format!(
            "RST|ACK from the sender's next sequence number, and the latest data went to it: it \
             closed with data unread (or aborted); {}",
            ttl(e.ttl)
        ),
        Cause::Abort => format!(
            "RST|ACK from the sender's next sequence number with nothing of the other side's \
             pending: SO_LINGER 0 or an application abort; {}",
            ttl(e.ttl)
        ),
        Cause::IdleExpired => format!(
            "{}, after the flow was idle {idle} s: a NAT, load balancer or firewall on the way \
             forgot it",
            ttl(e.ttl)
        ),
        Cause::Middlebox => format!(
            "{}: a firewall's reject, a proxy, or an injector on the path",
            ttl(e.ttl)
        ),
        Cause::Injected if has(EVIDENCE_DATA_AFTER) => format!(
            "the sender's data went on after its RST (seq {}, TTL {} like its own segments): that \
             RST was forged on the path",
            e.seq, e.ttl
        ),
        Cause::Injected => format!(
            "a RST with another sequence number after the first, {}: an injector's burst",
            ttl(e.ttl)
        ),
        Cause::Blind if e.has_flow != 0 => format!(
            "{v}: sequence {} where a peer uses {}, window {}: a blind guess",
            e.seq, e.expected, e.window
        ),
        Cause::Blind => format!("{v}: a blind guess"),
        Cause::Hidden => format!("{v}: a RST hidden from the parser"),
        Cause::TimeWait => "at a flow in TIME_WAIT: a late RST, or TIME_WAIT assassination".into(),
        Cause::Unknown => match v {
            Verdict::Trusted => "from a trusted source: not examined".into(),
            Verdict::OneSided => "only one direction of the flow was seen here: no evidence".into(),
            _ => "the flow is not tracked: no evidence".into(),
        },
    };
    let after = if has(EVIDENCE_AFTER_RST) && Cause::from_raw(e.cause) != Cause::Injected {
        " (after an earlier RST from the same side)"
    } else {
        ""
    };
    let closed = if has(EVIDENCE_SENDER_CLOSED) && Cause::from_raw(e.cause) != Cause::PeerClosed {
        " (the sender had sent a FIN)"
    } else {
        ""
    };
    format!("{text}{after}{closed}{source}")
}

#[cfg(test)]
mod tests {
    use rstguard_common::key::v4_mapped;

    use super::*;

    fn event(cause: Cause, verdict: Verdict) -> RstEvent {
        RstEvent {
            ends: Endpoints {
                lo_addr: v4_mapped([10, 0, 0, 1]),
                hi_addr: v4_mapped([10, 0, 0, 2]),
                lo_port: 40000,
                hi_port: 80,
            },
            sender_is_lo: 0,
            verdict: verdict as u8,
            action: Action::Pass as u8,
            cause: cause as u8,
            ttl: 64,
            peer_ttl: 58,
            evidence: EVIDENCE_TTL_KNOWN,
            tcp_flags: RST,
            has_flow: 1,
            ..RstEvent::default()
        }
    }

    #[test]
    fn a_middlebox_says_how_many_hops_closer() {
        let e = event(Cause::Middlebox, Verdict::Exact);
        let text = evidence(&e);
        assert!(
            text.starts_with(
                "TTL 64, the peer's segments arrive with 58: sent 6 hops closer than the peer"
            ),
            "{text}"
        );
        let r = ResetRecord {
            event: e,
            number: 7,
            unix_ns: 1_700_000_000_123_000_000,
        };
        let v = ResetView::new(&r, "eth0".into());
        assert_eq!(v.from, "10.0.0.2:80");
        assert_eq!(v.to, "10.0.0.1:40000");
        assert_eq!(v.ack, None);
        assert_eq!(
            v.line(),
            format!(
                "2023-11-14T22:13:20.123Z eth0 ingress 10.0.0.2:80 -> 10.0.0.1:40000 exact passed \
                 middlebox: {text}"
            )
        );
    }

    #[test]
    fn every_cause_has_words_of_its_own() {
        let mut seen = std::collections::HashSet::new();
        for c in Cause::ALL {
            let text = evidence(&event(c, Verdict::Exact));
            assert!(!text.is_empty());
            assert!(
                seen.insert(text.clone()),
                "{c:?} repeats another cause's words: {text}"
            );
        }
        let mut e = event(Cause::Abort, Verdict::Exact);
        e.evidence |= EVIDENCE_DATA_UNREAD;
        assert!(evidence(&e).contains("closed with data unread"));
        let mut e = event(Cause::Injected, Verdict::Exact);
        e.evidence |= EVIDENCE_DATA_AFTER;
        assert!(evidence(&e).contains("went on after its RST"));
        let mut e = event(Cause::NoSocket, Verdict::Exact);
        e.evidence = 0;
        assert!(evidence(&e).contains("not known"));
    }

    #[test]
    fn flags_read_as_on_the_wire() {
        assert_eq!(flags(RST | ACK), "RST|ACK");
        assert_eq!(flags(SYN), "SYN");
        assert_eq!(
            distance(60, 64),
            "sent 4 hops further than the peer, or from another system"
        );
        assert_eq!(distance(65, 64), "sent 1 hop closer than the peer");
    }
}
