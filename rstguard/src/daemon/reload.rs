//! SIGHUP: re-reads the config file and applies its policy and trusted
//! prefixes live. A bad file changes nothing (the old policy stays) and is
//! reported with its line. What only a restart can change keeps its
//! running value, with a warning.

use std::sync::Mutex;

use rstguard_common::{Level, Policy};
use tracing::{error, info, warn};

use super::{lock, startup::write_policy, Shared};
use crate::{
    cli::AttachArgs,
    config::{self, Settings},
    show::policy::describe,
    trust::Prefix,
};

/// One auto-mode interface as a reload sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoNow {
    pub ifindex: u32,
    pub name: String,
    /// The level its controller holds.
    pub level: Level,
    /// The flags of its policy in force (an operator's pin among them).
    pub flags: u32,
}

/// What a new config changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Written as the default and to every attached interface.
    pub policy: Policy,
    /// Then, under auto, each interface's own level (clamped to its new
    /// floor and ceiling), its flags kept.
    pub auto_policies: Vec<(u32, Policy)>,
    /// Prefixes to stop trusting, then prefixes to trust.
    pub distrust: Vec<Prefix>,
    pub trust: Vec<Prefix>,
    /// Settings that changed but need a restart (they keep their value).
    pub restart_needed: Vec<&'static str>,
    /// The settings in force afterwards.
    pub settings: Settings,
}

/// Why a config that parsed is rejected all the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Switching between `--policy auto` and a fixed level.
    AutoSwitch,
}

/// The reload rule: what `new` changes, given the running settings and
/// the auto-mode interfaces.
pub fn plan(running: &Settings, new: Settings, auto: &[AutoNow]) -> Result<Plan, Rejected> {
    if new.auto.is_some() != running.auto.is_some() {
        return Err(Rejected::AutoSwitch);
    }
    let auto_policies = auto
        .iter()
        .map(|a| {
            let level = match &new.auto {
                Some(n) => {
                    let c = n.for_iface(&a.name);
                    a.level.clamp(c.floor, c.ceiling)
                }
                None => a.level,
            };
            (
                a.ifindex,
                Policy {
                    level: level as u8,
                    flags: a.flags,
                    ..new.policy
                },
            )
        })
        .collect();
    let distrust = running
        .trust
        .iter()
        .filter(|old| !new.trust.contains(old))
        .cloned()
        .collect();
    // What needs a restart keeps its running value.
    let mut settings = new;
    let restart_needed = config::keep_restart_only(running, &mut settings);
    Ok(Plan {
        policy: settings.policy,
        auto_policies,
        distrust,
        trust: settings.trust.clone(),
        restart_needed,
        settings,
    })
}

/// SIGHUP.
pub fn reload(args: &AttachArgs, settings: &mut Settings, shared: &Mutex<Shared>) {
    let new = match config::load(args) {
        Ok(new) => new,
        Err(e) => {
            error!(error = %e, "SIGHUP: config rejected; the old policy stays in force");
            rejected(shared);
            return;
        }
    };
    let mut s = lock(shared);
    let auto: Vec<AutoNow> = s
        .auto
        .iter()
        .map(|a| AutoNow {
            ifindex: a.ifindex,
            name: a.name.clone(),
            level: a.controller.level(),
            flags: s
                .maps
                .policy(a.ifindex)
                .ok()
                .flatten()
                .map_or(0, |p| p.flags),
        })
        .collect();
    let plan = match plan(settings, new, &auto) {
        Ok(p) => p,
        Err(Rejected::AutoSwitch) => {
            error!(
                "SIGHUP: config rejected: switching between --policy auto and a fixed level needs a \
                 restart; the old policy stays in force"
            );
            drop(s);
            rejected(shared);
            return;
        }
    };
    let ifindexes: Vec<u32> = s.attached.iter().map(|a| a.ifindex).collect();
    let applied = write_policy(&mut s.maps, ifindexes.into_iter(), &plan.policy).and_then(|()| {
        // Auto keeps each interface's own level (and an operator's pin).
        for (ifindex, p) in &plan.auto_policies {
            s.maps.set_policy(*ifindex, p)?;
        }
        for p in &plan.distrust {
            s.maps.distrust(p)?;
        }
        for p in &plan.trust {
            s.maps.trust(p)?;
        }
        Ok(())
    });
    if let Err(e) = applied {
        error!(error = %e, "SIGHUP: applying the new policy failed");
        drop(s);
        rejected(shared);
        return;
    }
    for field in &plan.restart_needed {
        warn!(
            field,
            "SIGHUP: this setting changed in the config but needs a restart"
        );
    }
    let new = plan.settings;
    if let Some(n) = &new.auto {
        for a in s.auto.iter_mut() {
            let level = a.controller.level();
            a.controller.config = n.for_iface(&a.name);
            a.controller.resume_at(level);
        }
    }
    let levels: Vec<(u32, u8)> = s
        .auto
        .iter()
        .map(|a| (a.ifindex, a.controller.level() as u8))
        .collect();
    for slot in s.state.ifaces.iter_mut().filter(|i| i.ifindex != 0) {
        slot.level = levels
            .iter()
            .find(|(i, _)| *i == slot.ifindex)
            .map_or(new.policy.level, |(_, l)| *l);
    }
    s.state.config_ok = 1;
    s.state.config_reloads += 1;
    s.publish();
    info!(
        policy = %describe(&new.policy),
        trusted = new.trust.len(),
        file = %new.config_path.as_ref().map_or("(none)".into(), |p| p.display().to_string()),
        "SIGHUP: config reloaded"
    );
    *settings = new;
}

/// Publishes that the last reload failed.
fn rejected(shared: &Mutex<Shared>) {
    let mut s = lock(shared);
    s.state.config_ok = 0;
    s.publish();
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::{Cli, Commands};

    fn settings(argv: &[&str], file: &str) -> Settings {
        let mut full = vec!["rstguard", "attach"];
        full.extend_from_slice(argv);
        let Commands::Attach(args) = Cli::parse_argv(full).unwrap().command else {
            unreachable!()
        };
        let file = config::parse(file, Path::new("f")).unwrap();
        config::resolve(&args, &file, None).unwrap()
    }

    #[test]
    fn a_new_policy_applies_and_what_needs_a_restart_keeps_its_value() {
        let running = settings(&["eth0", "--trust", "10.0.0.0/8"], "flows = 100\n");
        let new = settings(
            &["eth1", "--policy", "strict", "--trust", "192.0.2.0/24"],
            "flows = 200\nnew_flows = 7\n",
        );
        let p = plan(&running, new, &[]).unwrap();
        assert_eq!(p.policy.level(), Level::Strict);
        assert_eq!(p.restart_needed, ["interfaces", "flows", "new_flows"]);
        assert_eq!(p.settings.interfaces, ["eth0"]);
        assert_eq!(p.settings.flows, 100);
        assert_eq!(p.distrust, ["10.0.0.0/8".parse::<Prefix>().unwrap()]);
        assert_eq!(p.trust, ["192.0.2.0/24".parse::<Prefix>().unwrap()]);
        assert!(p.auto_policies.is_empty());
    }

    #[test]
    fn auto_keeps_each_level_within_the_new_bounds_and_the_pin() {
        let running = settings(&["eth0", "--policy", "auto"], "");
        let new = settings(
            &["eth0", "--policy", "auto", "--ceiling", "enforce"],
            "time_wait = \"drop\"\n",
        );
        let auto = [AutoNow {
            ifindex: 3,
            name: "eth0".into(),
            level: Level::Strict,
            flags: rstguard_common::act::POLICY_PINNED,
        }];
        let p = plan(&running, new, &auto).unwrap();
        let (ifindex, policy) = p.auto_policies[0];
        assert_eq!(ifindex, 3);
        assert_eq!(policy.level(), Level::Enforce, "clamped to the ceiling");
        assert_eq!(policy.flags, rstguard_common::act::POLICY_PINNED);
        assert_eq!(policy.time_wait, p.policy.time_wait);
        assert!(p.restart_needed.is_empty());
    }

    #[test]
    fn switching_between_auto_and_a_fixed_level_is_rejected() {
        let fixed = settings(&["eth0", "--policy", "enforce"], "");
        let auto = settings(&["eth0", "--policy", "auto"], "");
        assert_eq!(plan(&fixed, auto.clone(), &[]), Err(Rejected::AutoSwitch));
        assert_eq!(plan(&auto, fixed, &[]), Err(Rejected::AutoSwitch));
    }
}
