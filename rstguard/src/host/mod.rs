//! The machine rstguard runs on: its clocks, interfaces, kernel, paths and
//! this process's privileges.

pub mod clock;
pub mod iface;
pub mod kernel;
pub mod paths;
pub mod privileges;
