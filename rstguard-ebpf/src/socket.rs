//! Socket mode at XDP: a RST addressed to this host is judged against the
//! local socket of its four-tuple (`bpf_skc_lookup_tcp`, in the netns of
//! the device), read through the kernel's own types: the `bpf_skc_to_*`
//! casts give typed (BTF) pointers, and the field offsets come from the
//! running kernel's BTF at load time, through the read-only global
//! [`SOCK_FIELDS`]. The verifier knows every offset (the global is frozen)
//! and checks each load against the struct's BTF, as it would a CO-RE
//! relocated one; a wrong offset is refused at load, never read.
//!
//! The judgement itself is `rstguard_common::judge::socket`, pure code shared with
//! the host tests.
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "passing keys and records by value would copy them onto the 512-byte BPF stack"
)]

use core::cell::UnsafeCell;

use aya_ebpf::{
    bindings::{bpf_sock, bpf_sock_tuple, BPF_F_CURRENT_NETNS},
    helpers::{
        bpf_jiffies64, bpf_ktime_get_coarse_ns,
        generated::{
            bpf_sk_release, bpf_skc_lookup_tcp, bpf_skc_to_tcp_request_sock, bpf_skc_to_tcp_sock,
            bpf_skc_to_tcp_timewait_sock,
        },
    },
    macros::map,
    maps::{HashMap, LruHashMap},
    programs::XdpContext,
};
use rstguard_common::{
    act::POLICY_HAS_TRUSTED,
    count::{cause_slot, rst_slot},
    judge::cause::{Thresholds, EVIDENCE_DATA_AFTER},
    judge::socket::{
        self,
        cause::{self as peer_cause, watch_bucket, Peer, PEERS_MAX, PEER_RST, WATCH_BUCKETS},
        tcp_state, ByteField, Kind, Sock, SockFields, Source, LOCAL_ADDRS_MAX,
    },
    judge::Judgement,
    parse::SYN,
    Action, Cause, Counter, Counters, Direction, FlowKey, Policy, RstEvent, Verdict,
};

use crate::{
    act::{policy, report, sampled, take_event, Against},
    count::{bump, bump_slot},
    judge::is_trusted,
    parse::Packet,
};

/// Where the fields socket mode reads sit in the running kernel's structs.
/// User space overrides it at load time (`SockFields::enabled` = 0 when
/// socket mode cannot run: the code below is then dead, and the verifier
/// never walks it).
#[unsafe(no_mangle)]
static SOCK_FIELDS: SockFields = SockFields::DISABLED;

/// This host's own addresses (IPv4-mapped for IPv4), kept by the daemon.
#[map]
static LOCAL_ADDRS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(LOCAL_ADDRS_MAX, 0);

/// What socket mode keeps beside the sockets, learned only from handshake
/// segments and from the RSTs it passes (see `rstguard_common::judge::
/// socket::cause::Peer`).
#[map]
static PEERS: LruHashMap<FlowKey, Peer> = LruHashMap::with_max_entries(PEERS_MAX, 0);

/// When a RST last went on record in [`PEERS`] (coarse ns; 0: never), by
/// the flow's bucket (`watch_bucket`). A data segment is looked for in
/// [`PEERS`] only while its own bucket is watched ([`INJECTION_WATCH_NS`]).
/// A global array (the object's `.bss`), not a map: the program reads its
/// bucket straight, with no lookup helper, no key on the stack and no
/// bounds check but the mask, so a data segment outside the watch costs a
/// hash and one load.
static RST_WATCH: Watch = Watch(UnsafeCell::new([0; WATCH_BUCKETS as usize]));

/// [`RST_WATCH`]'s array. Each entry is one aligned 8-byte word, read and
/// written whole (volatile: one load or store each); a race between CPUs
/// loses one recent timestamp to another.
struct Watch(UnsafeCell<[u64; WATCH_BUCKETS as usize]>);

// SAFETY: see `Watch`: single aligned word accesses only.
unsafe impl Sync for Watch {}

impl Watch {
    /// The entry for `key`.
    #[inline(always)]
    fn entry(&self, key: &FlowKey) -> *mut u64 {
        let i = (watch_bucket(key) & (WATCH_BUCKETS - 1)) as usize;
        // SAFETY: `i` is masked into the array.
        unsafe { (self.0.get() as *mut u64).add(i) }
    }

    /// When a RST on `key`'s bucket last went on record.
    #[inline(always)]
    fn noted(&self, key: &FlowKey) -> u64 {
        // SAFETY: an aligned word of a static (see `Watch`).
        unsafe { core::ptr::read_volatile(self.entry(key)) }
    }

    /// Puts `key`'s bucket on the watch from `now`.
    #[inline(always)]
    fn note(&self, key: &FlowKey, now: u64) {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(self.entry(key), now) }
    }
}

/// How long after a RST went on record the data that proves it forged is
/// looked for: the real peer's next segment comes within its
/// retransmission timeout, seconds at most.
const INJECTION_WATCH_NS: u64 = 10_000_000_000;

/// A field of [`SOCK_FIELDS`], read so that the compiler cannot fold it
/// (it is 0 in the object): the verifier reads the frozen map's value.
macro_rules! field {
    ($f:ident) => {
        volatile(&raw const SOCK_FIELDS.$f)
    };
}

#[inline(always)]
fn volatile<T: Copy>(p: *const T) -> T {
    // SAFETY: `p` points into a static.
    unsafe { core::ptr::read_volatile(p) }
}

/// Whether the loader enabled socket mode.
#[inline(always)]
fn enabled() -> bool {
    field!(enabled) != 0
}

/// Whether a segment through an interface is judged by socket (a RST) or
/// only counted (anything else), rather than tracked: by the interface's
/// state source (in `word`, its IFACE_SLOTS word), and for `auto` by
/// whether this host's own end (`local`: the destination at ingress, the
/// source at egress) is one of its addresses.
///
/// Called after the parser, with the word passed through `black_box`: a
/// source decoded before the parser would be a different constant on each
/// path through it, and the verifier would walk the parser once per
/// source.
#[inline(always)]
pub fn by_socket(word: u32, local: &[u8; 16]) -> bool {
    if !enabled() {
        return false;
    }
    match Source::from_slot_word(core::hint::black_box(word)) {
        Source::Track => false,
        Source::Socket => true,
        // SAFETY: a map value, only compared with None.
        Source::Auto => unsafe { LOCAL_ADDRS.get(local) }.is_some(),
    }
}

/// Reads a u32 at byte `off` of the kernel object `base` points to.
///
/// # Safety
/// `base` is a non-null typed pointer the verifier tracks (a `bpf_skc_to_*`
/// result) and `off` a frozen read-only value: the verifier checks the load
/// against the object's BTF.
#[inline(always)]
unsafe fn u32_at(base: *const u8, off: u32) -> u32 {
    unsafe { *(base.add(off as usize) as *const u32) }
}

/// Reads a one-byte field (maybe a bitfield) of the kernel object at
/// `base`.
///
/// # Safety
/// As [`u32_at`].
#[inline(always)]
unsafe fn byte_at(base: *const u8, f: ByteField) -> u8 {
    (unsafe { *base.add(f.byte as usize) } >> f.shift) & f.mask
}

/// The lookup tuple of `pkt` (as it arrived: its source is the remote
/// end), and its size.
#[inline(always)]
pub fn tuple(pkt: &Packet) -> (bpf_sock_tuple, u32) {
    let (sport, dport) = if pkt.sender_is_lo {
        (pkt.ends.lo_port, pkt.ends.hi_port)
    } else {
        (pkt.ends.hi_port, pkt.ends.lo_port)
    };
    // SAFETY: plain old data; every field the helper reads is set below.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let size = if !pkt.v6 {
        // SAFETY: writing plain fields of a union we own.
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
        t.saddr = u32::from_ne_bytes([pkt.src[12], pkt.src[13], pkt.src[14], pkt.src[15]]);
        t.daddr = u32::from_ne_bytes([pkt.dst[12], pkt.dst[13], pkt.dst[14], pkt.dst[15]]);
        t.sport = sport.to_be();
        t.dport = dport.to_be();
        core::mem::size_of_val(t)
    } else {
        // SAFETY: as above.
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
        for i in 0..4 {
            let at = i * 4;
            t.saddr[i] = u32::from_ne_bytes([
                pkt.src[at],
                pkt.src[at + 1],
                pkt.src[at + 2],
                pkt.src[at + 3],
            ]);
            t.daddr[i] = u32::from_ne_bytes([
                pkt.dst[at],
                pkt.dst[at + 1],
                pkt.dst[at + 2],
                pkt.dst[at + 3],
            ]);
        }
        t.sport = sport.to_be();
        t.dport = dport.to_be();
        core::mem::size_of_val(t)
    };
    (tuple, size as u32)
}

/// The socket `pkt` is addressed to, as socket mode reads it, and when a
/// full socket last received an ACK (jiffies; 0 for the others); `None`
/// when there is none (or the kernel would not hand it over).
#[inline(always)]
fn lookup(ctx: &XdpContext, pkt: &Packet) -> Option<(Sock, u32)> {
    let (mut tuple, size) = tuple(pkt);
    // SAFETY: the context pointer this program was given, a tuple of the
    // size passed; the result is released below on every path.
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx.cast(),
            &mut tuple,
            size,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return None;
    }
    // SAFETY: `state` is one of the `struct bpf_sock` fields a
    // `sock_common` pointer may read.
    let state = unsafe { (*(sk as *const bpf_sock)).state } as u8;
    let sock = read(sk.cast(), state);
    // SAFETY: the reference the lookup took; nothing derived from it is
    // used past this point.
    unsafe { bpf_sk_release(sk.cast()) };
    sock
}

/// Reads the socket `sk` (in TCP state `state`) through the cast its state
/// calls for, and a full socket's `rcv_tstamp`.
#[inline(always)]
fn read(sk: *mut core::ffi::c_void, state: u8) -> Option<(Sock, u32)> {
    let mut s = Sock {
        kind: Kind::Full,
        state,
        rcv_nxt: 0,
        rcv_wup: 0,
        rcv_wnd: 0,
        snd_una: 0,
        snd_nxt: 0,
        rcv_queue_len: 0,
        sack_ok: false,
        num_sacks: 0,
        sack_ends: [0; 4],
    };
    let mut rcv_tstamp = 0;
    match state {
        tcp_state::TIME_WAIT => {
            // SAFETY: a socket the lookup returned.
            let tw = unsafe { bpf_skc_to_tcp_timewait_sock(sk) } as *const u8;
            if tw.is_null() {
                return None;
            }
            s.kind = Kind::TimeWait;
            // SAFETY: typed pointers and frozen offsets (see `u32_at`).
            unsafe {
                s.state = byte_at(tw, field!(tw_substate));
                s.rcv_nxt = u32_at(tw, field!(tw_rcv_nxt));
                s.rcv_wnd = u32_at(tw, field!(tw_rcv_wnd));
            }
        }
        tcp_state::NEW_SYN_RECV => {
            // SAFETY: a socket the lookup returned.
            let req = unsafe { bpf_skc_to_tcp_request_sock(sk) } as *const u8;
            if req.is_null() {
                return None;
            }
            s.kind = Kind::Request;
            // SAFETY: as above.
            unsafe {
                s.rcv_nxt = u32_at(req, field!(req_rcv_nxt));
                s.rcv_wnd = u32_at(req, field!(req_rcv_wnd));
                s.snd_nxt = u32_at(req, field!(req_snt_isn)).wrapping_add(1);
            }
        }
        _ => {
            // SAFETY: a socket the lookup returned.
            let tp = unsafe { bpf_skc_to_tcp_sock(sk) } as *const u8;
            if tp.is_null() {
                return None;
            }
            // SAFETY: as above.
            unsafe {
                s.rcv_nxt = u32_at(tp, field!(rcv_nxt));
                s.rcv_wup = u32_at(tp, field!(rcv_wup));
                s.rcv_wnd = u32_at(tp, field!(rcv_wnd));
                s.snd_una = u32_at(tp, field!(snd_una));
                s.snd_nxt = u32_at(tp, field!(write_seq));
                s.rcv_queue_len = u32_at(tp, field!(rcv_queue_len));
                s.sack_ok = byte_at(tp, field!(sack_ok)) != 0;
                s.num_sacks = byte_at(tp, field!(num_sacks));
                let (first, stride) = (field!(sack_end), field!(sack_stride));
                s.sack_ends = [
                    u32_at(tp, first),
                    u32_at(tp, first + stride),
                    u32_at(tp, first + 2 * stride),
                    u32_at(tp, first + 3 * stride),
                ];
                rcv_tstamp = u32_at(tp, field!(rcv_tstamp));
            }
        }
    }
    Some((s, rcv_tstamp))
}

/// Judges a RST that arrived at XDP against the local socket; counts it by
/// verdict and action, reports it when suspicious, and returns the action.
#[inline(always)]
pub fn judge_rst(
    ctx: &XdpContext,
    pkt: &Packet,
    ifindex: u32,
    slot: u32,
    c: &mut Counters,
) -> Action {
    let fail_open = Policy::FAIL_OPEN;
    let policy = policy(slot).unwrap_or(&fail_open);
    let trusted = policy.flags & POLICY_HAS_TRUSTED != 0 && is_trusted(pkt.src());
    bump(c, Counter::SocketRst);
    let found = if trusted || pkt.seg.first_fragment || !enabled() {
        None
    } else {
        lookup(ctx, pkt)
    };
    let sock = found.map(|(s, _)| s);
    // The peer's record, read only when there is a socket to judge against.
    let peer_ptr = found.and_then(|_| PEERS.get_ptr_mut(&pkt.key));
    // SAFETY: a map value, valid while this program runs.
    let peer = peer_ptr.map(|p| unsafe { *p });
    let peer_ttl = peer.map_or(0, |p| p.ttl);
    let (verdict, action) = socket::judge(sock.as_ref(), &pkt.seg, trusted, peer_ttl, policy);
    // SAFETY: a helper with no arguments and no side effects.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let idle = match found {
        Some((s, rcv_tstamp)) if s.kind == Kind::Full => {
            // SAFETY: as above.
            peer_cause::idle_ns(unsafe { bpf_jiffies64() }, rcv_tstamp, field!(hz))
        }
        _ => 0,
    };
    let facts = peer_cause::facts(sock.as_ref(), peer.as_ref(), &pkt.seg, idle, now);
    let cause = peer_cause::cause(verdict, &facts, &Thresholds::of(policy), now);
    bump_slot(c, rst_slot(verdict, action));
    bump_slot(c, cause_slot(Direction::Ingress, cause));
    // A RST that resets a connection goes on record, and so does one
    // dropped for its distance: data the real peer sends past it proves
    // it forged.
    let synchronized = sock.is_some_and(|s| {
        s.kind == Kind::Full && !matches!(s.state, tcp_state::SYN_SENT | tcp_state::LISTEN)
    });
    if synchronized
        && ((verdict == Verdict::Exact && action == Action::Pass)
            || verdict == Verdict::TtlMismatch)
    {
        let mut record = peer.unwrap_or_default();
        peer_cause::note_rst(&mut record, &pkt.seg, sock.map_or(0, |s| s.window()));
        let _ = PEERS.insert(&pkt.key, &record, 0);
        RST_WATCH.note(&pkt.key, now);
    }
    // As in tracking: every RST a real peer could have sent is reported
    // (within the event budget), suspicious ones as sampled.
    let legitimate = matches!(verdict, Verdict::Exact | Verdict::Trusted);
    if (legitimate || sampled(c, policy.event_sample)) && take_event() {
        let j = Judgement {
            verdict,
            action,
            cause,
            facts,
        };
        let against = match &sock {
            Some(s) => Against {
                expected: s.expected(),
                window: s.window(),
                has_flow: RstEvent::FROM_SOCKET,
                socket_state: s.state,
                evidence: 0,
            },
            None => Against::default(),
        };
        report(pkt, ifindex, &j, Direction::Ingress, &against, c);
    }
    action
}

/// What socket mode learns from a segment that is not a RST, addressed to
/// a local socket: the peer's TTL from a handshake segment the socket
/// vouches for (one socket lookup per SYN and SYN-ACK), and, for a while
/// after a RST on its flow went on record, whether data proves that RST
/// forged. Called only for segments [`by_socket`] chose (so socket mode is
/// enabled).
#[inline(always)]
pub fn learn(ctx: &XdpContext, pkt: &Packet, ifindex: u32, slot: u32, c: &mut Counters) {
    let seg = &pkt.seg;
    if seg.has(SYN) {
        let sock = lookup(ctx, pkt).map(|(s, _)| s);
        if peer_cause::teaches_ttl(sock.as_ref(), seg) {
            let peer = Peer {
                ttl: seg.ttl,
                ..Peer::default()
            };
            let _ = PEERS.insert(&pkt.key, &peer, 0);
        }
        return;
    }
    if seg.payload_len == 0 {
        return;
    }
    let noted = RST_WATCH.noted(&pkt.key);
    if noted == 0 {
        return;
    }
    // SAFETY: a helper with no arguments and no side effects.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now.wrapping_sub(noted) > INJECTION_WATCH_NS {
        return;
    }
    let Some(p) = PEERS.get_ptr_mut(&pkt.key) else {
        return;
    };
    // SAFETY: a map value, valid while this program runs.
    let peer = unsafe { &mut *p };
    let fail_open = Policy::FAIL_OPEN;
    let policy = policy(slot).unwrap_or(&fail_open);
    if !peer_cause::proves_injection(peer, seg, policy.ttl_slack) {
        return;
    }
    // Counted once.
    peer.flags &= !PEER_RST;
    bump_slot(c, cause_slot(Direction::Ingress, Cause::Injected));
    if take_event() {
        let j = Judgement {
            verdict: Verdict::Exact,
            action: Action::Pass,
            cause: Cause::Injected,
            facts: peer_cause::facts(None, Some(peer), seg, 0, now),
        };
        let against = Against {
            has_flow: RstEvent::FROM_SOCKET,
            evidence: EVIDENCE_DATA_AFTER,
            ..Against::default()
        };
        report(pkt, ifindex, &j, Direction::Ingress, &against, c);
    }
}
