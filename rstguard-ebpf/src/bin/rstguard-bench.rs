//! The benchmark object (`cargo xtask bench` only; the daemon never loads
//! it): rstguard's own programs, plus the baselines they are measured
//! against and helpers that make BPF_PROG_TEST_RUN exercise one path.
//!
//! * `bench_pass`: an empty XDP program (XDP_PASS), the floor.
//! * `bench_parse`: rstguard's parser, no maps.
//! * `bench_lookup`: the parser and one LRU-hash lookup of the flow: the
//!   least any stateful filter must do.
//! * `bench_sk_lookup`: the parser and one socket lookup (and its release):
//!   the least a judgement against the socket must do.
//! * `bench_drop_rst`: the parser, and XDP_DROP for every RST: the limit of
//!   any XDP RST filter (the reference in the flood benchmark).
//! * `bench_new_flow`: adds one to the IPv4 source address, then runs
//!   rstguard's XDP program. BPF_PROG_TEST_RUN runs the program `repeat`
//!   times over the same buffer, so each run sees a new flow: flow creation
//!   on every run (into the table of new flows, on the common LRU list).
//! * `bench_new_flow_per_cpu`: the same creation, into a table with
//!   per-CPU LRU lists (`BPF_F_NO_COMMON_LRU`), for the comparison.
//!
//! The entry points are `#[inline(always)]`, as in the daemon's objects
//! (see `rstguard.rs`).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        xdp_action::{XDP_DROP, XDP_PASS},
        BPF_F_CURRENT_NETNS, BPF_F_NO_COMMON_LRU,
    },
    helpers::generated::{bpf_sk_release, bpf_skc_lookup_tcp},
    macros::{classifier, map, xdp},
    maps::LruHashMap,
    programs::{TcContext, XdpContext},
};
use rstguard_common::{
    parse::RST,
    state::track::{self, Origin},
    Flow, FlowKey,
};
use rstguard_ebpf::{
    parse::{self, parse, Cursor, Packet},
    socket, state, tc, xdp,
};

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

/// rstguard's XDP program as the socket-mode object builds it.
#[xdp]
#[inline(always)]
pub fn bench_socket_xdp(ctx: XdpContext) -> u32 {
    xdp::run::<true>(&ctx)
}

#[xdp]
#[inline(always)]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Parses into `pkt`; true when it is a TCP segment.
#[inline(always)]
fn parsed(ctx: &XdpContext, pkt: &mut Packet) -> bool {
    let (start, end) = (ctx.data(), ctx.data_end());
    parse(Cursor::new(start, end), end - start, false, pkt).is_ok()
}

#[xdp]
#[inline(always)]
pub fn bench_parse(ctx: XdpContext) -> u32 {
    let Some(scratch) = parse::scratch() else {
        return XDP_PASS;
    };
    let ok = parsed(&ctx, &mut scratch.pkt);
    core::hint::black_box(ok);
    XDP_PASS
}

#[xdp]
#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "the key by value would be a copy on the stack, which rstguard's own lookup does not make"
)]
pub fn bench_lookup(ctx: XdpContext) -> u32 {
    let Some(scratch) = parse::scratch() else {
        return XDP_PASS;
    };
    if parsed(&ctx, &mut scratch.pkt) {
        core::hint::black_box(state::FLOWS.get_ptr(&scratch.pkt.key));
    }
    XDP_PASS
}

#[xdp]
#[inline(always)]
pub fn bench_sk_lookup(ctx: XdpContext) -> u32 {
    let Some(scratch) = parse::scratch() else {
        return XDP_PASS;
    };
    if parsed(&ctx, &mut scratch.pkt) {
        let (mut tuple, size) = socket::tuple(&scratch.pkt);
        // SAFETY: this program's context, a tuple of the size given; the
        // socket is released at once.
        unsafe {
            let sk = bpf_skc_lookup_tcp(
                ctx.ctx.cast(),
                &mut tuple,
                size,
                BPF_F_CURRENT_NETNS as u64,
                0,
            );
            if !sk.is_null() {
                bpf_sk_release(sk.cast());
            }
        }
    }
    XDP_PASS
}

#[xdp]
#[inline(always)]
pub fn bench_drop_rst(ctx: XdpContext) -> u32 {
    let Some(scratch) = parse::scratch() else {
        return XDP_PASS;
    };
    if parsed(&ctx, &mut scratch.pkt) && scratch.pkt.seg.has(RST) {
        XDP_DROP
    } else {
        XDP_PASS
    }
}

/// Offset of the IPv4 source address in an untagged frame.
const IPV4_SRC: usize = 14 + 12;

/// Adds one to the frame's IPv4 source address: each run a new flow.
#[inline(always)]
fn next_source(ctx: &XdpContext) {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + IPV4_SRC + 4 <= end {
        let p = (start + IPV4_SRC) as *mut [u8; 4];
        // SAFETY: inside the frame, as just checked.
        unsafe {
            let next = u32::from_be_bytes(p.read_unaligned()).wrapping_add(1);
            p.write_unaligned(next.to_be_bytes());
        }
    }
}

#[xdp]
#[inline(always)]
pub fn bench_new_flow(ctx: XdpContext) -> u32 {
    next_source(&ctx);
    xdp::run::<false>(&ctx)
}

/// A table like the one of new flows, but with an LRU list per CPU
/// (`BPF_F_NO_COMMON_LRU`), for the comparison.
#[map]
static BENCH_PER_CPU_LRU: LruHashMap<FlowKey, Flow> =
    LruHashMap::with_max_entries(1 << 20, BPF_F_NO_COMMON_LRU);

/// What creating a flow costs rstguard (parse, two lookups that miss, the
/// flow built, one insert), with the insert into a table of per-CPU lists.
#[xdp]
#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "the key and flow by value would be copies on the stack, which rstguard's own code does not make"
)]
pub fn bench_new_flow_per_cpu(ctx: XdpContext) -> u32 {
    next_source(&ctx);
    let Some(scratch) = parse::scratch() else {
        return XDP_PASS;
    };
    if parsed(&ctx, &mut scratch.pkt) && state::find_flow(&scratch.pkt.key).is_none() {
        let pkt = &scratch.pkt;
        track::init(
            &mut scratch.flow,
            &pkt.seg,
            pkt.sender_is_lo,
            Origin::Claim,
            0u64,
        );
        let _ = BENCH_PER_CPU_LRU.insert(&pkt.key, &scratch.flow, 0);
    }
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
