//! `rstguard attach`: load, attach, report, and detach on SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use crate::{
    attach::{attach_all, detach_all, Attachment, TcHook, XdpModeInForce},
    cli::AttachArgs,
    counters::{summary_line, Named},
    ebpf::{LoadOptions, Loaded},
    iface::Iface,
    policy::describe,
    privileges::{self, ATTACH},
};

pub fn run(args: AttachArgs) -> anyhow::Result<()> {
    privileges::require("rstguard attach", ATTACH)?;
    let ifaces = Iface::resolve_all(&args.ifaces)?;
    let policy = args.policy.to_policy();

    let mut loaded = Loaded::load(&LoadOptions { flows: args.flows })?;
    loaded.set_policy(&policy)?;
    for prefix in &args.trust {
        loaded.trust(prefix)?;
    }
    info!(policy = %describe(&policy), flows = args.flows, "programs loaded");

    let attachments = attach_all(&mut loaded, &ifaces, args.mode)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(&loaded, &attachments, &args));
    report(&loaded, &attachments, args.json);
    detach_all(&mut loaded, attachments);
    result
}

/// Waits for SIGINT/SIGTERM, printing a summary every interval.
async fn serve(
    loaded: &Loaded,
    attachments: &[Attachment],
    args: &AttachArgs,
) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let period = Duration::from_secs(args.interval.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT: detaching"); return Ok(()); }
            _ = sigterm.recv() => { info!("SIGTERM: detaching"); return Ok(()); }
            _ = tick.tick() => {
                for a in attachments {
                    if !a.iface.still_exists() {
                        error!(iface = %a.iface.name, "interface vanished; the kernel removed its programs");
                    }
                }
                if args.interval > 0 {
                    report(loaded, attachments, args.json);
                }
            }
        }
    }
}

#[derive(Serialize)]
struct IfaceReport<'a> {
    device: &'a str,
    ifindex: u32,
    xdp_mode: XdpModeInForce,
    egress: TcHook,
    #[serde(flatten)]
    counters: Named,
}

/// Prints each interface's counters: one line each, or one JSON object.
fn report(loaded: &Loaded, attachments: &[Attachment], json: bool) {
    let mut reports = Vec::with_capacity(attachments.len());
    for a in attachments {
        let counters = match loaded.counters(a.iface.index) {
            Ok(c) => c,
            Err(e) => {
                error!(iface = %a.iface.name, error = %e, "reading counters failed");
                continue;
            }
        };
        if json {
            reports.push(IfaceReport {
                device: &a.iface.name,
                ifindex: a.iface.index,
                xdp_mode: a.xdp_mode,
                egress: a.tc_hook,
                counters: Named::from_counters(&counters),
            });
        } else {
            println!(
                "{} [xdp {}, egress {}]",
                summary_line(&a.iface.name, &counters),
                a.xdp_mode,
                a.tc_hook
            );
        }
    }
    if json {
        match serde_json::to_string(&serde_json::json!({ "interfaces": reports })) {
            Ok(line) => println!("{line}"),
            Err(e) => error!(error = %e, "encoding counters as JSON failed"),
        }
    }
}
