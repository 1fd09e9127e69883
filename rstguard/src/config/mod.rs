//! The configuration: defaults, then the TOML file, then flags. The daemon
//! re-reads the file on SIGHUP; `rstguard check-config` validates it.

//!
//! Like ripgrep's flags: the flags as typed (`crate::cli`, clap), the file
//! as written (`file`, serde), the values both share (`values`), every
//! default once (`defaults`, which clap prints in `--help`), and here the
//! settings resolved from them, once, in one place: [`resolve`].

pub mod defaults;
mod file;
mod values;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use rstguard_common::{Action, Level, Policy};

use self::defaults::DEFAULT_PICKUP;
pub use self::{
    file::{locate, parse, read, AutoSection, ConfigError, ConfigFile, IfaceSection},
    values::{ActionArg, FixedLevel, LevelArg, ModeArg, StateArg},
};
use crate::{
    cli::{AttachArgs, PolicyArgs},
    controller::AutoConfig,
    trust::Prefix,
};

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

/// Defaults, then `file`, then the flags in `args` (those given: see
/// [`crate::cli::Given`]).
pub fn resolve(
    args: &AttachArgs,
    file: &ConfigFile,
    config_path: Option<PathBuf>,
) -> Result<Settings, ConfigError> {
    let p = &args.policy;
    let g = &args.given;
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
    let level = g.pick("level", p.level, file.policy);
    let auto = match level.fixed() {
        Some(_) => None,
        None => Some(auto_settings(args, file)?),
    };
    let start = level
        .fixed()
        .unwrap_or_else(|| auto.as_ref().map_or(Level::Monitor, |a| a.config.floor));
    let action = |id: &str, flag: ActionArg, file: Option<ActionArg>| {
        Action::from(g.pick(id, flag, file)) as u8
    };
    let mut policy = Policy {
        level: start as u8,
        no_flow: action("no_flow", p.no_flow, file.no_flow),
        time_wait: action("time_wait", p.time_wait, file.time_wait),
        unparsed: action("unparsed", p.unparsed, file.unparsed),
        pickup: u8::from(!p.no_pickup && file.pickup.unwrap_or(DEFAULT_PICKUP)),
        event_sample: g.pick("event_sample", p.event_sample, file.event_sample),
        drop_injected: u8::from(p.drop_injected || file.drop_injected.unwrap_or(false)),
        ttl_slack: g.pick("ttl_slack", p.ttl_slack, file.ttl_slack),
        idle_after_secs: {
            let secs = g.pick("idle_after", p.idle_after, file.idle_after);
            if secs == 0 {
                return Err(ConfigError("idle_after must be at least 1 second".into()));
            }
            secs
        },
        ..Policy::default()
    };
    policy.set_inexact_per_sec(g.pick("inexact_budget", p.inexact_budget, file.inexact_budget));
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
    let flows = g.pick("flows", args.flows, file.flows);
    if flows == 0 {
        return Err(ConfigError("flows must be at least 1".into()));
    }
    let new_flows = g.pick("new_flows", args.new_flows, file.new_flows);
    if new_flows == 0 {
        return Err(ConfigError("new_flows must be at least 1".into()));
    }
    let metrics = if args.no_metrics {
        None
    } else {
        let text = g.pick("metrics", args.metrics.clone(), file.metrics.clone());
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
        mode: g.pick("mode", args.mode, file.mode),
        iface_modes,
        // A flag overrides the file, per-interface sections included.
        state: g.pick("state", args.state, file.state),
        iface_states: if g.has("state") {
            BTreeMap::new()
        } else {
            iface_states
        },
        policy,
        auto,
        trust,
        flows,
        new_flows,
        interval: g.pick("interval", args.interval, file.interval),
        json: args.json,
        metrics,
        log_events_per_sec: g.pick(
            "log_events_per_sec",
            args.log_events_per_sec,
            file.log_events_per_sec,
        ),
        event_budget: g.pick("event_budget", args.event_budget, file.event_budget),
        config_path,
    })
}

fn auto_settings(args: &AttachArgs, file: &ConfigFile) -> Result<AutoSettings, ConfigError> {
    let (p, g): (&PolicyArgs, _) = (&args.policy, &args.given);
    let sec = file.auto.clone().unwrap_or_default();
    let config = AutoConfig {
        floor: g.pick("floor", p.floor, sec.floor).into(),
        ceiling: g.pick("ceiling", p.ceiling, sec.ceiling).into(),
        escalate_above: g.pick("escalate_above", p.escalate_above, sec.escalate_above),
        escalate_after: g.pick("escalate_after", p.escalate_after, sec.escalate_after),
        relax_below: g.pick("relax_below", p.relax_below, sec.relax_below),
        quiet_period: g.pick("quiet_period", p.quiet_period, sec.quiet_period),
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

/// The settings only a restart can change, in one place: for each that
/// differs in `new`, its name, and `new` keeps the running value (SIGHUP
/// applies the rest).
pub fn keep_restart_only(running: &Settings, new: &mut Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($name:literal, $($field:ident),+) => {
            if $(running.$field != new.$field)||+ {
                changed.push($name);
            }
            $(new.$field = running.$field.clone();)+
        };
    }
    keep!("interfaces", interfaces);
    keep!("mode", mode, iface_modes);
    keep!("flows", flows);
    keep!("new_flows", new_flows);
    keep!("state", state, iface_states);
    keep!("metrics", metrics);
    changed
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::cli::{Cli, Commands};

    use super::{defaults::DEFAULT_METRICS, *};

    fn args(extra: &[&str]) -> AttachArgs {
        let mut argv = vec!["rstguard", "attach"];
        argv.extend_from_slice(extra);
        match Cli::parse_argv(argv).unwrap().command {
            Commands::Attach(a) => a,
            _ => unreachable!(),
        }
    }

    const SAMPLE: &str = include_str!("../../../packaging/rstguard.toml");

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

    /// A flag given at its default's value still overrides the file; a
    /// flag left out leaves the file's value.
    #[test]
    fn a_flag_given_at_its_default_overrides_the_file() {
        let file = parse(
            "interfaces = [\"eth9\"]\npolicy = \"strict\"\nflows = 5\nmetrics = \"off\"\nmode = \"skb\"\n",
            Path::new("f"),
        )
        .unwrap();
        let s = resolve(
            &args(&[
                "--policy", "monitor", "--flows", "1048576", "--mode", "auto",
            ]),
            &file,
            None,
        )
        .unwrap();
        assert_eq!(s.policy.level(), Level::Monitor);
        assert_eq!(s.flows, defaults::DEFAULT_FLOWS);
        assert_eq!(s.mode, ModeArg::Auto);
        assert_eq!(s.metrics, None, "from the file");
        let s = resolve(&args(&["--metrics", DEFAULT_METRICS]), &file, None).unwrap();
        assert_eq!(s.metrics, Some(DEFAULT_METRICS.parse().unwrap()));
        assert_eq!((s.flows, s.mode), (5, ModeArg::Skb), "from the file");
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
