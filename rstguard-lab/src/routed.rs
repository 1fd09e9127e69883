//! The routed lab: a client and a server on either side of a router, an
//! attacker beside the router, and (on demand) a legacy peer behind it.
//!
//! ```text
//!  client c0 ---- r0 router r1 ---- s0 server
//!                    r2  r3
//!                    |    \---- l0 legacy (kernel forwarding) tap0 ---- smoltcp
//!  attacker a0 ------/
//! ```
//!
//! IPv4 10.201.N.0/24 and IPv6 fd01:N::/64 per link; the router forwards
//! both, with reverse-path filtering off (the attacker's packets carry other
//! hosts' source addresses, as blind spoofing does).

use std::net::{IpAddr, SocketAddr};

use smoltcp::wire::Ipv4Address;

use crate::{legacy::LegacyPeer, netns::Netns, require_root};

/// One host's addresses.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub v4: &'static str,
    pub v6: &'static str,
}

impl Host {
    pub fn ip(&self, v6: bool) -> IpAddr {
        (if v6 { self.v6 } else { self.v4 }).parse().unwrap()
    }

    pub fn addr(&self, v6: bool, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(v6), port)
    }
}

pub const CLIENT: Host = Host {
    v4: "10.201.1.2",
    v6: "fd01:1::2",
};
pub const SERVER: Host = Host {
    v4: "10.201.2.2",
    v6: "fd01:2::2",
};
pub const ATTACKER: Host = Host {
    v4: "10.201.3.2",
    v6: "fd01:3::2",
};
/// The legacy (smoltcp) peer; IPv4 only.
pub const LEGACY: &str = "10.201.5.2";

/// The router's interfaces: to the client, the server, the attacker, the
/// legacy link.
pub const ROUTER_IFACES: [&str; 3] = ["r0", "r1", "r2"];

pub struct Routed {
    pub client: Netns,
    pub router: Netns,
    pub server: Netns,
    pub attacker: Netns,
    pub legacy: Option<Netns>,
}

fn link(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    a.ip(&[
        "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", &b.name,
    ]);
    a.ip(&["link", "set", a_dev, "up"]);
    b.ip(&["link", "set", b_dev, "up"]);
}

fn addr(ns: &Netns, dev: &str, v4: &str, v6: &str) {
    ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{v6}/64"),
        "dev",
        dev,
        "nodad",
    ]);
}

fn default_via(ns: &Netns, v4: &str, v6: &str) {
    ns.ip(&["route", "add", "default", "via", v4]);
    ns.ip(&["-6", "route", "add", "default", "via", v6]);
}

fn sysctl(ns: &Netns, key: &str, value: &str) {
    ns.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
}

impl Routed {
    #[expect(
        clippy::new_without_default,
        reason = "creates network namespaces: nothing a default value should do"
    )]
    pub fn new() -> Routed {
        require_root();
        let client = Netns::new("cli");
        let router = Netns::new("rtr");
        let server = Netns::new("srv");
        let attacker = Netns::new("atk");
        link(&client, "c0", &router, "r0");
        link(&router, "r1", &server, "s0");
        link(&router, "r2", &attacker, "a0");
        addr(&client, "c0", CLIENT.v4, CLIENT.v6);
        addr(&server, "s0", SERVER.v4, SERVER.v6);
        addr(&attacker, "a0", ATTACKER.v4, ATTACKER.v6);
        addr(&router, "r0", "10.201.1.1", "fd01:1::1");
        addr(&router, "r1", "10.201.2.1", "fd01:2::1");
        addr(&router, "r2", "10.201.3.1", "fd01:3::1");
        default_via(&client, "10.201.1.1", "fd01:1::1");
        default_via(&server, "10.201.2.1", "fd01:2::1");
        default_via(&attacker, "10.201.3.1", "fd01:3::1");
        sysctl(&router, "net.ipv4.ip_forward", "1");
        sysctl(&router, "net.ipv6.conf.all.forwarding", "1");
        for dev in ["all", "default", "r0", "r1", "r2"] {
            sysctl(&router, &format!("net.ipv4.conf.{dev}.rp_filter"), "0");
        }
        Routed {
            client,
            router,
            server,
            attacker,
            legacy: None,
        }
    }

    /// Asymmetric routing: the client reaches the server over a direct
    /// link (c1 - s1, 10.201.9.0/24, fd01:9::/64) that bypasses the router,
    /// while the server's segments to the client still go through it. The
    /// router then sees one direction of every client-server flow only.
    pub fn bypass_client_to_server(&self) {
        link(&self.client, "c1", &self.server, "s1");
        addr(&self.client, "c1", "10.201.9.1", "fd01:9::1");
        addr(&self.server, "s1", "10.201.9.2", "fd01:9::2");
        // The client keeps its own address as the source, so that the
        // server's answers go back through the router.
        self.client.ip(&[
            "route",
            "add",
            &format!("{}/32", SERVER.v4),
            "via",
            "10.201.9.2",
            "src",
            CLIENT.v4,
        ]);
        self.client.ip(&[
            "-6",
            "route",
            "add",
            &format!("{}/128", SERVER.v6),
            "via",
            "fd01:9::2",
            "src",
            CLIENT.v6,
        ]);
        // Each end receives on one link what it sends on the other.
        for (ns, devs) in [(&self.client, ["c0", "c1"]), (&self.server, ["s0", "s1"])] {
            for dev in ["all", "default", devs[0], devs[1]] {
                sysctl(ns, &format!("net.ipv4.conf.{dev}.rp_filter"), "0");
            }
        }
    }

    /// Adds the legacy namespace behind the router and starts the smoltcp
    /// peer there, listening on `port`.
    pub fn with_legacy(&mut self, port: u16) -> LegacyPeer {
        let legacy = Netns::new("leg");
        link(&self.router, "r3", &legacy, "l0");
        self.router
            .ip(&["addr", "add", "10.201.4.1/24", "dev", "r3"]);
        legacy.ip(&["addr", "add", "10.201.4.2/24", "dev", "l0"]);
        legacy.ip(&["route", "add", "default", "via", "10.201.4.1"]);
        self.router
            .ip(&["route", "add", "10.201.5.0/24", "via", "10.201.4.2"]);
        sysctl(&legacy, "net.ipv4.ip_forward", "1");
        for dev in ["all", "default", "l0"] {
            sysctl(&legacy, &format!("net.ipv4.conf.{dev}.rp_filter"), "0");
        }
        sysctl(&self.router, "net.ipv4.conf.r3.rp_filter", "0");
        let peer = LegacyPeer::start(
            &legacy.name,
            "tap0",
            LEGACY.parse().unwrap(),
            Ipv4Address::new(10, 201, 5, 1),
            port,
        );
        legacy.ip(&["addr", "add", "10.201.5.1/24", "dev", "tap0"]);
        legacy.ip(&["link", "set", "tap0", "up"]);
        self.legacy = Some(legacy);
        peer
    }
}
