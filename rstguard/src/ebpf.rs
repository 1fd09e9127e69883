//! The embedded eBPF object: loading it and its two programs.

use aya::{
    maps::{Map, MapData, PerCpuArray, RingBuf},
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use rstguard_common::{maps, socket::SockFields};

use crate::{error::Error, maps::Maps};

/// The object built by `build.rs` (empty when built with `AYA_BUILD_SKIP`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rstguard"));

/// The benchmark object: rstguard's programs and the baselines they are
/// measured against (see `rstguard-ebpf/src/bench.rs`).
#[cfg(feature = "bench")]
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rstguard-bench"));

/// The oldest kernel with every helper the programs call
/// (`bpf_xdp_load_bytes` came in 5.18).
pub const MIN_KERNEL: (u8, u8) = (5, 18);

/// Refuses kernels older than [`MIN_KERNEL`], naming both versions.
pub fn check_kernel(current: aya::util::KernelVersion) -> Result<(), Error> {
    let (major, minor) = MIN_KERNEL;
    if current < aya::util::KernelVersion::new(major, minor, 0) {
        return Err(Error::OldKernel {
            found: format!("{current:?}"),
        });
    }
    Ok(())
}

/// Options fixed at load time.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Flow table capacity.
    pub flows: u32,
    /// Socket mode's field offsets (`SockFields::DISABLED`: off; see
    /// `crate::socket`).
    pub sock_fields: SockFields,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            flows: maps::DEFAULT_FLOWS,
            sock_fields: SockFields::DISABLED,
        }
    }
}

/// The loaded object: programs verified and loaded, maps created, nothing
/// attached yet.
pub struct Loaded {
    ebpf: Ebpf,
    pub maps: Maps,
    /// The event ring buffer, until the daemon takes it.
    pub events: Option<RingBuf<MapData>>,
    /// The per-CPU event budget, until the daemon takes it.
    pub event_budget: Option<PerCpuArray<MapData, u32>>,
}

impl Loaded {
    /// Loads the object and both programs into the kernel.
    pub fn load(opts: &LoadOptions) -> Result<Loaded, Error> {
        Self::load_object(OBJECT, opts, &[])
    }

    /// Loads `object`: rstguard's two programs, and the extra XDP programs
    /// named in `extra_xdp` (the benchmark's baselines).
    pub fn load_object(
        object: &[u8],
        opts: &LoadOptions,
        extra_xdp: &[&'static str],
    ) -> Result<Loaded, Error> {
        if object.is_empty() {
            return Err(Error::NoObject);
        }
        if opts.flows == 0 {
            return Err(Error::BadFlows);
        }
        if let Ok(v) = aya::util::KernelVersion::current() {
            check_kernel(v)?;
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::FLOWS, opts.flows)
            .override_global(
                rstguard_common::socket::SOCK_FIELDS,
                &opts.sock_fields,
                true,
            )
            .load(object)
            .map_err(|e| Error::Load(Box::new(e)))?;
        for name in extra_xdp {
            let p: &mut Xdp = program(&mut ebpf, name)?;
            p.load().map_err(|e| Error::program(name, e))?;
        }
        let xdp: &mut Xdp = program(&mut ebpf, maps::PROG_XDP)?;
        xdp.load().map_err(|e| Error::program(maps::PROG_XDP, e))?;
        let tc: &mut SchedClassifier = program(&mut ebpf, maps::PROG_TC)?;
        tc.load().map_err(|e| Error::program(maps::PROG_TC, e))?;
        let events = ebpf
            .take_map(maps::EVENTS)
            .ok_or(Error::MissingMap(maps::EVENTS))?;
        let events = RingBuf::try_from(events).map_err(|e| Error::map(maps::EVENTS, e))?;
        let budget = ebpf
            .take_map(maps::EVENT_BUDGET)
            .ok_or(Error::MissingMap(maps::EVENT_BUDGET))?;
        let budget =
            PerCpuArray::try_from(budget).map_err(|e| Error::map(maps::EVENT_BUDGET, e))?;
        let maps = Maps::from_ebpf(&mut ebpf)?;
        Ok(Loaded {
            ebpf,
            maps,
            events: Some(events),
            event_budget: Some(budget),
        })
    }

    /// Takes a map no other handle holds (socket mode's `LOCAL_ADDRS`).
    pub fn take_map(&mut self, name: &str) -> Option<Map> {
        self.ebpf.take_map(name)
    }

    pub fn xdp(&mut self) -> Result<&mut Xdp, Error> {
        program(&mut self.ebpf, maps::PROG_XDP)
    }

    pub fn tc(&mut self) -> Result<&mut SchedClassifier, Error> {
        program(&mut self.ebpf, maps::PROG_TC)
    }

    /// Any XDP program of the object, by name.
    pub fn xdp_named(&mut self, name: &'static str) -> Result<&mut Xdp, Error> {
        program(&mut self.ebpf, name)
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf.program_mut(name).ok_or(Error::MissingProgram(name))?;
    prog.try_into().map_err(|e| Error::program(name, e))
}

#[cfg(test)]
mod tests {
    use aya::util::KernelVersion;

    use super::*;

    #[test]
    fn old_kernels_are_refused_by_name() {
        assert!(check_kernel(KernelVersion::new(6, 18, 0)).is_ok());
        assert!(check_kernel(KernelVersion::new(5, 18, 0)).is_ok());
        let err = check_kernel(KernelVersion::new(5, 15, 120))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("5.18") && err.contains("5") && err.contains("15"),
            "{err}"
        );
    }
}
