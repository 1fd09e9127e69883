//! Socket mode on the daemon's side (`--state auto|socket|track`): whether
//! it can run here, loading the object with it (or without it, saying
//! why), each interface's state source, and the set of this host's own
//! addresses that `auto` judges by socket.

use std::{collections::BTreeSet, net::IpAddr, path::Path};

use aya::maps::{HashMap, MapData};
use rstguard_common::{
    judge::socket::{SockFields, Source, LOCAL_ADDRS, LOCAL_ADDRS_MAX},
    key::v4_mapped,
    status::{SOURCE_WHY_ASKED, SOURCE_WHY_AUTO, SOURCE_WHY_UNAVAILABLE},
};
use tracing::{info, warn};

use crate::{
    btf,
    config::StateArg,
    ebpf::{LoadOptions, Loaded},
    error::Error,
};

/// Whether socket mode runs, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Loaded with socket mode.
    On,
    /// No interface asked for it.
    NotWanted,
    /// Wanted (auto) but not possible here: the one line that says why.
    Unavailable(String),
}

/// Where one interface's RSTs are judged from, and why
/// (`IfaceStatus::source`, `source_why`).
pub fn in_force(wanted: StateArg, avail: &Availability) -> (Source, u8) {
    match (wanted, avail) {
        (StateArg::Track, _) => (Source::Track, SOURCE_WHY_ASKED),
        (_, Availability::On) if wanted == StateArg::Auto => (Source::Auto, SOURCE_WHY_AUTO),
        (_, Availability::On) => (Source::Socket, SOURCE_WHY_ASKED),
        _ => (Source::Track, SOURCE_WHY_UNAVAILABLE),
    }
}

/// A description of a state source in force, for `status` and the log.
pub fn describe(source: Source, why: u8) -> &'static str {
    match (source, why) {
        (Source::Auto, _) => {
            "auto: RSTs to this host's own addresses judged by its sockets, forwarded ones by tracking"
        }
        (Source::Socket, _) => "socket: every RST judged by the local sockets, nothing tracked",
        (Source::Track, SOURCE_WHY_UNAVAILABLE) => {
            "track: socket mode is unavailable here (see the daemon's log)"
        }
        (Source::Track, _) => "track: every RST judged by the flow table",
    }
}

/// What socket mode needs: kernel BTF with every field it reads, and
/// CAP_PERFMON (or CAP_SYS_ADMIN) to read a socket through the kernel's
/// types. The kernel's own verdict comes at load.
pub fn prepare() -> Result<SockFields, String> {
    use caps::{CapSet, Capability};
    let has = |c| caps::has_cap(None, CapSet::Effective, c).unwrap_or(false);
    if !has(Capability::CAP_PERFMON) && !has(Capability::CAP_SYS_ADMIN) {
        return Err("socket mode needs CAP_PERFMON (or CAP_SYS_ADMIN) to read sockets".into());
    }
    let mut fields = btf::sock_fields_from(Path::new(btf::VMLINUX))
        .map_err(|e| format!("socket mode needs the kernel's BTF: {e}"))?;
    // Without it, socket mode names no idle_expired cause; nothing else.
    fields.hz = kernel_hz().unwrap_or(0);
    if fields.hz != 0 {
        info!(
            hz = fields.hz,
            "socket mode: the kernel's HZ, for how long sockets idled"
        );
    } else {
        warn!(
            "socket mode: the kernel's HZ could not be measured from /proc/timer_list; \
             RST causes will not tell idle_expired from middlebox"
        );
    }
    Ok(fields)
}

/// The kernel's HZ (jiffies per second), measured: /proc/timer_list read
/// twice, 250 ms apart, each read giving the kernel's monotonic clock (`now
/// at N nsecs`) and its jiffies a moment apart, so that how long this
/// process slept between the reads does not count. Socket mode converts
/// how long a socket idled (kept in jiffies) with it. `None` when the file
/// cannot be read or the count fits no HZ a kernel is built with.
pub fn kernel_hz() -> Option<u32> {
    let sample = || -> Option<(u64, u64)> {
        let text = std::fs::read_to_string("/proc/timer_list").ok()?;
        let field = |prefix: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))?
                .trim()
                .trim_end_matches(" nsecs")
                .parse()
                .ok()
        };
        Some((field("now at ")?, field("jiffies: ")?))
    };
    let (ns0, j0) = sample()?;
    std::thread::sleep(std::time::Duration::from_millis(250));
    let (ns1, j1) = sample()?;
    nearest_hz(
        j1.wrapping_sub(j0),
        std::time::Duration::from_nanos(ns1.saturating_sub(ns0)),
    )
}

/// The HZ a kernel is built with (100, 250, 300 or 1000) that `ticks`
/// jiffies in `elapsed` come closest to, within 10%.
pub fn nearest_hz(ticks: u64, elapsed: std::time::Duration) -> Option<u32> {
    let rate = ticks as f64 / elapsed.as_secs_f64();
    [100u32, 250, 300, 1000]
        .into_iter()
        .find(|hz| (rate - f64::from(*hz)).abs() <= f64::from(*hz) * 0.1)
}

/// Loads the object for interfaces that want `wanted` sources: with socket
/// mode when any of them wants it and it can run, else without. `--state
/// socket` that cannot run is an error; `auto` falls back to tracking with
/// one line saying what is missing.
pub fn load(opts: &LoadOptions, wanted: &[StateArg]) -> Result<(Loaded, Availability), Error> {
    let strict = wanted.contains(&StateArg::Socket);
    if !wanted.iter().any(|w| *w != StateArg::Track) {
        return Ok((Loaded::load(opts)?, Availability::NotWanted));
    }
    let unavailable = |why: String| -> Result<(Loaded, Availability), Error> {
        if strict {
            return Err(Error::SocketMode(why));
        }
        warn!("SOCKET MODE UNAVAILABLE: {why}; falling back to tracking (--state track says so quietly)");
        Ok((Loaded::load(opts)?, Availability::Unavailable(why)))
    };
    let fields = match prepare() {
        Ok(f) => f,
        Err(why) => return unavailable(why),
    };
    let with = LoadOptions {
        sock_fields: fields,
        ..opts.clone()
    };
    match Loaded::load(&with) {
        Ok(l) => {
            info!("socket mode on: RSTs to this host are judged against its own sockets");
            Ok((l, Availability::On))
        }
        Err(e) => {
            // Does the object load without it? Then socket mode was what
            // the kernel refused.
            let why = format!("the kernel refused socket mode: {e}");
            if strict {
                return Err(Error::SocketMode(why));
            }
            unavailable(why)
        }
    }
}

/// This host's own addresses in `LOCAL_ADDRS`, kept up to date.
pub struct LocalAddrs {
    map: HashMap<MapData, [u8; 16], u8>,
    held: BTreeSet<[u8; 16]>,
}

impl LocalAddrs {
    /// Takes the map out of the loaded object.
    pub fn take(loaded: &mut Loaded) -> Result<LocalAddrs, Error> {
        let map = loaded
            .take_map(LOCAL_ADDRS)
            .ok_or(Error::MissingMap(LOCAL_ADDRS))?;
        let map = HashMap::try_from(map).map_err(|e| Error::map(LOCAL_ADDRS, e))?;
        Ok(LocalAddrs {
            map,
            held: BTreeSet::new(),
        })
    }

    /// Makes the map hold exactly this network namespace's addresses now;
    /// returns how many there are.
    pub fn refresh(&mut self) -> Result<usize, Error> {
        let now = host_addresses().map_err(Error::LocalAddrs)?;
        for gone in self.held.difference(&now) {
            let _ = self.map.remove(gone);
        }
        for new in now.difference(&self.held) {
            if self.held.len() >= LOCAL_ADDRS_MAX as usize {
                warn!("more than {LOCAL_ADDRS_MAX} local addresses: the rest are tracked");
                break;
            }
            self.map
                .insert(new, 1, 0)
                .map_err(|e| Error::map(LOCAL_ADDRS, e))?;
        }
        self.held = now;
        Ok(self.held.len())
    }
}

/// Every address of every interface in this network namespace, as the
/// programs key them (IPv4 mapped into IPv6).
pub fn host_addresses() -> std::io::Result<BTreeSet<[u8; 16]>> {
    let mut out = BTreeSet::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            out.insert(key(IpAddr::V4(v4.ip())));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            out.insert(key(IpAddr::V6(v6.ip())));
        }
    }
    Ok(out)
}

/// An address as the programs key it.
pub fn key(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_tracking_and_says_so() {
        let off = Availability::Unavailable("no BTF".into());
        assert_eq!(
            in_force(StateArg::Auto, &off),
            (Source::Track, SOURCE_WHY_UNAVAILABLE)
        );
        assert_eq!(
            in_force(StateArg::Auto, &Availability::On),
            (Source::Auto, SOURCE_WHY_AUTO)
        );
        assert_eq!(
            in_force(StateArg::Socket, &Availability::On),
            (Source::Socket, SOURCE_WHY_ASKED)
        );
        assert_eq!(
            in_force(StateArg::Track, &Availability::On),
            (Source::Track, SOURCE_WHY_ASKED)
        );
        assert!(describe(Source::Track, SOURCE_WHY_UNAVAILABLE).contains("unavailable"));
    }

    #[test]
    fn addresses_are_keyed_as_the_programs_key_them() {
        assert_eq!(
            key("10.1.2.3".parse().unwrap()),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]
        );
        let v6: std::net::Ipv6Addr = "fd00::7".parse().unwrap();
        assert_eq!(key(IpAddr::V6(v6)), v6.octets());
    }

    #[test]
    fn hz_is_the_nearest_a_kernel_is_built_with() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(nearest_hz(25, ms(100)), Some(250));
        assert_eq!(nearest_hz(26, ms(104)), Some(250));
        assert_eq!(nearest_hz(30, ms(100)), Some(300));
        assert_eq!(nearest_hz(101, ms(101)), Some(1000));
        assert_eq!(nearest_hz(10, ms(100)), Some(100));
        // Nothing a kernel is built with: a clock that jumped, a bad read.
        assert_eq!(nearest_hz(60, ms(100)), None);
        assert_eq!(nearest_hz(0, ms(100)), None);
    }
}
