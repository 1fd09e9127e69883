//! The model's parts: the two endpoints (what each really sent, received,
//! acknowledged and SACKed), where rstguard sits, and the steps of an
//! exchange (legitimate ones, losses, forgeries), with their strategies.

use super::*;

pub(crate) const NOW: u64 = 5_000_000_000;
pub(crate) const WSCALE: u8 = 7;
pub(crate) const RAW_WIN: u16 = 1000;
/// The window each side offers: 1000 << 7.
pub(crate) const WINDOW: u32 = (RAW_WIN as u32) << WSCALE;
/// The window in a SYN, never scaled.
pub(crate) const SYN_WIN: u16 = 65535;
pub(crate) const MSS: u32 = 1460;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    Host,
    Router,
}

/// What happens to a segment on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loss {
    None,
    /// Lost before rstguard sees it: nobody sees it.
    Before,
    /// Seen by rstguard, lost after it: the receiver never gets it.
    After,
}

/// One real endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Ep {
    /// Next new sequence number (after a FIN: one past it).
    pub(crate) snd_nxt: u32,
    /// End of its data (the FIN, once sent, sits here).
    pub(crate) data_end: u32,
    pub(crate) fin_sent: bool,
    /// What it knows the peer received (from the peer's ACKs it got).
    pub(crate) snd_una: u32,
    pub(crate) rcv_nxt: u32,
    /// Out-of-order blocks received, `[start, end)`.
    pub(crate) ooo: Vec<(u32, u32)>,
    /// Where the peer's FIN ends, once a FIN arrived (in any order).
    pub(crate) peer_fin_end: Option<u32>,
    /// Every ACK number and SACK edge it put on the wire.
    pub(crate) acks_sent: BTreeSet<u32>,
    /// Where every segment it sent ends (its sequence numbers on the wire).
    pub(crate) ends_sent: BTreeSet<u32>,
    /// The peer's window as this endpoint knows it: the SYN's, until a
    /// segment from the peer brings the scaled one.
    pub(crate) peer_win: u32,
    /// The ACK number of the last segment it received from the peer: where
    /// its RST goes when it answers that segment with no socket.
    pub(crate) peer_last_ack: u32,
}

impl Ep {
    pub(crate) fn new(isn: u32, peer_isn: u32) -> Ep {
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

    pub(crate) fn fin_rcvd(&self) -> bool {
        self.peer_fin_end == Some(self.rcv_nxt)
    }

    /// The right edge of its highest SACK block (Linux: `selective_acks`).
    pub(crate) fn max_sack(&self) -> Option<u32> {
        self.ooo
            .iter()
            .map(|b| b.1)
            .reduce(|a, b| if after(b, a) { b } else { a })
    }

    /// Whether Linux, as this endpoint, resets on a RST at `seq`
    /// (`tcp_validate_incoming`).
    pub(crate) fn accepts_rst(&self, seq: u32) -> bool {
        seq == self.rcv_nxt
            || (self.fin_rcvd() && seq == self.rcv_nxt.wrapping_sub(1))
            || self.max_sack() == Some(seq)
    }

    /// A segment arrives from the peer.
    pub(crate) fn receive(&mut self, seg: &Segment) {
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
pub(crate) enum Op {
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

pub(crate) fn loss() -> impl Strategy<Value = Loss> {
    prop_oneof![6 => Just(Loss::None), 1 => Just(Loss::Before), 1 => Just(Loss::After)]
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
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
