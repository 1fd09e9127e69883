//! One module per subcommand.

pub mod attach;
pub mod check;
pub mod check_config;
pub mod detach;
pub mod flows;
pub mod policy;
pub mod resets;
pub mod stats;
pub mod status;
pub mod trust;

use rstguard_common::DaemonStatus;

/// The name of an interface: from the daemon's state, else the kernel's.
pub fn iface_name(state: Option<&DaemonStatus>, ifindex: u32) -> String {
    if let Some(s) = state {
        if let Some(i) = s
            .ifaces
            .iter()
            .find(|i| i.ifindex == ifindex && ifindex != 0)
        {
            return cstr(&i.name);
        }
    }
    match nix::net::if_::if_indextoname(ifindex) {
        Ok(name) => name.to_string_lossy().into_owned(),
        Err(_) => format!("if{ifindex}"),
    }
}

/// A NUL-padded byte array as a string.
pub fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Prints a value as one line of JSON.
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}
