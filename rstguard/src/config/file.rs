//! The config file, as written (TOML; every key optional), and reading
//! it: errors name the file, line and column.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::values::{ActionArg, FixedLevel, LevelArg, ModeArg, StateArg};
use crate::host::paths::DEFAULT_CONFIG;

/// The file, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub interfaces: Option<Vec<String>>,
    pub mode: Option<ModeArg>,
    pub state: Option<StateArg>,
    pub policy: Option<LevelArg>,
    pub no_flow: Option<ActionArg>,
    pub time_wait: Option<ActionArg>,
    pub unparsed: Option<ActionArg>,
    pub drop_injected: Option<bool>,
    pub ttl_slack: Option<u8>,
    pub idle_after: Option<u16>,
    pub pickup: Option<bool>,
    pub inexact_budget: Option<u32>,
    pub event_sample: Option<u32>,
    pub trust: Option<Vec<String>>,
    pub flows: Option<u32>,
    pub new_flows: Option<u32>,
    pub interval: Option<u64>,
    pub metrics: Option<String>,
    pub log_events_per_sec: Option<u32>,
    pub event_budget: Option<u32>,
    /// Auto-mode settings, `[auto]` (with `policy = "auto"`).
    pub auto: Option<AutoSection>,
    /// Per-interface settings, `[interface.eth0]`.
    #[serde(default)]
    pub interface: BTreeMap<String, IfaceSection>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfaceSection {
    pub mode: Option<ModeArg>,
    /// Where this interface's RSTs are judged from (`--state`).
    pub state: Option<StateArg>,
    /// Auto mode's floor and ceiling for this interface.
    pub floor: Option<FixedLevel>,
    pub ceiling: Option<FixedLevel>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoSection {
    pub floor: Option<FixedLevel>,
    pub ceiling: Option<FixedLevel>,
    pub escalate_above: Option<f64>,
    pub escalate_after: Option<u32>,
    pub relax_below: Option<f64>,
    pub quiet_period: Option<u32>,
}

/// A configuration problem: one line, with the file position when there
/// is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads and parses a config file.
pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text =
        fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = match e.span() {
            Some(span) => position(text, span.start),
            None => (1, 1),
        };
        ConfigError(format!(
            "{}:{line}:{col}: {}",
            path.display(),
            e.message().trim().replace('\n', " ")
        ))
    })
}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// Which file to read: `--config`, else the default path when it exists.
/// A file named explicitly must exist; the default one may be absent.
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    match explicit {
        Some(p) if p.exists() => Ok(Some(p.to_path_buf())),
        Some(p) => Err(ConfigError(format!("{}: no such config file", p.display()))),
        None if Path::new(DEFAULT_CONFIG).exists() => Ok(Some(PathBuf::from(DEFAULT_CONFIG))),
        None => Ok(None),
    }
}
