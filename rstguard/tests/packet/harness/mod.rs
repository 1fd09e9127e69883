//! The harness: the real eBPF object loaded once per test, frames built with
//! etherparse ([`frame`]) and run through the XDP and TC programs with
//! BPF_PROG_TEST_RUN, and a small model of a TCP conversation ([`lab`]).

mod frame;
mod lab;

pub use frame::*;
pub use lab::*;

use std::net::IpAddr;

use aya::{
    programs::{ProgramError, TestRun, TestRunOptions},
    TestRunResult,
};
use rstguard::ebpf::{LoadOptions, Loaded};
use rstguard_common::{
    count::rst_slot, layout::POLICY_DEFAULT, Action, Counter, Counters, Endpoints, Flow, FlowKey,
    Level, Policy, Verdict,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
/// TC_ACT_UNSPEC / TCX_NEXT (-1).
pub const TC_NEXT: u32 = u32::MAX;
/// BPF_PROG_TEST_RUN runs both programs on the loopback device.
const TEST_IFINDEX: u32 = 1;

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "packet tests load the eBPF object into the kernel and need root: \
             run `sudo -E cargo xtask test`"
        );
    }
}

/// Runs `prog` once over `frame` with BPF_PROG_TEST_RUN (and a context,
/// when given); its return value.
fn run_once<P>(prog: &P, frame: &[u8], ctx: Option<&[u8]>) -> Result<u32, ProgramError>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let opts = TestRunOptions {
        data_in: Some(frame),
        ctx_in: ctx,
        ..TestRunOptions::default()
    };
    prog.test_run(opts).map(|r| r.return_value)
}

/// The oldest kernel whose verifier takes the program with socket mode on:
/// 5.10, the oldest rstguard runs on (the kernel matrix; before LLVM wrote
/// struct copies as plain loads and stores, 5.10's verifier gave up at its
/// million instructions). Older kernels must refuse it cleanly, and load it
/// with socket mode off.
pub const SOCKET_MODE_FROM: (u32, u32) = (5, 10);

/// Loads the object with socket mode on; `None` on a kernel older than
/// [`SOCKET_MODE_FROM`] that refuses it, after checking that the object
/// still loads with socket mode off there (the daemon's fallback).
pub fn with_socket_mode(level: Level, opts: &LoadOptions) -> Option<Harness> {
    match Harness::try_with_options(level, opts) {
        Ok(h) => Some(h),
        Err(e) => {
            let v = aya::util::KernelVersion::current().expect("the kernel version");
            let (major, minor) = SOCKET_MODE_FROM;
            assert!(
                v < aya::util::KernelVersion::new(major as u8, minor as u8, 0),
                "socket mode refused on {v}: {e}"
            );
            eprintln!("socket mode refused on {v} (as expected before {major}.{minor}): {e}");
            let _fallback = Harness::with_options(
                level,
                &LoadOptions {
                    sock_fields: rstguard_common::judge::socket::SockFields::DISABLED,
                    ..opts.clone()
                },
            );
            None
        }
    }
}

/// `struct __sk_buff` up to `ifindex`, with `ingress_ifindex` (offset 36)
/// set: what BPF_PROG_TEST_RUN turns into `skb->skb_iif`, the interface a
/// forwarded packet came in on (0 for the host's own).
fn skb_ctx(ingress_ifindex: u32) -> [u8; 40] {
    let mut ctx = [0u8; 40];
    ctx[36..40].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    ctx
}

/// The real object, freshly loaded (fresh maps) for one test.
pub struct Harness {
    pub loaded: Loaded,
}

impl Harness {
    pub fn new(level: Level) -> Harness {
        Harness::with_flows(level, 1024, 1024)
    }

    /// With room for `flows` assured flows and `new_flows` others.
    pub fn with_flows(level: Level, flows: u32, new_flows: u32) -> Harness {
        Harness::with_options(
            level,
            &LoadOptions {
                flows,
                new_flows,
                ..LoadOptions::default()
            },
        )
    }

    pub fn with_options(level: Level, opts: &LoadOptions) -> Harness {
        Harness::try_with_options(level, opts).expect("loading the eBPF object")
    }

    /// As [`Harness::with_options`], returning the loader's refusal.
    pub fn try_with_options(level: Level, opts: &LoadOptions) -> Result<Harness, rstguard::Error> {
        require_root();
        let mut loaded = Loaded::load(opts)?;
        let policy = Policy {
            level: level as u8,
            ..Policy::default()
        };
        loaded
            .maps
            .set_policy(POLICY_DEFAULT, &policy)
            .expect("writing the policy");
        Ok(Harness { loaded })
    }

    pub fn set_policy(&mut self, f: impl FnOnce(&mut Policy)) {
        let mut p = self
            .loaded
            .maps
            .default_policy()
            .expect("reading the policy");
        f(&mut p);
        self.loaded
            .maps
            .set_policy(POLICY_DEFAULT, &p)
            .expect("writing the policy");
    }

    pub fn trust(&mut self, prefix: &str) {
        self.loaded
            .maps
            .trust(&prefix.parse().expect("a prefix"))
            .expect("adding a trusted prefix");
    }

    pub fn xdp(&mut self, frame: &[u8]) -> u32 {
        run_once(self.loaded.xdp().expect("the XDP program"), frame, None)
            .expect("BPF_PROG_TEST_RUN (xdp)")
    }

    pub fn tc(&mut self, frame: &[u8]) -> u32 {
        run_once(self.loaded.tc().expect("the TC program"), frame, None)
            .expect("BPF_PROG_TEST_RUN (tc)")
    }

    /// Gives every CPU an event budget and empties the ring.
    pub fn open_events(&mut self) {
        let ncpus = aya::util::nr_cpus().expect("the number of CPUs");
        let budget = self.loaded.event_budget.as_mut().expect("the event budget");
        budget
            .set(
                0,
                aya::maps::PerCpuValues::try_from(vec![1000u32; ncpus]).unwrap(),
                0,
            )
            .expect("filling the event budget");
        self.events();
    }

    /// The events the programs sent since the last call.
    pub fn events(&mut self) -> Vec<rstguard_common::RstEvent> {
        let ring = self.loaded.events.as_mut().expect("the event ring");
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            assert!(item.len() >= std::mem::size_of::<rstguard_common::RstEvent>());
            // SAFETY: the program wrote a whole RstEvent (length checked).
            out.push(unsafe {
                (item.as_ptr() as *const rstguard_common::RstEvent).read_unaligned()
            });
        }
        out
    }

    /// Whether BPF_PROG_TEST_RUN takes `ingress_ifindex` in the skb context
    /// (what [`Harness::tc_forwarded`] needs): 5.10 answers EINVAL, 6.1
    /// takes it (the kernel began between them; the matrix proves both).
    pub fn test_run_forwards() -> bool {
        aya::util::KernelVersion::current().expect("the kernel version")
            >= aya::util::KernelVersion::new(6, 1, 0)
    }

    /// Runs the TC program on a frame this host forwards, which came in on
    /// interface `came_in`.
    pub fn tc_forwarded(&mut self, frame: &[u8], came_in: u32) -> u32 {
        let ctx = skb_ctx(came_in);
        run_once(self.loaded.tc().expect("the TC program"), frame, Some(&ctx))
            .expect("BPF_PROG_TEST_RUN (tc, forwarded)")
    }

    /// Like [`Harness::tc`], but returns the kernel's refusal to build an
    /// skb from `frame` (EINVAL) instead of panicking on it.
    pub fn try_tc(&mut self, frame: &[u8]) -> Option<u32> {
        match run_once(self.loaded.tc().expect("the TC program"), frame, None) {
            Ok(verdict) => Some(verdict),
            Err(ProgramError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
            {
                None
            }
            Err(e) => panic!("BPF_PROG_TEST_RUN (tc): {e}"),
        }
    }

    pub fn counters(&self) -> Counters {
        self.loaded
            .maps
            .counters(TEST_IFINDEX)
            .expect("reading counters")
    }

    pub fn flow(&self, key: &FlowKey) -> Option<Flow> {
        self.loaded.maps.flow(key).expect("reading the flow table")
    }

    /// Runs a RST through XDP and returns the verdict it was counted under
    /// and the action taken, checking that exactly one verdict counter
    /// moved and that the return value matches the action.
    pub fn judge(&mut self, frame: &[u8]) -> (Verdict, Action) {
        let before = self.counters();
        let ret = self.xdp(frame);
        let d = self.counters().delta(&before);
        assert_eq!(
            d.get(Counter::XdpRst),
            1,
            "the frame was not counted as a RST"
        );
        let mut moved = Vec::new();
        for v in Verdict::ALL {
            for a in [Action::Pass, Action::Drop] {
                match d.slots[rst_slot(v, a)] {
                    0 => {}
                    1 => moved.push((v, a)),
                    n => panic!("{v:?}/{a:?} moved by {n}"),
                }
            }
        }
        assert_eq!(moved.len(), 1, "verdict counters moved: {moved:?}");
        let (v, a) = moved[0];
        let expected = match a {
            Action::Pass => XDP_PASS,
            Action::Drop => XDP_DROP,
        };
        assert_eq!(ret, expected, "{v:?}/{a:?} but XDP returned {ret}");
        (v, a)
    }

    /// The flow table key of a conversation, as the programs compute it.
    pub fn key_of(&self, a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
        let (ends, _) = Endpoints::new(addr16(a.0), a.1, addr16(b.0), b.1);
        FlowKey::of(&ends, a.0.is_ipv6(), &self.loaded.key_secret)
    }
}
