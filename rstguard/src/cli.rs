//! The command line. Doc comments are the help text.

use std::path::PathBuf;

use std::collections::BTreeSet;

use clap::{
    parser::ValueSource, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand,
};

use crate::{
    config::{defaults::*, ActionArg, FixedLevel, LevelArg, ModeArg, StateArg},
    host::paths::DEFAULT_PIN_ROOT,
    trust::Prefix,
};

/// Drops spoofed TCP RSTs before the stack sees them.
///
/// rstguard attaches an XDP program (ingress) and a TC classifier (egress)
/// to each interface. Together they learn every TCP flow's sequence state
/// and judge each incoming RST the way RFC 5961 would: RSTs that no real
/// peer could have sent are dropped (or, in monitor mode, only counted).
///
/// `rstguard attach` runs the daemon; the other commands work from its
/// pinned maps, from a second terminal, while it runs (and after a crash).
#[derive(Debug, Parser)]
#[command(name = "rstguard", version, propagate_version = true)]
pub struct Cli {
    /// Where the daemon pins its maps (a directory on a BPF filesystem).
    #[arg(long, global = true, env = "RSTGUARD_PIN_DIR", default_value = DEFAULT_PIN_ROOT,
          value_name = "DIR")]
    pub pin_dir: PathBuf,

    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run the daemon: load the programs, attach them to interfaces, pin
    /// the maps, serve metrics, and detach everything on SIGINT or SIGTERM.
    /// SIGHUP re-reads the config file and applies its policy live.
    ///
    /// Example: sudo rstguard attach eth0 --policy enforce
    Attach(AttachArgs),
    /// Show the daemon, its interfaces and hooks, the policy, the flow
    /// table's fill and the most attacked flows and ports.
    Status(JsonArg),
    /// Show the counters of every interface, and rates with --watch.
    Stats(StatsArgs),
    /// List tracked flows with their state.
    Flows(FlowsArgs),
    /// Why was my connection reset? The latest RSTs, oldest first: time,
    /// interface, direction (ingress: it arrived; egress: this host sent
    /// it), sender -> receiver, verdict, action, likely cause, and the
    /// evidence in words. Every RST a real peer could have sent is
    /// recorded, and a sample of the suspicious ones (within
    /// --event-budget); the daemon keeps the latest 1024.
    ///
    /// Example: rstguard resets --follow
    Resets(ResetsArgs),
    /// Show or change the live policy (no reload, no detach).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Manage trusted source prefixes, whose RSTs always pass.
    #[command(subcommand)]
    Trust(TrustCmd),
    /// Stop the daemon (detaching everything) and remove its pinned state;
    /// after a crash, remove what it left. Nothing else is touched.
    Detach(DetachArgs),
    /// Preflight: can rstguard run here? The kernel and what its version
    /// enables, BTF, capabilities, the BPF filesystem, a daemon already
    /// running, lockdown, and per interface the driver, native XDP support
    /// and any XDP program already attached. One line per item: OK, WARN or
    /// FAIL, with what to do. Exits 1 on any FAIL.
    ///
    /// Interfaces and modes resolve as `attach` resolves them: the ones
    /// named, else the config file's, else every interface but loopback.
    ///
    /// Example: rstguard check eth0 --mode native
    /// Example: rstguard check -- attach --config /etc/rstguard/rstguard.toml
    Check(CheckArgs),
    /// Check a config file without running anything.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print again every SECS seconds, with rates per second, until Ctrl-C.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub watch: Option<u64>,
    /// Stop after this many --watch rounds (default: run until Ctrl-C).
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show at most N flows.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ResetsArgs {
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show at most the latest N.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
    /// Then keep printing new ones as they come, until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Show the live policy.
    Show(JsonArg),
    /// Change the live policy of every interface: KEY=VALUE with keys
    /// level (monitor|enforce|strict|auto), no_flow (pass|drop), time_wait
    /// (pass|drop), unparsed (pass|drop), pickup (on|off), inexact_budget
    /// (N per second), event_sample (one event per N suspicious RSTs;
    /// 0: none), drop_injected (on|off), ttl_slack (hops) and idle_after
    /// (seconds).
    ///
    /// Under --policy auto, setting a level pins it: the controller leaves
    /// it alone until `policy set level=auto` hands it back.
    ///
    /// Example: rstguard policy set level=strict time_wait=drop
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCmd {
    /// Trust these prefixes (e.g. 10.0.0.0/8, 2001:db8::/32).
    Add {
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<Prefix>,
    },
    /// Stop trusting these prefixes.
    Del {
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<Prefix>,
    },
    /// List trusted prefixes.
    List(JsonArg),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Interfaces to check [default: the config file's, else every
    /// interface but loopback].
    #[arg(value_name = "IFACE")]
    pub ifaces: Vec<String>,
    /// Config file whose interfaces and modes to check [default:
    /// /etc/rstguard/rstguard.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The XDP mode to check for (as `attach --mode`).
    #[arg(long, value_enum, default_value_t = DEFAULT_MODE)]
    pub mode: ModeArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Instead: an `rstguard attach` command line, after `--`, whose
    /// interfaces, modes, config file and pin directory to check.
    #[arg(last = true, value_name = "ATTACH ARGS", conflicts_with_all = ["ifaces", "config", "mode"])]
    pub attach: Vec<String>,
    /// The flags given (the rest hold their defaults).
    #[arg(skip)]
    pub given: Given,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Only check that nothing of rstguard's is left on these interfaces
    /// (and remove it if a crashed daemon left some).
    #[arg(value_name = "IFACE", conflicts_with = "all")]
    pub ifaces: Vec<String>,
    /// Stop the daemon if it runs, and remove everything it left.
    #[arg(long)]
    pub all: bool,
}

/// `rstguard attach`. Flags override the config file, which overrides the
/// defaults shown here.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Interfaces to protect (XDP on ingress, classifier on egress); may
    /// come from the config file instead.
    #[arg(value_name = "IFACE")]
    pub ifaces: Vec<String>,

    /// Config file (TOML). Without this flag, /etc/rstguard/rstguard.toml
    /// is read when it exists; rstguard runs fine without one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// XDP attach mode: native (in the driver), skb (generic, works
    /// everywhere), or auto (native where the driver supports it, else skb
    /// with a warning). The mode in force is printed.
    #[arg(long, value_enum, default_value_t = DEFAULT_MODE)]
    pub mode: ModeArg,

    /// Where RSTs are judged from: socket (the local socket the kernel
    /// holds for the four-tuple: nothing is tracked), track (rstguard's own
    /// flow table, for traffic the host forwards), or auto (socket for RSTs
    /// to this host's own addresses, track for the rest). Socket mode needs
    /// Linux 5.10+, kernel BTF and CAP_PERFMON; auto falls back to track
    /// with one line saying what is missing.
    #[arg(long, value_enum, default_value_t = DEFAULT_STATE)]
    pub state: StateArg,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Source prefix whose RSTs always pass (repeatable), e.g. 10.0.0.0/8
    /// or 2001:db8::/32.
    #[arg(long = "trust", value_name = "PREFIX")]
    pub trust: Vec<Prefix>,

    /// Capacity of the table of assured flows (handshake done, both sides
    /// seen): 128 bytes of kernel memory each. Only flows that proved
    /// themselves enter it, so a flood of new flows cannot flush it; when
    /// it is full, the least recently used assured flow makes room (counted
    /// as evicted).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          default_value_t = DEFAULT_FLOWS)]
    pub flows: u32,

    /// Capacity of the table of flows not yet assured (SYN_SENT, SYN_RECV,
    /// picked up from one side): a flood of SYNs churns this one. 128
    /// bytes each.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          default_value_t = DEFAULT_NEW_FLOWS)]
    pub new_flows: u32,

    /// Seconds between counter summaries; 0 prints only the final one.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_INTERVAL_SECS)]
    pub interval: u64,

    /// Print counter summaries as JSON lines on stdout (logs stay on stderr).
    #[arg(long)]
    pub json: bool,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_METRICS)]
    pub metrics: String,

    /// Serve no metrics.
    #[arg(long, conflicts_with = "metrics")]
    pub no_metrics: bool,

    /// Event log lines per second at most (more are summarised).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LOG_EVENTS_PER_SEC)]
    pub log_events_per_sec: u32,

    /// Events each CPU may send the daemon per second, whatever the flood
    /// (the kernel counts them down; the daemon refills them every 100 ms).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EVENT_BUDGET_PER_SEC)]
    pub event_budget: u32,

    /// The flags given (the rest hold their defaults).
    #[arg(skip)]
    pub given: Given,
}

/// The policy the programs apply. It can change live, without reloading.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// monitor: drop nothing, count every verdict. enforce: drop RSTs out of
    /// the receiver's window, RSTs at a SYN that do not ACK it, and inexact
    /// RSTs over the per-flow budget. strict: also drop every inexact RST
    /// inside the window (a real peer re-sends an exact one). auto: start at
    /// the floor, go up one level when an attack lasts, back down after a
    /// quiet period (see --floor, --ceiling, --escalate-above,
    /// --escalate-after, --relax-below, --quiet-period).
    #[arg(long = "policy", value_enum, value_name = "LEVEL", default_value_t = DEFAULT_LEVEL)]
    pub level: LevelArg,

    /// Auto: the lowest level.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = DEFAULT_FLOOR)]
    pub floor: FixedLevel,

    /// Auto: the highest level.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = DEFAULT_CEILING)]
    pub ceiling: FixedLevel,

    /// Auto: invalid RSTs per second (out_of_window, bad_syn_ack, in_window,
    /// rate_limited) at or above which a second counts as under attack.
    #[arg(long, value_name = "RATE", default_value_t = DEFAULT_ESCALATE_ABOVE)]
    pub escalate_above: f64,

    /// Auto: consecutive attacked seconds before going up one level.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_ESCALATE_AFTER)]
    pub escalate_after: u32,

    /// Auto: invalid RSTs per second below which a second counts as quiet
    /// (below --escalate-above: between the two, nothing moves).
    #[arg(long, value_name = "RATE", default_value_t = DEFAULT_RELAX_BELOW)]
    pub relax_below: f64,

    /// Auto: consecutive quiet seconds before going down one level.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_QUIET_PERIOD)]
    pub quiet_period: u32,

    /// What to do with RSTs of flows rstguard does not track.
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = DEFAULT_NO_FLOW)]
    pub no_flow: ActionArg,

    /// What to do with RSTs of flows in TIME_WAIT (drop = RFC 1337).
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = DEFAULT_TIME_WAIT)]
    pub time_wait: ActionArg,

    /// What enforce does with frames whose TCP header rstguard cannot
    /// reach (more VLAN tags or IPv6 extension headers than the parser
    /// follows): they may hide a RST. Strict drops them, monitor passes
    /// them.
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = DEFAULT_UNPARSED)]
    pub unparsed: ActionArg,

    /// Drop RSTs with a sequence number a peer uses but sent from another
    /// distance than the peer's own segments (TTL or hop limit off by more
    /// than --ttl-slack): on-path injection, as censors and hostile
    /// networks do it. Off by default: a firewall's legitimate reject (and
    /// a NAT that forgot an idle flow) looks the same, and this drops it
    /// too. Counted as ttl_mismatch.
    #[arg(long)]
    pub drop_injected: bool,

    /// How far a RST's TTL / hop limit may be from the peer's own before it
    /// counts as sent from another distance (the middlebox, idle_expired
    /// and injected causes; --drop-injected).
    #[arg(long, value_name = "HOPS", default_value_t = DEFAULT_TTL_SLACK)]
    pub ttl_slack: u8,

    /// Idle time after which a middlebox (a NAT, a load balancer) may have
    /// forgotten a flow: an exact RST from another distance after it is
    /// idle_expired.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u16).range(1..),
          default_value_t = DEFAULT_IDLE_AFTER_SECS)]
    pub idle_after: u16,

    /// Track only flows whose SYN was seen (no mid-stream pickup). Flows
    /// that predate rstguard then count as no_flow.
    #[arg(long)]
    pub no_pickup: bool,

    /// Inexact (in-window) RSTs one flow may let through per second, at
    /// levels that pass them; 0 lets none through.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_INEXACT_PER_SEC)]
    pub inexact_budget: u32,

    /// Report one in N suspicious RSTs as an event (logged, and counted
    /// for the most attacked flows and ports), within --event-budget;
    /// 0: none.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EVENT_SAMPLE)]
    pub event_sample: u32,
}

impl Cli {
    /// Parses a command line (`argv[0]` first), noting which flags of
    /// `attach` and `check` were given: they override the config file,
    /// where a flag left at its default does not.
    pub fn parse_argv<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(argv)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        match (&mut cli.command, matches.subcommand()) {
            (Commands::Attach(a), Some((_, m))) => a.given = Given::of(m),
            (Commands::Check(c), Some((_, m))) => c.given = Given::of(m),
            _ => {}
        }
        Ok(cli)
    }
}

/// The flags a command line gave, by their ids (field names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Given(BTreeSet<String>);

impl Given {
    fn of(m: &ArgMatches) -> Given {
        Given(
            m.ids()
                .map(|id| id.as_str())
                .filter(|id| {
                    matches!(
                        m.value_source(id),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                })
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether the flag of field `id` was given.
    pub fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    /// Flags over the file over defaults: `flag` when given, else the
    /// file's value, else `flag` (its default).
    pub fn pick<T>(&self, id: &str, flag: T, file: Option<T>) -> T {
        if self.has(id) {
            flag
        } else {
            file.unwrap_or(flag)
        }
    }
}
