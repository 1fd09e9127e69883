//! `rstguard check`: a preflight for this machine. The kernel and what its
//! version enables, BTF, capabilities, the BPF filesystem, a daemon already
//! running, lockdown, and per interface the driver, native XDP and any XDP
//! program already attached. One line per item (OK, WARN or FAIL, with what
//! to do), or JSON; exits non-zero on any FAIL.
//!
//! Interfaces and XDP modes are resolved exactly as `rstguard attach` would
//! resolve them (flags, then the config file), so that `rstguard check --
//! attach ARGS` checks what that command line would do.

mod judge;
mod probe;

use anyhow::bail;
use clap::ValueEnum as _;
use rstguard_common::layout::PROG_XDP;
use serde::Serialize;

use self::judge::{Item, Status};
use super::print_json;
use crate::{
    cli::{AttachArgs, CheckArgs, Cli, Commands},
    config::{self, Settings},
    host::kernel,
    host::paths::PinDir,
};

#[derive(Serialize)]
struct Report<'a> {
    status: Status,
    checks: &'a [Item],
}

pub fn run(pins: &PinDir, args: &CheckArgs) -> anyhow::Result<()> {
    let (pins, attach) = attach_args(pins, args)?;
    let items = check(&pins, attach);
    let status = judge::overall(&items);
    if args.json {
        print_json(&Report {
            status,
            checks: &items,
        })?;
    } else {
        for item in &items {
            println!("{}", item.line());
        }
    }
    if status == Status::Fail {
        let n = items.iter().filter(|i| i.status == Status::Fail).count();
        bail!("{n} check(s) failed");
    }
    Ok(())
}

/// The `attach` command line to check for, and its pin directory: the one
/// after `--`, else one made of this command's interfaces and flags.
fn attach_args(pins: &PinDir, args: &CheckArgs) -> anyhow::Result<(PinDir, AttachArgs)> {
    let argv: Vec<String> = if args.attach.is_empty() {
        let mut v = vec!["attach".to_string()];
        v.extend(args.ifaces.iter().cloned());
        if let Some(c) = &args.config {
            v.push("--config".into());
            v.push(c.display().to_string());
        }
        if args.given.has("mode") {
            let m = args.mode;
            v.push("--mode".into());
            v.push(
                m.to_possible_value()
                    .expect("a named mode")
                    .get_name()
                    .into(),
            );
        }
        v
    } else {
        args.attach.clone()
    };
    let cli = Cli::parse_argv(std::iter::once("rstguard".to_string()).chain(argv.clone()))?;
    match cli.command {
        // An explicit --pin-dir in the attach line wins; else ours.
        Commands::Attach(a) if argv.iter().any(|s| s.starts_with("--pin-dir")) => {
            Ok((PinDir::new(cli.pin_dir), a))
        }
        Commands::Attach(a) => Ok((pins.clone(), a)),
        _ => {
            bail!("after `--`, give an `attach` command line (e.g. `-- attach eth0 --mode native`)")
        }
    }
}

/// Every item, in a fixed order: the machine, then each interface.
fn check(pins: &PinDir, attach: AttachArgs) -> Vec<Item> {
    let effective = probe::effective_caps();
    let holder = probe::daemon(pins);
    let mut items = vec![
        judge::kernel(probe::kernel(), kernel::FLOOR),
        judge::btf(probe::btf()),
        judge::capabilities(effective),
        judge::bpffs(&probe::bpffs(pins, effective)),
        judge::daemon(&pins.dir().display().to_string(), holder),
        judge::lockdown(probe::lockdown()),
    ];
    let (settings, named) = match resolve(attach) {
        Ok(r) => r,
        Err(item) => {
            items.push(item);
            return items;
        }
    };
    if let Some(path) = &settings.config_path {
        items.push(Item {
            item: "config".into(),
            status: Status::Ok,
            detail: format!("{}: valid", path.display()),
            action: None,
        });
    }
    let links = match probe::links() {
        Ok(l) => l,
        Err(e) => {
            items.push(Item {
                item: "interfaces".into(),
                status: Status::Fail,
                detail: format!("cannot list interfaces through netlink: {e:#}"),
                action: Some("run `ip link` to see whether netlink works here".into()),
            });
            return items;
        }
    };
    let names: Vec<String> = if named {
        settings.interfaces.clone()
    } else {
        links
            .iter()
            .filter(|l| !l.loopback)
            .map(|l| l.name.clone())
            .collect()
    };
    if names.is_empty() {
        items.push(Item {
            item: "interfaces".into(),
            status: Status::Warn,
            detail: "none but loopback".into(),
            action: Some("name the interfaces to protect".into()),
        });
    }
    for name in names {
        let link = links.iter().find(|l| l.name == name);
        let f = judge::Iface {
            mode: settings.mode_for(&name),
            named,
            exists: link.is_some(),
            driver: crate::host::iface::driver(&name).or_else(|| link.and_then(|l| l.kind.clone())),
            xdp: link.and_then(|l| l.xdp.clone()),
            arphrd: crate::host::iface::device_type(&name),
            name,
        };
        items.push(judge::iface(&f, PROG_XDP, holder.is_some()));
    }
    items
}

/// The daemon's settings for this command line, and whether it names its
/// interfaces (else every interface is checked, with a stand-in name for
/// the resolution). A config file that does not resolve is a FAIL item.
fn resolve(mut attach: AttachArgs) -> Result<(Settings, bool), Item> {
    let bad = |e: String| Item {
        item: "config".into(),
        status: Status::Fail,
        detail: e,
        action: Some("fix it (`rstguard check-config FILE` says the same)".into()),
    };
    let path = config::locate(attach.config.as_deref()).map_err(|e| bad(e.to_string()))?;
    let file = match &path {
        Some(p) => config::read(p).map_err(|e| bad(e.to_string()))?,
        None => config::ConfigFile::default(),
    };
    let named =
        !attach.ifaces.is_empty() || file.interfaces.as_ref().is_some_and(|i| !i.is_empty());
    if !named {
        attach.ifaces = vec!["(every interface)".into()];
    }
    config::resolve(&attach, &file, path)
        .map(|s| (s, named))
        .map_err(|e| bad(e.to_string()))
}
