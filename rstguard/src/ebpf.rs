//! The embedded eBPF object: loading it, and typed access to its maps.

use aya::{
    maps::{
        lpm_trie::Key, Array, HashMap, LpmTrie, MapData, MapError, PerCpuHashMap, PerCpuValues,
    },
    programs::{SchedClassifier, Xdp},
    util::nr_cpus,
    Ebpf, EbpfLoader,
};
use rstguard_common::{
    maps::{self, TrustKey},
    Counters, Flow, FlowKey, Policy,
};

use crate::{error::Error, trust::Prefix};

/// The object built by `build.rs` (empty when built with `AYA_BUILD_SKIP`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rstguard"));

/// Options fixed at load time.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Flow table capacity.
    pub flows: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            flows: maps::DEFAULT_FLOWS,
        }
    }
}

/// The loaded object: programs verified and loaded, maps created, nothing
/// attached yet.
pub struct Loaded {
    pub ebpf: Ebpf,
}

impl Loaded {
    /// Loads the object and both programs into the kernel.
    pub fn load(opts: &LoadOptions) -> Result<Loaded, Error> {
        if OBJECT.is_empty() {
            return Err(Error::NoObject);
        }
        if opts.flows == 0 {
            return Err(Error::BadFlows);
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::FLOWS, opts.flows)
            .load(OBJECT)
            .map_err(|e| Error::Load(Box::new(e)))?;
        let xdp: &mut Xdp = program(&mut ebpf, maps::PROG_XDP)?;
        xdp.load().map_err(|e| Error::program(maps::PROG_XDP, e))?;
        let tc: &mut SchedClassifier = program(&mut ebpf, maps::PROG_TC)?;
        tc.load().map_err(|e| Error::program(maps::PROG_TC, e))?;
        Ok(Loaded { ebpf })
    }

    pub fn xdp(&mut self) -> Result<&mut Xdp, Error> {
        program(&mut self.ebpf, maps::PROG_XDP)
    }

    pub fn tc(&mut self) -> Result<&mut SchedClassifier, Error> {
        program(&mut self.ebpf, maps::PROG_TC)
    }

    /// Writes the live policy.
    pub fn set_policy(&mut self, policy: &Policy) -> Result<(), Error> {
        let mut map: Array<&mut MapData, Policy> = map_mut(&mut self.ebpf, maps::POLICY)?;
        map.set(0, policy, 0)
            .map_err(|e| Error::map(maps::POLICY, e))
    }

    /// Reads the live policy.
    pub fn policy(&self) -> Result<Policy, Error> {
        let map: Array<&MapData, Policy> = map_ref(&self.ebpf, maps::POLICY)?;
        map.get(&0, 0).map_err(|e| Error::map(maps::POLICY, e))
    }

    /// Adds a trusted source prefix.
    pub fn trust(&mut self, prefix: &Prefix) -> Result<(), Error> {
        let mut map: LpmTrie<&mut MapData, TrustKey, u8> = map_mut(&mut self.ebpf, maps::TRUSTED)?;
        map.insert(&Key::new(prefix.lpm_len(), prefix.lpm_data()), 1, 0)
            .map_err(|e| Error::map(maps::TRUSTED, e))
    }

    /// Creates a zeroed counter entry for `ifindex`, so that every series
    /// exists before the first packet.
    pub fn init_counters(&mut self, ifindex: u32) -> Result<(), Error> {
        let mut map: PerCpuHashMap<&mut MapData, u32, Counters> =
            map_mut(&mut self.ebpf, maps::COUNTERS)?;
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
        let map: PerCpuHashMap<&MapData, u32, Counters> = map_ref(&self.ebpf, maps::COUNTERS)?;
        match map.get(&ifindex, 0) {
            Ok(per_cpu) => Ok(sum(per_cpu.iter())),
            Err(MapError::KeyNotFound) => Ok(Counters::default()),
            Err(e) => Err(Error::map(maps::COUNTERS, e)),
        }
    }

    /// One tracked flow.
    pub fn flow(&self, key: &FlowKey) -> Result<Option<Flow>, Error> {
        let map: HashMap<&MapData, FlowKey, Flow> = map_ref(&self.ebpf, maps::FLOWS)?;
        match map.get(key, 0) {
            Ok(flow) => Ok(Some(flow)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::map(maps::FLOWS, e)),
        }
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

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf.program_mut(name).ok_or(Error::MissingProgram(name))?;
    prog.try_into().map_err(|e| Error::program(name, e))
}

pub(crate) fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(Error::MissingMap(name))?;
    T::try_from(map).map_err(|e| Error::map(name, e))
}

pub(crate) fn map_ref<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map(name).ok_or(Error::MissingMap(name))?;
    T::try_from(map).map_err(|e| Error::map(name, e))
}
