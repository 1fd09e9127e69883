//! What the daemon publishes for other processes (`rstguard status`), in a
//! pinned single-entry array map ([`DaemonStatus`]).

use crate::{
    judge::cause::{Cause, Direction},
    key::Endpoints,
};

/// Version of everything pinned: maps live under `<pin dir>/schema-N/`, so
/// a binary with another layout never reuses them.
pub const SCHEMA: u32 = 5;

/// Interfaces one daemon can attach to.
pub const MAX_IFACES: usize = 16;
/// Most attacked flows and ports kept for `status`.
pub const TOP_N: usize = 8;

/// `IfaceStatus::xdp_mode`.
pub const XDP_MODE_NATIVE: u8 = 1;
pub const XDP_MODE_SKB: u8 = 2;
/// `IfaceStatus::link`: frames start with an Ethernet header, or with the
/// IP header (no link-layer header).
pub const LINK_ETHERNET: u8 = 0;
pub const LINK_IP: u8 = 1;
/// `IfaceStatus::tc_hook`.
pub const TC_HOOK_TCX: u8 = 1;
pub const TC_HOOK_CLSACT: u8 = 2;
/// No egress program: socket mode (`--state socket`) needs none.
pub const TC_HOOK_NONE: u8 = 3;

/// One attached interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceStatus {
    pub ifindex: u32,
    /// Kernel ids of the XDP and TCX links (0: attached without a link).
    pub xdp_link_id: u32,
    pub tc_link_id: u32,
    pub xdp_mode: u8,
    pub tc_hook: u8,
    /// The policy level in force on this interface (auto mode moves it).
    pub level: u8,
    /// Lowest and highest level auto mode may choose here.
    pub floor: u8,
    pub ceiling: u8,
    /// [`LINK_ETHERNET`] or [`LINK_IP`]: what its frames start with.
    pub link: u8,
    /// Where its RSTs are judged from (`socket::Source` as a raw byte), and
    /// why (`SOURCE_WHY_*`).
    pub source: u8,
    pub source_why: u8,
    /// NUL-padded interface name.
    pub name: [u8; 16],
    /// Auto-mode transitions up and down so far.
    pub escalations: u32,
    pub deescalations: u32,
    /// Unix time of the last level change (0: none).
    pub last_change_unix: u64,
}

const _: () = assert!(core::mem::size_of::<IfaceStatus>() == 56);

/// A flow or port and how many suspicious RSTs were aimed at it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopFlow {
    pub ends: Endpoints,
    pub _pad: u32,
    pub count: u64,
}

const _: () = assert!(core::mem::size_of::<TopFlow>() == 48);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopPort {
    pub port: u16,
    pub _pad: [u8; 6],
    pub count: u64,
}

const _: () = assert!(core::mem::size_of::<TopPort>() == 16);

/// The daemon's published state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DaemonStatus {
    pub schema: u32,
    pub pid: u32,
    pub started_unix: u64,
    /// Capacity of the assured flow table (`--flows`) and of the table of
    /// new flows (`--new-flows`).
    pub flow_capacity: u32,
    pub n_ifaces: u32,
    pub new_flow_capacity: u32,
    pub _pad0: u32,
    /// Entries in each table at the last sweep, and its Unix time.
    pub flow_entries: u64,
    pub new_flow_entries: u64,
    pub flows_counted_unix: u64,
    /// Assured flows the sweeps removed, and how many the assured table
    /// evicted to make room, as far as the daemon can tell (it never goes
    /// down).
    pub assured_swept: u64,
    pub assured_evicted: u64,
    /// Non-zero: the policy is under auto control.
    pub auto: u8,
    /// Non-zero: the last config (re)load succeeded.
    pub config_ok: u8,
    pub _pad: [u8; 6],
    pub config_reloads: u64,
    /// NUL-padded version string of the daemon.
    pub version: [u8; 16],
    pub ifaces: [IfaceStatus; MAX_IFACES],
    pub top_flows: [TopFlow; TOP_N],
    pub top_ports: [TopPort; TOP_N],
    /// Events seen, and events left out of the log by its rate limit.
    pub events_seen: u64,
    pub events_suppressed: u64,
    /// Records written to the `RESETS` map so far (the latest is number
    /// `resets_recorded`).
    pub resets_recorded: u64,
    /// RSTs by direction and cause over the last `recent_secs` seconds
    /// (all interfaces).
    pub recent_causes: [[u64; Cause::COUNT]; Direction::COUNT],
    pub recent_secs: u64,
}

const _: () = assert!(core::mem::size_of::<DaemonStatus>() == 1720);

impl Default for DaemonStatus {
    fn default() -> Self {
        DaemonStatus {
            schema: SCHEMA,
            pid: 0,
            started_unix: 0,
            flow_capacity: 0,
            n_ifaces: 0,
            new_flow_capacity: 0,
            _pad0: 0,
            flow_entries: 0,
            new_flow_entries: 0,
            flows_counted_unix: 0,
            assured_swept: 0,
            assured_evicted: 0,
            auto: 0,
            config_ok: 1,
            _pad: [0; 6],
            config_reloads: 0,
            version: [0; 16],
            ifaces: [IfaceStatus::default(); MAX_IFACES],
            top_flows: [TopFlow::default(); TOP_N],
            top_ports: [TopPort::default(); TOP_N],
            events_seen: 0,
            events_suppressed: 0,
            resets_recorded: 0,
            recent_causes: [[0; Cause::COUNT]; Direction::COUNT],
            recent_secs: 0,
        }
    }
}

/// `IfaceStatus::source_why`: why the interface uses the state source it
/// does.
pub const SOURCE_WHY_ASKED: u8 = 0;
/// Auto mode chose it (socket mode for this host's own addresses).
pub const SOURCE_WHY_AUTO: u8 = 1;
/// Socket mode is unavailable here (see the daemon's log): tracking.
pub const SOURCE_WHY_UNAVAILABLE: u8 = 2;
