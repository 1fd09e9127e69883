//! nftables inside the lab's namespaces: a table that is removed on drop,
//! a firewall that rejects with a TCP reset, a NAT gateway that forgets
//! idle flows, a rule that keeps a host's RSTs from leaving.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use crate::netns::Netns;

/// An nftables table in a namespace, deleted on drop.
pub struct Table {
    ns: String,
    family: &'static str,
    name: &'static str,
}

impl Table {
    /// Creates `table FAMILY NAME { BODY }` in `ns` (one transaction).
    pub fn new(ns: &Netns, family: &'static str, name: &'static str, body: &str) -> Table {
        let ruleset = format!("table {family} {name} {{\n{body}\n}}\n");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "nft", "-f", "/dev/stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ruleset.as_bytes())
            .expect("writing the ruleset");
        let out = child.wait_with_output().expect("waiting for nft");
        assert!(
            out.status.success(),
            "nft refused {ruleset}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Table {
            ns: ns.name.clone(),
            family,
            name,
        }
    }

    /// The packets a named counter of this table has counted.
    pub fn counter(&self, counter: &str) -> u64 {
        let out = crate::sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "nft",
            "-j",
            "list",
            "counter",
            self.family,
            self.name,
            counter,
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("nft's JSON");
        v["nftables"]
            .as_array()
            .expect("a list")
            .iter()
            .find_map(|o| o["counter"]["packets"].as_u64())
            .unwrap_or_else(|| panic!("no counter {counter}: {out}"))
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft", "delete", "table"])
            .args([self.family, self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A firewall in `router` that answers every forwarded TCP segment to
/// `port` with `reject with tcp reset` (added mid-connection, it resets
/// live flows: the router answers in the server's name).
pub fn reject_port(router: &Netns, port: u16) -> Table {
    Table::new(
        router,
        "inet",
        "rgfirewall",
        &format!(
            "chain forward {{ type filter hook forward priority 0; \
             tcp dport {port} reject with tcp reset; }}"
        ),
    )
}

/// Keeps the TCP RSTs `host` sends from port `port` from leaving it
/// (dropped at its output hook, before the link, counted in `kept`): the
/// abort RST of a socket destroyed with `ss -K` never reaches its peer, so
/// the connection is left half-open.
pub fn keep_rsts_in(host: &Netns, port: u16) -> Table {
    Table::new(
        host,
        "inet",
        "rgkeeprst",
        &format!(
            "counter kept {{ }}\n\
             chain output {{ type filter hook output priority 0; \
             tcp sport {port} tcp flags & rst == rst counter name \"kept\" drop; }}"
        ),
    )
}

/// Makes `router` a NAT gateway for TCP to `ports`: it masquerades those
/// flows out of `out_dev` (the server sees the router's address), forgets
/// an established flow after `idle_secs` idle seconds (its conntrack
/// timeout, and the one for unacknowledged data), picks up nothing
/// mid-stream (`nf_conntrack_tcp_loose=0`), and answers a segment of a flow
/// it forgot (conntrack state invalid) with a TCP reset in the server's
/// name, as NAT gateways and stateful firewalls do.
pub fn nat_gateway(router: &Netns, out_dev: &str, ports: &[u16], idle_secs: u32) -> Table {
    let set = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let table = Table::new(
        router,
        "inet",
        "rgnat",
        &format!(
            "chain postrouting {{ type nat hook postrouting priority 100; \
             oifname \"{out_dev}\" tcp dport {{ {set} }} masquerade; }}\n\
             chain forward {{ type filter hook forward priority 0; \
             ct state invalid tcp dport {{ {set} }} reject with tcp reset; }}"
        ),
    );
    // Conntrack's settings are per namespace; they exist once it runs.
    for (key, value) in [
        ("nf_conntrack_tcp_timeout_established", idle_secs),
        ("nf_conntrack_tcp_timeout_unacknowledged", idle_secs),
        ("nf_conntrack_tcp_loose", 0),
    ] {
        router.exec(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.netfilter.{key}={value}"),
        ]);
    }
    table
}
