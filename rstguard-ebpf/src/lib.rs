//! rstguard's eBPF programs, as a library the objects in `src/bin/` link:
//! XDP on ingress judges RSTs, TC on egress learns the host's own segments,
//! and both learn each flow's sequence state into the flow tables.
//!
//! The path of a packet: [`parse`] (headers, the flow key), [`flows`]
//! (learning from it, or judging it when it is a RST, with the pure code of
//! `rstguard_common`), counted in [`maps`]; [`xdp`] and [`tc`] are the
//! hooks. [`socket`] is socket mode: RSTs to this host judged against its
//! own sockets.
#![no_std]

pub mod flows;
pub mod maps;
pub mod parse;
pub mod socket;
pub mod tc;
pub mod xdp;
