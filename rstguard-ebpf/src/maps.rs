//! The object's maps. Names are the statics' names; user space finds them
//! through the constants in `rstguard_common::maps`.

use aya_ebpf::{
    macros::map,
    maps::{
        lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf,
    },
};
use rstguard_common::{
    maps::{TrustKey, DEFAULT_FLOWS, EVENTS_BYTES, POLICY_DEFAULT},
    tcp::OPTION_BUF,
    Counter, Counters, DaemonState, Flow, FlowKey, Policy,
};

use crate::parse::Packet;

/// Tracked flows, shared by every hook and interface. User space sets the
/// capacity at load time (`--flows`).
#[map]
pub static FLOWS: LruHashMap<FlowKey, Flow> = LruHashMap::with_max_entries(DEFAULT_FLOWS, 0);

/// Counters per interface index.
#[map]
pub static COUNTERS: PerCpuHashMap<u32, Counters> = PerCpuHashMap::with_max_entries(1024, 0);

/// The live policy by interface index, with a default entry.
#[map]
pub static POLICY: HashMap<u32, Policy> = HashMap::with_max_entries(1024, 0);

/// Sampled events about dropped and suspicious RSTs, for the daemon.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// The daemon's published state (`rstguard status`). The programs never
/// touch it; it lives in the object so that it is created and pinned with
/// the other maps.
#[map]
pub static STATE: Array<DaemonState> = Array::with_max_entries(1, 0);

/// Trusted source prefixes.
#[map]
pub static TRUSTED: LpmTrie<TrustKey, u8> = LpmTrie::with_max_entries(1024, BPF_F_NO_PREALLOC);

/// One all-zero `Counters`, the template for a new interface's entry (too
/// large to build on the 512-byte BPF stack). Nothing writes it.
#[map]
pub static ZERO: Array<Counters> = Array::with_max_entries(1, 0);

/// Per-CPU working memory for one packet: the parsed segment and a new
/// flow being built. On the 512-byte BPF stack they would crowd out
/// everything else.
pub struct Scratch {
    pub pkt: Packet,
    pub flow: Flow,
    /// A copy of the segment's TCP options.
    pub opts: [u8; OPTION_BUF],
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

/// The calling CPU's counters for interface `ifindex`, created on first
/// use. `None` only when the map is full (then nothing is counted).
#[inline(always)]
pub fn counters(ifindex: u32) -> Option<&'static mut Counters> {
    if let Some(p) = COUNTERS.get_ptr_mut(ifindex) {
        // SAFETY: a per-CPU value: this CPU is its only writer.
        return Some(unsafe { &mut *p });
    }
    let zero = ZERO.get(0)?;
    // BPF_NOEXIST: another CPU may have created it meanwhile; fine either way.
    let _ = COUNTERS.insert(ifindex, zero, 1);
    // SAFETY: as above.
    COUNTERS.get_ptr_mut(ifindex).map(|p| unsafe { &mut *p })
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

/// The policy of interface `ifindex`, else the default one. `None` when
/// neither exists: callers then drop nothing and create no pickup flows.
#[inline(always)]
pub fn policy(ifindex: u32) -> Option<&'static Policy> {
    // SAFETY: policy entries are only ever replaced whole by user space;
    // a reader sees the old or the new value.
    unsafe { POLICY.get(ifindex).or_else(|| POLICY.get(POLICY_DEFAULT)) }
}

#[inline(always)]
pub fn is_trusted(src: &[u8; 16]) -> bool {
    TRUSTED.get(Key::new(128, *src)).is_some()
}
