//! The embedded eBPF object: loading it and its two programs.

use aya::{
    maps::{Map, MapData, PerCpuArray, RingBuf},
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use rstguard_common::{judge::socket::SockFields, layout};

use crate::{error::Error, host::kernel, maps::Maps};

/// The object built by `build.rs` (empty when built with `AYA_BUILD_SKIP`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rstguard"));

/// The same programs built with socket mode's code (`rstguard-socket`):
/// loaded when socket mode is on, so that the object loaded without it is
/// the tracking program alone, whatever a kernel's verifier makes of
/// socket mode.
static SOCKET_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rstguard-socket"));

/// The object this binary embeds (empty when built with `AYA_BUILD_SKIP`).
pub fn object() -> &'static [u8] {
    OBJECT
}

/// Options fixed at load time.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Capacity of the assured flow table.
    pub flows: u32,
    /// Capacity of the table of flows not yet assured.
    pub new_flows: u32,
    /// Socket mode's field offsets (`SockFields::DISABLED`: off; see
    /// `crate::socket`).
    pub sock_fields: SockFields,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            flows: layout::DEFAULT_FLOWS,
            new_flows: layout::DEFAULT_EMBRYONIC,
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
    /// The secret of IPv6 flow keys (see `FlowKey::of`), chosen at random
    /// for this load.
    pub key_secret: [u64; 2],
}

impl Loaded {
    /// Loads the object and both programs into the kernel.
    /// With socket mode on (`opts.sock_fields.enabled`), the object built
    /// for it.
    pub fn load(opts: &LoadOptions) -> Result<Loaded, Error> {
        if opts.sock_fields.enabled != 0 {
            Self::load_object(SOCKET_OBJECT, opts)
        } else {
            Self::load_object(OBJECT, opts)
        }
    }

    /// Loads `object` (an object with rstguard's maps and its two
    /// programs) and both programs into the kernel.
    pub fn load_object(object: &[u8], opts: &LoadOptions) -> Result<Loaded, Error> {
        if object.is_empty() {
            return Err(Error::NoObject);
        }
        if opts.flows == 0 || opts.new_flows == 0 {
            return Err(Error::BadFlows);
        }
        let key_secret = random_secret()?;
        if let Ok(v) = aya::util::KernelVersion::current() {
            kernel::check(v)?;
        }
        // Calls to helpers this kernel lacks become calls to older ones.
        let object = kernel::rewrite_helpers(object, &kernel::needed_rewrites())?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(layout::FLOWS, opts.flows)
            .map_max_entries(layout::EMBRYONIC, opts.new_flows)
            .override_global(layout::FLOW_KEY_SECRET, &key_secret, true)
            // Only objects with socket mode's code have it.
            .override_global(
                rstguard_common::judge::socket::SOCK_FIELDS,
                &opts.sock_fields,
                false,
            )
            .load(object.bytes())
            .map_err(|e| Error::Load(Box::new(e)))?;
        let xdp: &mut Xdp = program(&mut ebpf, layout::PROG_XDP)?;
        xdp.load()
            .map_err(|e| Error::loading(layout::PROG_XDP, e))?;
        let tc: &mut SchedClassifier = program(&mut ebpf, layout::PROG_TC)?;
        tc.load().map_err(|e| Error::loading(layout::PROG_TC, e))?;
        let events = ebpf
            .take_map(layout::EVENTS)
            .ok_or(Error::MissingMap(layout::EVENTS))?;
        let events = RingBuf::try_from(events).map_err(|e| Error::map(layout::EVENTS, e))?;
        let budget = ebpf
            .take_map(layout::EVENT_BUDGET)
            .ok_or(Error::MissingMap(layout::EVENT_BUDGET))?;
        let budget =
            PerCpuArray::try_from(budget).map_err(|e| Error::map(layout::EVENT_BUDGET, e))?;
        let maps = Maps::from_ebpf(&mut ebpf)?;
        Ok(Loaded {
            ebpf,
            maps,
            events: Some(events),
            event_budget: Some(budget),
            key_secret,
        })
    }

    /// Takes a map no other handle holds (socket mode's `LOCAL_ADDRS`).
    pub fn take_map(&mut self, name: &str) -> Option<Map> {
        self.ebpf.take_map(name)
    }

    pub fn xdp(&mut self) -> Result<&mut Xdp, Error> {
        program(&mut self.ebpf, layout::PROG_XDP)
    }

    pub fn tc(&mut self) -> Result<&mut SchedClassifier, Error> {
        program(&mut self.ebpf, layout::PROG_TC)
    }

    /// Another XDP program of the object, by name, loaded into the kernel
    /// on first use.
    pub fn other_xdp(&mut self, name: &'static str) -> Result<&mut Xdp, Error> {
        let p: &mut Xdp = program(&mut self.ebpf, name)?;
        if p.fd().is_err() {
            p.load().map_err(|e| Error::loading(name, e))?;
        }
        Ok(p)
    }
}

/// 128 random bits from the kernel (getrandom(2)).
fn random_secret() -> Result<[u64; 2], Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Random(e.to_string()))?;
    let (lo, hi) = b.split_at(8);
    Ok([
        u64::from_ne_bytes(lo.try_into().expect("8 bytes")),
        u64::from_ne_bytes(hi.try_into().expect("8 bytes")),
    ])
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf.program_mut(name).ok_or(Error::MissingProgram(name))?;
    prog.try_into().map_err(|e| Error::program(name, e))
}
