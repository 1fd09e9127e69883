//! The object the daemon loads: rstguard's two programs. The entry points
//! are thin; the library (`xdp.rs`, `tc.rs`) holds what they do.
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
    xdp::run::<false>(&ctx)
}

#[classifier]
#[inline(always)]
pub fn rstguard_tc(ctx: TcContext) -> i32 {
    tc::run::<false>(&ctx)
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
