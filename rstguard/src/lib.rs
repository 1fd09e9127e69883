//! rstguard's user space: loading and attaching the eBPF programs, reading
//! their counters, and the daemon and CLI built on that.

pub mod attach;
pub mod btf;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod controller;
pub mod counters;
pub mod daemon;
pub mod ebpf;
pub mod error;
pub mod explain;
pub mod iface;
pub mod kernel;
pub mod maps;
pub mod paths;
pub mod policy;
pub mod privileges;
pub mod socket;
pub mod trust;

pub use error::Error;
