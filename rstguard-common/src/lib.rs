//! Types shared by rstguard's eBPF programs and user space, and the pure
//! judgement of TCP RSTs.
//!
//! Everything that crosses the kernel/user boundary is `#[repr(C)]`, `Copy`,
//! free of `bool`/enum/`Option` fields and of implicit padding, and has a
//! compile-time size check. Enums that index maps (`Counter`, `Verdict`) are
//! defined once here so that user space cannot drift from the kernel.
//!
//! The tracking ([`track`]) and judgement ([`judge`]) modules are plain
//! arithmetic on those types: the eBPF program calls them on every packet,
//! and host tests, property tests and fuzzers call the very same code.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod cause;
pub mod clock;
pub mod counter;
pub mod flow;
pub mod judge;
pub mod maps;
pub mod policy;
pub mod seq;
pub mod siphash;
pub mod socket;
pub mod state;
pub mod tcp;
pub mod track;
pub mod verdict;

#[cfg(feature = "user")]
mod user;

pub use cause::{Cause, Direction};
pub use counter::{Counter, Counters};
pub use flow::{Endpoints, Flow, FlowHalf, FlowKey, FlowState};
pub use policy::{Level, Policy};
pub use state::{DaemonState, RstEvent};
pub use verdict::{Action, Verdict};
