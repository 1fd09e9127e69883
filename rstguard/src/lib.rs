//! rstguard's user space: loading and attaching the eBPF programs, reading
//! their counters, and the daemon and CLI built on that.
//!
//! * `cli` (the flags), `config` (the file, the defaults, the settings
//!   resolved from them), `commands` (one module per subcommand), `daemon`
//!   (`rstguard attach`);
//! * the programs: `ebpf` (loading the object), `attach`, `maps` (typed
//!   handles), `socket` (socket mode), `btf`, `controller` (auto mode's
//!   decisions), `trust` (trusted prefixes);
//! * `host`: the machine (clocks, interfaces, kernel, paths, privileges);
//! * `show`: words for people (counters, policies, RSTs).

pub mod attach;
pub mod btf;
pub mod cli;
pub mod commands;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod ebpf;
pub mod error;
pub mod host;
pub mod maps;
pub mod show;
pub mod socket;
pub mod trust;

pub use error::Error;
/// The paths tests, the benchmarks and the lab use.
pub use host::{iface, kernel, paths};
