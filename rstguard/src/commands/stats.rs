//! `rstguard stats`: every interface's counters; with --watch, also rates.

use std::{collections::BTreeMap, thread, time::Duration};

use rstguard_common::Counters;
use serde_json::{json, Value};

use super::{iface_name, print_json};
use crate::{
    cli::StatsArgs,
    host::paths::PinDir,
    maps::Maps,
    show::counters::{summary_line, Named},
};

pub fn run(pins: &PinDir, args: &StatsArgs) -> anyhow::Result<()> {
    let maps = Maps::open(pins)?;
    let state = maps.state().ok();
    let mut before = maps.all_counters()?;
    let Some(secs) = args.watch else {
        return print(&before, None, state.as_ref(), args.json);
    };
    let mut rounds = 0u64;
    loop {
        thread::sleep(Duration::from_secs(secs));
        let now = maps.all_counters()?;
        let deltas: BTreeMap<u32, Counters> = now
            .iter()
            .map(|(i, c)| (*i, c.delta(before.get(i).unwrap_or(&Counters::default()))))
            .collect();
        print(&now, Some((&deltas, secs)), state.as_ref(), args.json)?;
        before = now;
        rounds += 1;
        if args.count.is_some_and(|n| rounds >= n) {
            return Ok(());
        }
    }
}

/// The same shape as a counter object, every number divided by `secs`.
fn per_second(v: Value, secs: u64) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) / secs as f64),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, per_second(v, secs)))
                .collect(),
        ),
        other => other,
    }
}

fn print(
    all: &BTreeMap<u32, Counters>,
    deltas: Option<(&BTreeMap<u32, Counters>, u64)>,
    state: Option<&rstguard_common::DaemonStatus>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut ifaces = Vec::new();
        for (ifindex, c) in all {
            let mut o = json!({
                "device": iface_name(state, *ifindex),
                "ifindex": ifindex,
                "counters": Named::from_counters(c),
            });
            if let Some((d, secs)) = deltas {
                let delta = serde_json::to_value(Named::from_counters(&d[ifindex]))?;
                o["per_second"] = per_second(delta, secs);
                o["interval_secs"] = json!(secs);
            }
            ifaces.push(o);
        }
        return print_json(&json!({ "interfaces": ifaces }));
    }
    for (ifindex, c) in all {
        let name = iface_name(state, *ifindex);
        println!("{}", summary_line(&name, c));
        if let Some((d, secs)) = deltas {
            println!(
                "  per second: {}",
                summary_line(&name, &scale(&d[ifindex], secs))
                    .split_once(": ")
                    .map_or("", |x| x.1)
            );
        }
    }
    if all.is_empty() {
        println!("no counters yet");
    }
    Ok(())
}

/// Counts over `secs` seconds as whole counts per second (for the text view).
fn scale(c: &Counters, secs: u64) -> Counters {
    let mut out = *c;
    for v in out.slots.iter_mut() {
        *v /= secs;
    }
    out
}
