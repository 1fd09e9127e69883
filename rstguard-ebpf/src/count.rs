//! Counting: which row of the counters (and of the policies) an interface
//! has, and this CPU's counters in it.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use rstguard_common::{
    layout::{IFINDEX_LIMIT, SLOTS, SLOT_L3, SLOT_MASK},
    Counter, Counters,
};

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

/// What the programs know of an interface.
#[derive(Clone, Copy)]
pub struct Iface {
    /// Its slot in COUNTERS and POLICY (0 when it has none).
    pub slot: u32,
    /// Its frames start at the IP header (no link-layer header).
    pub l3: bool,
    /// Its whole IFACE_SLOTS word (the state source is in it too).
    pub word: u32,
}

/// Interface `ifindex`, from its IFACE_SLOTS entry.
#[inline(always)]
pub fn iface(ifindex: u32) -> Iface {
    let word = IFACE_SLOTS.get(ifindex).copied().unwrap_or(0);
    Iface {
        slot: word & SLOT_MASK,
        l3: word & SLOT_L3 != 0,
        word,
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
