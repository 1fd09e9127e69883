//! Types shared by rstguard's eBPF programs and user space, and the pure
//! judgement of TCP RSTs.
//!
//! Everything that crosses the kernel/user boundary is `#[repr(C)]`, `Copy`,
//! free of `bool`/enum/`Option` fields and of implicit padding, and has a
//! compile-time size check. Enums that index maps (`Counter`, `Verdict`) are
//! defined once here so that user space cannot drift from the kernel.
//!
//! The modules follow a packet: [`parse`] (the TCP segment and its
//! options), [`key`] (the flow it belongs to), [`state`] (what the flow
//! has taught, and [`state::track`]: how a segment updates it), [`judge`]
//! (a RST's verdict and likely cause), [`count`] (the counters), [`act`]
//! (the policy that turns a verdict into an action). Then what crosses to
//! user space: [`event`] (one RST), [`status`] (the daemon's own), and
//! [`layout`] (the names and sizes of the maps). [`clock`], [`seq`] and
//! [`siphash`] are arithmetic the others share.
//!
//! The tracking and judgement are plain arithmetic on those types: the
//! eBPF program calls them on every packet, and host tests, property tests
//! and fuzzers call the very same code.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod act;
pub mod clock;
pub mod count;
pub mod event;
pub mod judge;
pub mod key;
pub mod layout;
pub mod parse;
pub mod seq;
pub mod siphash;
pub mod state;
pub mod status;

#[cfg(feature = "user")]
mod user;

pub use act::{Action, Level, Policy};
pub use count::{Counter, Counters};
pub use event::{ResetRecord, RstEvent};
pub use judge::{
    cause::{Cause, Direction},
    verdict::Verdict,
};
pub use key::{Endpoints, FlowKey};
pub use state::{Flow, FlowHalf, FlowState};
pub use status::DaemonStatus;
