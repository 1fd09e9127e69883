//! Where the RSTs are aimed: around the numbers a target holds, and at
//! random.

use super::*;

/// Where a RST's sequence number (or ACK) lies: relative to what the
/// target holds (its base, rebuilt targets included), or anywhere.
#[derive(Clone, Copy, Debug)]
pub(super) enum At {
    Rel(i64),
    Abs(u32),
    /// The host's SND.NXT.
    SndNxt,
}

impl At {
    pub(super) fn of(self, t: &Target) -> u32 {
        match self {
            At::Rel(d) => t.base.wrapping_add(d as u32),
            At::Abs(v) => v,
            At::SndNxt => t.snd_nxt,
        }
    }
}

/// RSTs aimed at a target: (seq, ACK) around what it holds, and at random.
pub(super) fn aims(
    state: State,
    sack: bool,
    rng: &mut impl Rng,
    random: usize,
) -> Vec<(At, Option<At>)> {
    let mut v: Vec<(At, Option<At>)> = Vec::new();
    match state {
        State::SynSent => {
            for d in [0i64, 1, -1, 2, 1000, -(1 << 20)] {
                v.push((At::Abs(rng.gen()), Some(At::Rel(d))));
            }
            v.push((At::Rel(0), None));
            for _ in 0..random {
                v.push((At::Abs(rng.gen()), Some(At::Rel(rng.gen_range(-1..3)))));
            }
        }
        _ => {
            let offsets = [
                0i64,
                1,
                -1,
                2,
                -2,
                100,
                1000,
                1100,
                10_000,
                30_000,
                60_000,
                65_535,
                65_536,
                100_000,
                1 << 20,
                3 << 20,
                1 << 24,
                1 << 31,
                -100,
                -70_000,
                -(1 << 30),
            ];
            for d in offsets {
                v.push((At::Rel(d), None));
            }
            if sack {
                // The SACK edge (1100) is in the list; its ACK'd twin:
                v.push((At::Rel(1100), Some(At::SndNxt)));
            }
            if state == State::SynRecv {
                // RCV.NXT with an ACK that is not the SYN-ACK's.
                v.push((At::Rel(0), Some(At::Abs(rng.gen()))));
                v.push((At::Rel(1), Some(At::Abs(rng.gen()))));
            }
            for _ in 0..random {
                let seq = if rng.gen_bool(0.6) {
                    At::Rel(rng.gen_range(-2_000..140_000))
                } else {
                    At::Abs(rng.gen())
                };
                let ack = match state {
                    // A request socket's ACK check: no ACK, or a wrong one.
                    State::SynRecv => rng.gen_bool(0.3).then(|| At::Abs(rng.gen())),
                    _ => rng.gen_bool(0.5).then_some(At::SndNxt),
                };
                v.push((seq, ack));
            }
        }
    }
    v
}
