//! Errors of the library modules. Each says what went wrong and, where the
//! operator can do something, what to do.

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
        "this kernel ({found}) is too old: rstguard needs Linux 5.18 or later \
         (its programs call bpf_xdp_load_bytes)"
    )]
    OldKernel { found: String },

    #[error("--flows must be at least 1")]
    BadFlows,

    #[error("--state socket cannot run here: {0} (--state auto falls back to tracking)")]
    SocketMode(String),

    #[error("cannot list this host's addresses: {0}")]
    LocalAddrs(#[source] io::Error),

    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),

    #[error("the eBPF object has no program '{0}': is this binary's object from another version?")]
    MissingProgram(&'static str),

    #[error("the eBPF object has no map '{0}': is this binary's object from another version?")]
    MissingMap(&'static str),

    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },

    #[error("cannot count the possible CPUs: {0}")]
    Cpus(#[source] io::Error),

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
        "interface {iface} does not support XDP in {mode} mode ({source}); \
         try `--mode skb`, which works on every interface"
    )]
    XdpModeUnsupported {
        iface: String,
        mode: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("attaching XDP to {iface} failed: {source}")]
    XdpAttach {
        iface: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("attaching the egress classifier to {iface} failed: {source}")]
    TcAttach {
        iface: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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

    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
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

    #[error("opening the pinned map {}: {source}", path.display())]
    Pinned {
        path: std::path::PathBuf,
        #[source]
        source: Box<aya::maps::MapError>,
    },

    #[error("pinning {}: {source}", path.display())]
    Pin {
        path: std::path::PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },

    #[error("bad prefix '{text}': {reason}")]
    BadPrefix { text: String, reason: String },
}

impl Error {
    pub fn io(path: &std::path::Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn program(name: &'static str, e: aya::programs::ProgramError) -> Error {
        Error::Program {
            name,
            source: Box::new(e),
        }
    }

    pub fn map(name: &'static str, e: aya::maps::MapError) -> Error {
        Error::Map {
            name,
            source: Box::new(e),
        }
    }
}
