//! Ingress: learn from the peer's segments, judge every RST.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    programs::XdpContext,
};
use rstguard_common::{parse::RST, state::track::Origin, Action, Counter};

use crate::{
    count::{bump, counters, iface, Iface},
    judge,
    parse::{parse, read_options, scratch, Cursor, Scratch, Skip},
    socket, state,
};

/// Everything we are not interested in, and everything we cannot parse,
/// passes (fail open); parse failures are counted by kind. The exceptions
/// are frames that could hide a RST on purpose (tiny and overlapping
/// fragments, headers past the parser's bounds): they get a verdict, and
/// the policy decides.
#[inline(always)]
///
/// `SOCKET`: the object built for socket mode (`rstguard-socket`), where
/// segments to this host's own sockets are judged by the socket (RSTs) or
/// only counted (the rest); see socket.rs. The object without it
/// (`rstguard`) is this code with none of socket mode's: the loader picks
/// the one to load, so a kernel that refuses socket mode (or a daemon that
/// does not want it) runs exactly the tracking program.
pub fn run<const SOCKET: bool>(ctx: &XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    let Iface { slot, l3, word } = iface(ifindex);
    let Some(c) = counters(slot) else {
        return XDP_PASS;
    };
    bump(c, Counter::XdpPackets);
    let (start, end) = (ctx.data(), ctx.data_end());
    let Some(scratch) = scratch() else {
        return XDP_PASS;
    };
    let Scratch { pkt, flow } = scratch;
    let parsed = parse(Cursor::new(start, end), end - start, l3, pkt);
    // From here on, read the parsed packet back from the scratch map: the
    // verifier treats map memory as unknown values, so the many paths
    // through the parser merge here instead of each walking the rest.
    let pkt = core::hint::black_box(pkt);
    match parsed {
        Ok(()) => {}
        Err(Skip::NotTcp) => return XDP_PASS,
        Err(Skip::Count(counter)) => {
            bump(c, counter);
            return XDP_PASS;
        }
        Err(Skip::Judge(verdict, counter)) => {
            bump(c, counter);
            return match judge::judge_unparsed(verdict, slot, c) {
                Action::Pass => XDP_PASS,
                Action::Drop => XDP_DROP,
            };
        }
    }
    bump(c, Counter::XdpTcp);
    let by_socket = SOCKET && socket::by_socket(word, &pkt.dst);
    // Socket mode reads no TCP option: the socket holds what they said.
    if !by_socket {
        read_options(Cursor::new(start, end), pkt);
        if pkt.bad_options {
            bump(c, Counter::BadTcpOptions);
        }
    }
    if pkt.seg.has(RST) {
        bump(c, Counter::XdpRst);
        let action = if by_socket {
            socket::judge_rst(ctx, pkt, ifindex, slot, c)
        } else {
            judge::judge_rst(pkt, ifindex, slot, c)
        };
        return match action {
            Action::Pass => XDP_PASS,
            Action::Drop => XDP_DROP,
        };
    }
    if by_socket {
        socket::learn(ctx, pkt, ifindex, slot, c);
    } else {
        state::learn(pkt, Origin::Claim, flow, ifindex, slot, c);
    }
    XDP_PASS
}
