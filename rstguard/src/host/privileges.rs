//! Checking for the capabilities an operation needs, so that a missing one
//! is reported as such rather than as an EPERM from deep inside a syscall.

use caps::CapSet;

use crate::error::Error;

/// Linux capability numbers (include/uapi/linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    NetAdmin = 12,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Cap {
    pub fn name(self) -> &'static str {
        match self {
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }
}

/// The capabilities loading and attaching the programs needs.
pub const ATTACH: &[Cap] = &[Cap::Bpf, Cap::NetAdmin, Cap::Perfmon];

/// The effective capability set of this thread, as a mask (bit N for
/// capability N); empty when it cannot be read.
pub fn effective() -> u64 {
    caps::read(None, CapSet::Effective)
        .map(|set| set.iter().fold(0, |mask, c| mask | c.bitmask()))
        .unwrap_or(0)
}

/// Which of `caps` the effective set `eff` lacks. CAP_SYS_ADMIN stands in
/// for CAP_BPF and CAP_PERFMON, as in the kernel.
pub fn missing(caps: &[Cap], eff: u64) -> Vec<Cap> {
    let has = |c: Cap| eff & (1u64 << c as u32) != 0;
    let held = |c: Cap| has(c) || (matches!(c, Cap::Bpf | Cap::Perfmon) && has(Cap::SysAdmin));
    caps.iter().copied().filter(|&c| !held(c)).collect()
}

/// Fails with one line naming what is missing and how to get it.
/// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as in the kernel.
pub fn require(what: &'static str, caps: &[Cap]) -> Result<(), Error> {
    check(what, caps, effective())
}

fn check(what: &'static str, caps: &[Cap], eff: u64) -> Result<(), Error> {
    let missing = missing(caps, eff);
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Privileges {
        what,
        caps: missing
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", "),
        caps_setcap: missing
            .iter()
            .map(|c| c.name().to_lowercase())
            .collect::<Vec<_>>()
            .join(","),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing() {
        let only_net_admin = 1u64 << 12;
        let err = check("attach", ATTACH, only_net_admin)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CAP_BPF, CAP_PERFMON"), "{err}");
        assert!(err.contains("sudo"), "{err}");
        assert!(!err.contains("CAP_NET_ADMIN,"), "{err}");
        assert!(check("attach", ATTACH, u64::MAX).is_ok());
        // CAP_SYS_ADMIN covers CAP_BPF and CAP_PERFMON.
        assert!(check("attach", ATTACH, (1 << 21) | (1 << 12)).is_ok());
    }
}
