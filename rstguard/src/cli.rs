//! The command line. Doc comments are the help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use rstguard_common::{maps::DEFAULT_FLOWS, policy::DEFAULT_INEXACT_PER_SEC, Action, Level};

use crate::{attach::ModeArg, trust::Prefix};

/// Drops spoofed TCP RSTs before the stack sees them.
///
/// rstguard attaches an XDP program (ingress) and a TC classifier (egress)
/// to each interface. Together they learn every TCP flow's sequence state
/// and judge each incoming RST the way RFC 5961 would: RSTs that no real
/// peer could have sent are dropped (or, in monitor mode, only counted).
#[derive(Debug, Parser)]
#[command(name = "rstguard", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Load the programs, attach them to interfaces, and report counters
    /// until SIGINT or SIGTERM, which detach everything.
    ///
    /// Example: sudo rstguard attach eth0 --policy enforce
    Attach(AttachArgs),
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Interfaces to protect (XDP on ingress, classifier on egress).
    #[arg(required = true, value_name = "IFACE")]
    pub ifaces: Vec<String>,

    /// XDP attach mode: native (in the driver), skb (generic, works
    /// everywhere), or auto (native where the driver supports it, else skb
    /// with a warning). The mode in force is printed.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Source prefix whose RSTs always pass (repeatable), e.g. 10.0.0.0/8
    /// or 2001:db8::/32.
    #[arg(long = "trust", value_name = "PREFIX")]
    pub trust: Vec<Prefix>,

    /// Flow table capacity (LRU: the least recently seen flow makes room).
    #[arg(long, default_value_t = DEFAULT_FLOWS, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub flows: u32,

    /// Seconds between counter summaries; 0 prints only the final one.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub interval: u64,

    /// Print counter summaries as JSON lines on stdout (logs stay on stderr).
    #[arg(long)]
    pub json: bool,
}

/// The policy the programs apply. It can change live, without reloading.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// monitor: drop nothing, count every verdict. enforce: drop RSTs out of
    /// the receiver's window, RSTs at a SYN that do not ACK it, and inexact
    /// RSTs over the per-flow budget. strict: also drop every inexact RST
    /// inside the window (a real peer re-sends an exact one).
    #[arg(long = "policy", value_enum, default_value_t = LevelArg::Monitor)]
    pub level: LevelArg,

    /// What to do with RSTs of flows rstguard does not track.
    #[arg(long, value_enum, default_value_t = ActionArg::Pass, value_name = "ACTION")]
    pub no_flow: ActionArg,

    /// What to do with RSTs of flows in TIME_WAIT (drop = RFC 1337).
    #[arg(long, value_enum, default_value_t = ActionArg::Pass, value_name = "ACTION")]
    pub time_wait: ActionArg,

    /// Track only flows whose SYN was seen (no mid-stream pickup). Flows
    /// that predate rstguard then count as no_flow.
    #[arg(long)]
    pub no_pickup: bool,

    /// Inexact (in-window) RSTs one flow may let through per second, at
    /// levels that pass them; 0 lets none through.
    #[arg(long, default_value_t = DEFAULT_INEXACT_PER_SEC, value_name = "N")]
    pub inexact_budget: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    Monitor,
    Enforce,
    Strict,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Level {
        match l {
            LevelArg::Monitor => Level::Monitor,
            LevelArg::Enforce => Level::Enforce,
            LevelArg::Strict => Level::Strict,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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
