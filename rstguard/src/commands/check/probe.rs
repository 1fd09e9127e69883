//! What `rstguard check` looks at on this machine: the kernel, its BTF and
//! lockdown mode, this process's capabilities, the BPF filesystem, and the
//! interfaces (through rtnetlink: their XDP attachments; through ethtool:
//! their drivers). Judging what is found is `judge`'s business.

use std::{fs, path::Path};

use aya::programs::loaded_programs;
use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::link::{
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkXdp, XdpAttached,
};

use super::judge::{AttachedXdp, Bpffs};
use crate::{
    host::paths::{self, PinDir, BPFFS},
    host::privileges::{self, Cap},
    maps::Maps,
};

pub fn kernel() -> Result<aya::util::KernelVersion, String> {
    aya::util::KernelVersion::current().map_err(|e| e.to_string())
}

/// Kernel BTF, and whether every field socket mode reads resolves in it.
pub fn btf() -> Result<(), crate::btf::BtfError> {
    crate::btf::sock_fields_from(Path::new(crate::btf::VMLINUX)).map(|_| ())
}

pub fn lockdown() -> Result<String, String> {
    const PATH: &str = "/sys/kernel/security/lockdown";
    fs::read_to_string(PATH).map_err(|e| {
        if Path::new("/sys/kernel/security")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_none())
        {
            "securityfs is not mounted at /sys/kernel/security".to_string()
        } else {
            format!("{PATH}: {e}")
        }
    })
}

pub fn bpffs(pins: &PinDir, effective: u64) -> Bpffs {
    Bpffs {
        pin_root: pins.root().display().to_string(),
        on_bpffs: paths::on_bpffs(pins.root()),
        under_default: pins.root().starts_with(BPFFS) && Path::new(BPFFS).is_dir(),
        can_mount: effective & (1 << Cap::SysAdmin as u32) != 0,
    }
}

pub fn effective_caps() -> u64 {
    privileges::effective()
}

/// The pid of the daemon holding the pin directory (0 when it published
/// none), or None when no daemon holds it.
pub fn daemon(pins: &PinDir) -> Option<u32> {
    if !pins.is_locked() {
        return None;
    }
    Some(
        Maps::open(pins)
            .ok()
            .and_then(|m| m.state().ok())
            .map_or(0, |s| s.pid),
    )
}

/// One link as rtnetlink describes it.
#[derive(Clone, Debug)]
pub struct Link {
    pub name: String,
    pub loopback: bool,
    /// The link kind (`veth`, `dummy`, `bridge`, ...) for virtual devices.
    pub kind: Option<String>,
    pub xdp: Option<AttachedXdp>,
}

/// Every link in this network namespace.
pub fn links() -> anyhow::Result<Vec<Link>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let messages: Vec<LinkMessage> = rt.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        let links = handle.link().get().execute().try_collect().await?;
        anyhow::Ok(links)
    })?;
    Ok(messages.iter().map(link).collect())
}

fn link(m: &LinkMessage) -> Link {
    let mut out = Link {
        name: String::new(),
        loopback: m.header.flags.contains(LinkFlags::Loopback),
        kind: None,
        xdp: None,
    };
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => out.name = n.clone(),
            LinkAttribute::LinkInfo(infos) => {
                out.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                });
            }
            LinkAttribute::Xdp(xdp) => out.xdp = attached(xdp),
            _ => {}
        }
    }
    out
}

/// The program in an IFLA_XDP attribute, if one is attached.
fn attached(xdp: &[LinkXdp]) -> Option<AttachedXdp> {
    let mode = xdp.iter().find_map(|x| match x {
        LinkXdp::Attached(a) => Some(a),
        _ => None,
    })?;
    let mode = match mode {
        XdpAttached::None => return None,
        XdpAttached::Driver => "native",
        XdpAttached::SocketBuffer => "skb",
        XdpAttached::Hardware => "offload",
        XdpAttached::Multiple => "multiple",
        _ => "unknown",
    };
    let id = xdp
        .iter()
        .find_map(|x| match x {
            LinkXdp::ProgId(id) | LinkXdp::DrvProgId(id) | LinkXdp::SkbProgId(id) => Some(*id),
            _ => None,
        })
        .unwrap_or(0);
    Some(AttachedXdp {
        id,
        mode,
        name: program_name(id),
    })
}

/// A loaded program's name by id (needs CAP_SYS_ADMIN to list programs).
fn program_name(id: u32) -> Option<String> {
    loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_string))
}
