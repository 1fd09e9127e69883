//! Auto mode (`--policy auto`) and operator pinning: each second, each
//! interface's controller sees its counters and may move its level, unless
//! an operator pinned the level (`policy set level=...`), which pauses it
//! until `policy set level=auto` hands it back.

use rstguard_common::{act::POLICY_PINNED, status::IfaceStatus, Level};
use tracing::{info, warn};

use super::Shared;
use crate::{
    controller::{Controller, Decision, Direction, Sample},
    host::clock::unix_now,
};

/// Auto mode on one interface.
pub struct AutoIface {
    pub ifindex: u32,
    pub name: String,
    pub controller: Controller,
    /// An operator pinned the level (`policy set level=...`).
    pub pinned: bool,
}

/// An operator took the level or handed it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinChange {
    Pinned,
    Released,
}

/// What one second of auto mode does on one interface.
#[derive(Clone, Debug, PartialEq)]
pub enum Tick {
    /// The operator holds the level, or just handed it back: the
    /// controller follows the level in force and moves nothing this
    /// second. `change` says whether the pin changed.
    Follow {
        level: Level,
        pinned: bool,
        change: Option<PinChange>,
    },
    /// The controller moves the level.
    Move(Decision),
    /// Nothing changes.
    Stay,
}

/// The auto tick's rule. `operator_pin`: the policy in force carries the
/// operator's pin; `was_pinned`: it did a second ago; `in_force`: the
/// level in force; `decision`: what the controller decided from this
/// second's counters.
pub fn tick(
    operator_pin: bool,
    was_pinned: bool,
    in_force: Level,
    decision: Option<Decision>,
) -> Tick {
    if operator_pin || was_pinned {
        let change = match (was_pinned, operator_pin) {
            (false, true) => Some(PinChange::Pinned),
            (true, false) => Some(PinChange::Released),
            _ => None,
        };
        return Tick::Follow {
            level: in_force,
            pinned: operator_pin,
            change,
        };
    }
    decision.map_or(Tick::Stay, Tick::Move)
}

/// Records a level change in the interface's published status.
pub fn record(st: &mut IfaceStatus, d: &Decision, now_unix: u64) {
    st.level = d.to as u8;
    st.last_change_unix = now_unix;
    match d.direction {
        Direction::Up => st.escalations += 1,
        Direction::Down => st.deescalations += 1,
    }
}

impl Shared {
    /// One second of auto mode: feeds each controller its interface's
    /// counters and applies what it decides (see [`tick`]).
    pub fn control(&mut self, now: f64) {
        for i in 0..self.auto.len() {
            let ifindex = self.auto[i].ifindex;
            let counters = match self.maps.counters(ifindex) {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "auto: reading counters failed");
                    continue;
                }
            };
            let mut policy = match self.maps.policy(ifindex) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    warn!(error = %e, "auto: reading the policy failed");
                    continue;
                }
            };
            let a = &mut self.auto[i];
            let decision = a.controller.step(now, Sample::from_counters(&counters));
            let operator_pin = policy.flags & POLICY_PINNED != 0;
            let d = match tick(operator_pin, a.pinned, policy.level(), decision) {
                Tick::Stay => continue,
                Tick::Follow {
                    level,
                    pinned,
                    change,
                } => {
                    if let Some(change) = change {
                        info!(
                            device = %a.name,
                            level = %level,
                            "{}",
                            match change {
                                PinChange::Pinned =>
                                    "auto: the operator pinned the level; auto control paused",
                                PinChange::Released =>
                                    "auto: the operator handed the level back; auto control resumed",
                            }
                        );
                    }
                    a.pinned = pinned;
                    a.controller.resume_at(level);
                    continue;
                }
                Tick::Move(d) => d,
            };
            policy.level = d.to as u8;
            if let Err(e) = self.maps.set_policy(ifindex, &policy) {
                warn!(device = %a.name, error = %e, "auto: writing the new level failed");
                a.controller.resume_at(d.from);
                continue;
            }
            info!(
                device = %a.name,
                from = %d.from,
                to = %d.to,
                why = %d.why,
                invalid_rate = format!("{:.1}/s", d.invalid_rate),
                legit_rate = format!("{:.1}/s", d.legit_rate),
                "{}",
                match d.direction {
                    Direction::Up => "auto: policy escalated",
                    Direction::Down => "auto: policy relaxed",
                }
            );
            if let Some(st) = self.state.ifaces.iter_mut().find(|x| x.ifindex == ifindex) {
                record(st, &d, unix_now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Decision {
        Decision {
            from: Level::Monitor,
            to: Level::Enforce,
            direction: Direction::Up,
            why: "attack".into(),
            invalid_rate: 500.0,
            legit_rate: 0.0,
        }
    }

    #[test]
    fn the_controller_moves_the_level_unless_an_operator_holds_it() {
        let cases = [
            // (operator pin now, pinned a second ago, decision, expected)
            (false, false, None, Tick::Stay),
            (false, false, Some(up()), Tick::Move(up())),
            (
                true,
                false,
                Some(up()),
                Tick::Follow {
                    level: Level::Strict,
                    pinned: true,
                    change: Some(PinChange::Pinned),
                },
            ),
            (
                true,
                true,
                None,
                Tick::Follow {
                    level: Level::Strict,
                    pinned: true,
                    change: None,
                },
            ),
            // Handed back: this second follows the level in force; the
            // controller moves it from the next one.
            (
                false,
                true,
                Some(up()),
                Tick::Follow {
                    level: Level::Strict,
                    pinned: false,
                    change: Some(PinChange::Released),
                },
            ),
        ];
        for (operator_pin, was_pinned, decision, expected) in cases {
            assert_eq!(
                tick(operator_pin, was_pinned, Level::Strict, decision),
                expected,
                "pin {operator_pin}, was pinned {was_pinned}"
            );
        }
    }

    #[test]
    fn a_level_change_is_published_with_its_direction() {
        let mut st = IfaceStatus::default();
        record(&mut st, &up(), 1234);
        assert_eq!(
            (
                st.level,
                st.last_change_unix,
                st.escalations,
                st.deescalations
            ),
            (Level::Enforce as u8, 1234, 1, 0)
        );
        let down = Decision {
            from: Level::Enforce,
            to: Level::Monitor,
            direction: Direction::Down,
            ..up()
        };
        record(&mut st, &down, 1300);
        assert_eq!(
            (st.level, st.escalations, st.deescalations),
            (Level::Monitor as u8, 1, 1)
        );
    }
}
