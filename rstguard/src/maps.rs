//! Typed access to rstguard's maps, the same whether they come fresh from
//! the loader (the daemon, the packet tests) or from their pins (the
//! commands a second terminal runs).

use std::collections::BTreeMap;

use aya::{
    maps::{
        lpm_trie::Key, Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuHashMap, PerCpuValues,
    },
    util::nr_cpus,
    Ebpf,
};
use rstguard_common::{
    maps::{self, TrustKey, POLICY_DEFAULT},
    Counters, DaemonState, Flow, FlowKey, FlowState, Policy,
};

use crate::{error::Error, paths::PinDir, trust::Prefix};

/// The maps other processes use (all but the event ring buffer, which only
/// the daemon reads).
pub struct Maps {
    flows: Map,
    counters: Map,
    policy: Map,
    trusted: Map,
    state: Map,
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, Error> {
    ebpf.take_map(name).ok_or(Error::MissingMap(name))
}

fn open(pins: &PinDir, name: &'static str) -> Result<Map, Error> {
    let path = pins.map(name);
    let data = MapData::from_pin(&path).map_err(|e| Error::Pinned {
        path: path.clone(),
        source: Box::new(e),
    })?;
    Map::from_map_data(data).map_err(|e| Error::map(name, e))
}

impl Maps {
    /// Takes the maps out of a loaded object (the programs keep using them).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Maps, Error> {
        Ok(Maps {
            flows: take(ebpf, maps::FLOWS)?,
            counters: take(ebpf, maps::COUNTERS)?,
            policy: take(ebpf, maps::POLICY)?,
            trusted: take(ebpf, maps::TRUSTED)?,
            state: take(ebpf, maps::STATE)?,
        })
    }

    /// Opens the maps a daemon pinned.
    pub fn open(pins: &PinDir) -> Result<Maps, Error> {
        if !pins.exists() {
            return Err(Error::NotRunning { dir: pins.dir() });
        }
        Ok(Maps {
            flows: open(pins, maps::FLOWS)?,
            counters: open(pins, maps::COUNTERS)?,
            policy: open(pins, maps::POLICY)?,
            trusted: open(pins, maps::TRUSTED)?,
            state: open(pins, maps::STATE)?,
        })
    }

    /// Pins every map under `pins`.
    pub fn pin(&self, pins: &PinDir) -> Result<(), Error> {
        for (name, map) in [
            (maps::FLOWS, &self.flows),
            (maps::COUNTERS, &self.counters),
            (maps::POLICY, &self.policy),
            (maps::TRUSTED, &self.trusted),
            (maps::STATE, &self.state),
        ] {
            let path = pins.map(name);
            map.pin(&path).map_err(|e| Error::Pin {
                path,
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    // ---- counters ----

    /// Creates a zeroed counter entry for `ifindex`, so that every series
    /// exists before the first packet.
    pub fn init_counters(&mut self, ifindex: u32) -> Result<(), Error> {
        let mut map: PerCpuHashMap<&mut MapData, u32, Counters> =
            typed_mut(&mut self.counters, maps::COUNTERS)?;
        if map.get(&ifindex, 0).is_ok() {
            return Ok(());
        }
        let ncpus = nr_cpus().map_err(|(_, e)| Error::Cpus(e))?;
        let zeros = PerCpuValues::try_from(vec![Counters::default(); ncpus])
            .map_err(|e| Error::Cpus(std::io::Error::other(e)))?;
        map.insert(ifindex, zeros, 0)
            .map_err(|e| Error::map(maps::COUNTERS, e))
    }

    /// The counters of `ifindex`, summed over all CPUs.
    pub fn counters(&self, ifindex: u32) -> Result<Counters, Error> {
        let map: PerCpuHashMap<&MapData, u32, Counters> = typed(&self.counters, maps::COUNTERS)?;
        match map.get(&ifindex, 0) {
            Ok(per_cpu) => Ok(sum(per_cpu.iter())),
            Err(MapError::KeyNotFound) => Ok(Counters::default()),
            Err(e) => Err(Error::map(maps::COUNTERS, e)),
        }
    }

    /// Every interface index with counters, and its counters.
    pub fn all_counters(&self) -> Result<BTreeMap<u32, Counters>, Error> {
        let map: PerCpuHashMap<&MapData, u32, Counters> = typed(&self.counters, maps::COUNTERS)?;
        let mut out = BTreeMap::new();
        for item in map.iter() {
            let (ifindex, per_cpu) = item.map_err(|e| Error::map(maps::COUNTERS, e))?;
            out.insert(ifindex, sum(per_cpu.iter()));
        }
        Ok(out)
    }

    // ---- flows ----

    pub fn flow(&self, key: &FlowKey) -> Result<Option<Flow>, Error> {
        let map: HashMap<&MapData, FlowKey, Flow> = typed(&self.flows, maps::FLOWS)?;
        match map.get(key, 0) {
            Ok(flow) => Ok(Some(flow)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::map(maps::FLOWS, e)),
        }
    }

    /// Up to `limit` tracked flows (in the map's order). Entries that vanish
    /// while the table is walked are skipped.
    pub fn flows(&self, limit: usize) -> Result<Vec<(FlowKey, Flow)>, Error> {
        let map: HashMap<&MapData, FlowKey, Flow> = typed(&self.flows, maps::FLOWS)?;
        let mut out = Vec::new();
        for item in map.iter() {
            if out.len() >= limit {
                break;
            }
            match item {
                Ok(kv) => out.push(kv),
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(Error::map(maps::FLOWS, e)),
            }
        }
        Ok(out)
    }

    /// Walks the flow table: removes flows closed longer than `closed_ns`
    /// and flows in TIME_WAIT longer than `time_wait_ns` (times on the
    /// programs' clock, CLOCK_MONOTONIC). Returns (entries left, removed).
    pub fn sweep(
        &mut self,
        now_ns: u64,
        closed_ns: u64,
        time_wait_ns: u64,
    ) -> Result<(u64, u64), Error> {
        let mut map: HashMap<&mut MapData, FlowKey, Flow> =
            typed_mut(&mut self.flows, maps::FLOWS)?;
        let mut stale = Vec::new();
        let mut count = 0u64;
        for item in map.iter() {
            let (key, flow) = match item {
                Ok(kv) => kv,
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(Error::map(maps::FLOWS, e)),
            };
            count += 1;
            let age = now_ns.saturating_sub(flow.last_seen_ns);
            let expired = match flow.state() {
                FlowState::Closed => age > closed_ns,
                FlowState::TimeWait => age > time_wait_ns,
                _ => false,
            };
            if expired {
                stale.push(key);
            }
        }
        let mut removed = 0;
        for key in stale {
            match map.remove(&key) {
                Ok(()) => removed += 1,
                Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(Error::map(maps::FLOWS, e)),
            }
        }
        Ok((count - removed, removed))
    }

    // ---- policy ----

    /// The policy of `ifindex` (or the default one, for `POLICY_DEFAULT`).
    pub fn policy(&self, ifindex: u32) -> Result<Option<Policy>, Error> {
        let map: HashMap<&MapData, u32, Policy> = typed(&self.policy, maps::POLICY)?;
        match map.get(&ifindex, 0) {
            Ok(p) => Ok(Some(p)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::map(maps::POLICY, e)),
        }
    }

    /// The default policy (what interfaces without an entry of their own
    /// use); all-zero (fail open) when none was written.
    pub fn default_policy(&self) -> Result<Policy, Error> {
        Ok(self.policy(POLICY_DEFAULT)?.unwrap_or(Policy::FAIL_OPEN))
    }

    pub fn set_policy(&mut self, ifindex: u32, policy: &Policy) -> Result<(), Error> {
        let mut map: HashMap<&mut MapData, u32, Policy> =
            typed_mut(&mut self.policy, maps::POLICY)?;
        map.insert(ifindex, policy, 0)
            .map_err(|e| Error::map(maps::POLICY, e))
    }

    /// Every policy entry, by interface index (0: the default).
    pub fn policies(&self) -> Result<BTreeMap<u32, Policy>, Error> {
        let map: HashMap<&MapData, u32, Policy> = typed(&self.policy, maps::POLICY)?;
        let mut out = BTreeMap::new();
        for item in map.iter() {
            let (k, v) = item.map_err(|e| Error::map(maps::POLICY, e))?;
            out.insert(k, v);
        }
        Ok(out)
    }

    // ---- trusted prefixes ----

    pub fn trust(&mut self, prefix: &Prefix) -> Result<(), Error> {
        let mut map: LpmTrie<&mut MapData, TrustKey, u8> =
            typed_mut(&mut self.trusted, maps::TRUSTED)?;
        map.insert(&Key::new(prefix.lpm_len(), prefix.lpm_data()), 1, 0)
            .map_err(|e| Error::map(maps::TRUSTED, e))
    }

    /// Removes a prefix; false when it was not there.
    pub fn distrust(&mut self, prefix: &Prefix) -> Result<bool, Error> {
        let mut map: LpmTrie<&mut MapData, TrustKey, u8> =
            typed_mut(&mut self.trusted, maps::TRUSTED)?;
        match map.remove(&Key::new(prefix.lpm_len(), prefix.lpm_data())) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(Error::map(maps::TRUSTED, e)),
        }
    }

    pub fn trusted(&self) -> Result<Vec<Prefix>, Error> {
        let map: LpmTrie<&MapData, TrustKey, u8> = typed(&self.trusted, maps::TRUSTED)?;
        let mut out = Vec::new();
        for key in map.keys() {
            let key = key.map_err(|e| Error::map(maps::TRUSTED, e))?;
            if let Some(p) = Prefix::from_lpm(key.prefix_len(), key.data()) {
                out.push(p);
            }
        }
        out.sort_by_key(|p| p.to_string());
        Ok(out)
    }

    // ---- daemon state ----

    pub fn state(&self) -> Result<DaemonState, Error> {
        let map: Array<&MapData, DaemonState> = typed(&self.state, maps::STATE)?;
        map.get(&0, 0).map_err(|e| Error::map(maps::STATE, e))
    }

    pub fn set_state(&mut self, state: &DaemonState) -> Result<(), Error> {
        let mut map: Array<&mut MapData, DaemonState> = typed_mut(&mut self.state, maps::STATE)?;
        map.set(0, state, 0).map_err(|e| Error::map(maps::STATE, e))
    }
}

/// Sums per-CPU copies with wrapping arithmetic.
pub fn sum<'a>(per_cpu: impl Iterator<Item = &'a Counters>) -> Counters {
    let mut total = Counters::default();
    for c in per_cpu {
        total.add(c);
    }
    total
}

fn typed<'a, T>(map: &'a Map, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a Map, Error = MapError>,
{
    T::try_from(map).map_err(|e| Error::map(name, e))
}

fn typed_mut<'a, T>(map: &'a mut Map, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a mut Map, Error = MapError>,
{
    T::try_from(map).map_err(|e| Error::map(name, e))
}
