//! The harness: the real eBPF object loaded once per test, frames built with
//! etherparse and run through the XDP and TC programs with
//! BPF_PROG_TEST_RUN, and a small model of a TCP conversation.

use std::net::IpAddr;

use aya::{
    programs::{ProgramError, TestRun, TestRunOptions},
    TestRunResult,
};
use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, PacketBuilder, TcpOptionElement, VlanId,
};
use rstguard::ebpf::{LoadOptions, Loaded};
use rstguard_common::{
    count::rst_slot, key::v4_mapped, layout::POLICY_DEFAULT, Action, Counter, Counters, Endpoints,
    Flow, FlowKey, Level, Policy, Verdict,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
/// TC_ACT_UNSPEC / TCX_NEXT (-1).
pub const TC_NEXT: u32 = u32::MAX;
/// BPF_PROG_TEST_RUN runs both programs on the loopback device.
const TEST_IFINDEX: u32 = 1;

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "packet tests load the eBPF object into the kernel and need root: \
             run `sudo -E cargo xtask test`"
        );
    }
}

/// Runs `prog` once over `frame` with BPF_PROG_TEST_RUN (and a context,
/// when given); its return value.
fn run_once<P>(prog: &P, frame: &[u8], ctx: Option<&[u8]>) -> Result<u32, ProgramError>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let opts = TestRunOptions {
        data_in: Some(frame),
        ctx_in: ctx,
        ..TestRunOptions::default()
    };
    prog.test_run(opts).map(|r| r.return_value)
}

/// The oldest kernel whose verifier takes the program with socket mode on
/// (the kernel matrix: 5.10's gives up at its million instructions; the
/// daemon then tracks, saying why). Older kernels must refuse it cleanly,
/// and load it with socket mode off.
pub const SOCKET_MODE_FROM: (u32, u32) = (6, 1);

/// Loads the object with socket mode on; `None` on a kernel older than
/// [`SOCKET_MODE_FROM`] that refuses it, after checking that the object
/// still loads with socket mode off there (the daemon's fallback).
pub fn with_socket_mode(level: Level, opts: &LoadOptions) -> Option<Harness> {
    match Harness::try_with_options(level, opts) {
        Ok(h) => Some(h),
        Err(e) => {
            let v = aya::util::KernelVersion::current().expect("the kernel version");
            let (major, minor) = SOCKET_MODE_FROM;
            assert!(
                v < aya::util::KernelVersion::new(major as u8, minor as u8, 0),
                "socket mode refused on {v}: {e}"
            );
            eprintln!("socket mode refused on {v} (as expected before {major}.{minor}): {e}");
            let _fallback = Harness::with_options(
                level,
                &LoadOptions {
                    sock_fields: rstguard_common::judge::socket::SockFields::DISABLED,
                    ..opts.clone()
                },
            );
            None
        }
    }
}

/// `struct __sk_buff` up to `ifindex`, with `ingress_ifindex` (offset 36)
/// set: what BPF_PROG_TEST_RUN turns into `skb->skb_iif`, the interface a
/// forwarded packet came in on (0 for the host's own).
fn skb_ctx(ingress_ifindex: u32) -> [u8; 40] {
    let mut ctx = [0u8; 40];
    ctx[36..40].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    ctx
}

/// The real object, freshly loaded (fresh maps) for one test.
pub struct Harness {
    pub loaded: Loaded,
}

impl Harness {
    pub fn new(level: Level) -> Harness {
        Harness::with_flows(level, 1024, 1024)
    }

    /// With room for `flows` assured flows and `new_flows` others.
    pub fn with_flows(level: Level, flows: u32, new_flows: u32) -> Harness {
        Harness::with_options(
            level,
            &LoadOptions {
                flows,
                new_flows,
                ..LoadOptions::default()
            },
        )
    }

    pub fn with_options(level: Level, opts: &LoadOptions) -> Harness {
        Harness::try_with_options(level, opts).expect("loading the eBPF object")
    }

    /// As [`Harness::with_options`], returning the loader's refusal.
    pub fn try_with_options(level: Level, opts: &LoadOptions) -> Result<Harness, rstguard::Error> {
        require_root();
        let mut loaded = Loaded::load(opts)?;
        let policy = Policy {
            level: level as u8,
            ..Policy::default()
        };
        loaded
            .maps
            .set_policy(POLICY_DEFAULT, &policy)
            .expect("writing the policy");
        Ok(Harness { loaded })
    }

    pub fn set_policy(&mut self, f: impl FnOnce(&mut Policy)) {
        let mut p = self
            .loaded
            .maps
            .default_policy()
            .expect("reading the policy");
        f(&mut p);
        self.loaded
            .maps
            .set_policy(POLICY_DEFAULT, &p)
            .expect("writing the policy");
    }

    pub fn trust(&mut self, prefix: &str) {
        self.loaded
            .maps
            .trust(&prefix.parse().expect("a prefix"))
            .expect("adding a trusted prefix");
    }

    pub fn xdp(&mut self, frame: &[u8]) -> u32 {
        run_once(self.loaded.xdp().expect("the XDP program"), frame, None)
            .expect("BPF_PROG_TEST_RUN (xdp)")
    }

    pub fn tc(&mut self, frame: &[u8]) -> u32 {
        run_once(self.loaded.tc().expect("the TC program"), frame, None)
            .expect("BPF_PROG_TEST_RUN (tc)")
    }

    /// Whether BPF_PROG_TEST_RUN takes `ingress_ifindex` in the skb context
    /// (what [`Harness::tc_forwarded`] needs): 5.10 answers EINVAL, 6.1
    /// takes it (the kernel began between them; the matrix proves both).
    pub fn test_run_forwards() -> bool {
        aya::util::KernelVersion::current().expect("the kernel version")
            >= aya::util::KernelVersion::new(6, 1, 0)
    }

    /// Runs the TC program on a frame this host forwards, which came in on
    /// interface `came_in`.
    pub fn tc_forwarded(&mut self, frame: &[u8], came_in: u32) -> u32 {
        let ctx = skb_ctx(came_in);
        run_once(self.loaded.tc().expect("the TC program"), frame, Some(&ctx))
            .expect("BPF_PROG_TEST_RUN (tc, forwarded)")
    }

    /// Like [`Harness::tc`], but returns the kernel's refusal to build an
    /// skb from `frame` (EINVAL) instead of panicking on it.
    pub fn try_tc(&mut self, frame: &[u8]) -> Option<u32> {
        match run_once(self.loaded.tc().expect("the TC program"), frame, None) {
            Ok(verdict) => Some(verdict),
            Err(ProgramError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
            {
                None
            }
            Err(e) => panic!("BPF_PROG_TEST_RUN (tc): {e}"),
        }
    }

    pub fn counters(&self) -> Counters {
        self.loaded
            .maps
            .counters(TEST_IFINDEX)
            .expect("reading counters")
    }

    pub fn flow(&self, key: &FlowKey) -> Option<Flow> {
        self.loaded.maps.flow(key).expect("reading the flow table")
    }

    /// Runs a RST through XDP and returns the verdict it was counted under
    /// and the action taken, checking that exactly one verdict counter
    /// moved and that the return value matches the action.
    pub fn judge(&mut self, frame: &[u8]) -> (Verdict, Action) {
        let before = self.counters();
        let ret = self.xdp(frame);
        let d = self.counters().delta(&before);
        assert_eq!(
            d.get(Counter::XdpRst),
            1,
            "the frame was not counted as a RST"
        );
        let mut moved = Vec::new();
        for v in Verdict::ALL {
            for a in [Action::Pass, Action::Drop] {
                match d.slots[rst_slot(v, a)] {
                    0 => {}
                    1 => moved.push((v, a)),
                    n => panic!("{v:?}/{a:?} moved by {n}"),
                }
            }
        }
        assert_eq!(moved.len(), 1, "verdict counters moved: {moved:?}");
        let (v, a) = moved[0];
        let expected = match a {
            Action::Pass => XDP_PASS,
            Action::Drop => XDP_DROP,
        };
        assert_eq!(ret, expected, "{v:?}/{a:?} but XDP returned {ret}");
        (v, a)
    }
}

/// How frames are wrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encap {
    #[default]
    Plain,
    /// One 802.1Q tag.
    Vlan,
    /// 802.1ad outer tag, 802.1Q inner tag.
    QinQ,
}

/// The network a conversation runs over.
#[derive(Clone, Copy, Debug, Default)]
pub struct Net {
    pub v6: bool,
    pub encap: Encap,
    /// IPv4 header with 8 bytes of options (IHL 7).
    pub ipv4_options: bool,
    /// IPv6 hop-by-hop and destination options headers before TCP.
    pub ipv6_exts: bool,
}

/// One TCP segment to build.
#[derive(Clone, Debug, Default)]
pub struct Seg {
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub win: u16,
    pub opts: Vec<TcpOptionElement>,
    pub payload: usize,
    /// IPv4 TTL / IPv6 hop limit (None: 64).
    pub ttl: Option<u8>,
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

impl Harness {
    /// The flow table key of a conversation, as the programs compute it.
    pub fn key_of(&self, a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
        let (ends, _) = Endpoints::new(addr16(a.0), a.1, addr16(b.0), b.1);
        FlowKey::of(&ends, a.0.is_ipv6(), &self.loaded.key_secret)
    }
}

pub fn addr16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Builds an Ethernet frame carrying `seg` from `src` to `dst`.
pub fn tcp_frame(net: &Net, src: (IpAddr, u16), dst: (IpAddr, u16), seg: &Seg) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let mut ip = ip_headers(net, src.0, dst.0, IpNumber::TCP);
    if let Some(ttl) = seg.ttl {
        match &mut ip {
            IpHeaders::Ipv4(h, _) => h.time_to_live = ttl,
            IpHeaders::Ipv6(h, _) => h.hop_limit = ttl,
        }
    }
    let step = match net.encap {
        Encap::Plain => eth.ip(ip),
        Encap::Vlan => eth.single_vlan(VlanId::try_new(10).unwrap()).ip(ip),
        Encap::QinQ => eth
            .double_vlan(VlanId::try_new(100).unwrap(), VlanId::try_new(10).unwrap())
            .ip(ip),
    };
    let mut tcp = step.tcp(src.1, dst.1, seg.seq, seg.win);
    if let Some(ack) = seg.ack {
        tcp = tcp.ack(ack);
    }
    if seg.syn {
        tcp = tcp.syn();
    }
    if seg.fin {
        tcp = tcp.fin();
    }
    if seg.rst {
        tcp = tcp.rst();
    }
    if !seg.opts.is_empty() {
        tcp = tcp.options(&seg.opts).expect("TCP options fit");
    }
    let payload = vec![0x5a; seg.payload];
    let mut frame = Vec::with_capacity(tcp.size(payload.len()));
    tcp.write(&mut frame, &payload).expect("building the frame");
    frame
}

/// A UDP frame (not our business).
pub fn udp_frame(net: &Net) -> Vec<u8> {
    let ip = ip_headers(net, ip("10.0.0.1"), ip("10.0.0.2"), IpNumber::UDP);
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ip(ip).udp(5000, 53);
    let mut frame = Vec::new();
    b.write(&mut frame, &[1, 2, 3, 4])
        .expect("building the frame");
    frame
}

fn ip_headers(net: &Net, src: IpAddr, dst: IpAddr, proto: IpNumber) -> IpHeaders {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Ipv4Header::new(0, 64, proto, s.octets(), d.octets()).unwrap();
            if net.ipv4_options {
                // Two NOPs, then a 6-byte option of an unassigned kind,
                // which routers ignore: 8 bytes, IHL 7.
                h.options = Ipv4Options::try_from(&[1u8, 1, 0x5e, 6, 0, 0, 0, 0][..]).unwrap();
            }
            IpHeaders::Ipv4(h, Default::default())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: proto,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            };
            let mut exts = Ipv6Extensions::default();
            if net.ipv6_exts {
                let pad = [1u8, 4, 0, 0, 0, 0]; // PadN, 6 bytes
                exts.hop_by_hop_options = Some(Ipv6RawExtHeader::new_raw(proto, &pad).unwrap());
                exts.destination_options = Some(Ipv6RawExtHeader::new_raw(proto, &pad).unwrap());
            }
            IpHeaders::Ipv6(h, exts)
        }
        _ => panic!("mixed address families"),
    }
}

/// An IPv6 frame with a fragment header: the first fragment (offset 0)
/// carries TCP, a later one does not.
pub fn ipv6_fragment(offset_units: u16, seg: &Seg) -> Vec<u8> {
    let (s, d) = (ip("fd00::1"), ip("fd00::2"));
    let mut ip = ip_headers(&Net::default(), s, d, IpNumber::TCP);
    if let IpHeaders::Ipv6(_, exts) = &mut ip {
        exts.fragment = Some(Ipv6FragmentHeader::new(
            IpNumber::TCP,
            etherparse::IpFragOffset::try_new(offset_units).unwrap(),
            true,
            7,
        ));
    }
    let mut tcp = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(ip)
        .tcp(40000, 80, seg.seq, seg.win);
    if seg.rst {
        tcp = tcp.rst();
    }
    let mut frame = Vec::new();
    tcp.write(&mut frame, &[]).expect("building the frame");
    frame
}

/// An IPv4 fragment at `offset_units` * 8 bytes (0: the first one).
pub fn ipv4_fragment(offset_units: u16, seg: &Seg) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
    h.more_fragments = true;
    h.fragment_offset = etherparse::IpFragOffset::try_new(offset_units).unwrap();
    let mut tcp = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv4(h, Default::default()))
        .tcp(40000, 80, seg.seq, seg.win);
    if seg.rst {
        tcp = tcp.rst();
    }
    let mut frame = Vec::new();
    tcp.write(&mut frame, &[]).expect("building the frame");
    frame
}

/// Inserts `n` more IPv6 destination-options headers (8 bytes each, PadN)
/// right after the fixed header of an untagged IPv6 frame, fixing the
/// next-header chain and the payload length. etherparse writes each kind
/// of extension header at most once; longer chains are built this way.
pub fn add_ipv6_dest_opts(frame: &mut Vec<u8>, n: usize) {
    const IP: usize = 14;
    for _ in 0..n {
        let next = frame[IP + 6];
        let ext = [next, 0, 1, 4, 0, 0, 0, 0];
        frame.splice(IP + 40..IP + 40, ext);
        frame[IP + 6] = 60; // IPPROTO_DSTOPTS
        let len = u16::from_be_bytes([frame[IP + 4], frame[IP + 5]]) + 8;
        frame[IP + 4..IP + 6].copy_from_slice(&len.to_be_bytes());
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

    /// Sends a segment from the client (`true`) or the server, updating the
    /// model, and returns the program's return value.
    pub fn send(&mut self, from_client: bool, syn: bool, fin: bool, payload: usize) -> u32 {
        let (from, to) = if from_client {
            (&mut self.c, &mut self.s)
        } else {
            (&mut self.s, &mut self.c)
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
        if from_client || self.middlebox {
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
        self.send(true, true, false, 0);
        self.send(false, true, false, 0);
        self.send(true, false, false, 0);
    }

    /// Handshake, then data both ways, every segment acknowledged.
    pub fn established(&mut self) {
        self.handshake();
        self.send(true, false, false, 100);
        self.send(false, false, false, 1000);
        self.send(true, false, false, 0);
        self.send(false, false, false, 0);
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

    /// A RST from the server to the client (arriving at XDP: a middlebox,
    /// or a spoofed RST aimed at the client side).
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
