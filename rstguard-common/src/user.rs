//! User-space conveniences: `aya::Pod` impls, parsing and display.

use core::{fmt, str::FromStr};

use crate::{
    Action, Cause, Counters, DaemonStatus, Direction, Flow, FlowKey, Level, Policy, ResetRecord,
    RstEvent, Verdict,
};

// SAFETY: all of these are `#[repr(C)]`, `Copy`, hold only integers and byte
// arrays, and have no implicit padding (see the size assertions).
unsafe impl aya::Pod for Counters {}
unsafe impl aya::Pod for Flow {}
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for Policy {}
unsafe impl aya::Pod for DaemonStatus {}
unsafe impl aya::Pod for RstEvent {}
unsafe impl aya::Pod for ResetRecord {}
unsafe impl aya::Pod for crate::judge::socket::SockFields {}

/// Names shown as themselves: `Display` and serde both write `name()`.
macro_rules! by_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    )*};
}

by_name!(Level, Verdict, Action, Cause, Direction);

/// A value that is not one of the names a setting takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub what: &'static str,
    pub got: String,
    pub expected: &'static str,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} '{}' (expected one of: {})",
            self.what, self.got, self.expected
        )
    }
}

impl std::error::Error for UnknownName {}

extern crate std;
use std::string::{String, ToString};

impl FromStr for Level {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| UnknownName {
                what: "policy level",
                got: s.to_string(),
                expected: "monitor, enforce, strict",
            })
    }
}

impl FromStr for Action {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pass" => Ok(Action::Pass),
            "drop" => Ok(Action::Drop),
            _ => Err(UnknownName {
                what: "action",
                got: s.to_string(),
                expected: "pass, drop",
            }),
        }
    }
}
