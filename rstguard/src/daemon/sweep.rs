//! The sweeper: every `SWEEP_EVERY`, removes expired closed and TIME_WAIT
//! flows and counts the tables' entries, through its own handles on the
//! pinned maps (a sweep of a large table must not hold up scrapes).

use std::{sync::Arc, sync::Mutex, time::Duration};

use anyhow::Context as _;
use rstguard_common::{Counter, Counters, DaemonStatus};
use tracing::warn;

use super::{lock, Shared};
use crate::{
    host::clock::{monotonic_ns, unix_now},
    host::paths::PinDir,
    maps::{Maps, SweepTtl, Swept},
};

/// How long a flow closed by a RST stays in the table, and a flow in
/// TIME_WAIT (Linux's TIME_WAIT lasts 60 s).
const CLOSED_TTL: Duration = Duration::from_secs(10);
const TIME_WAIT_TTL: Duration = Duration::from_secs(60);
/// How often the flow table is swept (and its entries counted).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The sweep rule: which flows the sweeper removes (see
/// [`SweepTtl::expired`]).
pub const TTL: SweepTtl = SweepTtl {
    closed_ns: CLOSED_TTL.as_nanos() as u64,
    time_wait_ns: TIME_WAIT_TTL.as_nanos() as u64,
};

/// How many assured flows the table evicted to make room, as far as the
/// counters tell: flows that entered it, less those the programs removed
/// (a new incarnation), those the sweeps removed, and those still there.
pub fn assured_evicted<'a>(
    state: &DaemonStatus,
    counters: impl Iterator<Item = &'a Counters>,
) -> u64 {
    let (mut entered, mut restarted) = (0u64, 0u64);
    for c in counters {
        entered = entered.wrapping_add(c.get(Counter::FlowsAssured));
        restarted = restarted.wrapping_add(c.get(Counter::AssuredRestarted));
    }
    entered
        .saturating_sub(restarted)
        .saturating_sub(state.assured_swept)
        .saturating_sub(state.flow_entries)
}

/// Records a sweep in the published status; returns how many assured
/// flows were evicted since the last sweep that found any.
pub fn account<'a>(
    st: &mut DaemonStatus,
    swept: &Swept,
    counters: impl Iterator<Item = &'a Counters>,
    now_unix: u64,
) -> Option<u64> {
    st.flow_entries = swept.assured;
    st.new_flow_entries = swept.embryonic;
    st.assured_swept += swept.assured_removed;
    st.flows_counted_unix = now_unix;
    let evicted = assured_evicted(st, counters);
    (evicted > st.assured_evicted).then(|| {
        let new = evicted - st.assured_evicted;
        st.assured_evicted = evicted;
        new
    })
}

/// Sweeps forever. A failed sweep is logged and the next one tried; a
/// sweep that panics ends the task (and with it the daemon).
pub async fn run(pins: PinDir, shared: Arc<Mutex<Shared>>) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let pins = pins.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let mut maps = Maps::open(&pins)?;
            maps.sweep(&TTL, monotonic_ns())
        })
        .await
        .context("the sweeper panicked")?;
        let swept = match swept {
            Ok(swept) => swept,
            Err(e) => {
                warn!(error = %e, "sweeping the flow table failed");
                continue;
            }
        };
        let mut s = lock(&shared);
        let counters = s.maps.all_counters().unwrap_or_default();
        let st = &mut s.state;
        if let Some(evicted) = account(st, &swept, counters.values(), unix_now()) {
            warn!(
                evicted,
                capacity = st.flow_capacity,
                "the assured flow table is full: established flows were evicted to make room \
                 (raise --flows)"
            );
        }
        let removed = swept.assured_removed + swept.embryonic_removed;
        if removed > 0 {
            tracing::debug!(removed, ?swept, "swept expired flows");
        }
    }
}

#[cfg(test)]
mod tests {
    use rstguard_common::{clock::units, Flow, FlowState};

    use super::*;

    fn flow(state: FlowState, entered_ns: u64) -> Flow {
        let mut f = Flow {
            timer: units(entered_ns),
            ..Flow::default()
        };
        f.put_state(state);
        f
    }

    #[test]
    fn the_sweeper_removes_only_closed_and_time_wait_flows_past_their_ttl() {
        let now = 1_000 * 1_000_000_000;
        let secs = |s: u64| now - s * 1_000_000_000;
        let cases = [
            (FlowState::Closed, secs(5), false),
            (FlowState::Closed, secs(11), true),
            (FlowState::TimeWait, secs(30), false),
            (FlowState::TimeWait, secs(61), true),
            (FlowState::Established, secs(600), false),
            (FlowState::SynSent, secs(600), false),
            (FlowState::SynRecv, secs(600), false),
            (FlowState::FinSeen, secs(600), false),
        ];
        for (state, entered, expired) in cases {
            assert_eq!(
                TTL.expired(&flow(state, entered), now),
                expired,
                "{state:?} entered {} s ago",
                (now - entered) / 1_000_000_000
            );
        }
    }

    #[test]
    fn a_sweep_counts_entries_and_reports_new_evictions_once() {
        let mut c = Counters::default();
        c.slots[Counter::FlowsAssured as usize] = 10;
        let mut st = DaemonStatus::default();
        let swept = Swept {
            assured: 4,
            embryonic: 2,
            assured_removed: 1,
            embryonic_removed: 0,
        };
        // 10 entered, 1 swept, 4 there: 5 evicted.
        assert_eq!(account(&mut st, &swept, [c].iter(), 77), Some(5));
        assert_eq!(
            (
                st.flow_entries,
                st.new_flow_entries,
                st.assured_swept,
                st.flows_counted_unix
            ),
            (4, 2, 1, 77)
        );
        let again = Swept {
            assured_removed: 0,
            ..swept
        };
        assert_eq!(account(&mut st, &again, [c].iter(), 78), None);
        assert_eq!(st.assured_evicted, 5);
    }
}
