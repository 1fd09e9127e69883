//! `--policy auto`: moves one interface's level between a floor and a
//! ceiling as attacks come and go.
//!
//! Pure: counter samples and a clock in, a decision out; the daemon reads
//! the counters every second and applies the decisions.
//!
//! * The invalid rate is the per-second rate of `out_of_window`,
//!   `bad_syn_ack`, `in_window` and `rate_limited` RSTs (passed or dropped),
//!   plus the segments that taught nothing (`ignored`: what forged SYNs,
//!   FINs and data look like).
//! * Escalation, one level at a time: the invalid rate stays at or above
//!   `escalate_above` for `escalate_after` consecutive seconds.
//! * De-escalation, one level at a time: the invalid rate stays below
//!   `relax_below` for `quiet_period` consecutive seconds.
//! * Hysteresis: `relax_below` is below `escalate_above`; a rate between
//!   the two resets both streaks, so a rate hovering around either
//!   threshold moves nothing.
//! * Counters are read with wrapping arithmetic; a counter that goes
//!   backwards (a restarted daemon's fresh maps) counts as a reset.

use rstguard_common::{state::track::Ignore, Action, Counter, Counters, Level, Verdict};

/// Auto-mode settings (per interface: floor and ceiling may differ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoConfig {
    pub floor: Level,
    pub ceiling: Level,
    /// Invalid RSTs per second at or above which a second counts as "under
    /// attack".
    pub escalate_above: f64,
    /// Invalid RSTs per second below which a second counts as "quiet".
    pub relax_below: f64,
    /// Consecutive attacked seconds before going up a level.
    pub escalate_after: u32,
    /// Consecutive quiet seconds before going down a level.
    pub quiet_period: u32,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig::DEFAULT
    }
}

impl AutoConfig {
    /// The defaults of `--floor`, `--ceiling`, `--escalate-above`,
    /// `--relax-below`, `--escalate-after` and `--quiet-period`.
    pub const DEFAULT: AutoConfig = AutoConfig {
        floor: Level::Monitor,
        ceiling: Level::Strict,
        escalate_above: 100.0,
        relax_below: 10.0,
        escalate_after: 3,
        quiet_period: 60,
    };

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.floor > self.ceiling {
            return Err(format!(
                "auto: the floor ({}) is above the ceiling ({})",
                self.floor.name(),
                self.ceiling.name()
            ));
        }
        if !(self.relax_below >= 0.0 && self.relax_below < self.escalate_above) {
            return Err(format!(
                "auto: relax_below ({}) must be at least 0 and below escalate_above ({})",
                self.relax_below, self.escalate_above
            ));
        }
        if self.escalate_after == 0 || self.quiet_period == 0 {
            return Err("auto: escalate_after and quiet_period must be at least 1 second".into());
        }
        Ok(())
    }
}

/// The counters the controller reads: invalid and legitimate RSTs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub invalid: u64,
    pub legit: u64,
}

impl Sample {
    pub fn from_counters(c: &Counters) -> Sample {
        let mut s = Sample::default();
        for v in Verdict::ALL {
            let n = c.rst(v, Action::Pass).wrapping_add(c.rst(v, Action::Drop));
            if v.is_invalid() {
                s.invalid = s.invalid.wrapping_add(n);
            } else if matches!(v, Verdict::Exact | Verdict::Trusted) {
                s.legit = s.legit.wrapping_add(n);
            }
        }
        for why in Ignore::ALL {
            s.invalid = s.invalid.wrapping_add(c.get(Counter::ignored(why)));
        }
        s
    }
}

/// Why the level changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// A change of level, with what triggered it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub from: Level,
    pub to: Level,
    pub direction: Direction,
    pub why: String,
    pub invalid_rate: f64,
    pub legit_rate: f64,
}

/// One interface's controller.
#[derive(Clone, Debug)]
pub struct Controller {
    pub config: AutoConfig,
    level: Level,
    last: Option<(f64, Sample)>,
    attacked: u32,
    quiet: u32,
    /// The rates of the last step.
    pub invalid_rate: f64,
    pub legit_rate: f64,
}

/// Counter difference; a counter that went backwards was reset (its new
/// value is what has happened since). A true wrap of a 64-bit counter
/// gives a small wrapping difference and is taken as such.
fn delta(now: u64, before: u64) -> u64 {
    let d = now.wrapping_sub(before);
    if d > u64::MAX / 2 {
        now
    } else {
        d
    }
}

fn up(l: Level) -> Level {
    match l {
        Level::Monitor => Level::Enforce,
        _ => Level::Strict,
    }
}

fn down(l: Level) -> Level {
    match l {
        Level::Strict => Level::Enforce,
        _ => Level::Monitor,
    }
}

impl Controller {
    /// Starts at the floor.
    pub fn new(config: AutoConfig) -> Controller {
        Controller {
            config,
            level: config.floor,
            last: None,
            attacked: 0,
            quiet: 0,
            invalid_rate: 0.0,
            legit_rate: 0.0,
        }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Takes a level set from outside (an operator's pin being lifted):
    /// control resumes from there, clamped to floor and ceiling, with the
    /// streaks started afresh.
    pub fn resume_at(&mut self, level: Level) {
        self.level = level.clamp(self.config.floor, self.config.ceiling);
        self.attacked = 0;
        self.quiet = 0;
    }

    /// Feeds the counters read at time `now` (seconds on any monotonic
    /// clock); returns a change of level, if one is due.
    pub fn step(&mut self, now: f64, sample: Sample) -> Option<Decision> {
        let (then, before) = self.last.replace((now, sample))?;
        let dt = now - then;
        if dt <= 0.0 {
            return None;
        }
        self.invalid_rate = delta(sample.invalid, before.invalid) as f64 / dt;
        self.legit_rate = delta(sample.legit, before.legit) as f64 / dt;
        let c = self.config;
        if self.invalid_rate >= c.escalate_above {
            self.attacked += 1;
            self.quiet = 0;
        } else if self.invalid_rate < c.relax_below {
            self.quiet += 1;
            self.attacked = 0;
        } else {
            self.attacked = 0;
            self.quiet = 0;
        }
        let (to, direction, why) = if self.attacked >= c.escalate_after && self.level < c.ceiling {
            (
                up(self.level),
                Direction::Up,
                format!(
                    "invalid RSTs at or above {}/s for {} s",
                    c.escalate_above, c.escalate_after
                ),
            )
        } else if self.quiet >= c.quiet_period && self.level > c.floor {
            (
                down(self.level),
                Direction::Down,
                format!(
                    "invalid RSTs below {}/s for {} s",
                    c.relax_below, c.quiet_period
                ),
            )
        } else {
            return None;
        };
        self.attacked = 0;
        self.quiet = 0;
        let from = self.level;
        self.level = to;
        Some(Decision {
            from,
            to,
            direction,
            why,
            invalid_rate: self.invalid_rate,
            legit_rate: self.legit_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use rstguard_common::count::rst_slot;

    use super::*;

    #[test]
    fn invalid_counts_invalid_verdicts_and_ignored_segments() {
        let mut c = Counters::default();
        c.slots[rst_slot(Verdict::OutOfWindow, Action::Drop)] = 5;
        c.slots[rst_slot(Verdict::InWindow, Action::Pass)] = 2;
        c.slots[rst_slot(Verdict::Exact, Action::Pass)] = 7;
        c.slots[rst_slot(Verdict::OneSided, Action::Pass)] = 100;
        c.slots[Counter::IgnoredSyn as usize] = 11;
        c.slots[Counter::IgnoredSeqOutOfWindow as usize] = 13;
        let s = Sample::from_counters(&c);
        assert_eq!(s.invalid, 5 + 2 + 11 + 13);
        assert_eq!(s.legit, 7, "one-sided RSTs are neither");
    }

    /// The defaults, with a quiet period short enough to walk through.
    fn cfg() -> AutoConfig {
        AutoConfig {
            quiet_period: 5,
            ..AutoConfig::default()
        }
    }

    /// Drives a controller with a per-second invalid rate for each second;
    /// returns the level after each second and the decisions.
    fn drive(
        c: &mut Controller,
        start: &mut (f64, u64),
        rates: &[u64],
    ) -> (Vec<Level>, Vec<Decision>) {
        let mut levels = Vec::new();
        let mut decisions = Vec::new();
        for r in rates {
            start.0 += 1.0;
            start.1 = start.1.wrapping_add(*r);
            if let Some(d) = c.step(
                start.0,
                Sample {
                    invalid: start.1,
                    legit: 0,
                },
            ) {
                decisions.push(d);
            }
            levels.push(c.level());
        }
        (levels, decisions)
    }

    fn new(config: AutoConfig) -> (Controller, (f64, u64)) {
        let mut c = Controller::new(config);
        let mut t = (0.0, 0u64);
        assert_eq!(
            c.step(t.0, Sample::default()),
            None,
            "the first sample is a baseline"
        );
        t.0 += 0.0;
        (c, t)
    }

    use Level::{Enforce, Monitor, Strict};

    #[test]
    fn a_steady_attack_escalates_one_level_at_a_time_to_the_ceiling() {
        let (mut c, mut t) = new(cfg());
        let (levels, ds) = drive(&mut c, &mut t, &[500; 8]);
        assert_eq!(
            levels,
            [Monitor, Monitor, Enforce, Enforce, Enforce, Strict, Strict, Strict]
        );
        assert_eq!(ds.len(), 2);
        assert_eq!(
            (ds[0].from, ds[0].to, ds[0].direction),
            (Monitor, Enforce, Direction::Up)
        );
        assert_eq!((ds[1].from, ds[1].to), (Enforce, Strict));
        assert_eq!(ds[0].invalid_rate, 500.0);
        assert!(ds[0].why.contains("100/s for 3 s"), "{}", ds[0].why);
    }

    #[test]
    fn short_bursts_below_k_change_nothing() {
        let (mut c, mut t) = new(cfg());
        let burst = [500, 500, 0, 500, 500, 0, 500, 500, 0, 0];
        let (levels, ds) = drive(&mut c, &mut t, &burst);
        assert!(ds.is_empty(), "{ds:?}");
        assert!(levels.iter().all(|l| *l == Monitor));
    }

    #[test]
    fn attack_then_silence_relaxes_after_the_quiet_period_to_the_floor() {
        let (mut c, mut t) = new(cfg());
        drive(&mut c, &mut t, &[500; 6]);
        assert_eq!(c.level(), Strict);
        let (levels, ds) = drive(&mut c, &mut t, &[0; 12]);
        assert_eq!(&levels[..5], &[Strict, Strict, Strict, Strict, Enforce]);
        assert_eq!(&levels[9..], &[Monitor, Monitor, Monitor]);
        assert_eq!(ds.len(), 2);
        assert_eq!(
            (ds[0].from, ds[0].to, ds[0].direction),
            (Strict, Enforce, Direction::Down)
        );
        assert_eq!((ds[1].from, ds[1].to), (Enforce, Monitor));
    }

    #[test]
    fn flapping_around_a_threshold_cannot_flap_the_level() {
        let (mut c, mut t) = new(cfg());
        // Around the upper threshold: never K seconds in a row above it.
        let around_up: Vec<u64> = (0..40).map(|i| if i % 2 == 0 { 150 } else { 50 }).collect();
        let (_, ds) = drive(&mut c, &mut t, &around_up);
        assert!(ds.is_empty(), "{ds:?}");
        // Escalate, then hover around the lower threshold: between the
        // thresholds resets the quiet streak, so the level holds.
        drive(&mut c, &mut t, &[500; 3]);
        assert_eq!(c.level(), Enforce);
        let around_down: Vec<u64> = (0..40).map(|i| if i % 2 == 0 { 5 } else { 20 }).collect();
        let (_, ds) = drive(&mut c, &mut t, &around_down);
        assert!(ds.is_empty(), "{ds:?}");
        assert_eq!(c.level(), Enforce);
    }

    #[test]
    fn counter_wrap_around_is_a_small_step_not_an_attack() {
        let (mut c, _) = new(cfg());
        let mut t = (100.0, u64::MAX - 20);
        c.step(
            t.0,
            Sample {
                invalid: t.1,
                legit: 0,
            },
        );
        // Ten a second, across the 2^64 wrap.
        let (_, ds) = drive(&mut c, &mut t, &[10; 6]);
        assert!(ds.is_empty());
        assert!(t.1 < 100, "the counter wrapped");
        assert_eq!(c.invalid_rate, 10.0);
        // And an attack across the wrap is still seen.
        let mut t2 = (200.0, u64::MAX - 100);
        let mut c2 = Controller::new(cfg());
        c2.step(
            t2.0,
            Sample {
                invalid: t2.1,
                legit: 0,
            },
        );
        let (_, ds) = drive(&mut c2, &mut t2, &[500; 3]);
        assert_eq!(ds.len(), 1);
    }

    #[test]
    fn a_daemon_restart_mid_attack_starts_from_the_floor_and_escalates_again() {
        let (mut c, mut t) = new(cfg());
        drive(&mut c, &mut t, &[500; 6]);
        assert_eq!(c.level(), Strict);
        // A new daemon: fresh controller, fresh maps (counters back to 0).
        let mut c = Controller::new(cfg());
        let mut t2 = (t.0 + 1.0, 0u64);
        assert_eq!(c.step(t2.0, Sample::default()), None);
        assert_eq!(c.level(), Monitor);
        let (levels, _) = drive(&mut c, &mut t2, &[500; 6]);
        assert_eq!(
            levels[5], Strict,
            "the attack goes on, so does the escalation"
        );
        // The old controller, fed the fresh (smaller) counters, sees a reset
        // and not a 2^64-sized attack.
        let mut old = Controller::new(cfg());
        old.step(
            0.0,
            Sample {
                invalid: 1_000_000,
                legit: 0,
            },
        );
        old.step(
            1.0,
            Sample {
                invalid: 50,
                legit: 0,
            },
        );
        assert_eq!(old.invalid_rate, 50.0);
    }

    #[test]
    fn floor_and_ceiling_bound_the_level() {
        let (mut c, mut t) = new(AutoConfig {
            floor: Enforce,
            ceiling: Enforce,
            ..cfg()
        });
        assert_eq!(c.level(), Enforce);
        let (_, ds) = drive(&mut c, &mut t, &[500; 10]);
        assert!(ds.is_empty());
        let (_, ds) = drive(&mut c, &mut t, &[0; 20]);
        assert!(ds.is_empty());
        assert_eq!(c.level(), Enforce);
        c.resume_at(Strict);
        assert_eq!(c.level(), Enforce, "clamped to the ceiling");
    }

    #[test]
    fn legit_rsts_are_measured_and_do_not_count_as_attack() {
        let mut counters = Counters::default();
        counters.slots[rstguard_common::count::rst_slot(Verdict::Exact, Action::Pass)] = 7;
        counters.slots[rstguard_common::count::rst_slot(Verdict::OutOfWindow, Action::Drop)] = 3;
        counters.slots[rstguard_common::count::rst_slot(Verdict::InWindow, Action::Pass)] = 2;
        counters.slots[rstguard_common::count::rst_slot(Verdict::NoFlow, Action::Pass)] = 100;
        assert_eq!(
            Sample::from_counters(&counters),
            Sample {
                invalid: 5,
                legit: 7
            }
        );
    }

    #[test]
    fn settings_are_validated() {
        assert!(cfg().validate().is_ok());
        assert!(AutoConfig {
            floor: Strict,
            ceiling: Monitor,
            ..cfg()
        }
        .validate()
        .is_err());
        assert!(AutoConfig {
            relax_below: 200.0,
            ..cfg()
        }
        .validate()
        .is_err());
        assert!(AutoConfig {
            escalate_after: 0,
            ..cfg()
        }
        .validate()
        .is_err());
    }
}
