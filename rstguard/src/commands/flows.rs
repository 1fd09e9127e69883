//! `rstguard flows`: tracked flows with their state.

use rstguard_common::{
    flow::{
        FlowHalf, FLOW_PICKED_UP, HALF_ACK, HALF_LOCAL, HALF_SACK, WSCALE_NONE, WSCALE_UNKNOWN,
    },
    Flow, FlowKey,
};
use serde::Serialize;

use super::print_json;
use crate::{
    cli::FlowsArgs,
    daemon::{events::endpoints, monotonic_ns},
    maps::Maps,
    paths::PinDir,
};

#[derive(Serialize)]
struct FlowView {
    a: String,
    b: String,
    state: &'static str,
    picked_up: bool,
    /// Seconds since the flow was created or last changed state.
    in_state_secs: f64,
    /// What `a` sent, and what `b` sent.
    a_sent: HalfView,
    b_sent: HalfView,
}

#[derive(Serialize)]
struct HalfView {
    snd_nxt: u32,
    max_end: u32,
    ack: Option<u32>,
    win: u32,
    wscale: Option<u8>,
    fin_seq: Option<u32>,
    /// Learned from this host's own segments (authentic).
    local: bool,
    sack_right: Option<u32>,
    ttl: u8,
}

impl From<&FlowHalf> for HalfView {
    fn from(h: &FlowHalf) -> Self {
        HalfView {
            snd_nxt: h.snd_nxt,
            max_end: h.max_end,
            ack: h.has(HALF_ACK).then_some(h.ack),
            win: h.win,
            wscale: (h.wscale != WSCALE_NONE && h.wscale != WSCALE_UNKNOWN).then_some(h.wscale),
            fin_seq: h.fin_confirmed().then_some(h.snd_nxt.wrapping_sub(1)),
            local: h.has(HALF_LOCAL),
            sack_right: h.has(HALF_SACK).then_some(h.sack_right),
            ttl: h.ttl,
        }
    }
}

fn view(key: &FlowKey, f: &Flow, now: u64) -> FlowView {
    let (a, b) = endpoints(key);
    FlowView {
        a,
        b,
        state: f.state().name(),
        picked_up: f.has(FLOW_PICKED_UP),
        in_state_secs: now.saturating_sub(f.state_since_ns) as f64 / 1e9,
        a_sent: HalfView::from(&f.lo),
        b_sent: HalfView::from(&f.hi),
    }
}

pub fn run(pins: &PinDir, args: &FlowsArgs) -> anyhow::Result<()> {
    let maps = Maps::open(pins)?;
    let now = monotonic_ns();
    let flows: Vec<FlowView> = maps
        .flows(args.limit)?
        .iter()
        .map(|(k, f)| view(k, f, now))
        .collect();
    if args.json {
        return print_json(&flows);
    }
    println!("{:<46} {:<46} {:<12} {:>8}", "A", "B", "STATE", "SINCE");
    for f in &flows {
        println!(
            "{:<46} {:<46} {:<12} {:>7.1}s{}",
            f.a,
            f.b,
            f.state,
            f.in_state_secs,
            if f.picked_up { " (picked up)" } else { "" }
        );
    }
    println!("{} flow(s) shown (--limit {})", flows.len(), args.limit);
    Ok(())
}
