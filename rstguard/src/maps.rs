//! Typed access to rstguard's maps, the same whether they come fresh from
//! the loader (the daemon, the packet tests) or from their pins (the
//! commands a second terminal runs).

use std::collections::BTreeMap;

use aya::{
    maps::{
        lpm_trie::Key, Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuValues,
    },
    util::nr_cpus,
    Ebpf,
};
use rstguard_common::{
    act::POLICY_HAS_TRUSTED,
    clock::{units, units_to_ns},
    layout::{self, TrustKey, POLICY_DEFAULT},
    Counters, DaemonStatus, Flow, FlowKey, FlowState, Policy, ResetRecord,
};

use crate::{error::Error, host::paths::PinDir, trust::Prefix};

/// The maps other processes use (all but the event ring buffer, which only
/// the daemon reads), with one typed handle each: `Maps::<map>()` and
/// `Maps::<map>_mut()` give the map as the type its contents have, and
/// name it in errors. No call site looks a map up by name or types it.
macro_rules! maps {
    ($($field:ident, $field_mut:ident: $name:expr => $ty:ident<$($p:ty),+>;)+) => {
        pub struct Maps {
            $($field: Map,)+
        }

        impl Maps {
            /// Every map, taken or opened by its name.
            fn each(mut get: impl FnMut(&'static str) -> Result<Map, Error>) -> Result<Maps, Error> {
                Ok(Maps {
                    $($field: get($name)?,)+
                })
            }

            /// Every map with its name (to pin them).
            fn named(&self) -> Vec<(&'static str, &Map)> {
                vec![$(($name, &self.$field)),+]
            }

            $(
                fn $field(&self) -> Result<$ty<&MapData, $($p),+>, Error> {
                    $ty::try_from(&self.$field).map_err(|e| Error::map($name, e))
                }

                fn $field_mut(&mut self) -> Result<$ty<&mut MapData, $($p),+>, Error> {
                    $ty::try_from(&mut self.$field).map_err(|e| Error::map($name, e))
                }
            )+
        }
    };
}

maps! {
    assured_map, assured_map_mut: layout::FLOWS => HashMap<FlowKey, Flow>;
    embryonic_map, embryonic_map_mut: layout::EMBRYONIC => HashMap<FlowKey, Flow>;
    counters_map, counters_map_mut: layout::COUNTERS => PerCpuArray<Counters>;
    policy_map, policy_map_mut: layout::POLICY => Array<Policy>;
    slots_map, slots_map_mut: layout::IFACE_SLOTS => Array<u32>;
    slot_ifaces_map, slot_ifaces_map_mut: layout::SLOT_IFACES => Array<u32>;
    trusted_map, trusted_map_mut: layout::TRUSTED => LpmTrie<TrustKey, u8>;
    status_map, status_map_mut: layout::STATUS => Array<DaemonStatus>;
    resets_map, resets_map_mut: layout::RESETS => Array<ResetRecord>;
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, Error> {
    ebpf.take_map(name).ok_or(Error::MissingMap(name))
}

fn open(pins: &PinDir, name: &'static str) -> Result<Map, Error> {
    let path = pins.map(name);
    let data = MapData::from_pin(&path).map_err(|e| Error::Pinned {
        path: path.clone(),
        cause: Box::new(e),
    })?;
    Map::from_map_data(data).map_err(|e| Error::map(name, e))
}

impl Maps {
    /// Takes the maps out of a loaded object (the programs keep using them).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Maps, Error> {
        Maps::each(|name| take(ebpf, name))
    }

    /// Opens the maps a daemon pinned.
    pub fn open(pins: &PinDir) -> Result<Maps, Error> {
        if !pins.exists() {
            return Err(Error::NotRunning { dir: pins.dir() });
        }
        Maps::each(|name| open(pins, name))
    }

    /// Pins every map under `pins`.
    pub fn pin(&self, pins: &PinDir) -> Result<(), Error> {
        for (name, map) in self.named() {
            let path = pins.map(name);
            map.pin(&path).map_err(|e| Error::Pin {
                path,
                cause: Box::new(e),
            })?;
        }
        Ok(())
    }

    // ---- interface slots ----

    /// The slot of `ifindex`, if it has one.
    fn slot_of(&self, ifindex: u32) -> Result<Option<u32>, Error> {
        if ifindex >= layout::IFINDEX_LIMIT {
            return Ok(None);
        }
        let map = self.slots_map()?;
        let word = map
            .get(&ifindex, 0)
            .map_err(|e| Error::map(layout::IFACE_SLOTS, e))?;
        let slot = word & layout::SLOT_MASK;
        Ok((slot != 0).then_some(slot))
    }

    /// Gives `ifindex` a slot of its own (or returns the one it has): zeroed
    /// counters, and the default policy until one is written for it. `l3`:
    /// its frames start at the IP header (the programs parse no link-layer
    /// header there).
    pub fn claim_slot(&mut self, ifindex: u32, l3: bool) -> Result<u32, Error> {
        if ifindex >= layout::IFINDEX_LIMIT {
            return Err(Error::IfindexTooLarge(ifindex));
        }
        if let Some(slot) = self.slot_of(ifindex)? {
            return Ok(slot);
        }
        let owners = self.slot_ifaces_map()?;
        let slot = (1..layout::SLOTS)
            .find(|s| owners.get(s, 0).is_ok_and(|owner| owner == 0))
            .ok_or(Error::TooManyInterfaces)?;
        let ncpus = nr_cpus().map_err(|(_, e)| Error::Cpus(e))?;
        let zeros = PerCpuValues::try_from(vec![Counters::default(); ncpus])
            .map_err(|e| Error::Cpus(std::io::Error::other(e)))?;
        let mut counters = self.counters_map_mut()?;
        counters
            .set(slot, zeros, 0)
            .map_err(|e| Error::map(layout::COUNTERS, e))?;
        let default = self.default_policy()?;
        let mut policy = self.policy_map_mut()?;
        policy
            .set(slot, default, 0)
            .map_err(|e| Error::map(layout::POLICY, e))?;
        let mut owners = self.slot_ifaces_map_mut()?;
        owners
            .set(slot, ifindex, 0)
            .map_err(|e| Error::map(layout::SLOT_IFACES, e))?;
        let mut slots = self.slots_map_mut()?;
        let word = if l3 { slot | layout::SLOT_L3 } else { slot };
        slots
            .set(ifindex, word, 0)
            .map_err(|e| Error::map(layout::IFACE_SLOTS, e))?;
        Ok(slot)
    }

    /// Sets where `ifindex`'s RSTs are judged from (socket mode), keeping
    /// its slot; an interface without a slot gets the source all the same.
    pub fn set_source(
        &mut self,
        ifindex: u32,
        source: rstguard_common::judge::socket::Source,
    ) -> Result<(), Error> {
        use rstguard_common::judge::socket::SLOT_SOURCE_MASK;
        if ifindex >= layout::IFINDEX_LIMIT {
            return Err(Error::IfindexTooLarge(ifindex));
        }
        let mut slots = self.slots_map_mut()?;
        let word = slots
            .get(&ifindex, 0)
            .map_err(|e| Error::map(layout::IFACE_SLOTS, e))?;
        slots
            .set(ifindex, (word & !SLOT_SOURCE_MASK) | source.slot_bits(), 0)
            .map_err(|e| Error::map(layout::IFACE_SLOTS, e))
    }

    /// (slot, ifindex) of every claimed slot.
    fn claimed(&self) -> Result<Vec<(u32, u32)>, Error> {
        let owners = self.slot_ifaces_map()?;
        let mut out = Vec::new();
        for slot in 1..layout::SLOTS {
            let owner = owners
                .get(&slot, 0)
                .map_err(|e| Error::map(layout::SLOT_IFACES, e))?;
            if owner != 0 {
                out.push((slot, owner));
            }
        }
        Ok(out)
    }

    // ---- counters ----

    fn slot_counters(&self, slot: u32) -> Result<Counters, Error> {
        let map = self.counters_map()?;
        let per_cpu = map
            .get(&slot, 0)
            .map_err(|e| Error::map(layout::COUNTERS, e))?;
        Ok(sum(per_cpu.iter()))
    }

    /// The counters of `ifindex`, summed over all CPUs. An interface
    /// without a slot reads the default slot (traffic of no attached
    /// interface, which BPF_PROG_TEST_RUN's loopback runs count).
    pub fn counters(&self, ifindex: u32) -> Result<Counters, Error> {
        self.slot_counters(self.slot_of(ifindex)?.unwrap_or(0))
    }

    /// Every attached interface's counters by interface index, and the
    /// default slot's under index 0 when it counted anything.
    pub fn all_counters(&self) -> Result<BTreeMap<u32, Counters>, Error> {
        let mut out = BTreeMap::new();
        let other = self.slot_counters(0)?;
        if other.slots.iter().any(|v| *v != 0) {
            out.insert(0, other);
        }
        for (slot, ifindex) in self.claimed()? {
            out.insert(ifindex, self.slot_counters(slot)?);
        }
        Ok(out)
    }

    // ---- flows ----

    fn table(&self, t: FlowTable) -> Result<HashMap<&MapData, FlowKey, Flow>, Error> {
        match t {
            FlowTable::Assured => self.assured_map(),
            FlowTable::Embryonic => self.embryonic_map(),
        }
    }

    fn table_mut(&mut self, t: FlowTable) -> Result<HashMap<&mut MapData, FlowKey, Flow>, Error> {
        match t {
            FlowTable::Assured => self.assured_map_mut(),
            FlowTable::Embryonic => self.embryonic_map_mut(),
        }
    }

    /// Kernel memory a flow table takes, as its fdinfo reports
    /// (`memlock`).
    pub fn flows_memory(&self, t: FlowTable) -> Option<u64> {
        use std::os::fd::{AsFd, AsRawFd};
        let map = match t {
            FlowTable::Assured => &self.assured_map,
            FlowTable::Embryonic => &self.embryonic_map,
        };
        let fd = match map {
            Map::LruHashMap(d) | Map::HashMap(d) => d.fd().as_fd().as_raw_fd(),
            _ => return None,
        };
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The flow of `key`, and the table it lives in.
    pub fn find(&self, key: &FlowKey) -> Result<Option<(Flow, FlowTable)>, Error> {
        for t in FlowTable::ALL {
            let map = self.table(t)?;
            match map.get(key, 0) {
                Ok(flow) => return Ok(Some((flow, t))),
                Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(Error::map(t.map_name(), e)),
            }
        }
        Ok(None)
    }

    /// Writes a flow into a table (the benchmarks fill tables this way).
    pub fn insert_flow(&mut self, t: FlowTable, key: &FlowKey, flow: &Flow) -> Result<(), Error> {
        let mut map = self.table_mut(t)?;
        map.insert(key, flow, 0)
            .map_err(|e| Error::map(t.map_name(), e))
    }

    pub fn flow(&self, key: &FlowKey) -> Result<Option<Flow>, Error> {
        Ok(self.find(key)?.map(|(f, _)| f))
    }

    /// Up to `limit` tracked flows (assured ones first, each table in its
    /// map's order). Entries that vanish while a table is walked are
    /// skipped.
    pub fn flows(&self, limit: usize) -> Result<Vec<(FlowKey, Flow, FlowTable)>, Error> {
        let mut out = Vec::new();
        for t in FlowTable::ALL {
            let map = self.table(t)?;
            for item in map.iter() {
                if out.len() >= limit {
                    return Ok(out);
                }
                match item {
                    Ok((k, f)) => out.push((k, f, t)),
                    Err(MapError::KeyNotFound) => continue,
                    Err(e) => return Err(Error::map(t.map_name(), e)),
                }
            }
        }
        Ok(out)
    }

    /// Walks both flow tables: removes flows closed longer than
    /// `closed_ns` and flows in TIME_WAIT longer than `time_wait_ns` (since
    /// they entered that state, on the programs' clock, CLOCK_MONOTONIC).
    pub fn sweep(&mut self, ttl: &SweepTtl, now_ns: u64) -> Result<Swept, Error> {
        let mut swept = Swept::default();
        for t in FlowTable::ALL {
            let (count, stale) = self.expired_flows(t, ttl, now_ns)?;
            let removed = self.remove_expired(t, &stale, ttl, now_ns)?;
            match t {
                FlowTable::Assured => {
                    swept.assured = count - removed;
                    swept.assured_removed = removed;
                }
                FlowTable::Embryonic => {
                    swept.embryonic = count - removed;
                    swept.embryonic_removed = removed;
                }
            }
        }
        Ok(swept)
    }

    /// The sweep's first half: counts a table's entries and lists the keys
    /// of expired flows, as they are now.
    pub fn expired_flows(
        &self,
        t: FlowTable,
        ttl: &SweepTtl,
        now_ns: u64,
    ) -> Result<(u64, Vec<FlowKey>), Error> {
        let map = self.table(t)?;
        let mut stale = Vec::new();
        let mut count = 0u64;
        for item in map.iter() {
            let (key, flow) = match item {
                Ok(kv) => kv,
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(Error::map(t.map_name(), e)),
            };
            count += 1;
            if ttl.expired(&flow, now_ns) {
                stale.push(key);
            }
        }
        Ok((count, stale))
    }

    /// The sweep's second half: removes the flows of `keys` that are still
    /// expired. Each is read again right before it is deleted: the programs
    /// keep running while the table is walked, and a flow restarted in the
    /// meantime (a new SYN on the same four-tuple) must not be swept. (A
    /// restart in the microseconds between that read and the delete is
    /// still lost; the flow's next segment creates it again.)
    pub fn remove_expired(
        &mut self,
        t: FlowTable,
        keys: &[FlowKey],
        ttl: &SweepTtl,
        now_ns: u64,
    ) -> Result<u64, Error> {
        let mut map = self.table_mut(t)?;
        let mut removed = 0;
        for key in keys {
            match map.get(key, 0) {
                Ok(flow) if ttl.expired(&flow, now_ns) => {}
                Ok(_) | Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(Error::map(t.map_name(), e)),
            }
            match map.remove(key) {
                Ok(()) => removed += 1,
                Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(Error::map(t.map_name(), e)),
            }
        }
        Ok(removed)
    }

    // ---- policy ----

    fn slot_policy(&self, slot: u32) -> Result<Policy, Error> {
        let map = self.policy_map()?;
        map.get(&slot, 0).map_err(|e| Error::map(layout::POLICY, e))
    }

    /// The policy of `ifindex` (`POLICY_DEFAULT`: the default one); None for
    /// an interface without a slot.
    pub fn policy(&self, ifindex: u32) -> Result<Option<Policy>, Error> {
        if ifindex == POLICY_DEFAULT {
            return self.slot_policy(0).map(Some);
        }
        match self.slot_of(ifindex)? {
            Some(slot) => self.slot_policy(slot).map(Some),
            None => Ok(None),
        }
    }

    /// The default policy (what interfaces without a slot use); all zero
    /// (monitor: drops nothing) when none was written.
    pub fn default_policy(&self) -> Result<Policy, Error> {
        self.slot_policy(0)
    }

    /// Writes the policy of `ifindex` (`POLICY_DEFAULT`: the default). The
    /// flag that tells the programs whether to look sources up in the
    /// trusted-prefix trie follows the trie, whatever `policy` says.
    pub fn set_policy(&mut self, ifindex: u32, policy: &Policy) -> Result<(), Error> {
        let slot = if ifindex == POLICY_DEFAULT {
            0
        } else {
            self.slot_of(ifindex)?.ok_or(Error::NoSlot(ifindex))?
        };
        let mut p = *policy;
        if self.has_trusted()? {
            p.flags |= POLICY_HAS_TRUSTED;
        } else {
            p.flags &= !POLICY_HAS_TRUSTED;
        }
        let mut map = self.policy_map_mut()?;
        map.set(slot, p, 0)
            .map_err(|e| Error::map(layout::POLICY, e))
    }

    /// Every policy, by interface index (0: the default).
    pub fn policies(&self) -> Result<BTreeMap<u32, Policy>, Error> {
        let mut out = BTreeMap::new();
        out.insert(POLICY_DEFAULT, self.slot_policy(0)?);
        for (slot, ifindex) in self.claimed()? {
            out.insert(ifindex, self.slot_policy(slot)?);
        }
        Ok(out)
    }

    /// Rewrites every policy, so that their trusted flag follows the trie.
    fn sync_trusted_flag(&mut self) -> Result<(), Error> {
        for (ifindex, p) in self.policies()? {
            self.set_policy(ifindex, &p)?;
        }
        Ok(())
    }

    fn has_trusted(&self) -> Result<bool, Error> {
        let map = self.trusted_map()?;
        Ok(map.keys().next().is_some())
    }

    // ---- trusted prefixes ----

    pub fn trust(&mut self, prefix: &Prefix) -> Result<(), Error> {
        let mut map = self.trusted_map_mut()?;
        map.insert(&Key::new(prefix.lpm_len(), prefix.lpm_data()), 1, 0)
            .map_err(|e| Error::map(layout::TRUSTED, e))?;
        self.sync_trusted_flag()
    }

    /// Removes a prefix; false when it was not there.
    pub fn distrust(&mut self, prefix: &Prefix) -> Result<bool, Error> {
        let mut map = self.trusted_map_mut()?;
        match map.remove(&Key::new(prefix.lpm_len(), prefix.lpm_data())) {
            Ok(()) => {}
            Err(MapError::KeyNotFound) => return Ok(false),
            Err(e) => return Err(Error::map(layout::TRUSTED, e)),
        }
        self.sync_trusted_flag()?;
        Ok(true)
    }

    pub fn trusted(&self) -> Result<Vec<Prefix>, Error> {
        let map = self.trusted_map()?;
        let mut out = Vec::new();
        for key in map.keys() {
            let key = key.map_err(|e| Error::map(layout::TRUSTED, e))?;
            if let Some(p) = Prefix::from_lpm(key.prefix_len(), key.data()) {
                out.push(p);
            }
        }
        out.sort_by_key(|p| p.to_string());
        Ok(out)
    }

    // ---- daemon state ----

    pub fn state(&self) -> Result<DaemonStatus, Error> {
        let map = self.status_map()?;
        map.get(&0, 0).map_err(|e| Error::map(layout::STATUS, e))
    }

    pub fn set_state(&mut self, state: &DaemonStatus) -> Result<(), Error> {
        let mut map = self.status_map_mut()?;
        map.set(0, state, 0)
            .map_err(|e| Error::map(layout::STATUS, e))
    }

    // ---- recent RSTs ----

    /// Writes `record` in its place in the ring (by its number).
    pub fn record_reset(&mut self, record: &ResetRecord) -> Result<(), Error> {
        let mut map = self.resets_map_mut()?;
        let index = (record.number % u64::from(layout::RESETS_KEPT)) as u32;
        map.set(index, record, 0)
            .map_err(|e| Error::map(layout::RESETS, e))
    }

    /// Every record written so far that the ring still holds, oldest
    /// first.
    pub fn resets(&self) -> Result<Vec<ResetRecord>, Error> {
        let map = self.resets_map()?;
        let mut all = Vec::new();
        for i in 0..layout::RESETS_KEPT {
            let r = map.get(&i, 0).map_err(|e| Error::map(layout::RESETS, e))?;
            if r.number != 0 {
                all.push(r);
            }
        }
        all.sort_by_key(|r| r.number);
        Ok(all)
    }
}

/// Sums per-CPU copies with wrapping arithmetic.
/// How long closed and TIME_WAIT flows stay before the sweep removes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepTtl {
    pub closed_ns: u64,
    pub time_wait_ns: u64,
}

impl SweepTtl {
    /// Whether the sweep removes `flow` at `now_ns`.
    pub fn expired(&self, flow: &Flow, now_ns: u64) -> bool {
        let ttl = match flow.state() {
            FlowState::Closed => self.closed_ns,
            FlowState::TimeWait => self.time_wait_ns,
            _ => return false,
        };
        age_ns(flow, now_ns) > ttl
    }
}

/// How long a flow in SYN_SENT, CLOSED or TIME_WAIT has been in that state
/// (its timer holds when it began, in the flows' wrapping units).
pub fn age_ns(flow: &Flow, now_ns: u64) -> u64 {
    units_to_ns(units(now_ns).wrapping_sub(flow.timer))
}

/// The two flow tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowTable {
    /// Flows that proved themselves (`--flows`).
    Assured,
    /// Flows not assured yet (`--new-flows`).
    Embryonic,
}

impl FlowTable {
    pub const ALL: [FlowTable; 2] = [FlowTable::Assured, FlowTable::Embryonic];

    pub const fn map_name(self) -> &'static str {
        match self {
            FlowTable::Assured => layout::FLOWS,
            FlowTable::Embryonic => layout::EMBRYONIC,
        }
    }
}

/// What a sweep found and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub assured: u64,
    pub embryonic: u64,
    pub assured_removed: u64,
    pub embryonic_removed: u64,
}

pub fn sum<'a>(per_cpu: impl Iterator<Item = &'a Counters>) -> Counters {
    let mut total = Counters::default();
    for c in per_cpu {
        total.add(c);
    }
    total
}
