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

/// A clock read on demand (the programs: a helper call).
pub struct Lazy<F>(pub F);

impl<F: Fn() -> u64> Clock for Lazy<F> {
    #[inline(always)]
    fn now(&self) -> u64 {
        (self.0)()
    }
}
