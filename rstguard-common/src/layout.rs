//! Names of the eBPF object's maps and programs, so user space and the
//! kernel side cannot drift apart.

/// Ring buffer of sampled [`crate::RstEvent`]s.
pub const EVENTS: &str = "EVENTS";
/// Per-CPU, single-entry array: events this CPU may still send before the
/// daemon refills it (every [`EVENT_REFILL_MS`]). Bounds the cost of events
/// under a flood, whatever the sampling.
pub const EVENT_BUDGET: &str = "EVENT_BUDGET";
/// How often the daemon refills [`EVENT_BUDGET`].
pub const EVENT_REFILL_MS: u64 = 100;

/// Single-entry array of [`crate::DaemonStatus`], written by the daemon.
pub const STATUS: &str = "STATUS";

/// Array of the latest [`crate::ResetRecord`]s, written by the
/// daemon from the events (`rstguard resets`): a ring of
/// [`RESETS_KEPT`] records, record `n` at index `n % RESETS_KEPT`.
pub const RESETS: &str = "RESETS";
/// Records [`RESETS`] keeps.
pub const RESETS_KEPT: u32 = 1024;

/// The maps pinned for other processes (`rstguard stats`, `flows`, ...).
pub const PINNED: [&str; 10] = [
    FLOWS,
    EMBRYONIC,
    COUNTERS,
    POLICY,
    IFACE_SLOTS,
    SLOT_IFACES,
    TRUSTED,
    EVENTS,
    STATUS,
    RESETS,
];

/// Ring buffer size in bytes (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 1 << 20;

/// The default policy's key (slot 0): interfaces without a slot use it.
pub const POLICY_DEFAULT: u32 = 0;

/// LRU hash of assured flows: [`crate::FlowKey`] -> [`crate::Flow`].
pub const FLOWS: &str = "FLOWS";
/// LRU hash (per-CPU lists) of flows not yet assured.
pub const EMBRYONIC: &str = "EMBRYONIC";
/// The read-only global holding the secret of IPv6 flow keys.
pub const FLOW_KEY_SECRET: &str = "FLOW_KEY_SECRET";
/// Per-CPU array of [`crate::Counters`], one per interface slot.
pub const COUNTERS: &str = "COUNTERS";
/// Array of the live [`crate::Policy`], one per interface slot; slot 0 is
/// the default (and the policy of interfaces without a slot).
pub const POLICY: &str = "POLICY";
/// Array indexed by interface index (below [`IFINDEX_LIMIT`]): the
/// interface's slot in [`COUNTERS`] and [`POLICY`] (0 for none) in the low
/// bits ([`SLOT_MASK`]), and [`SLOT_L3`] when its frames carry no
/// link-layer header.
pub const IFACE_SLOTS: &str = "IFACE_SLOTS";
/// The slot in an [`IFACE_SLOTS`] value.
pub const SLOT_MASK: u32 = 0xffff;
/// [`IFACE_SLOTS`] flag: the device has no link-layer header (tun,
/// WireGuard, IP tunnels): frames start at the IP header.
pub const SLOT_L3: u32 = 1 << 16;
/// Array indexed by slot: the interface index it belongs to (0: free).
/// Only user space reads it.
pub const SLOT_IFACES: &str = "SLOT_IFACES";

/// Interface indexes the slot table covers; interfaces at or above it
/// cannot be attached.
pub const IFINDEX_LIMIT: u32 = 1 << 16;
/// Slots: 0 (default, and anything unattached) and one per interface.
pub const SLOTS: u32 = crate::status::MAX_IFACES as u32 + 1;
/// LPM trie of trusted source prefixes: [`TrustKey`] -> u8.
pub const TRUSTED: &str = "TRUSTED";

/// The XDP (ingress) program.
pub const PROG_XDP: &str = "rstguard_xdp";
/// The TC (egress) classifier.
pub const PROG_TC: &str = "rstguard_tc";

/// Default flow table capacity (`--flows`): assured flows.
pub const DEFAULT_FLOWS: u32 = 1 << 20;
/// Default capacity of the table of flows not yet assured (`--new-flows`).
pub const DEFAULT_EMBRYONIC: u32 = 1 << 16;

/// Data of a trusted-prefix key: an IPv6 address (IPv4 as IPv4-mapped IPv6)
/// in network byte order. The LPM prefix length of an IPv4 prefix is its own
/// length plus 96.
pub type TrustKey = [u8; 16];
