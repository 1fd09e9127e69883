//! The causes of the last minutes, for `rstguard status`: cumulative
//! counts sampled every few seconds, the window's difference published.

use std::collections::VecDeque;

use rstguard_common::{Cause, Counters, Direction};

/// Counts by direction and cause.
pub type ByCause = [[u64; Cause::COUNT]; Direction::COUNT];

/// How far back `status` looks.
pub const WINDOW_SECS: u64 = 300;
/// How often the totals are sampled.
pub const SAMPLE_SECS: u64 = 10;

/// Sums the cause counters of several interfaces.
pub fn totals<'a>(counters: impl IntoIterator<Item = &'a Counters>) -> ByCause {
    let mut t: ByCause = [[0; Cause::COUNT]; Direction::COUNT];
    for c in counters {
        for d in Direction::ALL {
            for cause in Cause::ALL {
                t[d as usize][cause as usize] =
                    t[d as usize][cause as usize].wrapping_add(c.cause(d, cause));
            }
        }
    }
    t
}

/// Samples of the totals, newest last, spanning at most [`WINDOW_SECS`].
#[derive(Debug, Default)]
pub struct Window {
    samples: VecDeque<(u64, ByCause)>,
}

impl Window {
    /// A window whose first sample is the daemon's start, when every
    /// counter of the freshly loaded programs is zero.
    pub fn started() -> Window {
        let mut w = Window::default();
        w.push(0, [[0; Cause::COUNT]; Direction::COUNT]);
        w
    }

    /// Adds the totals at `secs` (seconds since the daemon started).
    pub fn push(&mut self, secs: u64, totals: ByCause) {
        self.samples.push_back((secs, totals));
        while let Some((first, _)) = self.samples.front() {
            if secs - first > WINDOW_SECS {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// What happened between the oldest sample and the newest, and over
    /// how many seconds.
    pub fn recent(&self) -> (ByCause, u64) {
        let (Some((t0, a)), Some((t1, b))) = (self.samples.front(), self.samples.back()) else {
            return ([[0; Cause::COUNT]; Direction::COUNT], 0);
        };
        let mut d = *b;
        for (row, old) in d.iter_mut().zip(a) {
            for (v, o) in row.iter_mut().zip(old) {
                *v = v.wrapping_sub(*o);
            }
        }
        (d, t1 - t0)
    }
}

#[cfg(test)]
mod tests {
    use rstguard_common::count::cause_slot;

    use super::*;

    #[test]
    fn the_window_keeps_five_minutes_of_differences() {
        let mut c = Counters::default();
        let mut w = Window::started();
        assert_eq!(w.recent().1, 0);
        for secs in (SAMPLE_SECS..=600).step_by(SAMPLE_SECS as usize) {
            // One refused connection a second, one abort a minute.
            c.slots[cause_slot(Direction::Egress, Cause::Refused)] = secs;
            c.slots[cause_slot(Direction::Ingress, Cause::Abort)] = secs / 60;
            w.push(secs, totals([&c]));
        }
        let (d, span) = w.recent();
        assert_eq!(span, WINDOW_SECS);
        assert_eq!(d[Direction::Egress as usize][Cause::Refused as usize], 300);
        assert_eq!(d[Direction::Ingress as usize][Cause::Abort as usize], 5);
        assert_eq!(d[Direction::Ingress as usize][Cause::Refused as usize], 0);
        assert_eq!(
            totals([&c, &c])[Direction::Egress as usize][Cause::Refused as usize],
            1200
        );
    }
}
