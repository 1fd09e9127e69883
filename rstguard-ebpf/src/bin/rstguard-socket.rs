//! The object the daemon loads with socket mode on: rstguard's two programs,
//! with socket mode's code (see `socket.rs`). The loader falls back to the
//! `rstguard` object where the kernel refuses this one.
//!
//! Every entry point is `#[inline(always)]`: aya's macros wrap its body in
//! an inner function, which LLVM leaves out of line when it is large, and
//! every packet then pays a BPF-to-BPF call (8 ns of 70 for TCP data in
//! socket mode; BENCHMARKS.md).
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use rstguard_ebpf::{tc, xdp};

#[xdp]
#[inline(always)]
pub fn rstguard_xdp(ctx: XdpContext) -> u32 {
    xdp::run::<true>(&ctx)
}

#[classifier]
#[inline(always)]
pub fn rstguard_tc(ctx: TcContext) -> i32 {
    tc::run::<true>(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the verifier rejects any program with a reachable panic
    // (it would be an infinite loop).
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
