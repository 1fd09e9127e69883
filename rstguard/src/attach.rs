//! Attaching the programs to interfaces, and detaching them.
//!
//! XDP goes on ingress in the mode asked for (`auto` tries native, then
//! falls back to generic/skb with a warning); the classifier goes on egress
//! through TCX where the kernel has it (6.6+), else through a clsact qdisc.
//! Whatever fails part-way is undone: nothing stays half-attached.

use std::fmt;

use aya::programs::{
    tc::{self, SchedClassifierLinkId, TcAttachOptions},
    xdp::XdpLinkId,
    LinkOrder, ProgramError, TcAttachType, XdpMode,
};
use aya::util::KernelVersion;
use tracing::{info, warn};

use crate::{ebpf::Loaded, error::Error, iface::Iface};

/// `--mode`: how XDP attaches, with xdp-loader's names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Native (driver) mode where the driver supports it, else skb.
    #[default]
    Auto,
    /// Native (driver) mode only: fail where the driver lacks it.
    Native,
    /// Generic (skb) mode: works on every interface, after the skb is built.
    Skb,
}

/// The XDP mode in force on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeInForce {
    Native,
    Skb,
}

impl fmt::Display for XdpModeInForce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpModeInForce::Native => "native",
            XdpModeInForce::Skb => "skb",
        })
    }
}

/// How the egress classifier is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcHook {
    Tcx,
    Clsact,
}

impl fmt::Display for TcHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcHook::Tcx => "tcx",
            TcHook::Clsact => "clsact",
        })
    }
}

/// What rstguard attached to one interface.
#[derive(Debug)]
pub struct Attachment {
    pub iface: Iface,
    pub xdp_mode: XdpModeInForce,
    pub tc_hook: TcHook,
    xdp_link: Option<XdpLinkId>,
    tc_link: Option<SchedClassifierLinkId>,
}

/// Attaches XDP and the egress classifier to every interface, in order.
/// On any failure, detaches what it attached and returns the error.
pub fn attach_all(
    loaded: &mut Loaded,
    ifaces: &[Iface],
    mode: ModeArg,
) -> Result<Vec<Attachment>, Error> {
    let mut done = Vec::with_capacity(ifaces.len());
    for iface in ifaces {
        match attach_one(loaded, iface, mode) {
            Ok(a) => done.push(a),
            Err(e) => {
                detach_all(loaded, done);
                return Err(e);
            }
        }
    }
    Ok(done)
}

fn attach_one(loaded: &mut Loaded, iface: &Iface, mode: ModeArg) -> Result<Attachment, Error> {
    let (xdp_link, xdp_mode) = attach_xdp(loaded, iface, mode)?;
    let mut attachment = Attachment {
        iface: iface.clone(),
        xdp_mode,
        tc_hook: TcHook::Tcx,
        xdp_link: Some(xdp_link),
        tc_link: None,
    };
    match attach_tc(loaded, iface) {
        Ok((link, hook)) => {
            attachment.tc_link = Some(link);
            attachment.tc_hook = hook;
        }
        Err(e) => {
            detach_one(loaded, attachment);
            return Err(e);
        }
    }
    if let Err(e) = loaded.init_counters(iface.index) {
        detach_one(loaded, attachment);
        return Err(e);
    }
    info!(
        iface = %iface.name,
        xdp_mode = %attachment.xdp_mode,
        egress = %attachment.tc_hook,
        "attached"
    );
    Ok(attachment)
}

fn errno(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        ProgramError::XdpError(aya::programs::xdp::XdpError::NetlinkError(n)) => n.raw_os_error(),
        _ => None,
    }
}

fn attach_xdp(
    loaded: &mut Loaded,
    iface: &Iface,
    mode: ModeArg,
) -> Result<(XdpLinkId, XdpModeInForce), Error> {
    let xdp = loaded.xdp()?;
    let classify = |e: ProgramError, mode: &'static str| match errno(&e) {
        Some(libc::EBUSY) | Some(libc::EEXIST) => Error::XdpBusy {
            iface: iface.name.clone(),
        },
        Some(libc::EOPNOTSUPP) => Error::XdpModeUnsupported {
            iface: iface.name.clone(),
            mode,
            source: Box::new(e),
        },
        _ => Error::XdpAttach {
            iface: iface.name.clone(),
            source: Box::new(e),
        },
    };
    match mode {
        ModeArg::Skb => xdp
            .attach_to_if_index(iface.index, XdpMode::Skb)
            .map(|l| (l, XdpModeInForce::Skb))
            .map_err(|e| classify(e, "skb")),
        ModeArg::Native => xdp
            .attach_to_if_index(iface.index, XdpMode::Driver)
            .map(|l| (l, XdpModeInForce::Native))
            .map_err(|e| classify(e, "native")),
        ModeArg::Auto => match xdp.attach_to_if_index(iface.index, XdpMode::Driver) {
            Ok(l) => Ok((l, XdpModeInForce::Native)),
            Err(e) => match classify(e, "native") {
                Error::XdpModeUnsupported { source, .. } => {
                    warn!(
                        iface = %iface.name,
                        reason = %source,
                        "NATIVE XDP UNAVAILABLE: falling back to generic (skb) mode, \
                         which runs later and costs more per packet"
                    );
                    xdp.attach_to_if_index(iface.index, XdpMode::Skb)
                        .map(|l| (l, XdpModeInForce::Skb))
                        .map_err(|e| classify(e, "skb"))
                }
                other => Err(other),
            },
        },
    }
}

fn attach_tc(loaded: &mut Loaded, iface: &Iface) -> Result<(SchedClassifierLinkId, TcHook), Error> {
    let tc_err = |e: Box<dyn std::error::Error + Send + Sync>| Error::TcAttach {
        iface: iface.name.clone(),
        source: e,
    };
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    if !tcx {
        // Older kernels: the classifier hangs off a clsact qdisc, which may
        // already be there (another tool's, or ours from before).
        if let Err(e) = tc::qdisc_add_clsact(&iface.name) {
            let exists = matches!(&e, tc::TcError::NetlinkError(n) if n.raw_os_error() == Some(libc::EEXIST));
            if !exists {
                return Err(tc_err(Box::new(e)));
            }
        }
    }
    let prog = loaded.tc()?;
    let opts = if tcx {
        TcAttachOptions::TcxOrder(LinkOrder::default())
    } else {
        TcAttachOptions::Netlink(Default::default())
    };
    let link = prog
        .attach_with_options(&iface.name, TcAttachType::Egress, opts)
        .map_err(|e| tc_err(Box::new(e)))?;
    Ok((link, if tcx { TcHook::Tcx } else { TcHook::Clsact }))
}

/// Detaches everything in `attachments`, logging (not failing on) errors:
/// on the way out, every detach that can happen must happen.
pub fn detach_all(loaded: &mut Loaded, attachments: Vec<Attachment>) {
    for a in attachments {
        detach_one(loaded, a);
    }
}

fn detach_one(loaded: &mut Loaded, mut a: Attachment) {
    if let Some(link) = a.tc_link.take() {
        match loaded.tc() {
            Ok(prog) => {
                if let Err(e) = prog.detach(link) {
                    warn!(iface = %a.iface.name, error = %e, "detaching the egress classifier failed");
                }
            }
            Err(e) => warn!(error = %e, "egress classifier not found"),
        }
    }
    if let Some(link) = a.xdp_link.take() {
        match loaded.xdp() {
            Ok(prog) => {
                if let Err(e) = prog.detach(link) {
                    warn!(iface = %a.iface.name, error = %e, "detaching XDP failed");
                }
            }
            Err(e) => warn!(error = %e, "XDP program not found"),
        }
    }
    info!(iface = %a.iface.name, "detached");
}
