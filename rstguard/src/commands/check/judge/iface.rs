//! `rstguard check`'s judgement of one interface: its link type, its
//! driver's native XDP, the mode asked for, and any XDP program already
//! attached.

use super::Item;
use crate::{config::ModeArg, host::iface::LinkType};

/// Whether a driver runs XDP itself (native, or driver, mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Native {
    Yes,
    No,
    Unknown,
}

/// Drivers (as `ethtool -i` names them) with native XDP in mainline Linux.
const NATIVE_XDP: &[&str] = &[
    "atlantic",
    "bnxt_en",
    "bonding",
    "ena",
    "gve",
    "hv_netvsc",
    "i40e",
    "ice",
    "igb",
    "igc",
    "ixgbe",
    "ixgbevf",
    "mana",
    "mlx4_en",
    "mlx5_core",
    "netdevsim",
    "nfp",
    "qede",
    "sfc",
    "tun",
    "veth",
    "vif",
    "virtio_net",
];

/// Drivers (and virtual devices) without native XDP: only generic (skb)
/// mode works there.
const NO_NATIVE_XDP: &[&str] = &[
    "8021q",
    "bridge",
    "dummy",
    "e1000",
    "e1000e",
    "geneve",
    "ifb",
    "ipvlan",
    "macvlan",
    "r8169",
    "vxlan",
    "wireguard",
];

pub fn native_xdp(driver: &str) -> Native {
    if NATIVE_XDP.contains(&driver) {
        Native::Yes
    } else if NO_NATIVE_XDP.contains(&driver) {
        Native::No
    } else {
        Native::Unknown
    }
}

/// An XDP program attached to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedXdp {
    pub id: u32,
    /// `native`, `skb`, `offload` or `multiple`.
    pub mode: &'static str,
    /// The program's name, when this process may read it.
    pub name: Option<String>,
}

/// What was found about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    /// Named by the operator (argument, config file): problems there are
    /// failures. Interfaces found by listing only warn.
    pub named: bool,
    pub exists: bool,
    pub mode: ModeArg,
    /// The ethtool driver, else the netlink link kind (`veth`, `dummy`).
    pub driver: Option<String>,
    pub xdp: Option<AttachedXdp>,
    /// The kernel's `ARPHRD_*` device type (None: unknown).
    pub arphrd: Option<u16>,
}

/// One interface: its driver, native XDP in the mode asked for, and any
/// XDP program already attached. `prog_xdp` is rstguard's program name;
/// `daemon_here`: an rstguard daemon holds this pin directory.
pub fn iface(f: &Iface, prog_xdp: &str, daemon_here: bool) -> Item {
    let item = format!("interface {}", f.name);
    let bad = |detail: String, action: String| {
        if f.named {
            Item::fail(&item, detail, action)
        } else {
            Item::warn(&item, detail, action)
        }
    };
    if !f.exists {
        return bad(
            "no such interface".into(),
            "list them with `ip link`".into(),
        );
    }
    let link = f.arphrd.map(|t| (t, LinkType::from_arphrd(t)));
    if let Some((t, None)) = link {
        return bad(
            format!("link type {t} (ARPHRD_*): rstguard cannot parse its frames"),
            format!(
                "leave {} out: rstguard supports Ethernet devices and devices without a \
                 link-layer header (tun, WireGuard, IP tunnels, PPP)",
                f.name
            ),
        );
    }
    let l3 = matches!(link, Some((_, Some(LinkType::Ip))));
    let driver = f.driver.as_deref().unwrap_or("unknown");
    let native = f.driver.as_deref().map_or(Native::Unknown, native_xdp);
    let mut detail = match link {
        Some((_, Some(l))) => format!("link {l}, driver {driver}"),
        _ => format!("driver {driver}"),
    };
    detail.push_str(match native {
        Native::Yes => ", native XDP supported",
        Native::No => ", no native XDP",
        Native::Unknown => ", native XDP unknown",
    });
    if let Some(x) = &f.xdp {
        let name = x.name.as_deref().unwrap_or("name not readable");
        let ours = x.name.as_deref() == Some(prog_xdp);
        if ours && daemon_here {
            detail.push_str(&format!(
                "; rstguard's XDP program is attached (id {}, {} mode): the running daemon's",
                x.id, x.mode
            ));
            return Item::ok(item, detail);
        }
        detail.push_str(&format!(
            "; another XDP program is attached (id {}, {name}, {} mode)",
            x.id, x.mode
        ));
        return bad(
            detail,
            format!(
                "rstguard will not replace it: detach it (`ip link set dev {0} xdp off`) \
                 or leave {0} out",
                f.name
            ),
        );
    }
    detail.push_str("; no XDP program attached");
    let veth_skb = f
        .driver
        .as_deref()
        .is_some_and(|d| crate::host::iface::PREFER_SKB.contains(&d));
    match (f.mode, native) {
        (ModeArg::Skb, _) => {
            detail.push_str("; --mode skb: generic XDP");
            Item::ok(item, detail)
        }
        (ModeArg::Auto, _) if veth_skb => {
            detail.push_str("; --mode auto uses skb here (see BENCHMARKS.md)");
            Item::ok(item, detail)
        }
        (ModeArg::Auto, _) if l3 => {
            detail.push_str("; --mode auto uses skb here (no link-layer header)");
            Item::ok(item, detail)
        }
        (ModeArg::Native | ModeArg::Auto, Native::Yes) => Item::ok(item, detail),
        (ModeArg::Native, Native::No) => bad(
            format!("{detail}; --mode native cannot attach"),
            "use --mode auto or skb (generic XDP, which every interface has)".into(),
        ),
        (ModeArg::Native, Native::Unknown) => Item::warn(
            item,
            format!("{detail}; --mode native fails if the driver lacks it"),
            "use --mode auto to fall back to skb where it does",
        ),
        (ModeArg::Auto, Native::No) => Item::warn(
            item,
            format!("{detail}; --mode auto will use generic (skb) XDP"),
            "skb mode runs later and costs more per packet; for line rate, a NIC whose \
             driver has native XDP",
        ),
        (ModeArg::Auto, Native::Unknown) => Item::warn(
            item,
            format!("{detail}; --mode auto tries native, else falls back to skb"),
            "the daemon's log says which mode is in force (`rstguard status` too)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{super::Status, *};

    fn veth(mode: ModeArg) -> Iface {
        Iface {
            name: "s0".into(),
            named: true,
            exists: true,
            mode,
            driver: Some("veth".into()),
            xdp: None,
            arphrd: Some(1),
        }
    }

    #[test]
    fn link_types_rstguard_cannot_parse_fail() {
        let wifi_monitor = Iface {
            arphrd: Some(803),
            ..veth(ModeArg::Auto)
        };
        let i = iface(&wifi_monitor, "rstguard_xdp", false);
        assert_eq!(i.status, Status::Fail, "{i:?}");
        assert!(i.detail.contains("link type 803"), "{i:?}");
        let tun = Iface {
            arphrd: Some(0xfffe),
            driver: Some("tun".into()),
            ..veth(ModeArg::Auto)
        };
        let i = iface(&tun, "rstguard_xdp", false);
        assert_eq!(i.status, Status::Ok, "{i:?}");
        assert!(i.detail.contains("link ip (no link-layer header)"), "{i:?}");
        assert!(i.detail.contains("uses skb"), "{i:?}");
    }

    #[test]
    fn interfaces_by_driver_and_mode() {
        let with = |driver: Option<&str>, mode, named| Iface {
            driver: driver.map(Into::into),
            named,
            ..veth(mode)
        };
        let cases = [
            // (driver, mode, named, status, words)
            (
                Some("veth"),
                ModeArg::Auto,
                true,
                Status::Ok,
                "uses skb here",
            ),
            (
                Some("veth"),
                ModeArg::Native,
                true,
                Status::Ok,
                "native XDP supported",
            ),
            (
                Some("virtio_net"),
                ModeArg::Auto,
                true,
                Status::Ok,
                "native XDP supported",
            ),
            (Some("dummy"), ModeArg::Skb, true, Status::Ok, "generic XDP"),
            (
                Some("dummy"),
                ModeArg::Auto,
                true,
                Status::Warn,
                "will use generic (skb)",
            ),
            (
                Some("dummy"),
                ModeArg::Native,
                true,
                Status::Fail,
                "cannot attach",
            ),
            (
                Some("dummy"),
                ModeArg::Native,
                false,
                Status::Warn,
                "cannot attach",
            ),
            (
                Some("weird9"),
                ModeArg::Auto,
                true,
                Status::Warn,
                "native XDP unknown",
            ),
            (
                Some("weird9"),
                ModeArg::Native,
                true,
                Status::Warn,
                "fails if",
            ),
            (None, ModeArg::Auto, true, Status::Warn, "driver unknown"),
        ];
        for (driver, mode, named, status, words) in cases {
            let item = iface(&with(driver, mode, named), "rstguard_xdp", false);
            assert_eq!(item.status, status, "{driver:?} {mode:?}: {item:?}");
            assert!(item.detail.contains(words), "{words:?}: {item:?}");
        }
    }

    #[test]
    fn an_attached_program_fails_unless_it_is_the_running_daemons() {
        let attached = |name: Option<&str>| Iface {
            xdp: Some(AttachedXdp {
                id: 42,
                mode: "skb",
                name: name.map(Into::into),
            }),
            ..veth(ModeArg::Auto)
        };
        let other = iface(&attached(Some("xdp_fw")), "rstguard_xdp", true);
        assert_eq!(other.status, Status::Fail);
        assert!(
            other.detail.contains("id 42, xdp_fw, skb mode"),
            "{other:?}"
        );
        assert!(other.action.unwrap().contains("ip link set dev s0 xdp off"));
        // rstguard's program, but no daemon holds this pin directory: an
        // instance with other pins, and attaching would be refused.
        assert_eq!(
            iface(&attached(Some("rstguard_xdp")), "rstguard_xdp", false).status,
            Status::Fail
        );
        assert_eq!(
            iface(&attached(Some("rstguard_xdp")), "rstguard_xdp", true).status,
            Status::Ok
        );
        assert_eq!(
            iface(&attached(None), "rstguard_xdp", true).status,
            Status::Fail
        );
        // Found by listing, not named: a warning.
        let listed = Iface {
            named: false,
            ..attached(Some("xdp_fw"))
        };
        assert_eq!(iface(&listed, "rstguard_xdp", false).status, Status::Warn);
        let gone = Iface {
            exists: false,
            ..veth(ModeArg::Auto)
        };
        assert_eq!(iface(&gone, "rstguard_xdp", false).status, Status::Fail);
    }
}
