//! The object's maps. Names are the statics' names; user space finds them
//! through the constants in `rstguard_common::maps`.

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::Key, Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use rstguard_common::{
    maps::{
        TrustKey, DEFAULT_EMBRYONIC, DEFAULT_FLOWS, EVENTS_BYTES, IFINDEX_LIMIT, RESETS_KEPT,
        SLOTS, SLOT_L3, SLOT_MASK,
    },
    state::ResetRecord,
    Counter, Counters, DaemonState, Flow, FlowKey, Policy,
};

use crate::parse::Packet;

/// Flows that have proven themselves ([`Flow::assured`]: handshake done,
/// both sides seen), shared by every hook and interface. Only such flows
/// enter it, so a flood of new flows cannot flush it; when it is full, a
/// new assured flow takes the place of the least recently used one. User
/// space sets the capacity at load time (`--flows`).
#[map]
pub static FLOWS: LruHashMap<FlowKey, Flow> = LruHashMap::with_max_entries(DEFAULT_FLOWS, 0);

/// Flows that have not proven themselves yet: SYN_SENT and SYN_RECV, and
/// flows picked up from one side. A flood of SYNs or mid-stream segments
/// churns this table, not [`FLOWS`] (`--new-flows`). On the kernel's
/// common LRU list, which hands each CPU free entries in batches: per-CPU
/// lists (`BPF_F_NO_COMMON_LRU`) cost more a creation (BENCHMARKS.md).
#[map]
pub static EMBRYONIC: LruHashMap<FlowKey, Flow> =
    LruHashMap::with_max_entries(DEFAULT_EMBRYONIC, 0);

/// Which table a flow was found in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Assured,
    Embryonic,
}

/// The flow of `key`, and the table it lives in: the assured table first
/// (where nearly every packet's flow is), then the embryonic one.
#[inline(always)]
pub fn find_flow(key: &FlowKey) -> Option<(*mut Flow, Table)> {
    if let Some(p) = FLOWS.get_ptr_mut(key) {
        return Some((p, Table::Assured));
    }
    EMBRYONIC.get_ptr_mut(key).map(|p| (p, Table::Embryonic))
}

/// The secret that keys the hash of IPv6 addresses in [`FlowKey`]; user
/// space writes a random one at load time (a read-only global).
#[unsafe(no_mangle)]
static FLOW_KEY_SECRET: [u64; 2] = [0; 2];

#[inline(always)]
pub fn flow_key_secret() -> [u64; 2] {
    // SAFETY: a read-only global the loader set; read it as the verifier
    // sees it (a constant), not as the compiler does (zero).
    unsafe { core::ptr::read_volatile(&FLOW_KEY_SECRET) }
}

/// Interface index -> slot in COUNTERS and POLICY (0: the default slot).
/// Array lookups are inlined by the verifier: a few instructions instead of
/// a hash lookup per packet.
#[map]
pub static IFACE_SLOTS: Array<u32> = Array::with_max_entries(IFINDEX_LIMIT, 0);

/// Slot -> interface index, for user space.
#[map]
pub static SLOT_IFACES: Array<u32> = Array::with_max_entries(SLOTS, 0);

/// Counters per slot.
#[map]
pub static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(SLOTS, 0);

/// The live policy per slot; slot 0 is the default.
#[map]
pub static POLICY: Array<Policy> = Array::with_max_entries(SLOTS, 0);

/// Sampled events about dropped and suspicious RSTs, for the daemon.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Events this CPU may still send until the daemon refills the budget.
#[map]
pub static EVENT_BUDGET: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Takes one event from this CPU's budget, if any is left.
#[inline(always)]
pub fn take_event() -> bool {
    match EVENT_BUDGET.get_ptr_mut(0) {
        // SAFETY: a per-CPU value: this CPU is its only writer (the daemon
        // only ever replaces it whole).
        Some(p) if unsafe { *p } > 0 => {
            unsafe { *p -= 1 };
            true
        }
        _ => false,
    }
}

/// The daemon's published state (`rstguard status`). The programs never
/// touch it; it lives in the object so that it is created and pinned with
/// the other maps.
#[map]
pub static STATE: Array<DaemonState> = Array::with_max_entries(1, 0);

/// The latest RSTs, as the daemon numbered them (`rstguard resets`). The
/// programs never touch it; it lives here to be created and pinned with
/// the others.
#[map]
pub static RESETS: Array<ResetRecord> = Array::with_max_entries(RESETS_KEPT, 0);

/// Trusted source prefixes.
#[map]
pub static TRUSTED: LpmTrie<TrustKey, u8> = LpmTrie::with_max_entries(1024, BPF_F_NO_PREALLOC);

/// Per-CPU working memory for one packet: the parsed segment and a new
/// flow being built. On the 512-byte BPF stack they would crowd out
/// everything else.
pub struct Scratch {
    pub pkt: Packet,
    pub flow: Flow,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch space. Each use initialises what it reads: the
/// parser fills `pkt` before anything reads it, and a new flow is fully
/// written before it is inserted.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: a per-CPU slot; XDP and TC programs do not preempt each other
    // on a CPU mid-run (both run with preemption/BH disabled).
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// LPM tries must be created with this flag.
const BPF_F_NO_PREALLOC: u32 = 1;

/// What the programs know of an interface.
#[derive(Clone, Copy)]
pub struct Iface {
    /// Its slot in COUNTERS and POLICY (0 when it has none).
    pub slot: u32,
    /// Its frames start at the IP header (no link-layer header).
    pub l3: bool,
}

/// Interface `ifindex`, from its IFACE_SLOTS entry.
#[inline(always)]
pub fn iface(ifindex: u32) -> Iface {
    let word = IFACE_SLOTS.get(ifindex).copied().unwrap_or(0);
    Iface {
        slot: word & SLOT_MASK,
        l3: word & SLOT_L3 != 0,
    }
}

/// Whether rstguard is attached to interface `ifindex` (it has a slot).
#[inline(always)]
pub fn attached(ifindex: u32) -> bool {
    iface(ifindex).slot != 0
}

/// The calling CPU's counters for `slot`.
#[inline(always)]
pub fn counters(slot: u32) -> Option<&'static mut Counters> {
    // SAFETY: a per-CPU value: this CPU is its only writer.
    COUNTERS.get_ptr_mut(slot).map(|p| unsafe { &mut *p })
}

#[inline(always)]
pub fn bump(c: &mut Counters, counter: Counter) {
    bump_slot(c, counter as usize);
}

#[inline(always)]
pub fn bump_slot(c: &mut Counters, slot: usize) {
    if let Some(v) = c.slots.get_mut(slot) {
        *v += 1;
    }
}

/// The policy of `slot`. `None` only for an impossible slot: callers then
/// drop nothing and create no pickup flows. (An entry user space never
/// wrote is all zero: monitor, which drops nothing.)
#[inline(always)]
pub fn policy(slot: u32) -> Option<&'static Policy> {
    POLICY.get(slot)
}

#[inline(always)]
pub fn is_trusted(src: &[u8; 16]) -> bool {
    TRUSTED.get(Key::new(128, *src)).is_some()
}
