//! The two clocks user space reads: wall-clock time for people, and
//! CLOCK_MONOTONIC, the programs' clock (`bpf_ktime_get_coarse_ns`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    unix_now_ns() / 1_000_000_000
}

/// Nanoseconds since the Unix epoch.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// CLOCK_MONOTONIC in ns: the clock of the programs' timestamps.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// A timestamp of the programs' clock as Unix time in ns.
pub fn monotonic_to_unix_ns(ts_ns: u64) -> u64 {
    let (unix, mono) = (unix_now_ns(), monotonic_ns());
    unix.saturating_sub(mono.saturating_sub(ts_ns))
}
