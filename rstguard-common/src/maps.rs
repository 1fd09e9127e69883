//! Names of the eBPF object's maps and programs, so user space and the
//! kernel side cannot drift apart.

/// LRU hash of tracked flows: [`crate::FlowKey`] -> [`crate::Flow`].
pub const FLOWS: &str = "FLOWS";
/// Per-CPU hash of counters: interface index (u32) -> [`crate::Counters`].
pub const COUNTERS: &str = "COUNTERS";
/// Single-entry array holding the live [`crate::Policy`].
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
