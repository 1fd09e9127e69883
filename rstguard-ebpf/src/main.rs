//! rstguard's eBPF programs: XDP on ingress judges RSTs, TC on egress
//! learns the host's own segments. Both learn each flow's sequence state
//! into one shared map. The entry points are thin; see `xdp.rs`, `tc.rs`.
#![no_std]
#![no_main]

mod flows;
mod maps;
mod parse;
mod socket;
mod tc;
mod xdp;

use aya_ebpf::{
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

#[xdp]
pub fn rstguard_xdp(ctx: XdpContext) -> u32 {
    xdp::run(&ctx)
}

#[classifier]
pub fn rstguard_tc(ctx: TcContext) -> i32 {
    tc::run(&ctx)
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
