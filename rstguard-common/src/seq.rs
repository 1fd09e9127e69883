//! Sequence-number comparisons modulo 2^32, as the kernel's `before()` and
//! `after()` in include/net/tcp.h.

/// `a` comes strictly before `b` in sequence space.
#[inline(always)]
pub const fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` comes strictly after `b` in sequence space.
#[inline(always)]
pub const fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// `start <= x < start + len` in sequence space. An empty range holds nothing.
#[inline(always)]
pub const fn in_range(x: u32, start: u32, len: u32) -> bool {
    x.wrapping_sub(start) < len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_wraps() {
        assert!(before(1, 2));
        assert!(!before(2, 2));
        assert!(before(u32::MAX, 0));
        assert!(after(0, u32::MAX));
        assert!(after(5, u32::MAX - 5));
        assert!(!after(7, 7));
    }

    #[test]
    fn range_wraps() {
        assert!(in_range(u32::MAX, u32::MAX - 1, 4));
        assert!(in_range(1, u32::MAX - 1, 4));
        assert!(!in_range(2, u32::MAX - 1, 4));
        assert!(!in_range(5, 5, 0));
    }
}
