//! Words for people: counters, policies and RSTs as the commands and the
//! daemon print them.

pub mod counters;
pub mod explain;
pub mod policy;
