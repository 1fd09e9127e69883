//! Counter summaries: every `--interval` seconds and once at the end, one
//! line per interface, or one JSON object (`--json`).

use serde::Serialize;
use tracing::error;

use crate::{
    attach::{Attachment, TcHook, XdpModeInForce},
    maps::Maps,
    show::counters::{summary_line, Named},
};

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
pub fn report(maps: &Maps, attachments: &[Attachment], json: bool) {
    let mut reports = Vec::with_capacity(attachments.len());
    for a in attachments {
        let counters = match maps.counters(a.iface.index) {
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
