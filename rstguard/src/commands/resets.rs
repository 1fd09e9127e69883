//! `rstguard resets`: the latest RSTs, each with its verdict, action,
//! likely cause and the evidence for it; with --follow, new ones as they
//! come.

use std::{io::Write, thread, time::Duration};

use rstguard_common::{layout::RESETS_KEPT, DaemonStatus, ResetRecord};

use super::{iface_name, print_json};
use crate::{cli::ResetsArgs, host::paths::PinDir, maps::Maps, show::explain::ResetView};

/// How often --follow looks for new records.
const POLL: Duration = Duration::from_millis(200);

pub fn run(pins: &PinDir, args: &ResetsArgs) -> anyhow::Result<()> {
    let maps = Maps::open(pins)?;
    let all = maps.resets()?;
    let skip = all.len().saturating_sub(args.limit);
    let mut last = all.last().map_or(0, |r| r.number);
    let state = maps.state().ok();
    if all.is_empty() && !args.json && !args.follow {
        println!("no RSTs recorded yet");
    }
    for r in &all[skip..] {
        show(r, state.as_ref(), args.json)?;
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        thread::sleep(POLL);
        let state = maps.state().ok();
        let recorded = state.as_ref().map_or(last, |s| s.resets_recorded);
        if recorded <= last {
            continue;
        }
        let fresh: Vec<ResetRecord> = maps
            .resets()?
            .into_iter()
            .filter(|r| r.number > last)
            .collect();
        let first = fresh.first().map_or(recorded + 1, |r| r.number);
        if first > last + 1 && !args.json {
            println!(
                "({} RSTs came faster than --follow reads and were overwritten: the ring keeps \
                 {RESETS_KEPT})",
                first - last - 1
            );
        }
        for r in &fresh {
            show(r, state.as_ref(), args.json)?;
        }
        last = recorded.max(fresh.last().map_or(last, |r| r.number));
        std::io::stdout().flush()?;
    }
}

fn show(r: &ResetRecord, state: Option<&DaemonStatus>, json: bool) -> anyhow::Result<()> {
    let view = ResetView::new(r, iface_name(state, r.event.ifindex));
    if json {
        print_json(&view)
    } else {
        println!("{}", view.line());
        Ok(())
    }
}
