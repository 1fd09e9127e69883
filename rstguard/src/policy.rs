//! Building the kernel's [`Policy`] from what the operator asked for.

use rstguard_common::{Action, Level, Policy};

use crate::cli::PolicyArgs;

impl PolicyArgs {
    pub fn to_policy(&self) -> Policy {
        let mut p = Policy {
            level: Level::from(self.level) as u8,
            no_flow: Action::from(self.no_flow) as u8,
            time_wait: Action::from(self.time_wait) as u8,
            pickup: u8::from(!self.no_pickup),
            ..Policy::default()
        };
        p.set_inexact_per_sec(self.inexact_budget);
        p
    }
}

/// One line describing a policy, for logs.
pub fn describe(p: &Policy) -> String {
    format!(
        "level={} no_flow={} time_wait={} pickup={} inexact_budget={}/s",
        p.level(),
        Action::from_raw(p.no_flow),
        Action::from_raw(p.time_wait),
        if p.pickup != 0 { "on" } else { "off" },
        p.inexact_per_sec()
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Commands};

    use super::*;

    fn policy_of(args: &[&str]) -> Policy {
        let mut argv = vec!["rstguard", "attach", "eth0"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Commands::Attach(a) => a.policy.to_policy(),
        }
    }

    #[test]
    fn defaults_drop_nothing() {
        let p = policy_of(&[]);
        assert_eq!(p.level(), Level::Monitor);
        assert_eq!(Action::from_raw(p.no_flow), Action::Pass);
        assert_eq!(Action::from_raw(p.time_wait), Action::Pass);
        assert_eq!(p.pickup, 1);
        assert_eq!(p.inexact_burst, 10);
        assert_eq!(p.inexact_interval_ns, 100_000_000);
    }

    #[test]
    fn flags_set_every_field() {
        let p = policy_of(&[
            "--policy",
            "strict",
            "--no-flow",
            "drop",
            "--time-wait",
            "drop",
            "--no-pickup",
            "--inexact-budget",
            "0",
        ]);
        assert_eq!(p.level(), Level::Strict);
        assert_eq!(Action::from_raw(p.no_flow), Action::Drop);
        assert_eq!(Action::from_raw(p.time_wait), Action::Drop);
        assert_eq!(p.pickup, 0);
        assert_eq!(p.inexact_burst, 0);
        assert_eq!(
            describe(&p),
            "level=strict no_flow=drop time_wait=drop pickup=off inexact_budget=0/s"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let argv = ["rstguard", "attach", "eth0", "--policy", "paranoid"];
        let err = Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains("monitor, enforce, strict"), "{err}");
        let argv = ["rstguard", "attach", "eth0", "--trust", "10.0.0.1/8"];
        let err = Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains("host bits"), "{err}");
    }
}
