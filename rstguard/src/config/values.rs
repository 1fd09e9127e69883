//! The values of settings that are both flags (clap) and keys of the
//! config file (serde): `--mode`, `--state`, `--policy` and its levels,
//! and the pass-or-drop choices.

use std::fmt;

use clap::ValueEnum;
use rstguard_common::{judge::socket::Source, Action, Level};
use serde::Deserialize;

/// `--mode`: how XDP attaches, with xdp-loader's names. `auto` picks by the
/// kind of device: skb for those in `iface::PREFER_SKB` (veth), else native
/// where the driver supports it, falling back to skb with a warning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Native (driver) mode where the driver supports it, else skb.
    #[default]
    Auto,
    /// Native (driver) mode only: fail where the driver lacks it.
    Native,
    /// Generic (skb) mode: works on every interface, after the skb is built.
    Skb,
}

/// `--state`: where RSTs are judged from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateArg {
    /// RSTs addressed to this host's own addresses against its sockets,
    /// the rest (forwarded traffic) against the flow table.
    #[default]
    Auto,
    /// Every RST against the local sockets; nothing is tracked.
    Socket,
    /// Every RST against the flow table (rstguard's own tracking).
    Track,
}

impl StateArg {
    pub fn source(self) -> Source {
        match self {
            StateArg::Auto => Source::Auto,
            StateArg::Socket => Source::Socket,
            StateArg::Track => Source::Track,
        }
    }
}

impl fmt::Display for StateArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source().name())
    }
}

/// `--policy`: a fixed level, or auto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelArg {
    Monitor,
    Enforce,
    Strict,
    Auto,
}

impl LevelArg {
    /// The fixed level, or None for auto.
    pub fn fixed(self) -> Option<Level> {
        match self {
            LevelArg::Monitor => Some(Level::Monitor),
            LevelArg::Enforce => Some(Level::Enforce),
            LevelArg::Strict => Some(Level::Strict),
            LevelArg::Auto => None,
        }
    }
}

/// A level that is not auto (floors and ceilings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FixedLevel {
    Monitor,
    Enforce,
    Strict,
}

impl FixedLevel {
    /// The fixed level of `level`.
    pub const fn of(level: Level) -> FixedLevel {
        match level {
            Level::Monitor => FixedLevel::Monitor,
            Level::Enforce => FixedLevel::Enforce,
            Level::Strict => FixedLevel::Strict,
        }
    }
}

impl From<FixedLevel> for Level {
    fn from(l: FixedLevel) -> Level {
        match l {
            FixedLevel::Monitor => Level::Monitor,
            FixedLevel::Enforce => Level::Enforce,
            FixedLevel::Strict => Level::Strict,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionArg {
    Pass,
    Drop,
}

impl From<ActionArg> for Action {
    fn from(a: ActionArg) -> Action {
        match a {
            ActionArg::Pass => Action::Pass,
            ActionArg::Drop => Action::Drop,
        }
    }
}
