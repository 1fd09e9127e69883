//! `rstguard policy show|set`: the live policy, changed without a reload.

use std::collections::BTreeMap;

use rstguard_common::maps::POLICY_DEFAULT;
use serde_json::json;

use super::{iface_name, print_json};
use crate::{
    cli::PolicyCmd,
    maps::Maps,
    paths::PinDir,
    policy::{apply, describe, PolicyView},
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
            // Validate everything first: a refused setting changes nothing.
            let mut new = maps.default_policy()?;
            for s in settings {
                apply(&mut new, s).map_err(anyhow::Error::msg)?;
            }
            let all = maps.policies()?;
            for (ifindex, old) in all.iter().chain([(&POLICY_DEFAULT, &new)]) {
                let mut p = *old;
                for s in settings {
                    apply(&mut p, s).map_err(anyhow::Error::msg)?;
                }
                maps.set_policy(*ifindex, &p)?;
            }
            println!("policy now: {}", describe(&new));
            Ok(())
        }
    }
}
