//! The time, read only when it is needed. Reading the clock costs more on
//! the per-packet path than anything else rstguard does there but the flow
//! lookup, so tracking and judgement ask for it lazily: on flow creation,
//! on a change of state, and for the inexact-RST budget.

/// Something that tells the time (ns on CLOCK_MONOTONIC).
pub trait Clock {
    fn now(&self) -> u64;
}

/// A time already known (host tests).
impl Clock for u64 {
    #[inline(always)]
    fn now(&self) -> u64 {
        *self
    }
}

/// A clock lent to several uses.
impl<C: Clock> Clock for &C {
    #[inline(always)]
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// A clock read on demand (the programs: a helper call).
pub struct Lazy<F>(pub F);

impl<F: Fn() -> u64> Clock for Lazy<F> {
    #[inline(always)]
    fn now(&self) -> u64 {
        (self.0)()
    }
}

/// The flows' own time unit: 2^10 ns (about a microsecond), in 32 bits
/// (wrapping every 73 minutes; every use compares differences). A flow's
/// timer holds one: 4 bytes of its 48.
pub type Units = u32;

/// Shift from nanoseconds to [`Units`].
pub const UNIT_SHIFT: u32 = 10;

/// Nanoseconds in [`Units`].
#[inline(always)]
pub const fn units(ns: u64) -> Units {
    (ns >> UNIT_SHIFT) as Units
}

/// [`Units`] in nanoseconds (a duration).
#[inline(always)]
pub const fn units_to_ns(u: Units) -> u64 {
    (u as u64) << UNIT_SHIFT
}

/// Shift from nanoseconds to [`Seen`] units: 2^31 ns, about 2.1 s.
pub const SEEN_SHIFT: u32 = 31;

/// When a flow last carried a segment, in units of 2^31 ns (about 2.1 s),
/// wrapping every 39 hours: a flow idle longer than that reads as idle for
/// the remainder.
pub type Seen = u16;

/// Nanoseconds (CLOCK_MONOTONIC) as [`Seen`].
#[inline(always)]
pub const fn seen(ns: u64) -> Seen {
    (ns >> SEEN_SHIFT) as Seen
}

/// Whole seconds in [`Seen`] units, rounded up (at least one unit).
pub const fn seen_from_secs(secs: u32) -> Seen {
    let ns = secs as u64 * 1_000_000_000;
    let u = ns.div_ceil(1 << SEEN_SHIFT);
    if u == 0 {
        1
    } else if u > Seen::MAX as u64 {
        Seen::MAX
    } else {
        u as Seen
    }
}

/// [`Seen`] units in whole seconds.
pub const fn seen_to_secs(u: Seen) -> u32 {
    ((u as u64 * (1 << SEEN_SHIFT)) / 1_000_000_000) as u32
}
