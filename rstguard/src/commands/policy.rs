//! `rstguard policy show|set`: the live policy, changed without a reload.

use std::collections::BTreeMap;

use rstguard_common::{act::POLICY_PINNED, layout::POLICY_DEFAULT, Policy};
use serde_json::json;

use super::{iface_name, print_json};
use crate::{
    cli::PolicyCmd,
    host::paths::PinDir,
    maps::Maps,
    show::policy::{apply, describe, PolicyView},
};

pub fn run(pins: &PinDir, cmd: &PolicyCmd) -> anyhow::Result<()> {
    let mut maps = Maps::open(pins)?;
    let state = maps.state().ok();
    match cmd {
        PolicyCmd::Show(j) => {
            let all = maps.policies()?;
            let default = maps.default_policy()?;
            let per_iface: BTreeMap<String, PolicyView> = all
                .iter()
                .filter(|(i, _)| **i != POLICY_DEFAULT)
                .map(|(i, p)| (iface_name(state.as_ref(), *i), PolicyView::from(p)))
                .collect();
            if j.json {
                return print_json(
                    &json!({ "default": PolicyView::from(&default), "interfaces": per_iface }),
                );
            }
            println!("default: {}", describe(&default));
            for (i, p) in &all {
                if *i != POLICY_DEFAULT {
                    println!("{}: {}", iface_name(state.as_ref(), *i), describe(p));
                }
            }
            Ok(())
        }
        PolicyCmd::Set { settings } => {
            let auto = state.as_ref().is_some_and(|s| s.auto != 0);
            // `level=auto` hands the level back to the controller; any other
            // level, under auto, pins it.
            let to_auto = settings.iter().any(|s| s == "level=auto");
            let sets_level = settings.iter().any(|s| s.starts_with("level="));
            if to_auto && !auto {
                anyhow::bail!("level=auto: the daemon was not started with --policy auto");
            }
            let rest: Vec<&String> = settings.iter().filter(|s| *s != "level=auto").collect();
            let pin = |p: &mut Policy| {
                if to_auto {
                    p.flags &= !POLICY_PINNED;
                } else if auto && sets_level {
                    p.flags |= POLICY_PINNED;
                }
            };
            // Validate everything first: a refused setting changes nothing.
            let mut new = maps.default_policy()?;
            for s in &rest {
                apply(&mut new, s).map_err(anyhow::Error::msg)?;
            }
            pin(&mut new);
            let all = maps.policies()?;
            for (ifindex, old) in all.iter().chain([(&POLICY_DEFAULT, &new)]) {
                let mut p = *old;
                for s in &rest {
                    apply(&mut p, s).map_err(anyhow::Error::msg)?;
                }
                pin(&mut p);
                maps.set_policy(*ifindex, &p)?;
            }
            println!("policy now: {}", describe(&new));
            if to_auto {
                println!("the level is auto mode's again: it moves with the attack rate");
            } else if auto && sets_level {
                println!(
                    "the level is pinned at {}: auto mode leaves it alone until \
                     `rstguard policy set level=auto`",
                    new.level()
                );
            }
            Ok(())
        }
    }
}
