//! rstguard's eBPF programs, as a library the objects in `src/bin/` link:
//! XDP on ingress judges RSTs, TC on egress learns the host's own segments,
//! and both learn each flow's sequence state into the flow tables.
//!
//! A packet's path, in files named after its steps: [`parse`] (headers),
//! [`key`] (its flow's table key), [`state`] (the flow tables, and learning
//! from a segment that is not a RST), [`judge`] (a RST's verdict and cause),
//! [`count`] (the counters), [`act`] (the policy's action, and the event
//! for the daemon); all with the pure code of `rstguard_common`. [`xdp`]
//! and [`tc`] are the hooks that run those steps. [`socket`] is socket
//! mode: RSTs to this host judged against its own sockets. [`status`]
//! holds the daemon's maps, created and pinned with the object.
#![no_std]

pub mod act;
pub mod count;
pub mod judge;
pub mod key;
pub mod parse;
pub mod socket;
pub mod state;
pub mod status;
pub mod tc;
pub mod xdp;
