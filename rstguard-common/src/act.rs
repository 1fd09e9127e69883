//! Acting on a verdict: the [`Action`] taken on a packet, and the live
//! [`Policy`] that chooses it, held in an array map that user space writes
//! and the programs read on every RST.

/// What happens to the packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Pass = 0,
    Drop = 1,
}

impl Action {
    /// From the raw byte stored in [`Policy`]; unknown values pass.
    #[inline(always)]
    pub const fn from_raw(v: u8) -> Action {
        if v == Action::Drop as u8 {
            Action::Drop
        } else {
            Action::Pass
        }
    }

    /// Past-tense name, as in counters and metrics (`passed`, `dropped`).
    pub const fn past(self) -> &'static str {
        match self {
            Action::Pass => "passed",
            Action::Drop => "dropped",
        }
    }

    /// Imperative name, as in the policy (`pass`, `drop`).
    pub const fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
        }
    }
}

/// How hard rstguard judges. Stored as a raw byte in [`Policy::level`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Drop nothing; count every verdict.
    Monitor = 0,
    /// Drop `out_of_window`, `bad_syn_ack`, `rate_limited` and the
    /// fragment evasions.
    Enforce = 1,
    /// Also drop `in_window` and frames whose TCP header is unreachable.
    Strict = 2,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Monitor, Level::Enforce, Level::Strict];

    /// From the raw byte; unknown values read as `Monitor` (fail open).
    #[inline(always)]
    pub const fn from_raw(v: u8) -> Level {
        match v {
            1 => Level::Enforce,
            2 => Level::Strict,
            _ => Level::Monitor,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Level::Monitor => "monitor",
            Level::Enforce => "enforce",
            Level::Strict => "strict",
        }
    }
}

/// Largest per-flow budget: keeps the bucket's arithmetic within 64 bits.
pub const MAX_INEXACT_PER_SEC: u32 = 1_000_000;

/// Default per-flow budget of inexact RSTs let through per second.
pub const DEFAULT_INEXACT_PER_SEC: u32 = 10;

/// The live policy. An all-zero value ([`Policy::FAIL_OPEN`]) drops nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// [`Level`] as a raw byte.
    pub level: u8,
    /// [`Action`] for RSTs of flows not in the table.
    pub no_flow: u8,
    /// [`Action`] for RSTs of flows in TIME_WAIT (drop = RFC 1337).
    pub time_wait: u8,
    /// Non-zero: create flows from mid-stream segments, not only from SYNs.
    pub pickup: u8,
    /// Burst of the per-flow inexact-RST budget (0: none pass).
    pub inexact_burst: u32,
    /// Interval between inexact RSTs at the budget's sustained rate, in ns.
    pub inexact_interval_ns: u64,
    /// Send an event for one in this many suspicious RSTs (0: none).
    pub event_sample: u32,
    /// `POLICY_*` bits.
    pub flags: u32,
    /// [`Action`] at enforce for frames whose TCP header the parser cannot
    /// reach (strict drops them, monitor passes them).
    pub unparsed: u8,
    /// Non-zero: `--drop-injected`: an exact RST from another distance than
    /// the peer's segments is `ttl_mismatch` (dropped at enforce and
    /// strict).
    pub drop_injected: u8,
    /// How far a RST's TTL / hop limit may be from the peer's own
    /// (`--ttl-slack`).
    pub ttl_slack: u8,
    pub _pad0: u8,
    /// Idle time after which a middlebox may have forgotten a flow
    /// (`--idle-after`), in seconds.
    pub idle_after_secs: u16,
    pub _pad: [u8; 2],
}

/// `Policy::flags`: an operator set this level by hand; auto mode leaves it
/// alone until `rstguard policy set level=auto`. (User space only.)
pub const POLICY_PINNED: u32 = 1 << 0;
/// `Policy::flags`: the trusted-prefix trie is not empty. The programs look
/// sources up in it only then.
pub const POLICY_HAS_TRUSTED: u32 = 1 << 1;

const _: () = assert!(core::mem::size_of::<Policy>() == 32);

/// Default `--ttl-slack`: any difference counts (a path's length is
/// stable; a peer's RSTs leave with the TTL of its data).
pub const DEFAULT_TTL_SLACK: u8 = 0;

/// Default `--idle-after`, in seconds.
pub const DEFAULT_IDLE_AFTER_SECS: u16 = 60;

/// Default event sampling: every suspicious RST is reported, within the
/// per-CPU event budget the daemon refills (`maps::EVENT_BUDGET`).
pub const DEFAULT_EVENT_SAMPLE: u32 = 1;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            level: Level::Monitor as u8,
            no_flow: Action::Pass as u8,
            time_wait: Action::Pass as u8,
            pickup: 1,
            inexact_burst: DEFAULT_INEXACT_PER_SEC,
            inexact_interval_ns: 1_000_000_000 / DEFAULT_INEXACT_PER_SEC as u64,
            event_sample: DEFAULT_EVENT_SAMPLE,
            flags: 0,
            unparsed: Action::Pass as u8,
            drop_injected: 0,
            ttl_slack: DEFAULT_TTL_SLACK,
            _pad0: 0,
            idle_after_secs: DEFAULT_IDLE_AFTER_SECS,
            _pad: [0; 2],
        }
    }
}

impl Policy {
    /// What applies when no policy can be read: drop nothing, create no
    /// flows on pickup, report nothing.
    pub const FAIL_OPEN: Policy = Policy {
        level: Level::Monitor as u8,
        no_flow: Action::Pass as u8,
        time_wait: Action::Pass as u8,
        pickup: 0,
        inexact_burst: 0,
        inexact_interval_ns: 0,
        event_sample: 0,
        flags: 0,
        unparsed: Action::Pass as u8,
        drop_injected: 0,
        ttl_slack: DEFAULT_TTL_SLACK,
        _pad0: 0,
        idle_after_secs: u16::MAX,
        _pad: [0; 2],
    };

    #[inline(always)]
    pub const fn level(&self) -> Level {
        Level::from_raw(self.level)
    }

    /// Sets the per-flow budget to `per_sec` inexact RSTs a second (burst of
    /// the same size); 0 lets none through. Capped at [`MAX_INEXACT_PER_SEC`].
    pub fn set_inexact_per_sec(&mut self, per_sec: u32) {
        let per_sec = if per_sec > MAX_INEXACT_PER_SEC {
            MAX_INEXACT_PER_SEC
        } else {
            per_sec
        };
        self.inexact_burst = per_sec;
        self.inexact_interval_ns = if per_sec == 0 {
            0
        } else {
            1_000_000_000 / per_sec as u64
        };
    }

    /// The budget's rate in RSTs per second.
    pub const fn inexact_per_sec(&self) -> u32 {
        self.inexact_burst
    }
}
