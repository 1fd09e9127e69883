//! What the daemon's tasks share, behind one lock.

use std::sync::{Mutex, MutexGuard, PoisonError};

use rstguard_common::DaemonStatus;
use tracing::warn;

use super::{auto::AutoIface, causes, events};
use crate::{attach::Attachment, maps::Maps, socket::LocalAddrs};

/// One attached interface, as the daemon reports it.
#[derive(Clone, Debug)]
pub struct AttachedView {
    pub name: String,
    pub ifindex: u32,
    pub xdp_mode: String,
    pub tc_hook: String,
}

impl AttachedView {
    pub fn of(a: &Attachment) -> AttachedView {
        AttachedView {
            name: a.iface.name.clone(),
            ifindex: a.iface.index,
            xdp_mode: a.xdp_mode.to_string(),
            tc_hook: a.tc_hook.to_string(),
        }
    }
}

/// What the daemon's tasks share.
pub struct Shared {
    pub maps: Maps,
    pub state: DaemonStatus,
    pub attached: Vec<AttachedView>,
    pub top: events::Top,
    /// One controller per interface under `--policy auto` (else empty).
    pub auto: Vec<AutoIface>,
    /// The causes of the last minutes.
    pub causes: causes::Window,
    /// This host's own addresses, for socket mode (when it is on).
    pub local: Option<LocalAddrs>,
}

impl Shared {
    /// (name, ifindex) of every attached interface.
    pub fn devices(&self) -> Vec<(String, u32)> {
        self.attached
            .iter()
            .map(|a| (a.name.clone(), a.ifindex))
            .collect()
    }

    pub fn iface_name(&self, ifindex: u32) -> &str {
        self.attached
            .iter()
            .find(|a| a.ifindex == ifindex)
            .map_or("?", |a| a.name.as_str())
    }

    /// Samples the cause counters of every interface for `status`.
    pub fn sample_causes(&mut self, secs: u64) {
        let counters: Vec<_> = self
            .devices()
            .into_iter()
            .filter_map(|(_, ifindex)| self.maps.counters(ifindex).ok())
            .collect();
        self.causes.push(secs, causes::totals(&counters));
        (self.state.recent_causes, self.state.recent_secs) = self.causes.recent();
    }

    /// Writes the published state (with the current top lists) to its map.
    pub fn publish(&mut self) {
        self.state.top_flows = self.top.top_flows();
        self.state.top_ports = self.top.top_ports();
        if let Err(e) = self.maps.set_state(&self.state) {
            warn!(error = %e, "publishing the daemon state failed");
        }
    }
}

/// Locks the shared state. A task that panicked while holding the lock
/// stops the daemon (see `serve`), but the stop still needs the maps (the
/// final summary, the detach): the state a panic left behind is used as
/// it is rather than panicking again.
pub fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}
