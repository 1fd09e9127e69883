//! What `rstguard check` concludes from what it found: pure functions of
//! the facts (see `probe`), so that every decision is tested without the
//! machine it describes.

use aya::util::KernelVersion;
use serde::Serialize;

mod iface;

pub use self::iface::{iface, AttachedXdp, Iface};
use crate::host::privileges::{self, Cap};

/// One line's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One checked item: what was found and, unless it is OK, what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub item: String,
    pub status: Status,
    pub detail: String,
    pub action: Option<String>,
}

impl Item {
    fn ok(item: impl Into<String>, detail: impl Into<String>) -> Item {
        Item {
            item: item.into(),
            status: Status::Ok,
            detail: detail.into(),
            action: None,
        }
    }

    fn warn(item: impl Into<String>, detail: impl Into<String>, action: impl Into<String>) -> Item {
        Item {
            item: item.into(),
            status: Status::Warn,
            detail: detail.into(),
            action: Some(action.into()),
        }
    }

    fn fail(item: impl Into<String>, detail: impl Into<String>, action: impl Into<String>) -> Item {
        Item {
            item: item.into(),
            status: Status::Fail,
            detail: detail.into(),
            action: Some(action.into()),
        }
    }

    /// `OK   item: detail`, or `FAIL item: detail — what to do`.
    pub fn line(&self) -> String {
        let mut s = format!("{:<4} {}: {}", self.status.label(), self.item, self.detail);
        if let Some(a) = &self.action {
            s.push_str(" — ");
            s.push_str(a);
        }
        s
    }
}

const fn kv(major: u8, minor: u8) -> KernelVersion {
    KernelVersion::new(major, minor, 0)
}

/// The running kernel against the oldest one rstguard runs on, and what
/// its version enables.
pub fn kernel(found: Result<KernelVersion, String>, min: KernelVersion) -> Item {
    let v = match found {
        Ok(v) => v,
        Err(e) => {
            return Item::warn(
                "kernel",
                format!("cannot read the kernel version ({e})"),
                format!("rstguard needs Linux {min} or later; check `uname -r`"),
            )
        }
    };
    let mut enabled = Vec::new();
    enabled.push(if v >= kv(5, 8) {
        "CAP_BPF and CAP_PERFMON (5.8+)"
    } else {
        "no CAP_BPF (before 5.8: loading needs CAP_SYS_ADMIN)"
    });
    enabled.push(if v >= kv(5, 8) {
        "ring buffer (5.8+)"
    } else {
        "no BPF ring buffer (5.8)"
    });
    enabled.push(if v >= kv(5, 9) {
        "XDP links (5.9+: a dead daemon's programs detach)"
    } else {
        "no XDP links (5.9): XDP outlives a crashed daemon"
    });
    enabled.push(if v >= kv(6, 6) {
        "TCX egress (6.6+)"
    } else {
        "egress through a clsact qdisc (TCX needs 6.6)"
    });
    let detail = format!("Linux {v}: {}", enabled.join(", "));
    if v < min {
        Item::fail(
            "kernel",
            format!("{detail}; rstguard needs {min} or later"),
            format!("upgrade the kernel to {min} or later"),
        )
    } else {
        Item::ok("kernel", detail)
    }
}

/// Kernel BTF, which socket mode (`--state socket`, and `auto` for this
/// host's own addresses) reads its field offsets from; tracking needs none.
pub fn btf(resolved: Result<(), crate::btf::BtfError>) -> Item {
    use crate::btf::{BtfError, VMLINUX};
    match resolved {
        Ok(()) => Item::ok(
            "btf",
            format!("kernel BTF at {VMLINUX}: every socket field socket mode reads resolves"),
        ),
        Err(BtfError::Missing) => Item::warn(
            "btf",
            format!("no kernel BTF at {VMLINUX} (a kernel built without CONFIG_DEBUG_INFO_BTF)"),
            "tracking works without it, but not socket mode: --state auto tracks everything \
             here, --state socket fails; a kernel built with CONFIG_DEBUG_INFO_BTF=y has it",
        ),
        Err(e) => Item::warn(
            "btf",
            format!("kernel BTF at {VMLINUX}, but {e}"),
            "socket mode cannot read this kernel's sockets: --state auto tracks everything \
             here, --state socket fails",
        ),
    }
}

/// The capabilities loading and attaching need, in the effective set
/// `effective` (a bit mask, bit N for capability N).
pub fn capabilities(effective: u64) -> Item {
    let missing = privileges::missing(privileges::ATTACH, effective);
    let names = |caps: &[Cap]| caps.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ");
    if missing.is_empty() {
        let held = privileges::ATTACH;
        let via_sys_admin = effective & (1 << Cap::SysAdmin as u32) != 0
            && held.iter().any(|&c| effective & (1 << c as u32) == 0);
        let mut detail = format!("{} in the effective set", names(held));
        if via_sys_admin {
            detail.push_str(" (CAP_SYS_ADMIN standing in for CAP_BPF/CAP_PERFMON)");
        }
        return Item::ok("capabilities", detail);
    }
    Item::fail(
        "capabilities",
        format!("missing {}", names(&missing)),
        "run as root, or grant exactly CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN \
         (the systemd unit's AmbientCapabilities=, the DaemonSet's capabilities.add)",
    )
}

/// What was found about the BPF filesystem under the pin root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bpffs {
    pub pin_root: String,
    /// The pin root (or its nearest existing ancestor) is on a BPF filesystem.
    pub on_bpffs: bool,
    /// The pin root is under /sys/fs/bpf, where the daemon mounts one if
    /// none is there.
    pub under_default: bool,
    /// CAP_SYS_ADMIN, which mounting needs.
    pub can_mount: bool,
}

pub fn bpffs(f: &Bpffs) -> Item {
    let root = &f.pin_root;
    if f.on_bpffs {
        return Item::ok("bpffs", format!("{root} is on a BPF filesystem"));
    }
    if !f.under_default {
        return Item::fail(
            "bpffs",
            format!("{root} is not on a BPF filesystem"),
            "mount one (`mount -t bpf bpf DIR`) and point --pin-dir below it",
        );
    }
    let mount = "mount it (`mount -t bpf bpf /sys/fs/bpf`; systemd does at boot; \
                 a container mounts the host's /sys/fs/bpf)";
    if f.can_mount {
        Item::warn(
            "bpffs",
            "no BPF filesystem at /sys/fs/bpf; the daemon will mount one (it has CAP_SYS_ADMIN)",
            format!("{mount}: the systemd unit and the DaemonSet grant no CAP_SYS_ADMIN"),
        )
    } else {
        Item::fail(
            "bpffs",
            "no BPF filesystem at /sys/fs/bpf, and no CAP_SYS_ADMIN to mount one",
            mount,
        )
    }
}

/// A daemon holding the pin directory (its pid, when it published one).
pub fn daemon(pin_dir: &str, holder: Option<u32>) -> Item {
    match holder {
        None => Item::ok("daemon", format!("no rstguard daemon holds {pin_dir}")),
        Some(pid) => Item::warn(
            "daemon",
            format!(
                "rstguard already runs here ({}holding {pin_dir}): a second daemon with this \
                 pin directory is refused",
                if pid == 0 {
                    String::new()
                } else {
                    format!("pid {pid}, ")
                }
            ),
            "see it with `rstguard status`; to start another, stop this one \
             (`rstguard detach --all`) or give the new one its own --pin-dir",
        ),
    }
}

/// The kernel lockdown mode, from /sys/kernel/security/lockdown
/// (`none [integrity] confidentiality`), or why it could not be read.
pub fn lockdown(file: Result<String, String>) -> Item {
    let text = match file {
        Ok(t) => t,
        Err(why) => {
            return Item::ok(
                "lockdown",
                format!("mode not readable ({why}); no lockdown mode stops rstguard's programs"),
            )
        }
    };
    let mode = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("unknown");
    let detail = match mode {
        "none" => "none".to_string(),
        "integrity" => {
            "integrity: BPF may not write user memory; rstguard's programs do not".to_string()
        }
        "confidentiality" => "confidentiality: BPF may not read kernel memory; rstguard's XDP \
                              and TC programs do not (they read packets and their own maps)"
            .to_string(),
        other => format!("{other} (unrecognised: {})", text.trim()),
    };
    Item::ok("lockdown", detail)
}

/// The worst status among the items (OK when there are none).
pub fn overall(items: &[Item]) -> Status {
    items.iter().map(|i| i.status).max().unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: KernelVersion = kv(5, 18);

    #[test]
    fn kernel_versions_enable_what_they_should() {
        let cases: &[(KernelVersion, Status, &[&str])] = &[
            (
                KernelVersion::new(6, 18, 44),
                Status::Ok,
                &["Linux 6.18.44", "TCX egress", "XDP links", "ring buffer"],
            ),
            (kv(6, 6), Status::Ok, &["TCX egress (6.6+)"]),
            (
                KernelVersion::new(6, 5, 13),
                Status::Ok,
                &["clsact qdisc (TCX needs 6.6)"],
            ),
            (kv(5, 18), Status::Ok, &["XDP links (5.9+"]),
            (
                KernelVersion::new(5, 15, 120),
                Status::Fail,
                &["needs 5.18.0 or later", "clsact"],
            ),
            (
                kv(5, 8),
                Status::Fail,
                &["no XDP links", "ring buffer (5.8+)"],
            ),
            (
                KernelVersion::new(5, 4, 0),
                Status::Fail,
                &["no CAP_BPF", "no BPF ring buffer"],
            ),
        ];
        for (v, status, words) in cases {
            let item = kernel(Ok(*v), MIN);
            assert_eq!(item.status, *status, "{v}: {item:?}");
            for w in *words {
                assert!(item.detail.contains(w), "{v}: {w:?} not in {}", item.detail);
            }
            assert_eq!(item.action.is_some(), *status != Status::Ok);
        }
        // The floor is a parameter: 5.15 passes a 5.10 floor.
        assert_eq!(
            kernel(Ok(KernelVersion::new(5, 15, 0)), kv(5, 10)).status,
            Status::Ok
        );
        assert_eq!(kernel(Err("x".into()), MIN).status, Status::Warn);
    }

    #[test]
    fn capabilities_name_what_is_missing() {
        let bit = |c: Cap| 1u64 << c as u32;
        let all = bit(Cap::Bpf) | bit(Cap::Perfmon) | bit(Cap::NetAdmin);
        assert_eq!(capabilities(all).status, Status::Ok);
        assert_eq!(capabilities(u64::MAX).status, Status::Ok);
        let sys_admin = capabilities(bit(Cap::SysAdmin) | bit(Cap::NetAdmin));
        assert_eq!(sys_admin.status, Status::Ok);
        assert!(sys_admin.detail.contains("standing in"), "{sys_admin:?}");
        let none = capabilities(0);
        assert_eq!(none.status, Status::Fail);
        assert!(
            none.detail
                .contains("missing CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"),
            "{none:?}"
        );
        let no_perfmon = capabilities(bit(Cap::Bpf) | bit(Cap::NetAdmin));
        assert_eq!(no_perfmon.detail, "missing CAP_PERFMON");
    }

    #[test]
    fn bpffs_cases() {
        let f = |on, under, mount| Bpffs {
            pin_root: "/sys/fs/bpf/rstguard".into(),
            on_bpffs: on,
            under_default: under,
            can_mount: mount,
        };
        assert_eq!(bpffs(&f(true, true, false)).status, Status::Ok);
        assert_eq!(bpffs(&f(false, true, true)).status, Status::Warn);
        let no = bpffs(&f(false, true, false));
        assert_eq!(no.status, Status::Fail);
        assert!(no.action.unwrap().contains("mount -t bpf bpf /sys/fs/bpf"));
        let elsewhere = bpffs(&f(false, false, true));
        assert_eq!(elsewhere.status, Status::Fail);
        assert!(elsewhere.action.unwrap().contains("--pin-dir"));
    }

    #[test]
    fn lockdown_modes_are_read_from_the_brackets() {
        let mode = |t: &str| lockdown(Ok(t.into())).detail;
        assert_eq!(mode("[none] integrity confidentiality\n"), "none");
        assert!(mode("none [integrity] confidentiality").starts_with("integrity:"));
        assert!(mode("none integrity [confidentiality]").starts_with("confidentiality:"));
        assert!(mode("garbage").starts_with("unknown"));
        assert_eq!(lockdown(Err("no file".into())).status, Status::Ok);
    }

    #[test]
    fn lines_and_the_overall_status() {
        let ok = Item::ok("btf", "present");
        assert_eq!(ok.line(), "OK   btf: present");
        let fail = capabilities(0);
        assert!(
            fail.line().starts_with("FAIL capabilities: missing")
                && fail.line().contains(" — run as root"),
            "{}",
            fail.line()
        );
        assert_eq!(overall(&[]), Status::Ok);
        assert_eq!(
            overall(&[ok.clone(), btf(Err(crate::btf::BtfError::Missing))]),
            Status::Warn
        );
        assert_eq!(
            overall(&[ok, fail, btf(Err(crate::btf::BtfError::Missing))]),
            Status::Fail
        );
    }
}
