//! SipHash-1-3 (Aumasson and Bernstein; the rounds Rust's own HashMap
//! uses) over exactly 32 bytes: two IPv6 addresses. The flow table hashes
//! IPv6 endpoints into its 16-byte key with it, under a secret chosen when
//! the programs are loaded, so that no one who does not know the secret
//! can make two flows share an entry. Pure and `no_std`: the eBPF programs
//! and user space compute the same value; tested against the reference
//! implementation (the `siphasher` crate).

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn word(b: &[u8; 16], half: usize) -> u64 {
    let o = half * 8;
    u64::from_le_bytes([
        b[o],
        b[o + 1],
        b[o + 2],
        b[o + 3],
        b[o + 4],
        b[o + 5],
        b[o + 6],
        b[o + 7],
    ])
}

/// SipHash-1-3 of the 32 bytes `a ‖ b` under `key`.
#[inline(always)]
pub fn hash_32(key: &[u64; 2], a: &[u8; 16], b: &[u8; 16]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    let m = [word(a, 0), word(a, 1), word(b, 0), word(b, 1)];
    let mut i = 0;
    while i < 4 {
        v[3] ^= m[i];
        round(&mut v);
        v[0] ^= m[i];
        i += 1;
    }
    // The last block: the length (32) in the top byte, no bytes left over.
    let last = 32u64 << 56;
    v[3] ^= last;
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    round(&mut v);
    round(&mut v);
    round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use core::hash::Hasher;

    use super::*;

    #[test]
    fn matches_the_reference_siphash_1_3() {
        let keys = [
            [0, 0],
            [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908],
            [u64::MAX, 0x5eed],
        ];
        for key in keys {
            for seed in 0..64u8 {
                let mut a = [0u8; 16];
                let mut b = [0u8; 16];
                for i in 0..16 {
                    a[i] = seed.wrapping_mul(31).wrapping_add(i as u8);
                    b[i] = seed.wrapping_mul(17) ^ (i as u8).wrapping_mul(7);
                }
                let mut r = siphasher::sip::SipHasher13::new_with_keys(key[0], key[1]);
                r.write(&a);
                r.write(&b);
                assert_eq!(
                    hash_32(&key, &a, &b),
                    r.finish(),
                    "key {key:x?} seed {seed}"
                );
            }
        }
    }
}
