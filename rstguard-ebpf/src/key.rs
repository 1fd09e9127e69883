//! The flow a segment belongs to: its table key, with IPv6 addresses
//! hashed under a secret user space chooses at load time.

use rstguard_common::{Endpoints, FlowKey};

/// The secret that keys the hash of IPv6 addresses in [`FlowKey`]; user
/// space writes a random one at load time (a read-only global).
#[unsafe(no_mangle)]
static FLOW_KEY_SECRET: [u64; 2] = [0; 2];

#[inline(always)]
fn flow_key_secret() -> [u64; 2] {
    // SAFETY: a read-only global the loader set; read it as the verifier
    // sees it (a constant), not as the compiler does (zero).
    unsafe { core::ptr::read_volatile(&FLOW_KEY_SECRET) }
}

/// The table key of a segment between `ends` (`v6`: it came in IPv6).
#[inline(always)]
pub fn flow_key(ends: &Endpoints, v6: bool) -> FlowKey {
    FlowKey::of(ends, v6, &flow_key_secret())
}
