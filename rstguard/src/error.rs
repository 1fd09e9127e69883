//! Errors of the library modules. Each says what went wrong and, where the
//! operator can do something, what to do.
//!
//! A variant that prints its cause in its own message (`: {cause}`) does not
//! also report it as its `source()`: under `{e:#}` (anyhow's chain) each
//! cause is then printed once.

use std::io;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "this rstguard binary was built without its eBPF object (AYA_BUILD_SKIP was set): \
         rebuild with `cargo xtask build`"
    )]
    NoObject,

    #[error(
        "this is Linux {found}, older than {floor}, the oldest kernel rstguard runs on: \
         run it on Linux {floor} or later"
    )]
    OldKernel { found: String, floor: &'static str },

    #[error("this binary's eBPF object is not a valid ELF file ({0}): rebuild it with `cargo xtask build`")]
    BadObject(String),

    #[error(
        "the kernel's verifier rejected program {program} on Linux {kernel} ({reason}): \
         this rstguard build cannot run on this kernel; try the newest rstguard, and if that \
         fails too, report it with the full verifier log, {log}"
    )]
    Verifier {
        program: &'static str,
        kernel: String,
        reason: String,
        /// Where the full log was written, or why it could not be.
        log: String,
    },

    #[error("--flows and --new-flows must be at least 1")]
    BadFlows,

    #[error("--state socket cannot run here: {0} (--state auto falls back to tracking)")]
    SocketMode(String),

    #[error("cannot list this host's addresses: {0}")]
    LocalAddrs(io::Error),

    #[error("loading the eBPF object failed: {0}")]
    Load(Box<aya::EbpfError>),

    #[error("the eBPF object has no program '{0}': is this binary's object from another version?")]
    MissingProgram(&'static str),

    #[error("the eBPF object has no map '{0}': is this binary's object from another version?")]
    MissingMap(&'static str),

    #[error("program {name}: {cause}")]
    Program {
        name: &'static str,
        cause: Box<aya::programs::ProgramError>,
    },

    #[error("map {name}: {cause}")]
    Map {
        name: &'static str,
        cause: Box<aya::maps::MapError>,
    },

    #[error("cannot count the possible CPUs: {0}")]
    Cpus(io::Error),

    #[error(
        "interface index {0} is above 65535, the most rstguard's per-interface tables hold; \
         recreate the interface (its index drops) or protect it from a router"
    )]
    IfindexTooLarge(u32),

    #[error("every interface slot is taken (at most 16 interfaces)")]
    TooManyInterfaces,

    #[error("interface index {0} has no slot: it is not attached")]
    NoSlot(u32),

    #[error("no interface named '{0}' (list them with `ip link`)")]
    NoSuchInterface(String),

    #[error("cannot read random bytes from the kernel: {0}")]
    Random(String),

    #[error("interface '{0}' is listed twice")]
    DuplicateInterface(String),

    #[error(
        "interface {iface} has link type {arphrd} (ARPHRD_*, see `ip -d link show {iface}`), whose frames \
         rstguard cannot parse: it supports Ethernet devices and devices without a link-layer header \
         (tun, WireGuard, IPIP/SIT/GRE tunnels, PPP)"
    )]
    UnsupportedLink { iface: String, arphrd: u16 },

    #[error(
        "interface {iface} already has an XDP program attached; rstguard will not replace it. \
         Detach it first (`ip link set dev {iface} xdp off`, or `xdp-loader unload {iface} --all`)"
    )]
    XdpBusy { iface: String },

    #[error(
        "interface {iface} does not support XDP in {mode} mode ({cause}); \
         try `--mode skb`, which works on every interface"
    )]
    XdpModeUnsupported {
        iface: String,
        mode: &'static str,
        cause: Box<aya::programs::ProgramError>,
    },

    #[error("attaching XDP to {iface} failed: {cause}")]
    XdpAttach {
        iface: String,
        cause: Box<aya::programs::ProgramError>,
    },

    #[error("attaching the egress classifier to {iface} failed: {cause}")]
    TcAttach {
        iface: String,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(
        "{what} needs {caps}, which this process lacks: run it as root \
         (`sudo rstguard ...`) or grant them (`setcap {caps_setcap}+ep $(which rstguard)`)"
    )]
    Privileges {
        what: &'static str,
        caps: String,
        caps_setcap: String,
    },

    #[error("{}: {cause}", path.display())]
    Io {
        path: std::path::PathBuf,
        cause: io::Error,
    },

    #[error("cannot pin maps under {}: {reason}", path.display())]
    Bpffs {
        path: std::path::PathBuf,
        reason: String,
    },

    #[error(
        "another rstguard daemon holds {}; stop it first (`rstguard detach --all`), \
         or give this one its own --pin-dir",
        dir.display()
    )]
    AlreadyRunning { dir: std::path::PathBuf },

    #[error(
        "no rstguard state under {}: is the daemon running? (started with `ip netns exec`, \
         it has a private /sys: run this command in its mount namespace, \
         `nsenter -t $(pidof rstguard) -m -n rstguard ...`)",
        dir.display()
    )]
    NotRunning { dir: std::path::PathBuf },

    #[error("opening the pinned map {}: {cause}", path.display())]
    Pinned {
        path: std::path::PathBuf,
        cause: Box<aya::maps::MapError>,
    },

    #[error("pinning {}: {cause}", path.display())]
    Pin {
        path: std::path::PathBuf,
        cause: Box<aya::pin::PinError>,
    },

    #[error("bad prefix '{text}': {reason}")]
    BadPrefix { text: String, reason: String },
}

impl Error {
    pub fn io(path: &std::path::Path, cause: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            cause,
        }
    }

    pub fn program(name: &'static str, e: aya::programs::ProgramError) -> Error {
        Error::Program {
            name,
            cause: Box::new(e),
        }
    }

    /// A program failed to load: a verifier rejection becomes one line
    /// (the program, the kernel, the verifier's own words, what to do)
    /// and the full log goes to a file; anything else stays as it is.
    pub fn loading(name: &'static str, e: aya::programs::ProgramError) -> Error {
        let aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } = &e
        else {
            return Error::program(name, e);
        };
        let log = verifier_log.to_string();
        let reason = verifier_reason(&log).unwrap_or_else(|| io_error.to_string());
        let log = if log.trim().is_empty() {
            "but the kernel wrote none".to_string()
        } else {
            match crate::host::paths::write_verifier_log(name, &log) {
                Ok(path) => format!("written to {}", path.display()),
                Err(why) => format!("which could not be written anywhere ({why})"),
            }
        };
        Error::Verifier {
            program: name,
            kernel: crate::host::kernel::release(),
            reason,
            log,
        }
    }

    pub fn map(name: &'static str, e: aya::maps::MapError) -> Error {
        Error::Map {
            name,
            cause: Box::new(e),
        }
    }
}

/// The verifier's own words about why it gave up: the lines after the last
/// instruction it walked, without its statistics, joined into one line.
fn verifier_reason(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let is_insn = |l: &str| {
        let digits = l.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && l[digits..].starts_with(':')
    };
    // The verifier's trace between and after instructions: register and
    // stack states, precision backtracking, statistics.
    let is_trace = |l: &str| {
        let r = l
            .strip_prefix('R')
            .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
        l.is_empty()
            || r.is_some_and(|r| {
                r.len() + 1 < l.len() && (r.starts_with('=') || r.starts_with('_'))
            })
            || [
                "processed ",
                "verification time",
                "stack depth",
                ";",
                "from ",
                "last_idx",
                "regs=",
                "parent ",
                "func#",
                "mark_precise",
            ]
            .iter()
            .any(|p| l.starts_with(p))
    };
    let from = lines.iter().rposition(|l| is_insn(l)).map_or(0, |i| i + 1);
    let reason: Vec<&str> = lines[from..]
        .iter()
        .copied()
        .filter(|l| !is_trace(l))
        .collect();
    if reason.is_empty() {
        return None;
    }
    let mut reason = reason.join("; ");
    if reason.len() > 240 {
        let mut cut = 240;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_prints_once_in_a_chain() {
        let errors = [
            Error::io(std::path::Path::new("/x"), io::Error::other("boom")),
            Error::map("FLOWS", aya::maps::MapError::KeyNotFound),
            Error::Cpus(io::Error::other("boom")),
        ];
        for e in errors {
            let shown = e.to_string();
            let chain = format!("{:#}", anyhow::Error::from(e));
            assert_eq!(chain, shown, "the cause is printed once");
        }
    }

    #[test]
    fn a_verifier_log_becomes_its_last_words() {
        let log = "func#0 @0\n\
            1300: (bf) r4 = r6                    ; R4_w=scalar(id=188)\n\
            1301: (85) call bpf_xdp_load_bytes#189\n\
            invalid access to map value, value_size=208 off=72 size=0\n\
            R0_w=inv3 R1_w=map_value(id=0,off=72,ks=4,vs=208,umax_value=255)\n\
            R3 min value is outside of the allowed memory range\n\
            verification time 398635 usec\n\
            stack depth 392+0\n\
            processed 5183 insns (limit 1000000) max_states_per_insn 6 total_states 292\n";
        assert_eq!(
            verifier_reason(log).as_deref(),
            Some(
                "invalid access to map value, value_size=208 off=72 size=0; \
                 R3 min value is outside of the allowed memory range"
            )
        );
        assert_eq!(verifier_reason("processed 3 insns\n"), None);
        assert!(verifier_reason(&"x".repeat(1000)).unwrap().len() < 250);
    }
}
