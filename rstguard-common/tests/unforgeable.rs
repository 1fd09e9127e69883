//! Layer 1: the flow state a blind attacker cannot teach.
//!
//! A model of two real TCP endpoints (what each really sent, received,
//! acknowledged and SACKed) drives rstguard's tracking with a legitimate
//! exchange (handshake, data both ways, losses before and after the
//! observation point, retransmissions, delayed ACKs, SACK, FINs, sequence
//! numbers anywhere in the 2^32 space), interleaved with forged segments of
//! random flags, sequence and ACK numbers. After every step it checks:
//!
//! * every value rstguard would call exact is one the real endpoints put
//!   there: on a host, the receiver's real RCV.NXT (or RCV.NXT - 1 after a
//!   FIN, or an ACK or SACK edge the receiver itself sent); on a router,
//!   also anything inside the bytes then in flight;
//! * a forged segment changes none of those values;
//! * every legitimate RST the receiving kernel would accept at that moment
//!   passes at strict (and so at every level).
//!
//! Both placements: `Host` (one endpoint is local: its segments are seen at
//! TC egress, the peer's at XDP) and `Router` (both directions at XDP).

use std::collections::BTreeSet;

use proptest::prelude::*;
use rstguard_common::{
    judge::judge,
    parse::{Segment, ACK, FIN, RST, SYN},
    seq::{after, before},
    state::track::{self, Ignore, Origin, Step},
    state::{FLOW_HI_INITIATOR, HALF_ACK, HALF_FIN, HALF_SACK, WSCALE_NONE},
    Action, Flow, FlowState, Level, Policy, Verdict,
};

/// The clock stands still: the whole exchange happens within a second.
const NOW: u64 = 5_000_000_000;
const WSCALE: u8 = 7;
const RAW_WIN: u16 = 1000;
/// The window each side offers: 1000 << 7.
const WINDOW: u32 = (RAW_WIN as u32) << WSCALE;
/// The window in a SYN, never scaled.
const SYN_WIN: u16 = 65535;
const MSS: u32 = 1460;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Host,
    Router,
}

/// What happens to a segment on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    None,
    /// Lost before rstguard sees it: nobody sees it.
    Before,
    /// Seen by rstguard, lost after it: the receiver never gets it.
    After,
}

/// One real endpoint.
#[derive(Clone, Debug)]
struct Ep {
    /// Next new sequence number (after a FIN: one past it).
    snd_nxt: u32,
    /// End of its data (the FIN, once sent, sits here).
    data_end: u32,
    fin_sent: bool,
    /// What it knows the peer received (from the peer's ACKs it got).
    snd_una: u32,
    rcv_nxt: u32,
    /// Out-of-order blocks received, `[start, end)`.
    ooo: Vec<(u32, u32)>,
    /// Where the peer's FIN ends, once a FIN arrived (in any order).
    peer_fin_end: Option<u32>,
    /// Every ACK number and SACK edge it put on the wire.
    acks_sent: BTreeSet<u32>,
    /// Where every segment it sent ends (its sequence numbers on the wire).
    ends_sent: BTreeSet<u32>,
    /// The peer's window as this endpoint knows it: the SYN's, until a
    /// segment from the peer brings the scaled one.
    peer_win: u32,
    /// The ACK number of the last segment it received from the peer: where
    /// its RST goes when it answers that segment with no socket.
    peer_last_ack: u32,
}

impl Ep {
    fn new(isn: u32, peer_isn: u32) -> Ep {
        let mut acks_sent = BTreeSet::new();
        acks_sent.insert(peer_isn.wrapping_add(1));
        Ep {
            snd_nxt: isn.wrapping_add(1),
            data_end: isn.wrapping_add(1),
            fin_sent: false,
            snd_una: isn.wrapping_add(1),
            rcv_nxt: peer_isn.wrapping_add(1),
            ooo: Vec::new(),
            peer_fin_end: None,
            acks_sent,
            ends_sent: [isn.wrapping_add(1)].into(),
            peer_win: SYN_WIN as u32,
            peer_last_ack: isn.wrapping_add(1),
        }
    }

    fn fin_rcvd(&self) -> bool {
        self.peer_fin_end == Some(self.rcv_nxt)
    }

    /// The right edge of its highest SACK block (Linux: `selective_acks`).
    fn max_sack(&self) -> Option<u32> {
        self.ooo
            .iter()
            .map(|b| b.1)
            .reduce(|a, b| if after(b, a) { b } else { a })
    }

    /// Whether Linux, as this endpoint, resets on a RST at `seq`
    /// (`tcp_validate_incoming`).
    fn accepts_rst(&self, seq: u32) -> bool {
        seq == self.rcv_nxt
            || (self.fin_rcvd() && seq == self.rcv_nxt.wrapping_sub(1))
            || self.max_sack() == Some(seq)
    }

    /// A segment arrives from the peer.
    fn receive(&mut self, seg: &Segment) {
        if seg.has(ACK) && after(seg.ack, self.snd_una) {
            self.snd_una = seg.ack;
        }
        self.peer_win = WINDOW;
        self.peer_last_ack = seg.ack;
        let end = seg.end_seq();
        if seg.has(FIN) {
            self.peer_fin_end = Some(end);
        }
        if end == seg.seq {
            return;
        }
        if !after(seg.seq, self.rcv_nxt) {
            if after(end, self.rcv_nxt) {
                self.rcv_nxt = end;
            }
        } else {
            self.ooo.push((seg.seq, end));
        }
        // Fill from the out-of-order queue, and drop what is now in order.
        loop {
            let mut moved = false;
            let rcv = self.rcv_nxt;
            self.ooo.retain(|&(s, e)| {
                if !after(s, rcv) {
                    moved |= after(e, rcv);
                    if after(e, rcv) {
                        // Re-added below as the new RCV.NXT.
                        return true;
                    }
                    return false;
                }
                true
            });
            if let Some(i) = self
                .ooo
                .iter()
                .position(|&(s, e)| !after(s, self.rcv_nxt) && after(e, self.rcv_nxt))
            {
                self.rcv_nxt = self.ooo.remove(i).1;
            }
            if !moved {
                break;
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// New data (if the window allows), or a FIN when `fin`.
    Send {
        client: bool,
        len: u32,
        fin: bool,
        loss: Loss,
    },
    /// Retransmit from what the sender knows was received, coalesced.
    Retransmit { client: bool, loss: Loss },
    /// A pure ACK (with SACK when out-of-order data is held).
    Ack { client: bool, loss: Loss },
    /// A forged segment claiming to come from the client or the server.
    Forge {
        client: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u32,
        sack: Option<u32>,
    },
}

fn loss() -> impl Strategy<Value = Loss> {
    prop_oneof![6 => Just(Loss::None), 1 => Just(Loss::Before), 1 => Just(Loss::After)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 1u32..=MSS, loss())
            .prop_map(|(client, len, loss)| Op::Send { client, len, fin: false, loss }),
        1 => (any::<bool>(), loss())
            .prop_map(|(client, loss)| Op::Send { client, len: 0, fin: true, loss }),
        2 => (any::<bool>(), loss()).prop_map(|(client, loss)| Op::Retransmit { client, loss }),
        3 => (any::<bool>(), loss()).prop_map(|(client, loss)| Op::Ack { client, loss }),
        4 => (
            any::<bool>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            0u32..2000,
            proptest::option::of(any::<u32>())
        )
            .prop_map(|(client, flags, seq, ack, len, sack)| Op::Forge {
                client,
                flags: flags & (SYN | ACK | FIN | 0x08),
                seq,
                ack,
                len,
                sack
            }),
    ]
}

/// The conversation, the observer and the checks.
struct World {
    placement: Placement,
    /// Which endpoint is local (host placement).
    client_local: bool,
    client_is_lo: bool,
    c: Ep,
    s: Ep,
    flow: Option<Flow>,
    /// The tracked incarnation is over (TIME_WAIT reached, then started
    /// afresh by a SYN): nothing more to check about this conversation.
    over: bool,
}

fn segment(seq: u32, ack: Option<u32>, flags: u8, len: u32, sack: Option<u32>) -> Segment {
    Segment {
        seq,
        ack: ack.unwrap_or(0),
        payload_len: len,
        sack_right: sack.unwrap_or(0),
        win: RAW_WIN,
        flags: flags | if ack.is_some() { ACK } else { 0 },
        wscale: WSCALE_NONE,
        ttl: 64,
        has_sack: sack.is_some(),
        first_fragment: false,
    }
}

impl World {
    fn new(
        placement: Placement,
        client_local: bool,
        client_is_lo: bool,
        c_isn: u32,
        s_isn: u32,
    ) -> World {
        let mut w = World {
            placement,
            client_local,
            client_is_lo,
            c: Ep::new(c_isn, s_isn),
            s: Ep::new(s_isn, c_isn),
            flow: None,
            over: false,
        };
        // The handshake, seen whole.
        let mut syn = segment(c_isn, None, SYN, 0, None);
        syn.wscale = WSCALE;
        syn.win = SYN_WIN;
        assert_eq!(w.observe(true, &syn), Step::Create);
        let mut synack = segment(s_isn, Some(c_isn.wrapping_add(1)), SYN, 0, None);
        synack.wscale = WSCALE;
        synack.win = SYN_WIN;
        assert_eq!(w.observe(false, &synack), Step::Learned);
        let ack = segment(
            c_isn.wrapping_add(1),
            Some(s_isn.wrapping_add(1)),
            0,
            0,
            None,
        );
        assert_eq!(w.observe(true, &ack), Step::Learned);
        assert_eq!(w.flow.unwrap().state(), FlowState::Established);
        w
    }

    fn sender_is_lo(&self, client: bool) -> bool {
        client == self.client_is_lo
    }

    /// Where rstguard sees a segment from the client (`true`) or server.
    fn origin(&self, client: bool) -> Origin {
        if self.placement == Placement::Host && client == self.client_local {
            Origin::Local
        } else {
            Origin::Claim
        }
    }

    /// rstguard sees a segment (the eBPF glue, `flows::learn`).
    fn observe(&mut self, client: bool, seg: &Segment) -> Step {
        let lo = self.sender_is_lo(client);
        let origin = self.origin(client);
        let step = track::learn(self.flow.as_mut(), lo, seg, origin, || true, NOW);
        if step == Step::Create {
            self.flow = Some(track::new_flow(seg, lo, origin, NOW));
        }
        step
    }

    /// A real endpoint sends a segment: rstguard sees it unless lost
    /// before, the peer gets it unless lost on the way.
    fn wire(&mut self, client: bool, seg: Segment, loss: Loss) {
        // On a host, a local segment always passes TC egress (it can be
        // lost after), and a remote one that reached XDP reaches the stack.
        let loss = match (self.placement, self.origin(client), loss) {
            (Placement::Host, Origin::Local, Loss::Before) => Loss::After,
            (Placement::Host, Origin::Claim, Loss::After) => Loss::None,
            (_, _, l) => l,
        };
        let me = if client { &mut self.c } else { &mut self.s };
        me.ends_sent.insert(seg.end_seq());
        if loss == Loss::Before {
            return;
        }
        let step = self.observe(client, &seg);
        assert!(
            self.over || matches!(step, Step::Learned | Step::Ignored(Ignore::FinOutOfOrder)),
            "a legitimate segment {seg:?} from the {} was {step:?}",
            if client { "client" } else { "server" }
        );
        if loss == Loss::None {
            let peer = if client { &mut self.s } else { &mut self.c };
            peer.receive(&seg);
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send {
                client,
                len,
                fin,
                loss,
            } => {
                let (me, peer) = if client {
                    (&mut self.c, &self.s)
                } else {
                    (&mut self.s, &self.c)
                };
                let _ = peer;
                if me.fin_sent {
                    return;
                }
                let len = if fin {
                    0
                } else {
                    // Flow control: never past what the peer allows.
                    let room = me
                        .snd_una
                        .wrapping_add(me.peer_win)
                        .wrapping_sub(me.snd_nxt);
                    len.min(room)
                };
                if len == 0 && !fin {
                    return;
                }
                let seq = me.snd_nxt;
                let (ack, sack) = (me.rcv_nxt, me.max_sack());
                me.acks_sent.insert(ack);
                me.acks_sent.extend(sack);
                me.snd_nxt = seq.wrapping_add(len).wrapping_add(fin as u32);
                me.data_end = seq.wrapping_add(len);
                me.fin_sent = fin;
                let seg = segment(seq, Some(ack), if fin { FIN } else { 0 }, len, sack);
                self.wire(client, seg, loss);
            }
            Op::Retransmit { client, loss } => {
                let me = if client { &mut self.c } else { &mut self.s };
                if me.snd_una == me.snd_nxt {
                    return;
                }
                let seq = me.snd_una;
                let len = me.data_end.wrapping_sub(seq).min(3 * MSS);
                let fin = me.fin_sent && seq.wrapping_add(len) == me.data_end;
                let (ack, sack) = (me.rcv_nxt, me.max_sack());
                me.acks_sent.insert(ack);
                me.acks_sent.extend(sack);
                let seg = segment(seq, Some(ack), if fin { FIN } else { 0 }, len, sack);
                self.wire(client, seg, loss);
            }
            Op::Ack { client, loss } => {
                let me = if client { &mut self.c } else { &mut self.s };
                let (ack, sack) = (me.rcv_nxt, me.max_sack());
                me.acks_sent.insert(ack);
                me.acks_sent.extend(sack);
                let seg = segment(me.snd_nxt, Some(ack), 0, 0, sack);
                self.wire(client, seg, loss);
            }
            Op::Forge {
                client,
                flags,
                seq,
                ack,
                len,
                sack,
            } => {
                let seg = Segment {
                    seq,
                    ack,
                    flags,
                    payload_len: len,
                    has_sack: sack.is_some(),
                    sack_right: sack.unwrap_or(0),
                    win: 65535,
                    wscale: WSCALE_NONE,
                    ttl: 50,
                    first_fragment: false,
                };
                let before = self.exact_sets();
                let state = self.flow.map(|f| f.state());
                let was = self.flow;
                // Forged segments arrive from outside: XDP, a claim.
                let lo = self.sender_is_lo(client);
                let step = track::learn(self.flow.as_mut(), lo, &seg, Origin::Claim, || true, NOW);
                if step == Step::Create {
                    // Only a flow that is over (or one-sided) starts afresh.
                    assert!(
                        self.over || matches!(state, Some(FlowState::TimeWait | FlowState::Closed)),
                        "a forged {seg:?} restarted a {state:?} flow: {was:?}"
                    );
                    self.flow = Some(track::new_flow(&seg, lo, Origin::Claim, NOW));
                    self.over = true;
                    return;
                }
                assert!(
                    self.over || before == self.exact_sets(),
                    "the forged {seg:?} ({step:?}) changed what is exact: {before:?} -> {:?}",
                    self.exact_sets()
                );
            }
        }
    }

    /// What rstguard would call exact for a RST from each side: (RSTs the
    /// client sends, RSTs the server sends).
    fn exact_sets(&self) -> (Vec<u32>, Vec<u32>) {
        let one = |client: bool| -> Vec<u32> {
            let Some(f) = self.flow else {
                return Vec::new();
            };
            if !f.both_seen() {
                // One-sided: nothing is exact (the verdict is one_sided).
                return Vec::new();
            }
            let (s, r) = f.halves(self.sender_is_lo(client));
            let mut v = vec![s.snd_nxt, s.max_end];
            if r.has(HALF_ACK) {
                v.push(r.ack);
            }
            if s.has(HALF_FIN) {
                v.push(s.max_end.wrapping_sub(1));
            }
            if r.has(HALF_SACK) {
                v.push(r.sack_right);
            }
            v
        };
        (one(true), one(false))
    }

    /// RSTs rstguard judges: everything at a router; on a host, those from
    /// the remote endpoint to the local one.
    fn judged(&self, client_sends: bool) -> bool {
        self.placement == Placement::Router || self.origin(client_sends) == Origin::Claim
    }

    fn check(&self, ops: &[Op]) {
        let Some(flow) = self.flow else { return };
        if self.over || !matches!(flow.state(), FlowState::Established | FlowState::FinSeen) {
            return;
        }
        let (from_c, from_s) = self.exact_sets();
        for (client, exact) in [(true, from_c), (false, from_s)] {
            if !self.judged(client) {
                continue;
            }
            let (s, r) = if client {
                (&self.c, &self.s)
            } else {
                (&self.s, &self.c)
            };
            // Every exact value is one the real endpoints account for.
            for v in exact {
                let legit = r.accepts_rst(v)
                    || r.acks_sent.contains(&v)
                    || s.ends_sent.contains(&v)
                    || (self.placement == Placement::Router
                        && !before(v, r.rcv_nxt)
                        && !after(v, s.snd_nxt));
                assert!(
                    legit,
                    "{:?}: a RST from the {} at {v} would be exact, but the receiver's RCV.NXT \
                     is {}, the sender's SND.NXT {}; flow {flow:?}; ops {ops:?}",
                    self.placement,
                    if client { "client" } else { "server" },
                    r.rcv_nxt,
                    s.snd_nxt
                );
            }
            // Every RST a real sender would send that the receiver's kernel
            // would accept passes at strict.
            // (an abort, a reply to the receiver's last segment with no
            // socket, macOS's RST at its FIN).
            let mut candidates = vec![s.snd_nxt, s.peer_last_ack];
            if s.fin_sent {
                candidates.push(s.data_end);
            }
            for seq in candidates {
                if !r.accepts_rst(seq) {
                    continue;
                }
                let mut f = flow;
                let rst = Segment {
                    seq,
                    flags: RST,
                    wscale: WSCALE_NONE,
                    ..Segment::default()
                };
                let strict = Policy {
                    level: Level::Strict as u8,
                    ..Policy::default()
                };
                let (v, a) = judge(
                    Some(&mut f),
                    self.sender_is_lo(client),
                    &rst,
                    false,
                    &strict,
                    NOW,
                )
                .outcome();
                assert_eq!(
                    a,
                    Action::Pass,
                    "{:?}: a legitimate RST from the {} at {seq} ({v:?}) would be dropped; \
                     receiver RCV.NXT {}; flow {flow:?}; ops {ops:?}",
                    self.placement,
                    if client { "client" } else { "server" },
                    r.rcv_nxt
                );
            }
        }
    }
}

fn run(
    placement: Placement,
    client_local: bool,
    client_is_lo: bool,
    c_isn: u32,
    s_isn: u32,
    ops: &[Op],
) {
    let mut w = World::new(placement, client_local, client_is_lo, c_isn, s_isn);
    w.check(&[]);
    for (i, op) in ops.iter().enumerate() {
        w.apply(op);
        w.check(&ops[..=i]);
    }
}

/// ISNs anywhere, and often just below the wrap.
fn isn() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (u32::MAX - 20_000)..=u32::MAX]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn on_a_host_forgeries_teach_nothing_and_legitimate_rsts_pass(
        client_local in any::<bool>(), client_is_lo in any::<bool>(),
        c_isn in isn(), s_isn in isn(),
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        run(Placement::Host, client_local, client_is_lo, c_isn, s_isn, &ops);
    }

    #[test]
    fn on_a_router_forgeries_teach_nothing_and_legitimate_rsts_pass(
        client_is_lo in any::<bool>(), c_isn in isn(), s_isn in isn(),
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        run(Placement::Router, false, client_is_lo, c_isn, s_isn, &ops);
    }
}

// ---- The attacks, one by one --------------------------------------------
//
// Each forges packets with no knowledge of the live sequence numbers (X is
// the attacker's own choice), then a RST at the value the forgery would
// have taught. Before, every one of these RSTs passed as exact.

/// A router's view of an established flow: client (lo) ISN 1000, server
/// (hi) ISN 50_000, scale 7 both ways, data exchanged and acknowledged.
fn router_flow() -> Flow {
    let mut w = World::new(Placement::Router, false, true, 1000, 50_000);
    w.apply(&Op::Send {
        client: true,
        len: 100,
        fin: false,
        loss: Loss::None,
    });
    w.apply(&Op::Send {
        client: false,
        len: 300,
        fin: false,
        loss: Loss::None,
    });
    w.apply(&Op::Ack {
        client: true,
        loss: Loss::None,
    });
    w.flow.unwrap()
}

const X: u32 = 3_000_000_000;

fn forged(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
    Segment {
        seq,
        ack,
        flags,
        payload_len: len,
        win: 65535,
        wscale: WSCALE_NONE,
        ttl: 50,
        ..Segment::default()
    }
}

fn rst_verdict(f: &Flow, from_lo: bool, seq: u32, ack: Option<u32>) -> Verdict {
    let strict = Policy {
        level: Level::Strict as u8,
        ..Policy::default()
    };
    let rst = Segment {
        seq,
        ack: ack.unwrap_or(0),
        flags: RST | if ack.is_some() { ACK } else { 0 },
        wscale: WSCALE_NONE,
        ..Segment::default()
    };
    judge(Some(&mut f.clone()), from_lo, &rst, false, &strict, NOW).verdict
}

#[test]
fn forged_fin_syn_synack_data_ack_and_sack_teach_nothing() {
    // (what is forged, as whom, the packet, the RST the forgery aims at)
    let cases: [(&str, bool, Segment, u32); 7] = [
        ("FIN at X", true, forged(FIN | ACK, X, 0, 0), X),
        ("bare FIN at X", true, forged(FIN, X, 0, 0), X),
        ("SYN at X", true, forged(SYN, X, 0, 0), X.wrapping_add(1)),
        (
            "SYN-ACK at X",
            false,
            forged(SYN | ACK, X, 1101, 0),
            X.wrapping_add(1),
        ),
        (
            "data at X",
            true,
            forged(ACK, X, 50_301, 500),
            X.wrapping_add(500),
        ),
        ("ACK of X", false, forged(ACK, 50_301, X, 0), X),
        ("data without ACK", true, forged(0, 1101, 0, 500), 1601),
    ];
    // (Contiguous data without an ACK aims inside the window: it would
    // have been exact; it is only in the window.)
    for (what, from_client, seg, aim) in cases {
        let mut f = router_flow();
        let before = f;
        let step = track::learn(Some(&mut f), from_client, &seg, Origin::Claim, || true, NOW);
        assert!(matches!(step, Step::Ignored(_)), "{what}: {step:?}");
        assert_eq!(f, before, "{what}: the flow changed");
        // The RST aimed at what the forgery would have taught, from the
        // side it claimed to be, and toward it.
        for from in [from_client, !from_client] {
            let v = rst_verdict(&f, from, aim, None);
            let in_window = aim == 1601 && from;
            assert_eq!(
                v,
                if in_window {
                    Verdict::InWindow
                } else {
                    Verdict::OutOfWindow
                },
                "{what}"
            );
        }
    }
    // A forged SACK block past what the client sent.
    let mut f = router_flow();
    let mut sack = forged(ACK, 50_301, 1101, 0);
    sack.has_sack = true;
    sack.sack_right = 1101 + 5000;
    track::learn(Some(&mut f), false, &sack, Origin::Claim, || true, NOW);
    assert!(!f.hi.has(HALF_SACK), "a SACK of bytes never sent");
    assert_eq!(rst_verdict(&f, true, 6101, None), Verdict::InWindow);
}

#[test]
fn a_forged_syn_does_not_wipe_an_established_flow() {
    let mut f = router_flow();
    let before = f;
    let step = track::learn(
        Some(&mut f),
        false,
        &forged(SYN, X, 0, 0),
        Origin::Claim,
        || true,
        NOW,
    );
    assert_eq!(step, Step::Ignored(Ignore::Syn));
    assert_eq!(f, before);
    // The flow's real RSTs are still judged against its real state.
    assert_eq!(rst_verdict(&f, true, 1101, None), Verdict::Exact);
}

#[test]
fn on_a_host_a_segment_from_outside_claiming_the_host_is_a_spoof() {
    // The server (hi) is local.
    let mut w = World::new(Placement::Host, false, true, 1000, 50_000);
    w.apply(&Op::Send {
        client: false,
        len: 300,
        fin: false,
        loss: Loss::None,
    });
    let mut f = w.flow.unwrap();
    let before = f;
    let seg = forged(ACK, 50_301, 1001, 100);
    let step = track::learn(Some(&mut f), false, &seg, Origin::Claim, || true, NOW);
    assert_eq!(step, Step::Ignored(Ignore::LocalSpoof));
    assert_eq!(f, before);
}

#[test]
fn one_sided_flows_never_drop_a_rst() {
    // A router that sees only the client's direction (the server's
    // segments take another path): picked up, or from the SYN.
    for from_syn in [false, true] {
        let first = if from_syn {
            forged(SYN, 1000, 0, 0)
        } else {
            forged(ACK, 1001, 50_001, 0)
        };
        let mut f = track::new_flow(&first, true, Origin::Claim, NOW);
        let data = forged(ACK, 1001, 50_001, 400);
        track::learn(Some(&mut f), true, &data, Origin::Claim, || true, NOW);
        assert!(!f.both_seen());
        // The server aborts; its segments were lost, the client's
        // challenge ACK goes the other way, and the server's no-socket
        // reply (at the client's RCV.NXT, which this router never saw)
        // comes through here.
        for seq in [50_001, 77_777, X] {
            assert_eq!(
                rst_verdict(&f, false, seq, None),
                Verdict::OneSided,
                "from the server {seq}"
            );
        }
        assert_eq!(
            rst_verdict(&f, true, 1401, None),
            Verdict::OneSided,
            "from the client"
        );
    }
    // The other way round: only the server's direction is seen.
    let mut f = track::new_flow(&forged(ACK, 50_001, 1001, 100), false, Origin::Claim, NOW);
    track::learn(
        Some(&mut f),
        false,
        &forged(ACK, 50_101, 1001, 100),
        Origin::Claim,
        || true,
        NOW,
    );
    assert_eq!(rst_verdict(&f, true, 1001, None), Verdict::OneSided);
    assert_eq!(rst_verdict(&f, true, X, None), Verdict::OneSided);
}

#[test]
fn a_pickup_from_a_forgery_gives_way_to_the_real_flow() {
    // A forged segment creates the flow before the real one shows up.
    let mut f = track::new_flow(&forged(ACK, X, X, 10), true, Origin::Claim, NOW);
    // The real server's segment does not fit it: the pickup starts over.
    let real = forged(ACK, 50_001, 1001, 100);
    assert_eq!(
        track::learn(Some(&mut f), false, &real, Origin::Claim, || true, NOW),
        Step::Create
    );
    let mut f = track::new_flow(&real, false, Origin::Claim, NOW);
    // The real client then fits and the flow is judged as usual.
    track::learn(
        Some(&mut f),
        true,
        &forged(ACK, 1001, 50_101, 0),
        Origin::Claim,
        || true,
        NOW,
    );
    assert!(f.both_seen());
    assert_eq!(rst_verdict(&f, true, 1001, None), Verdict::Exact);
    assert_eq!(rst_verdict(&f, true, X, None), Verdict::OutOfWindow);
}

#[test]
fn tcp_fast_open_any_ack_of_the_syn_or_its_data_resets_syn_sent() {
    // The client (lo) sends a SYN with 200 bytes of data.
    let syn = forged(SYN, 1000, 0, 200);
    let f = track::new_flow(&syn, true, Origin::Local, NOW);
    for ack in [1001, 1101, 1201] {
        assert_eq!(
            rst_verdict(&f, false, 0, Some(ack)),
            Verdict::Exact,
            "ack {ack}"
        );
    }
    for ack in [1000, 1202, X] {
        assert_eq!(
            rst_verdict(&f, false, 0, Some(ack)),
            Verdict::BadSynAck,
            "ack {ack}"
        );
    }
    assert_eq!(
        rst_verdict(&f, false, 0, None),
        Verdict::BadSynAck,
        "no ACK"
    );
    // The SYN-ACK that acknowledges only the SYN is the answer too.
    let mut g = f;
    let synack = forged(SYN | ACK, 50_000, 1001, 0);
    assert_eq!(
        track::learn(Some(&mut g), false, &synack, Origin::Claim, || true, NOW),
        Step::Learned
    );
    assert_eq!(g.state(), FlowState::SynRecv);
}

#[test]
fn a_second_syn_soon_after_the_first_is_not_believed() {
    let mut f = track::new_flow(&forged(SYN, 1000, 0, 0), true, Origin::Claim, NOW);
    let forged_syn = forged(SYN, X, 0, 0);
    assert_eq!(
        track::learn(
            Some(&mut f),
            true,
            &forged_syn,
            Origin::Claim,
            || true,
            NOW + 1000
        ),
        Step::Ignored(Ignore::Syn)
    );
    assert_eq!(
        rst_verdict(&f, false, 0, Some(X.wrapping_add(1))),
        Verdict::BadSynAck
    );
    assert_eq!(rst_verdict(&f, false, 0, Some(1001)), Verdict::Exact);
    // After the first retransmission timeout, a new attempt starts over.
    let later = NOW + track::SYN_RETRY_NS + 1;
    assert_eq!(
        track::learn(
            Some(&mut f),
            true,
            &forged(SYN, 7000, 0, 0),
            Origin::Claim,
            || true,
            later
        ),
        Step::Create
    );
}

#[test]
fn port_reuse_after_a_silent_death() {
    // The client rebooted; the server still holds the old connection (the
    // router still tracks it). The new incarnation's SYN is not believed...
    let mut f = router_flow();
    let new_syn = forged(SYN, 9_000_000, 0, 0);
    assert_eq!(
        track::learn(Some(&mut f), true, &new_syn, Origin::Claim, || true, NOW),
        Step::Ignored(Ignore::Syn)
    );
    // ...the server answers it with a challenge ACK of the old connection,
    // and the client (SYN_SENT, an ACK it did not expect) resets at its
    // ACK number: exact, so it passes and closes the old flow...
    let challenge = forged(ACK, 50_301, 1101, 0);
    assert_eq!(
        track::learn(Some(&mut f), false, &challenge, Origin::Claim, || true, NOW),
        Step::Learned
    );
    let strict = Policy {
        level: Level::Strict as u8,
        ..Policy::default()
    };
    let rst = forged(RST, 1101, 0, 0);
    assert_eq!(
        judge(Some(&mut f), true, &rst, false, &strict, NOW).outcome(),
        (Verdict::Exact, Action::Pass)
    );
    assert_eq!(f.state(), FlowState::Closed);
    // ...and the retransmitted SYN starts the flow afresh.
    assert_eq!(
        track::learn(Some(&mut f), true, &new_syn, Origin::Claim, || true, NOW),
        Step::Create
    );

    // On the server itself, its own SYN-ACK to the new SYN (the old socket
    // was gone too) is the evidence: the kernel accepted a new connection.
    let mut w = World::new(Placement::Host, false, true, 1000, 50_000);
    let mut f = w.flow.take().unwrap();
    assert_eq!(
        track::learn(Some(&mut f), true, &new_syn, Origin::Claim, || true, NOW),
        Step::Ignored(Ignore::Syn)
    );
    let synack = forged(SYN | ACK, 70_000, 9_000_001, 0);
    assert_eq!(
        track::learn(Some(&mut f), false, &synack, Origin::Local, || true, NOW),
        Step::Create
    );
    let g = track::new_flow(&synack, false, Origin::Local, NOW);
    assert_eq!(g.state(), FlowState::SynRecv);
    assert!(!g.has(FLOW_HI_INITIATOR), "the client (lo) initiated");
    assert_eq!(rst_verdict(&g, true, 9_000_001, None), Verdict::Exact);
    assert_eq!(
        rst_verdict(&g, true, 1101, None),
        Verdict::OutOfWindow,
        "the old incarnation"
    );
}
