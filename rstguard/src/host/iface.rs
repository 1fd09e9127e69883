//! Network interfaces by name and index.

use crate::error::Error;

/// An interface rstguard works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// What its frames start with; `None`: a link type rstguard cannot
    /// parse (attaching to it is refused).
    pub link: Option<LinkType>,
    /// The kernel's `ARPHRD_*` device type, as `ip -d link` shows it.
    pub arphrd: u16,
}

/// What an interface's frames start with, as the XDP and TC programs see
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    /// An Ethernet header (Ethernet, veth, bridges, bonds, loopback).
    Ethernet,
    /// The IP header: no link-layer header (tun, WireGuard, IPIP/SIT and
    /// GRE tunnels, PPP, raw-IP modems).
    Ip,
}

impl LinkType {
    /// From the kernel's `ARPHRD_*` device type.
    pub fn from_arphrd(t: u16) -> Option<LinkType> {
        match t {
            ARPHRD_ETHER | ARPHRD_LOOPBACK => Some(LinkType::Ethernet),
            ARPHRD_NONE | ARPHRD_RAWIP | ARPHRD_PPP | ARPHRD_TUNNEL | ARPHRD_TUNNEL6
            | ARPHRD_SIT | ARPHRD_IPGRE | ARPHRD_IP6GRE => Some(LinkType::Ip),
            _ => None,
        }
    }
}

impl std::fmt::Display for LinkType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkType::Ethernet => "ethernet",
            LinkType::Ip => "ip (no link-layer header)",
        })
    }
}

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_PPP: u16 = 512;
const ARPHRD_RAWIP: u16 = 519;
const ARPHRD_TUNNEL: u16 = 768;
const ARPHRD_TUNNEL6: u16 = 769;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_SIT: u16 = 776;
const ARPHRD_IPGRE: u16 = 778;
const ARPHRD_IP6GRE: u16 = 823;
const ARPHRD_NONE: u16 = 0xfffe;

impl Iface {
    /// Looks an interface up by name.
    pub fn by_name(name: &str) -> Result<Iface, Error> {
        let index = index_of(name).ok_or_else(|| Error::NoSuchInterface(name.to_string()))?;
        let arphrd = device_type(name).unwrap_or(ARPHRD_ETHER);
        Ok(Iface {
            name: name.to_string(),
            index,
            link: LinkType::from_arphrd(arphrd),
            arphrd,
        })
    }

    /// Resolves the interfaces to attach to, refusing unknown ones,
    /// repeats, and link types the programs cannot parse.
    pub fn resolve_all(names: &[String]) -> Result<Vec<Iface>, Error> {
        let mut out: Vec<Iface> = Vec::with_capacity(names.len());
        for name in names {
            if out.iter().any(|i| &i.name == name) {
                return Err(Error::DuplicateInterface(name.clone()));
            }
            let iface = Iface::by_name(name)?;
            if iface.link.is_none() {
                return Err(Error::UnsupportedLink {
                    iface: iface.name,
                    arphrd: iface.arphrd,
                });
            }
            out.push(iface);
        }
        Ok(out)
    }

    /// Whether the interface still exists with the same index.
    pub fn still_exists(&self) -> bool {
        index_of(&self.name) == Some(self.index)
    }
}

/// The driver behind an interface (`veth`, `virtio_net`, `ixgbe`, ...), as
/// `ethtool -i` reports it.
pub fn driver(name: &str) -> Option<String> {
    // The request type differs: c_ulong in glibc, c_int in musl.
    const SIOCETHTOOL: libc::Ioctl = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut DrvInfo,
        _pad: [u8; 16],
    }
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut info,
        _pad: [0; 16],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a datagram socket for the ioctl, closed below; `req` and
    // `info` outlive the call and have the layout the kernel expects.
    let ok = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return None;
        }
        let r = libc::ioctl(fd, SIOCETHTOOL, &mut req as *mut IfReq);
        libc::close(fd);
        r == 0
    };
    if !ok {
        return None;
    }
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// The kernel's `ARPHRD_*` type of an interface (SIOCGIFHWADDR reports it
/// as the hardware address family), in the caller's network namespace.
pub fn device_type(name: &str) -> Option<u16> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: ifreq is plain old data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: a datagram socket for the ioctl, closed below; `req` outlives
    // the call and has the layout the kernel expects.
    let ok = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return None;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFHWADDR as _, &mut req as *mut libc::ifreq);
        libc::close(fd);
        r == 0
    };
    if !ok {
        return None;
    }
    // SAFETY: the kernel filled the hardware address member of the union.
    Some(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

/// Drivers whose native XDP is a poor choice: veth's hands every frame to a
/// 256-slot ring that another CPU drains, so under a flood the live traffic
/// is dropped with the flood (see BENCHMARKS.md); generic (skb) mode keeps
/// it whole, and costs less there.
pub const PREFER_SKB: &[&str] = &["veth"];

fn index_of(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name)
        .ok()
        .filter(|index| *index != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_driver_is_named() {
        // `lo` has no ethtool driver info; the call must fail cleanly.
        assert_eq!(driver("no-such-if0"), None);
        let _ = driver("lo");
    }

    #[test]
    fn link_types_follow_the_device_type() {
        assert_eq!(LinkType::from_arphrd(1), Some(LinkType::Ethernet));
        assert_eq!(
            LinkType::from_arphrd(0xfffe),
            Some(LinkType::Ip),
            "tun, WireGuard"
        );
        assert_eq!(LinkType::from_arphrd(778), Some(LinkType::Ip), "GRE");
        assert_eq!(
            LinkType::from_arphrd(801),
            None,
            "802.11 radiotap-less Wi-Fi"
        );
        assert_eq!(LinkType::from_arphrd(32), None, "InfiniBand");
        let lo = Iface::by_name("lo").expect("lo");
        assert_eq!((lo.arphrd, lo.link), (772, Some(LinkType::Ethernet)));
    }

    #[test]
    fn loopback_resolves_and_bad_names_do_not() {
        assert_eq!(Iface::by_name("lo").unwrap().index, 1);
        assert!(matches!(
            Iface::by_name("no-such-if0"),
            Err(Error::NoSuchInterface(_))
        ));
        assert!(matches!(
            Iface::resolve_all(&["lo".into(), "lo".into()]),
            Err(Error::DuplicateInterface(_))
        ));
    }
}
