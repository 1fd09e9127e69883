//! The event ring buffer: every RST a real peer could have sent and a
//! sample of the suspicious ones. Each is numbered into the `RESETS` map
//! (`rstguard resets`); the suspicious ones are logged at a bounded rate
//! (with a summary of what was left out) and counted per flow and per
//! attacked port for `rstguard status`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{MapData, PerCpuArray, PerCpuValues, RingBuf};
use rstguard_common::{
    layout::EVENT_REFILL_MS,
    status::{TopFlow, TopPort, TOP_N},
    Action, Cause, Endpoints, ResetRecord, RstEvent,
};
use tracing::{info, warn};

use super::{lock, Shared};
use crate::{
    host::clock::monotonic_to_unix_ns,
    show::explain::{sender_receiver, verdict},
};

/// Flows and ports remembered at most; the least attacked go first.
const TRACKED: usize = 4096;

/// Counts of suspicious RSTs per flow and per attacked (receiving) port.
#[derive(Debug, Default)]
pub struct Top {
    flows: HashMap<Endpoints, u64>,
    ports: HashMap<u16, u64>,
}

impl Top {
    pub fn record(&mut self, e: &RstEvent) {
        *self.flows.entry(e.ends).or_default() += 1;
        let port = if e.sender_is_lo != 0 {
            e.ends.hi_port
        } else {
            e.ends.lo_port
        };
        *self.ports.entry(port).or_default() += 1;
        trim(&mut self.flows);
        trim(&mut self.ports);
    }

    pub fn top_flows(&self) -> [TopFlow; TOP_N] {
        let mut v: Vec<_> = self.flows.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        let mut out = [TopFlow::default(); TOP_N];
        for (slot, (key, count)) in out.iter_mut().zip(v) {
            *slot = TopFlow {
                ends: *key,
                _pad: 0,
                count: *count,
            };
        }
        out
    }

    pub fn top_ports(&self) -> [TopPort; TOP_N] {
        let mut v: Vec<_> = self.ports.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        let mut out = [TopPort::default(); TOP_N];
        for (slot, (port, count)) in out.iter_mut().zip(v) {
            *slot = TopPort {
                port: *port,
                _pad: [0; 6],
                count: *count,
            };
        }
        out
    }
}

fn trim<K: Copy + Eq + std::hash::Hash>(m: &mut HashMap<K, u64>) {
    if m.len() <= TRACKED {
        return;
    }
    let mut counts: Vec<u64> = m.values().copied().collect();
    counts.sort_unstable();
    let cut = counts[counts.len() / 2];
    m.retain(|_, c| *c > cut);
}

/// The events each CPU may send per refill, for `per_sec` a second (at
/// least one when any are allowed).
pub fn per_tick(per_sec: u32) -> u32 {
    (per_sec / (1000 / EVENT_REFILL_MS as u32)).max(u32::from(per_sec > 0))
}

/// Refills every CPU's event budget to `per_tick`.
pub fn refill(budget: &mut PerCpuArray<MapData, u32>, per_tick: u32) {
    let Ok(ncpus) = aya::util::nr_cpus() else {
        return;
    };
    match PerCpuValues::try_from(vec![per_tick; ncpus]) {
        Ok(v) => {
            if let Err(e) = budget.set(0, v, 0) {
                warn!(error = %e, "refilling the event budget failed");
            }
        }
        Err(e) => warn!(error = %e, "refilling the event budget failed"),
    }
}

/// Every 100 ms: refills the programs' event budget and drains the ring
/// (the programs never wake the daemon: see `flows.rs`). Logs at most
/// `per_sec` events a second.
pub async fn run(
    mut ring: RingBuf<MapData>,
    mut budget: PerCpuArray<MapData, u32>,
    per_tick: u32,
    shared: Arc<Mutex<Shared>>,
    per_sec: u32,
) -> anyhow::Result<()> {
    let mut limit = LogLimit::new(per_sec);
    let mut tick = tokio::time::interval(Duration::from_millis(EVENT_REFILL_MS));
    let mut ticks = 0u64;
    let mut batch = Vec::new();
    loop {
        tick.tick().await;
        refill(&mut budget, per_tick);
        ticks += 1;
        if ticks.is_multiple_of(1000 / EVENT_REFILL_MS) {
            limit.new_second();
        }
        batch.clear();
        while let Some(item) = ring.next() {
            if item.len() >= std::mem::size_of::<RstEvent>() {
                // SAFETY: the kernel wrote a whole RstEvent (checked length);
                // read_unaligned copes with the ring's 8-byte alignment.
                batch.push(unsafe { (item.as_ptr() as *const RstEvent).read_unaligned() });
            }
        }
        if batch.is_empty() {
            continue;
        }
        let mut s = lock(&shared);
        for e in &batch {
            s.state.events_seen += 1;
            s.state.resets_recorded += 1;
            let record = ResetRecord {
                event: *e,
                number: s.state.resets_recorded,
                unix_ns: monotonic_to_unix_ns(e.ts_ns),
            };
            if let Err(err) = s.maps.record_reset(&record) {
                warn!(error = %err, "recording a RST for `rstguard resets` failed");
            }
            if !suspicious(e) {
                continue;
            }
            s.top.record(e);
            if limit.allow() {
                log(e, s.iface_name(e.ifindex));
            } else {
                s.state.events_suppressed += 1;
            }
        }
    }
}

/// At most `per_sec` log lines a second; what was left out is summarised
/// in one line when the second ends.
struct LogLimit {
    per_sec: u32,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    fn new(per_sec: u32) -> LogLimit {
        LogLimit {
            per_sec,
            logged: 0,
            suppressed: 0,
        }
    }

    fn allow(&mut self) -> bool {
        if self.logged < self.per_sec {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    fn new_second(&mut self) {
        if self.suppressed > 0 {
            info!(
                suppressed = self.suppressed,
                "events left out of the log in the last second (over the log rate)"
            );
        }
        self.logged = 0;
        self.suppressed = 0;
    }
}

/// Whether an event is about a RST no real peer could have sent (or one
/// forged on the path): those are logged and ranked; the rest only
/// recorded.
fn suspicious(e: &RstEvent) -> bool {
    verdict(e.verdict).is_invalid() || Cause::from_raw(e.cause) == Cause::Injected
}

fn log(e: &RstEvent, device: &str) {
    let (src, dst) = sender_receiver(e);
    let action = if e.action == Action::Drop as u8 {
        "dropped"
    } else {
        "passed"
    };
    // Without a flow there is no expectation: tracing leaves `None` fields out.
    let known = |v: u32| (e.has_flow != 0).then_some(v);
    let (from, socket_state) = match e.has_flow {
        0 => ("nothing", None),
        RstEvent::FROM_SOCKET => (
            "socket",
            Some(rstguard_common::judge::socket::tcp_state::name(
                e.socket_state,
            )),
        ),
        _ => ("flow", None),
    };
    info!(
        device = %device,
        judged_by = from,
        socket_state,
        verdict = %verdict(e.verdict),
        cause = %Cause::from_raw(e.cause),
        action = %action,
        src = %src,
        dst = %dst,
        seq = e.seq,
        expected = known(e.expected),
        window = known(e.window),
        ttl = e.ttl,
        "suspicious RST"
    );
}

#[cfg(test)]
mod tests {
    use rstguard_common::key::v4_mapped;

    use super::*;

    fn event(port: u16, lo_sends: bool) -> RstEvent {
        RstEvent {
            ends: Endpoints {
                lo_addr: v4_mapped([10, 0, 0, 1]),
                hi_addr: v4_mapped([10, 0, 0, 2]),
                lo_port: port,
                hi_port: 80,
            },
            sender_is_lo: lo_sends as u8,
            ..RstEvent::default()
        }
    }

    #[test]
    fn top_counts_flows_and_the_receivers_port() {
        let mut t = Top::default();
        for _ in 0..3 {
            t.record(&event(4000, true));
        }
        t.record(&event(4001, true));
        let flows = t.top_flows();
        assert_eq!(flows[0].count, 3);
        assert_eq!(flows[0].ends.lo_port, 4000);
        assert_eq!(flows[1].count, 1);
        let ports = t.top_ports();
        assert_eq!((ports[0].port, ports[0].count), (80, 4));
        assert_eq!(
            crate::show::explain::endpoints(&flows[0].ends),
            ("10.0.0.1:4000".into(), "10.0.0.2:80".into())
        );
    }

    #[test]
    fn tracking_stays_bounded() {
        let mut t = Top::default();
        for i in 0..(TRACKED as u32 * 2) {
            let mut e = event((i % 60000) as u16, true);
            e.ends.lo_addr = v4_mapped(i.to_be_bytes());
            t.record(&e);
        }
        assert!(t.flows.len() <= TRACKED + 1);
    }
}
