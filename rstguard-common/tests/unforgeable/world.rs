//! The world: the two endpoints, the exchange between them as rstguard
//! sees it, and the checks after every step.

use super::*;

/// The conversation, the observer and the checks.
pub(crate) struct World {
    pub(crate) placement: Placement,
    /// Which endpoint is local (host placement).
    pub(crate) client_local: bool,
    pub(crate) client_is_lo: bool,
    pub(crate) c: Ep,
    pub(crate) s: Ep,
    pub(crate) flow: Option<Flow>,
    /// The tracked incarnation is over (TIME_WAIT reached, then started
    /// afresh by a SYN): nothing more to check about this conversation.
    pub(crate) over: bool,
}

pub(crate) fn segment(
    seq: u32,
    ack: Option<u32>,
    flags: u8,
    len: u32,
    sack: Option<u32>,
) -> Segment {
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
    pub(crate) fn new(
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

    pub(crate) fn sender_is_lo(&self, client: bool) -> bool {
        client == self.client_is_lo
    }

    /// Where rstguard sees a segment from the client (`true`) or server.
    pub(crate) fn origin(&self, client: bool) -> Origin {
        if self.placement == Placement::Host && client == self.client_local {
            Origin::Local
        } else {
            Origin::Claim
        }
    }

    /// rstguard sees a segment (the eBPF glue, `flows::learn`).
    pub(crate) fn observe(&mut self, client: bool, seg: &Segment) -> Step {
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
    pub(crate) fn wire(&mut self, client: bool, seg: Segment, loss: Loss) {
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

    pub(crate) fn apply(&mut self, op: &Op) {
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
    pub(crate) fn exact_sets(&self) -> (Vec<u32>, Vec<u32>) {
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
    pub(crate) fn judged(&self, client_sends: bool) -> bool {
        self.placement == Placement::Router || self.origin(client_sends) == Origin::Claim
    }

    pub(crate) fn check(&self, ops: &[Op]) {
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

pub(crate) fn run(
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
