//! Egress: learn from the host's own segments (authentic: the kernel wrote
//! them); a RST the host sends closes its flow. Segments the host forwards
//! are claims like any other, and were already seen at XDP when they came
//! in through an interface of ours. Never drops anything.

use aya_ebpf::{bindings::tcx_action_base, programs::TcContext};
use rstguard_common::{parse::RST, state::track::Origin, Counter};

use crate::{
    count::{attached, bump, counters, iface, Iface},
    judge,
    parse::{parse, read_options, scratch, Cursor, Scratch, Skip},
    socket, state,
};

/// `TC_ACT_UNSPEC` under clsact, `TCX_NEXT` under TCX (both -1): let the
/// next program (or the default action) decide. An observer must not end
/// the chain.
pub const TC_NEXT: i32 = tcx_action_base::TCX_NEXT;

/// Headers rstguard reads: Ethernet, two VLAN tags, IPv6 with some
/// extension headers, and TCP with options.
const HEADROOM: u32 = 160;

#[inline(always)]
///
/// `SOCKET`: the object built for socket mode, where the host's own flows
/// that socket mode judges are not tracked (see xdp.rs).
pub fn run<const SOCKET: bool>(ctx: &TcContext) -> i32 {
    // SAFETY: the context pointer the kernel passed to this program.
    let (ifindex, came_in) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).ingress_ifindex) };
    let Iface { slot, l3, word } = iface(ifindex);
    let Some(c) = counters(slot) else {
        return TC_NEXT;
    };
    bump(c, Counter::TcPackets);
    let len = ctx.len();
    // Headers of a non-linear skb may lie outside the directly readable
    // part: pull them in first.
    let want = if len < HEADROOM { len } else { HEADROOM };
    if ((ctx.data_end() - ctx.data()) as u32) < want {
        let _ = ctx.pull_data(want);
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    let Some(scratch) = scratch() else {
        return TC_NEXT;
    };
    let Scratch { pkt, flow } = scratch;
    let parsed = parse(Cursor::new(start, end), len as usize, l3, pkt);
    // From here on, read the parsed packet back from the scratch map: the
    // verifier treats map memory as unknown values, so the many paths
    // through the parser merge here instead of each walking the rest.
    let pkt = core::hint::black_box(pkt);
    match parsed {
        Ok(()) => {}
        Err(Skip::NotTcp) => return TC_NEXT,
        // Egress judges nothing: what ingress would judge is only counted.
        Err(Skip::Count(counter) | Skip::Judge(_, counter)) => {
            bump(c, counter);
            return TC_NEXT;
        }
    }
    // Options past the pulled-in headers (long IPv6 extension chains):
    // pull them in too. Pulling moves the data, so read the pointers anew.
    let opts_end = pkt.opt_off + pkt.opt_len as u32;
    if pkt.opt_len != 0 && opts_end <= len && opts_end as usize > end - start {
        let _ = ctx.pull_data(opts_end);
    }
    read_options(Cursor::new(ctx.data(), ctx.data_end()), pkt);
    bump(c, Counter::TcTcp);
    if pkt.bad_options {
        bump(c, Counter::BadTcpOptions);
    }
    // A packet the host built has no ingress interface; a forwarded one
    // keeps the one it arrived on.
    let local = came_in == 0;
    if pkt.seg.has(RST) {
        if local {
            bump(c, Counter::TcRst);
            judge::own_rst(pkt, ifindex, c);
        } else {
            bump(c, Counter::TcForwardedRst);
        }
    } else if local {
        if !(SOCKET && socket::by_socket(word, &pkt.src)) {
            state::learn(pkt, Origin::Local, flow, ifindex, slot, c);
        }
    } else if !attached(came_in) {
        // Forwarded from an interface without rstguard: not seen before.
        state::learn(pkt, Origin::Claim, flow, ifindex, slot, c);
    }
    TC_NEXT
}
