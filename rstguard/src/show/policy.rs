//! Describing and editing a [`Policy`] (`rstguard policy show|set`).

use rstguard_common::{act::MAX_INEXACT_PER_SEC, Action, Level, Policy};
use serde::Serialize;

/// A policy as JSON shows it.
#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub level: Level,
    pub no_flow: Action,
    pub time_wait: Action,
    pub pickup: bool,
    pub inexact_budget: u32,
    pub event_sample: u32,
    pub unparsed: Action,
    pub drop_injected: bool,
    pub ttl_slack: u8,
    pub idle_after_secs: u16,
}

impl From<&Policy> for PolicyView {
    fn from(p: &Policy) -> Self {
        PolicyView {
            level: p.level(),
            no_flow: Action::from_raw(p.no_flow),
            time_wait: Action::from_raw(p.time_wait),
            pickup: p.pickup != 0,
            inexact_budget: p.inexact_per_sec(),
            event_sample: p.event_sample,
            unparsed: Action::from_raw(p.unparsed),
            drop_injected: p.drop_injected != 0,
            ttl_slack: p.ttl_slack,
            idle_after_secs: p.idle_after_secs,
        }
    }
}

/// One line describing a policy, for logs and `policy show`.
pub fn describe(p: &Policy) -> String {
    format!(
        "level={} no_flow={} time_wait={} pickup={} inexact_budget={} event_sample={} unparsed={} \
         drop_injected={} ttl_slack={} idle_after={}",
        p.level(),
        Action::from_raw(p.no_flow),
        Action::from_raw(p.time_wait),
        on_off(p.pickup),
        p.inexact_per_sec(),
        p.event_sample,
        Action::from_raw(p.unparsed),
        on_off(p.drop_injected),
        p.ttl_slack,
        p.idle_after_secs
    )
}

fn on_off(v: u8) -> &'static str {
    if v != 0 {
        "on"
    } else {
        "off"
    }
}

/// `on`/`off` (and their synonyms) as a byte.
fn switch(key: &str, value: &str) -> Result<u8, String> {
    match value {
        "on" | "true" | "yes" => Ok(1),
        "off" | "false" | "no" => Ok(0),
        _ => Err(format!("{key}: '{value}' is not on or off")),
    }
}

/// Applies one `KEY=VALUE` to `p`, or says what is wrong with it.
pub fn apply(p: &mut Policy, setting: &str) -> Result<(), String> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("'{setting}' is not KEY=VALUE"))?;
    let number = |max: u32| -> Result<u32, String> {
        value
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("{key}: '{value}' is not a number from 0 to {max}"))
    };
    match key {
        "level" if value == "auto" => {
            return Err("level=auto hands the level back to auto mode; it is not a level".into())
        }
        "level" => p.level = value.parse::<Level>().map_err(|e| e.to_string())? as u8,
        "no_flow" => p.no_flow = value.parse::<Action>().map_err(|e| e.to_string())? as u8,
        "time_wait" => p.time_wait = value.parse::<Action>().map_err(|e| e.to_string())? as u8,
        "unparsed" => p.unparsed = value.parse::<Action>().map_err(|e| e.to_string())? as u8,
        "pickup" => p.pickup = switch(key, value)?,
        "drop_injected" => p.drop_injected = switch(key, value)?,
        "inexact_budget" => p.set_inexact_per_sec(number(MAX_INEXACT_PER_SEC)?),
        "event_sample" => p.event_sample = number(u32::MAX)?,
        "ttl_slack" => p.ttl_slack = number(u8::MAX as u32)? as u8,
        "idle_after" => {
            let secs = number(u16::MAX as u32)?;
            if secs == 0 {
                return Err("idle_after: at least 1 second".into());
            }
            p.idle_after_secs = secs as u16;
        }
        _ => {
            return Err(format!(
                "unknown key '{key}' (keys: level, no_flow, time_wait, pickup, inexact_budget, \
                 event_sample, unparsed, drop_injected, ttl_slack, idle_after)"
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_changes_each_key() {
        let mut p = Policy::default();
        for s in [
            "level=strict",
            "no_flow=drop",
            "time_wait=drop",
            "pickup=off",
            "inexact_budget=0",
            "event_sample=1",
            "unparsed=drop",
            "drop_injected=on",
            "ttl_slack=3",
            "idle_after=300",
        ] {
            apply(&mut p, s).unwrap();
        }
        assert_eq!(
            describe(&p),
            "level=strict no_flow=drop time_wait=drop pickup=off inexact_budget=0 event_sample=1 \
             unparsed=drop drop_injected=on ttl_slack=3 idle_after=300"
        );
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let mut p = Policy::default();
        let before = p;
        for (s, says) in [
            ("level", "not KEY=VALUE"),
            ("level=lax", "monitor, enforce, strict"),
            ("no_flow=maybe", "pass, drop"),
            ("pickup=sometimes", "on or off"),
            ("inexact_budget=-1", "not a number"),
            ("inexact_budget=2000000", "from 0 to 1000000"),
            ("speed=11", "unknown key 'speed'"),
            ("ttl_slack=256", "from 0 to 255"),
            ("idle_after=0", "at least 1 second"),
            ("drop_injected=maybe", "on or off"),
        ] {
            let err = apply(&mut p, s).unwrap_err();
            assert!(err.contains(says), "{s}: {err}");
        }
        assert_eq!(p, before, "a refused setting changes nothing");
    }
}
