//! Trusted source prefixes (`--trust PREFIX`): their RSTs always pass.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use rstguard_common::key::v4_mapped;

use crate::error::Error;

/// An IPv4 or IPv6 prefix. A bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix(IpNet);

impl Prefix {
    /// Prefix length in the trie, where IPv4 lives IPv4-mapped.
    pub fn lpm_len(&self) -> u32 {
        match self.0 {
            IpNet::V4(n) => 96 + n.prefix_len() as u32,
            IpNet::V6(n) => n.prefix_len() as u32,
        }
    }

    /// The (masked) network address as the trie stores it.
    pub fn lpm_data(&self) -> [u8; 16] {
        match self.0.trunc() {
            IpNet::V4(n) => v4_mapped(n.network().octets()),
            IpNet::V6(n) => n.network().octets(),
        }
    }

    /// Back from the trie's form.
    pub fn from_lpm(len: u32, data: [u8; 16]) -> Option<Prefix> {
        let v6 = std::net::Ipv6Addr::from(data);
        let net = match v6.to_ipv4_mapped() {
            Some(v4) if len >= 96 => IpNet::new(IpAddr::V4(v4), (len - 96) as u8).ok()?,
            _ => IpNet::new(IpAddr::V6(v6), len as u8).ok()?,
        };
        Some(Prefix(net))
    }
}

impl FromStr for Prefix {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| Error::BadPrefix {
            text: s.to_string(),
            reason: reason.to_string(),
        };
        if let Ok(net) = s.parse::<IpNet>() {
            if net.trunc() != net {
                return Err(bad(&format!(
                    "host bits are set; did you mean {}?",
                    net.trunc()
                )));
            }
            return Ok(Prefix(net));
        }
        match s.parse::<IpAddr>() {
            Ok(addr) => Ok(Prefix(IpNet::from(addr))),
            Err(_) => Err(bad(
                "expected an address or ADDRESS/LENGTH, like 192.0.2.0/24 or 2001:db8::/32",
            )),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_maps() {
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert_eq!(p.lpm_len(), 112);
        assert_eq!(p.lpm_data(), v4_mapped([10, 1, 0, 0]));
        assert_eq!(Prefix::from_lpm(112, p.lpm_data()), Some(p));

        let a: Prefix = "192.0.2.7".parse().unwrap();
        assert_eq!(a.lpm_len(), 128);

        let v6: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(v6.lpm_len(), 32);
        assert_eq!(Prefix::from_lpm(32, v6.lpm_data()), Some(v6));
    }

    #[test]
    fn rejects_garbage_and_host_bits() {
        for bad in ["", "10.0.0.0/33", "nope", "10.0.0.1/8", "2001:db8::1/32"] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad} parsed");
        }
    }
}
