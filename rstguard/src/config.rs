//! The configuration: defaults, then the TOML file, then flags. The daemon
//! re-reads the file on SIGHUP; `rstguard check-config` validates it.

use std::{
    collections::BTreeMap,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use rstguard_common::{
    act::{
        DEFAULT_EVENT_SAMPLE, DEFAULT_IDLE_AFTER_SECS, DEFAULT_INEXACT_PER_SEC, DEFAULT_TTL_SLACK,
    },
    layout::{DEFAULT_EMBRYONIC, DEFAULT_FLOWS},
    Action, Level, Policy,
};
use serde::Deserialize;

use crate::{
    attach::ModeArg,
    cli::{ActionArg, AttachArgs, FixedLevel, LevelArg},
    controller::AutoConfig,
    paths::DEFAULT_CONFIG,
    socket::StateArg,
    trust::Prefix,
};

/// Default address of the metrics endpoint.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9477";
/// Default number of events each CPU may send a second.
pub const DEFAULT_EVENT_BUDGET_PER_SEC: u32 = 1000;
/// Default number of event log lines per second.
pub const DEFAULT_LOG_EVENTS_PER_SEC: u32 = 5;

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

/// `--policy auto`: the settings for every interface, and the floors and
/// ceilings of single interfaces.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoSettings {
    pub config: AutoConfig,
    pub per_iface: BTreeMap<String, (Option<Level>, Option<Level>)>,
}

impl AutoSettings {
    pub fn for_iface(&self, name: &str) -> AutoConfig {
        let mut c = self.config;
        if let Some((floor, ceiling)) = self.per_iface.get(name) {
            c.floor = floor.unwrap_or(c.floor);
            c.ceiling = ceiling.unwrap_or(c.ceiling);
        }
        c
    }
}

/// A configuration problem: one line, with the file position when there
/// is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Everything the daemon runs with, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub interfaces: Vec<String>,
    pub mode: ModeArg,
    pub iface_modes: BTreeMap<String, ModeArg>,
    /// `--state`, and per interface.
    pub state: StateArg,
    pub iface_states: BTreeMap<String, StateArg>,
    /// The policy; under auto, its level is the floor (each interface
    /// starts at its own floor).
    pub policy: Policy,
    /// Present under `--policy auto`.
    pub auto: Option<AutoSettings>,
    pub trust: Vec<Prefix>,
    pub flows: u32,
    pub new_flows: u32,
    pub interval: u64,
    pub json: bool,
    pub metrics: Option<SocketAddr>,
    pub log_events_per_sec: u32,
    /// Events each CPU may send a second, whatever the sampling.
    pub event_budget: u32,
    /// The file these came from, if any.
    pub config_path: Option<PathBuf>,
}

impl Settings {
    /// The XDP mode for one interface.
    pub fn mode_for(&self, iface: &str) -> ModeArg {
        self.iface_modes.get(iface).copied().unwrap_or(self.mode)
    }

    /// Where one interface's RSTs are to be judged from.
    pub fn state_for(&self, iface: &str) -> StateArg {
        self.iface_states.get(iface).copied().unwrap_or(self.state)
    }
}

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

/// Defaults, then `file`, then the flags in `args`.
pub fn resolve(
    args: &AttachArgs,
    file: &ConfigFile,
    config_path: Option<PathBuf>,
) -> Result<Settings, ConfigError> {
    let p = &args.policy;
    let interfaces = if !args.ifaces.is_empty() {
        args.ifaces.clone()
    } else {
        file.interfaces.clone().unwrap_or_default()
    };
    if interfaces.is_empty() {
        return Err(ConfigError(
            "no interfaces: name them (`rstguard attach eth0`) or list them in the config file \
             (`interfaces = [\"eth0\"]`)"
                .into(),
        ));
    }
    let level = p.level.or(file.policy).unwrap_or(LevelArg::Monitor);
    let auto = match level.fixed() {
        Some(_) => None,
        None => Some(auto_settings(p, file)?),
    };
    let start = level
        .fixed()
        .unwrap_or_else(|| auto.as_ref().map_or(Level::Monitor, |a| a.config.floor));
    let mut policy = Policy {
        level: start as u8,
        no_flow: Action::from(p.no_flow.or(file.no_flow).unwrap_or(ActionArg::Pass)) as u8,
        time_wait: Action::from(p.time_wait.or(file.time_wait).unwrap_or(ActionArg::Pass)) as u8,
        unparsed: Action::from(p.unparsed.or(file.unparsed).unwrap_or(ActionArg::Pass)) as u8,
        pickup: u8::from(if p.no_pickup {
            false
        } else {
            file.pickup.unwrap_or(true)
        }),
        event_sample: p
            .event_sample
            .or(file.event_sample)
            .unwrap_or(DEFAULT_EVENT_SAMPLE),
        drop_injected: u8::from(p.drop_injected || file.drop_injected.unwrap_or(false)),
        ttl_slack: p.ttl_slack.or(file.ttl_slack).unwrap_or(DEFAULT_TTL_SLACK),
        idle_after_secs: {
            let secs = p
                .idle_after
                .or(file.idle_after)
                .unwrap_or(DEFAULT_IDLE_AFTER_SECS);
            if secs == 0 {
                return Err(ConfigError("idle_after must be at least 1 second".into()));
            }
            secs
        },
        ..Policy::default()
    };
    policy.set_inexact_per_sec(
        p.inexact_budget
            .or(file.inexact_budget)
            .unwrap_or(DEFAULT_INEXACT_PER_SEC),
    );
    let trust = if !args.trust.is_empty() {
        args.trust.clone()
    } else {
        file.trust
            .iter()
            .flatten()
            .map(|t| {
                t.parse::<Prefix>()
                    .map_err(|e| ConfigError(format!("trust: {e}")))
            })
            .collect::<Result<_, _>>()?
    };
    let flows = args.flows.or(file.flows).unwrap_or(DEFAULT_FLOWS);
    if flows == 0 {
        return Err(ConfigError("flows must be at least 1".into()));
    }
    let new_flows = args
        .new_flows
        .or(file.new_flows)
        .unwrap_or(DEFAULT_EMBRYONIC);
    if new_flows == 0 {
        return Err(ConfigError("new_flows must be at least 1".into()));
    }
    let metrics = if args.no_metrics {
        None
    } else {
        let text = args
            .metrics
            .clone()
            .or_else(|| file.metrics.clone())
            .unwrap_or_else(|| DEFAULT_METRICS.into());
        if text == "off" {
            None
        } else {
            Some(text.parse::<SocketAddr>().map_err(|_| {
                ConfigError(format!(
                    "metrics: '{text}' is not ADDRESS:PORT (like 127.0.0.1:9477 or [::1]:9477), or off"
                ))
            })?)
        }
    };
    let mut iface_modes = BTreeMap::new();
    let mut iface_states = BTreeMap::new();
    for (name, section) in &file.interface {
        if let Some(m) = section.mode {
            iface_modes.insert(name.clone(), m);
        }
        if let Some(st) = section.state {
            iface_states.insert(name.clone(), st);
        }
    }
    Ok(Settings {
        interfaces,
        mode: args.mode.or(file.mode).unwrap_or(ModeArg::Auto),
        iface_modes,
        // A flag overrides the file, per-interface sections included.
        state: args.state.or(file.state).unwrap_or_default(),
        iface_states: if args.state.is_some() {
            BTreeMap::new()
        } else {
            iface_states
        },
        policy,
        auto,
        trust,
        flows,
        new_flows,
        interval: args.interval.or(file.interval).unwrap_or(10),
        json: args.json,
        metrics,
        log_events_per_sec: args
            .log_events_per_sec
            .or(file.log_events_per_sec)
            .unwrap_or(DEFAULT_LOG_EVENTS_PER_SEC),
        event_budget: args
            .event_budget
            .or(file.event_budget)
            .unwrap_or(DEFAULT_EVENT_BUDGET_PER_SEC),
        config_path,
    })
}

fn auto_settings(
    p: &crate::cli::PolicyArgs,
    file: &ConfigFile,
) -> Result<AutoSettings, ConfigError> {
    let d = AutoConfig::default();
    let sec = file.auto.clone().unwrap_or_default();
    let config = AutoConfig {
        floor: p.floor.or(sec.floor).map_or(d.floor, Level::from),
        ceiling: p.ceiling.or(sec.ceiling).map_or(d.ceiling, Level::from),
        escalate_above: p
            .escalate_above
            .or(sec.escalate_above)
            .unwrap_or(d.escalate_above),
        escalate_after: p
            .escalate_after
            .or(sec.escalate_after)
            .unwrap_or(d.escalate_after),
        relax_below: p.relax_below.or(sec.relax_below).unwrap_or(d.relax_below),
        quiet_period: p
            .quiet_period
            .or(sec.quiet_period)
            .unwrap_or(d.quiet_period),
    };
    config.validate().map_err(ConfigError)?;
    let mut per_iface = BTreeMap::new();
    for (name, section) in &file.interface {
        if section.floor.is_some() || section.ceiling.is_some() {
            per_iface.insert(
                name.clone(),
                (
                    section.floor.map(Level::from),
                    section.ceiling.map(Level::from),
                ),
            );
        }
    }
    let auto = AutoSettings { config, per_iface };
    for name in auto.per_iface.keys() {
        auto.for_iface(name)
            .validate()
            .map_err(|e| ConfigError(format!("interface {name}: {e}")))?;
    }
    Ok(auto)
}

/// Reads the config (when there is one) and resolves it with the flags.
pub fn load(args: &AttachArgs) -> Result<Settings, ConfigError> {
    let path = locate(args.config.as_deref())?;
    let file = match &path {
        Some(p) => read(p)?,
        None => ConfigFile::default(),
    };
    resolve(args, &file, path)
}

/// What SIGHUP may change live, and what needs a restart.
pub fn restart_needed(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut v = Vec::new();
    if old.interfaces != new.interfaces {
        v.push("interfaces");
    }
    if old.mode != new.mode || old.iface_modes != new.iface_modes {
        v.push("mode");
    }
    if old.flows != new.flows {
        v.push("flows");
    }
    if old.new_flows != new.new_flows {
        v.push("new_flows");
    }
    if old.state != new.state || old.iface_states != new.iface_states {
        v.push("state");
    }
    if old.metrics != new.metrics {
        v.push("metrics");
    }
    v
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Commands};

    use super::*;

    fn args(extra: &[&str]) -> AttachArgs {
        let mut argv = vec!["rstguard", "attach"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Commands::Attach(a) => a,
            _ => unreachable!(),
        }
    }

    const SAMPLE: &str = include_str!("../../packaging/rstguard.toml");

    #[test]
    fn the_sample_config_parses_and_sets_every_key() {
        let file = parse(SAMPLE, Path::new("rstguard.toml")).expect("the sample parses");
        assert!(file.interfaces.is_some() && file.mode.is_some() && file.policy.is_some());
        assert!(file.no_flow.is_some() && file.time_wait.is_some() && file.pickup.is_some());
        assert!(file.unparsed.is_some());
        assert!(file.inexact_budget.is_some() && file.event_sample.is_some());
        assert!(file.trust.is_some() && file.flows.is_some() && file.interval.is_some());
        assert!(file.new_flows.is_some());
        assert!(file.metrics.is_some() && file.log_events_per_sec.is_some());
        assert!(file.event_budget.is_some());
        assert!(!file.interface.is_empty());
        let auto = file.auto.as_ref().expect("an [auto] section");
        assert!(auto.floor.is_some() && auto.ceiling.is_some() && auto.escalate_above.is_some());
        assert!(
            auto.escalate_after.is_some()
                && auto.relax_below.is_some()
                && auto.quiet_period.is_some()
        );
        assert!(file.interface["eth0"].floor.is_some() && file.interface["eth0"].ceiling.is_some());
        resolve(&args(&[]), &file, None).expect("the sample resolves");
        resolve(&args(&["--policy", "auto"]), &file, None).expect("the sample resolves under auto");
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file = parse(
            "interfaces = [\"eth9\"]\npolicy = \"strict\"\ninexact_budget = 3\n[interface.eth9]\nmode = \"skb\"\n",
            Path::new("f"),
        )
        .unwrap();
        let s = resolve(&args(&[]), &file, None).unwrap();
        assert_eq!(s.interfaces, vec!["eth9"]);
        assert_eq!(s.policy.level(), Level::Strict);
        assert_eq!(s.policy.inexact_per_sec(), 3);
        assert_eq!(s.mode_for("eth9"), ModeArg::Skb);
        assert_eq!(s.mode_for("eth0"), ModeArg::Auto);
        assert_eq!(s.metrics, Some(DEFAULT_METRICS.parse().unwrap()));
        let s = resolve(
            &args(&["eth1", "--policy", "enforce", "--no-metrics"]),
            &file,
            None,
        )
        .unwrap();
        assert_eq!(s.interfaces, vec!["eth1"]);
        assert_eq!(s.policy.level(), Level::Enforce);
        assert_eq!(s.policy.inexact_per_sec(), 3, "not overridden");
        assert_eq!(s.metrics, None);
    }

    #[test]
    fn auto_mode_from_flags_file_and_interface_sections() {
        let file = parse(
            "interfaces = [\"a0\", \"b0\"]\npolicy = \"auto\"\n[auto]\nescalate_above = 50\nquiet_period = 9\n[interface.b0]\nfloor = \"enforce\"\n",
            Path::new("f"),
        )
        .unwrap();
        let s = resolve(&args(&["--escalate-after", "2"]), &file, None).unwrap();
        let auto = s.auto.expect("auto");
        assert_eq!(auto.config.escalate_above, 50.0);
        assert_eq!(auto.config.escalate_after, 2);
        assert_eq!(auto.config.quiet_period, 9);
        assert_eq!(auto.for_iface("a0").floor, Level::Monitor);
        assert_eq!(auto.for_iface("b0").floor, Level::Enforce);
        assert_eq!(auto.for_iface("b0").ceiling, Level::Strict);
        assert_eq!(s.policy.level(), Level::Monitor, "starts at the floor");
        let bad = resolve(
            &args(&[
                "x0",
                "--policy",
                "auto",
                "--floor",
                "strict",
                "--ceiling",
                "enforce",
            ]),
            &ConfigFile::default(),
            None,
        );
        assert!(bad.unwrap_err().to_string().contains("above the ceiling"));
        let fixed = resolve(
            &args(&["x0", "--policy", "strict"]),
            &ConfigFile::default(),
            None,
        )
        .unwrap();
        assert!(fixed.auto.is_none());
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let err = parse(
            "policy = \"enforce\"\nflows = \"many\"\n",
            Path::new("/etc/x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("/etc/x.toml:2:9: "), "{err}");
        assert!(!err.contains('\n'));
        let err = parse("polcy = \"strict\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x:1:1: ") && err.contains("unknown field `polcy`"),
            "{err}"
        );
        let err = parse("policy = \"lax\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lax"), "{err}");
        let file = parse("metrics = \"localhost\"\n", Path::new("x")).unwrap();
        let err = resolve(&args(&["eth0"]), &file, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not ADDRESS:PORT"), "{err}");
        let err = resolve(&args(&[]), &ConfigFile::default(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no interfaces"), "{err}");
    }
}
