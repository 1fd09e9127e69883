//! A modelled TCP conversation between a remote client and a local server,
//! sent segment by segment through the programs: `lab.established()`, then
//! `lab.send(Client.data(100))` or `lab.send(Server.fin())`, then a RST.

use std::net::IpAddr;

use etherparse::TcpOptionElement;
use rstguard_common::{Action, Flow, FlowKey, Level, Verdict};

use super::*;

/// The levels, in order of severity.
pub const LEVELS: [Level; 3] = [Level::Monitor, Level::Enforce, Level::Strict];

/// What a level does with an inexact verdict: monitor passes everything.
pub fn at(level: Level, when_enforced: Action) -> Action {
    if level == Level::Monitor {
        Action::Pass
    } else {
        when_enforced
    }
}

/// The networks most tests run over: plain IPv4 and plain IPv6.
pub fn nets() -> [(&'static str, Net); 2] {
    [
        ("ipv4", Net::default()),
        (
            "ipv6",
            Net {
                v6: true,
                ..Net::default()
            },
        ),
    ]
}

/// The end of the conversation a segment comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The remote client: its segments arrive through XDP.
    Client,
    /// The local server: its segments leave through TC (or, for a
    /// middlebox, arrive through XDP too).
    Server,
}

pub use End::{Client, Server};

impl End {
    pub fn other(self) -> End {
        match self {
            Client => Server,
            Server => Client,
        }
    }

    /// A bare ACK of what this end has received (as every segment after
    /// the first SYN is).
    pub fn ack(self) -> Step {
        Step {
            from: self,
            syn: false,
            fin: false,
            payload: 0,
        }
    }

    /// A SYN with MSS and this end's window scale; a SYN-ACK when it
    /// answers the other end's SYN.
    pub fn syn(self) -> Step {
        self.ack().syn()
    }

    /// A FIN.
    pub fn fin(self) -> Step {
        self.ack().fin()
    }

    /// `len` bytes of data.
    pub fn data(self, len: usize) -> Step {
        self.ack().data(len)
    }
}

/// One segment of the conversation, read as it is written:
/// `Client.syn()`, `Server.data(1000)`, `Client.fin()`,
/// `Server.syn().data(200)` (a SYN-ACK with data, as with Fast Open).
/// Sequence and acknowledgment numbers, windows and options come from the
/// model ([`Side`]).
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub from: End,
    pub syn: bool,
    pub fin: bool,
    pub payload: usize,
}

impl Step {
    pub fn syn(self) -> Step {
        Step { syn: true, ..self }
    }

    pub fn fin(self) -> Step {
        Step { fin: true, ..self }
    }

    pub fn data(self, len: usize) -> Step {
        Step {
            payload: len,
            ..self
        }
    }
}

/// One endpoint of a modelled conversation.
#[derive(Clone, Debug)]
pub struct Side {
    pub addr: IpAddr,
    pub port: u16,
    /// Next sequence number it sends.
    pub nxt: u32,
    /// What it has received from the other side (its RCV.NXT).
    pub rcv: u32,
    /// Window scale it offers in its SYN (None: no option).
    pub ws: Option<u8>,
    /// Raw window field it sends.
    pub win: u16,
    pub sack: Option<(u32, u32)>,
    /// TTL / hop limit its segments arrive with.
    pub ttl: u8,
}

/// A conversation between a remote client and a local server. Client
/// segments arrive through XDP; server segments leave through TC (the host
/// case) or, for a middlebox, also arrive through XDP.
pub struct Lab {
    pub h: Harness,
    pub net: Net,
    pub c: Side,
    pub s: Side,
    pub middlebox: bool,
}

impl Lab {
    pub fn new(level: Level) -> Lab {
        Lab::with_net(level, Net::default())
    }

    pub fn with_net(level: Level, net: Net) -> Lab {
        Lab::on(Harness::new(level), net)
    }

    /// An IPv4 conversation through a harness of one's own.
    pub fn from_harness(h: Harness) -> Lab {
        Lab::on(h, Net::default())
    }

    fn on(h: Harness, net: Net) -> Lab {
        let (ca, sa) = if net.v6 {
            (ip("fd00::1"), ip("fd00::2"))
        } else {
            (ip("10.0.0.1"), ip("10.0.0.2"))
        };
        Lab {
            h,
            net,
            c: Side {
                addr: ca,
                port: 40000,
                nxt: 1_000,
                rcv: 0,
                ws: Some(7),
                win: 512,
                sack: None,
                ttl: 64,
            },
            s: Side {
                addr: sa,
                port: 80,
                nxt: 5_000_000,
                rcv: 0,
                ws: Some(7),
                win: 256,
                sack: None,
                ttl: 64,
            },
            middlebox: false,
        }
    }

    pub fn key(&self) -> FlowKey {
        self.h
            .key_of((self.c.addr, self.c.port), (self.s.addr, self.s.port))
    }

    pub fn flow(&self) -> Flow {
        self.h.flow(&self.key()).expect("the flow is tracked")
    }

    /// Sends `step` from its end, updating the model, and returns the
    /// program's return value.
    pub fn send(&mut self, step: Step) -> u32 {
        let Step {
            from: end,
            syn,
            fin,
            payload,
        } = step;
        let (from, to) = match end {
            Client => (&mut self.c, &mut self.s),
            Server => (&mut self.s, &mut self.c),
        };
        let mut opts = Vec::new();
        if syn {
            opts.push(TcpOptionElement::MaximumSegmentSize(1460));
            if let Some(ws) = from.ws {
                opts.push(TcpOptionElement::Noop);
                opts.push(TcpOptionElement::WindowScale(ws));
            }
        } else if let Some((l, r)) = from.sack {
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::SelectiveAcknowledgement(
                (l, r),
                [None; 3],
            ));
        }
        // A SYN carries an ACK when it answers the other side's SYN.
        let ack = if syn && from.rcv == 0 {
            None
        } else {
            Some(from.rcv)
        };
        let seg = Seg {
            seq: from.nxt,
            ack,
            syn,
            fin,
            rst: false,
            win: from.win,
            opts,
            payload,
            ttl: Some(from.ttl),
        };
        let frame = tcp_frame(&self.net, (from.addr, from.port), (to.addr, to.port), &seg);
        let adv = payload as u32 + syn as u32 + fin as u32;
        from.nxt = from.nxt.wrapping_add(adv);
        to.rcv = from.nxt;
        if end == Client || self.middlebox {
            let ret = self.h.xdp(&frame);
            assert_eq!(ret, XDP_PASS, "a non-RST segment was not passed");
            ret
        } else {
            let ret = self.h.tc(&frame);
            assert_eq!(ret, TC_NEXT, "the classifier must hand on every packet");
            ret
        }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) {
        self.send(Client.syn());
        self.send(Server.syn());
        self.send(Client.ack());
    }

    /// Handshake, then data both ways, every segment acknowledged.
    pub fn established(&mut self) {
        self.handshake();
        self.send(Client.data(100));
        self.send(Server.data(1000));
        self.send(Client.ack());
        self.send(Server.ack());
    }

    /// A RST from the client to the server (arriving at XDP).
    pub fn rst_frame(&self, seq: u32, ack: Option<u32>, payload: usize) -> Vec<u8> {
        let seg = Seg {
            seq,
            ack,
            rst: true,
            payload,
            ..Seg::default()
        };
        tcp_frame(
            &self.net,
            (self.c.addr, self.c.port),
            (self.s.addr, self.s.port),
            &seg,
        )
    }

    /// A RST from the server to the client: the host's own (leaving
    /// through TC) or, arriving at XDP, one a middlebox sees or a spoofed
    /// RST aimed at the client side.
    pub fn rst_to_client_frame(&self, seq: u32, ack: Option<u32>) -> Vec<u8> {
        let seg = Seg {
            seq,
            ack,
            rst: true,
            ..Seg::default()
        };
        tcp_frame(
            &self.net,
            (self.s.addr, self.s.port),
            (self.c.addr, self.c.port),
            &seg,
        )
    }

    /// Judges a RST from the client with `seq` (ACK of what it received).
    pub fn rst(&mut self, seq: u32) -> (Verdict, Action) {
        let frame = self.rst_frame(seq, Some(self.c.rcv), 0);
        self.h.judge(&frame)
    }
}
