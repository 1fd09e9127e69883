//! Attaching the programs to interfaces, and detaching them.
//!
//! XDP goes on ingress in the mode asked for (`auto` tries native, then
//! falls back to generic/skb with a warning); the classifier goes on egress
//! through TCX where the kernel has it (6.6+), else through a clsact qdisc.
//! Whatever fails part-way is undone: nothing stays half-attached.

use std::fmt;

use aya::programs::{
    loaded_links,
    tc::{self, SchedClassifierLinkId, TcAttachOptions},
    xdp::XdpLinkId,
    LinkOrder, ProgramError, TcAttachType, XdpMode,
};
use rstguard_common::status::{
    TC_HOOK_CLSACT, TC_HOOK_NONE, TC_HOOK_TCX, XDP_MODE_NATIVE, XDP_MODE_SKB,
};
use tracing::{info, warn};

use crate::{
    config::ModeArg,
    ebpf::Loaded,
    error::Error,
    host::iface::{Iface, LinkType},
};

/// The XDP mode in force on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeInForce {
    Native,
    Skb,
}

impl XdpModeInForce {
    pub fn raw(self) -> u8 {
        match self {
            XdpModeInForce::Native => XDP_MODE_NATIVE,
            XdpModeInForce::Skb => XDP_MODE_SKB,
        }
    }

    pub fn from_raw(v: u8) -> Option<Self> {
        match v {
            XDP_MODE_NATIVE => Some(XdpModeInForce::Native),
            XDP_MODE_SKB => Some(XdpModeInForce::Skb),
            _ => None,
        }
    }
}

impl TcHook {
    pub fn raw(self) -> u8 {
        match self {
            TcHook::Tcx => TC_HOOK_TCX,
            TcHook::Clsact => TC_HOOK_CLSACT,
            TcHook::Off => TC_HOOK_NONE,
        }
    }

    pub fn from_raw(v: u8) -> Option<Self> {
        match v {
            TC_HOOK_TCX => Some(TcHook::Tcx),
            TC_HOOK_CLSACT => Some(TcHook::Clsact),
            TC_HOOK_NONE => Some(TcHook::Off),
            _ => None,
        }
    }
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
    /// Not attached: socket mode (`--state socket`) learns nothing at
    /// egress.
    #[serde(rename = "none")]
    Off,
}

impl fmt::Display for TcHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcHook::Tcx => "tcx",
            TcHook::Clsact => "clsact",
            TcHook::Off => "none",
        })
    }
}

/// What rstguard attached to one interface.
#[derive(Debug)]
pub struct Attachment {
    pub iface: Iface,
    pub xdp_mode: XdpModeInForce,
    pub tc_hook: TcHook,
    /// Kernel ids of the links (0 when attached without one), so that
    /// other processes can tell whether they still exist.
    pub xdp_link_id: u32,
    pub tc_link_id: u32,
    xdp_link: Option<XdpLinkId>,
    tc_link: Option<SchedClassifierLinkId>,
}

/// Attaches XDP and (where `egress_for` says so) the egress classifier to
/// every interface, in order, with the XDP mode `mode_for` gives each. On
/// any failure, detaches what it attached and returns the error.
pub fn attach_all(
    loaded: &mut Loaded,
    ifaces: &[Iface],
    mode_for: impl Fn(&str) -> ModeArg,
    egress_for: impl Fn(&str) -> bool,
) -> Result<Vec<Attachment>, Error> {
    let mut done = Vec::with_capacity(ifaces.len());
    for iface in ifaces {
        match attach_one(
            loaded,
            iface,
            mode_for(&iface.name),
            egress_for(&iface.name),
        ) {
            Ok(a) => done.push(a),
            Err(e) => {
                detach_all(loaded, done);
                return Err(e);
            }
        }
    }
    Ok(done)
}

fn attach_one(
    loaded: &mut Loaded,
    iface: &Iface,
    mode: ModeArg,
    egress: bool,
) -> Result<Attachment, Error> {
    let xdp_prog = loaded.xdp()?.info().ok().map(|i| i.id());
    let before = link_ids(xdp_prog);
    let (xdp_link, xdp_mode) = attach_xdp(loaded, iface, mode)?;
    let mut attachment = Attachment {
        iface: iface.clone(),
        xdp_mode,
        tc_hook: TcHook::Tcx,
        xdp_link_id: new_link(&before, xdp_prog),
        tc_link_id: 0,
        xdp_link: Some(xdp_link),
        tc_link: None,
    };
    if egress {
        let tc_prog = loaded.tc()?.info().ok().map(|i| i.id());
        let before = link_ids(tc_prog);
        match attach_tc(loaded, iface) {
            Ok((link, hook)) => {
                attachment.tc_link = Some(link);
                attachment.tc_hook = hook;
                attachment.tc_link_id = new_link(&before, tc_prog);
            }
            Err(e) => {
                detach_one(loaded, attachment);
                return Err(e);
            }
        }
    } else {
        attachment.tc_hook = TcHook::Off;
    }
    if let Err(e) = loaded
        .maps
        .claim_slot(iface.index, iface.link == Some(LinkType::Ip))
    {
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

/// Ids of the kernel's links to program `prog`.
fn link_ids(prog: Option<u32>) -> Vec<u32> {
    let Some(prog) = prog else {
        return Vec::new();
    };
    loaded_links()
        .filter_map(Result::ok)
        .filter(|l| l.program_id() == prog)
        .map(|l| l.id())
        .collect()
}

/// The link to `prog` that is not in `before` (0 when there is none: an
/// attachment through netlink, on old kernels).
fn new_link(before: &[u32], prog: Option<u32>) -> u32 {
    link_ids(prog)
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap_or(0)
}

/// Whether a link with this id still exists.
pub fn link_exists(id: u32) -> bool {
    id != 0 && loaded_links().filter_map(Result::ok).any(|l| l.id() == id)
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
            cause: Box::new(e),
        },
        _ => Error::XdpAttach {
            iface: iface.name.clone(),
            cause: Box::new(e),
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
        ModeArg::Auto if iface.link == Some(LinkType::Ip) => {
            info!(
                iface = %iface.name,
                "no link-layer header (tun, tunnel, PPP): using generic (skb) XDP (--mode native to override)"
            );
            xdp.attach_to_if_index(iface.index, XdpMode::Skb)
                .map(|l| (l, XdpModeInForce::Skb))
                .map_err(|e| classify(e, "skb"))
        }
        ModeArg::Auto
            if crate::host::iface::driver(&iface.name)
                .is_some_and(|d| crate::host::iface::PREFER_SKB.contains(&d.as_str())) =>
        {
            info!(
                iface = %iface.name,
                "virtual device (veth): using generic (skb) XDP, which keeps live traffic whole under a \
                 flood where native veth XDP drops it (--mode native to override)"
            );
            xdp.attach_to_if_index(iface.index, XdpMode::Skb)
                .map(|l| (l, XdpModeInForce::Skb))
                .map_err(|e| classify(e, "skb"))
        }
        ModeArg::Auto => match xdp.attach_to_if_index(iface.index, XdpMode::Driver) {
            Ok(l) => Ok((l, XdpModeInForce::Native)),
            Err(e) => match classify(e, "native") {
                Error::XdpModeUnsupported { cause, .. } => {
                    warn!(
                        iface = %iface.name,
                        reason = %cause,
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
        cause: e,
    };
    let tcx = crate::host::kernel::has_tcx();
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
