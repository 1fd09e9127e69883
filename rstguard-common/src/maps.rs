//! Names of the eBPF object's maps and programs, so user space and the
//! kernel side cannot drift apart.

/// Ring buffer of sampled [`crate::RstEvent`]s.
pub const EVENTS: &str = "EVENTS";
/// Single-entry array of [`crate::DaemonState`], written by the daemon.
pub const STATE: &str = "STATE";

/// The maps pinned for other processes (`rstguard stats`, `flows`, ...).
pub const PINNED: [&str; 6] = [FLOWS, COUNTERS, POLICY, TRUSTED, EVENTS, STATE];

/// Ring buffer size in bytes (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 1 << 20;

/// Key of the default entry in [`POLICY`]: interfaces without an entry of
/// their own use it.
pub const POLICY_DEFAULT: u32 = 0;

/// LRU hash of tracked flows: [`crate::FlowKey`] -> [`crate::Flow`].
pub const FLOWS: &str = "FLOWS";
/// Per-CPU hash of counters: interface index (u32) -> [`crate::Counters`].
pub const COUNTERS: &str = "COUNTERS";
/// Hash of the live [`crate::Policy`] by interface index, with a default
/// entry under [`POLICY_DEFAULT`].
pub const POLICY: &str = "POLICY";
/// LPM trie of trusted source prefixes: [`TrustKey`] -> u8.
pub const TRUSTED: &str = "TRUSTED";
/// Single-entry array of zeroes used to create counter entries in the kernel.
pub const ZERO: &str = "ZERO";

/// The XDP (ingress) program.
pub const PROG_XDP: &str = "rstguard_xdp";
/// The TC (egress) classifier.
pub const PROG_TC: &str = "rstguard_tc";

/// Default flow table capacity (`--flows`).
pub const DEFAULT_FLOWS: u32 = 1 << 20;

/// Data of a trusted-prefix key: an IPv6 address (IPv4 as IPv4-mapped IPv6)
/// in network byte order. The LPM prefix length of an IPv4 prefix is its own
/// length plus 96.
pub type TrustKey = [u8; 16];
