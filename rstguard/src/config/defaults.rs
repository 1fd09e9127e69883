//! Every setting's default, once. `rstguard attach --help` shows them
//! (clap prints each flag's `default_value_t`), and a setting neither
//! flagged nor in the file takes them.

pub use rstguard_common::{
    act::{
        DEFAULT_EVENT_SAMPLE, DEFAULT_IDLE_AFTER_SECS, DEFAULT_INEXACT_PER_SEC, DEFAULT_TTL_SLACK,
    },
    layout::{DEFAULT_EMBRYONIC as DEFAULT_NEW_FLOWS, DEFAULT_FLOWS},
};

use super::values::{ActionArg, FixedLevel, LevelArg, ModeArg, StateArg};
use crate::controller::AutoConfig;

/// `--mode`.
pub const DEFAULT_MODE: ModeArg = ModeArg::Auto;
/// `--state`.
pub const DEFAULT_STATE: StateArg = StateArg::Auto;
/// `--policy`.
pub const DEFAULT_LEVEL: LevelArg = LevelArg::Monitor;
/// `--no-flow`, `--time-wait`, `--unparsed`.
pub const DEFAULT_NO_FLOW: ActionArg = ActionArg::Pass;
pub const DEFAULT_TIME_WAIT: ActionArg = ActionArg::Pass;
pub const DEFAULT_UNPARSED: ActionArg = ActionArg::Pass;
/// Flows are picked up mid-stream unless `--no-pickup`.
pub const DEFAULT_PICKUP: bool = true;
/// Auto mode's settings.
pub const DEFAULT_FLOOR: FixedLevel = FixedLevel::of(AutoConfig::DEFAULT.floor);
pub const DEFAULT_CEILING: FixedLevel = FixedLevel::of(AutoConfig::DEFAULT.ceiling);
pub const DEFAULT_ESCALATE_ABOVE: f64 = AutoConfig::DEFAULT.escalate_above;
pub const DEFAULT_ESCALATE_AFTER: u32 = AutoConfig::DEFAULT.escalate_after;
pub const DEFAULT_RELAX_BELOW: f64 = AutoConfig::DEFAULT.relax_below;
pub const DEFAULT_QUIET_PERIOD: u32 = AutoConfig::DEFAULT.quiet_period;
/// Seconds between counter summaries.
pub const DEFAULT_INTERVAL_SECS: u64 = 10;
/// Address of the metrics endpoint.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9477";
/// Events each CPU may send a second.
pub const DEFAULT_EVENT_BUDGET_PER_SEC: u32 = 1000;
/// Event log lines per second.
pub const DEFAULT_LOG_EVENTS_PER_SEC: u32 = 5;
