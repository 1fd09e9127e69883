//! `rstguard flows`: tracked flows with their state.

use rstguard_common::{
    state::track::timed,
    state::{FLOW_PICKED_UP, HALF_ACK, HALF_FIN, HALF_LOCAL, HALF_SACK, WSCALE_NONE},
    Flow, FlowKey,
};
use serde::Serialize;

use super::print_json;
use crate::{
    cli::FlowsArgs,
    host::clock::monotonic_ns,
    host::paths::PinDir,
    maps::{age_ns, FlowTable, Maps},
    show::explain::endpoints,
};

#[derive(Serialize)]
struct FlowView {
    a: String,
    b: String,
    state: &'static str,
    /// `assured`, or `embryonic` (not proven yet: a flood may evict it).
    table: FlowTable,
    picked_up: bool,
    /// Seconds in this state, for the states whose age rstguard keeps
    /// (SYN_SENT, CLOSED, TIME_WAIT).
    in_state_secs: Option<f64>,
    /// What `a` sent, and what `b` sent.
    a_sent: HalfView,
    b_sent: HalfView,
}

#[derive(Serialize)]
struct HalfView {
    snd_nxt: u32,
    max_end: u32,
    ack: Option<u32>,
    /// The window in bytes (scaled).
    win: u32,
    wscale: Option<u8>,
    fin_seq: Option<u32>,
    /// Learned from this host's own segments (authentic).
    local: bool,
    sack_right: Option<u32>,
    ttl: u8,
}

impl HalfView {
    fn of(f: &Flow, is_lo: bool) -> Self {
        let (h, _) = f.halves(is_lo);
        let ws = f.wscale(is_lo);
        HalfView {
            snd_nxt: h.snd_nxt,
            max_end: h.max_end,
            ack: h.has(HALF_ACK).then_some(h.ack),
            win: f.window(is_lo),
            wscale: (ws != WSCALE_NONE).then_some(ws),
            fin_seq: h.has(HALF_FIN).then_some(h.max_end.wrapping_sub(1)),
            local: h.has(HALF_LOCAL),
            sack_right: h.has(HALF_SACK).then_some(h.sack_right),
            ttl: h.ttl,
        }
    }
}

/// The endpoints of a table key: IPv4 addresses as they are; IPv6 ones are
/// hashed in the key, so only the hash and the ports show.
fn key_endpoints(key: &FlowKey) -> (String, String) {
    match key.v4_endpoints() {
        Some(e) => endpoints(&e),
        None => {
            let h = (u64::from(key.addrs[1]) << 32) | u64::from(key.addrs[0]);
            (
                format!("[ipv6 #{h:016x}]:{}", key.lo_port),
                format!("[ipv6 #{h:016x}]:{}", key.hi_port),
            )
        }
    }
}

fn view(key: &FlowKey, f: &Flow, table: FlowTable, now: u64) -> FlowView {
    let (a, b) = key_endpoints(key);
    FlowView {
        a,
        b,
        state: f.state().name(),
        table,
        picked_up: f.has(FLOW_PICKED_UP),
        in_state_secs: timed(f.state()).then(|| age_ns(f, now) as f64 / 1e9),
        a_sent: HalfView::of(f, true),
        b_sent: HalfView::of(f, false),
    }
}

pub fn run(pins: &PinDir, args: &FlowsArgs) -> anyhow::Result<()> {
    let maps = Maps::open(pins)?;
    let now = monotonic_ns();
    let flows: Vec<FlowView> = maps
        .flows(args.limit)?
        .iter()
        .map(|(k, f, t)| view(k, f, *t, now))
        .collect();
    if args.json {
        return print_json(&flows);
    }
    println!(
        "{:<46} {:<46} {:<12} {:<10} {:>8}",
        "A", "B", "STATE", "TABLE", "SINCE"
    );
    for f in &flows {
        println!(
            "{:<46} {:<46} {:<12} {:<10} {:>8}{}",
            f.a,
            f.b,
            f.state,
            match f.table {
                FlowTable::Assured => "assured",
                FlowTable::Embryonic => "new",
            },
            f.in_state_secs.map_or("-".into(), |s| format!("{s:.1}s")),
            if f.picked_up { " (picked up)" } else { "" }
        );
    }
    println!("{} flow(s) shown (--limit {})", flows.len(), args.limit);
    Ok(())
}
