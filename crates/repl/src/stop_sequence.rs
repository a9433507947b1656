//! The sequence of stopping a member at the controlling instance (AllegroGraph's
//! `repl/stop`): the configuration marking it stopped is made through the proposer,
//! then the member is asked until it holds that configuration (or a newer one); one
//! that does not learn it within the timeout has the stop undone, unless `force`,
//! which keeps it (the member stops once it hears of it).
//!
//! Events in, commands out: the cluster runtime asks over HTTP, the simulation over
//! its network; neither decides what follows.

use crate::{Change, ConfigPosition};

/// How long one ask of the member's configuration is waited for, at most (ms).
pub const STOP_ASK_WITHIN_MS: u64 = 5_000;
/// How long after a fruitless ask the member is asked again (ms).
pub const STOP_ASK_AGAIN_MS: u64 = 100;

/// What happened that the stop must know of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopEvent {
    /// Time passed (fed at [`StopSequence::deadline`]).
    Tick,
    /// The last change asked for was reported: the position of the configuration
    /// in force (none: not in force, whether committed or not — neither is undone).
    Reported { in_force: Option<ConfigPosition> },
    /// The member's answer to [`StopCommand::AskMember`]: the position of the
    /// configuration it holds, or why it could not be asked.
    MemberHolds(Result<ConfigPosition, String>),
}

/// What the runtime is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopCommand {
    /// Make this change through the proposer (answer: [`StopEvent::Reported`]).
    Propose(Change),
    /// Ask the member which configuration it holds, waiting at most `within_ms`
    /// (answer: [`StopEvent::MemberHolds`]).
    AskMember { within_ms: u64 },
    /// Over (see [`StopEnd`]).
    Finished(StopEnd),
}

/// How a stop ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopEnd {
    /// The member holds the stop.
    Stopped,
    /// The stop is not in force (the proposer's error says why).
    NotMade,
    /// In force, the member could not be told (why); kept by `force`: it stops once it
    /// hears of it.
    KeptUntold(String),
    /// The member could not be told (why), and the stop was undone (`undone`: the
    /// undo is in force; otherwise the member stays stopped until started).
    Undone { why: String, undone: bool },
}

/// A stop of one member, run at the controlling instance.
///
/// Rules it keeps:
/// - the member is asked only once the stop is in force, and until it holds that
///   configuration or a newer one, or the timeout passes;
/// - one that was not told within the timeout has the stop undone by a change like
///   any other, unless `force` (it then stops once it hears of it); an undo that is not
///   confirmed is said, so the operator starts the member;
/// - a stop that was never in force is not undone (nothing to undo, or a change that
///   may still take effect, which a start would undo).
#[derive(Clone, Debug)]
pub struct StopSequence {
    name: String,
    force: bool,
    timeout_ms: u64,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Stopping,
    Telling {
        position: ConfigPosition,
        until: u64,
        /// The ask under way (when it is given up), or when to ask again.
        asked_until: Option<u64>,
        next_ask: u64,
        why: String,
    },
    Undoing {
        why: String,
    },
    Over,
}

impl StopSequence {
    /// Starts stopping member `name`; `timeout_ms`: how long it is given to learn it.
    pub fn start(name: &str, force: bool, timeout_ms: u64) -> (Self, Vec<StopCommand>) {
        let sequence = StopSequence {
            name: name.to_owned(),
            force,
            timeout_ms,
            phase: Phase::Stopping,
        };
        let command = StopCommand::Propose(Change::Stop {
            name: name.to_owned(),
            stopped: true,
        });
        (sequence, vec![command])
    }

    /// The member being stopped.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the sequence is over.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// When to feed [`StopEvent::Tick`] next (none: it waits for a report).
    pub fn deadline(&self) -> Option<u64> {
        match &self.phase {
            Phase::Telling {
                asked_until: Some(until),
                ..
            } => Some(*until),
            Phase::Telling { next_ask, .. } => Some(*next_ask),
            _ => None,
        }
    }

    /// Moves the stop on at time `now_ms`.
    pub fn handle(&mut self, now_ms: u64, event: StopEvent) -> Vec<StopCommand> {
        match (&mut self.phase, event) {
            (Phase::Stopping, StopEvent::Reported { in_force: None }) => {
                self.finish(StopEnd::NotMade)
            }
            (
                Phase::Stopping,
                StopEvent::Reported {
                    in_force: Some(position),
                    ..
                },
            ) => {
                let within_ms = self.timeout_ms.clamp(1, STOP_ASK_WITHIN_MS);
                self.phase = Phase::Telling {
                    position,
                    until: now_ms + self.timeout_ms,
                    asked_until: Some(now_ms + within_ms),
                    next_ask: now_ms,
                    why: "it was not asked".into(),
                };
                vec![StopCommand::AskMember { within_ms }]
            }
            (
                Phase::Telling {
                    position,
                    asked_until: asked @ Some(_),
                    why,
                    ..
                },
                StopEvent::MemberHolds(answer),
            ) => {
                match answer {
                    Ok(held) if held >= *position => return self.finish(StopEnd::Stopped),
                    Ok(held) => *why = format!("it holds configuration {held}"),
                    Err(e) => *why = e,
                }
                *asked = None;
                self.after_fruitless_ask(now_ms)
            }
            (
                Phase::Telling {
                    asked_until: asked @ Some(_),
                    why,
                    ..
                },
                StopEvent::Tick,
            ) if now_ms >= asked.unwrap_or(0) => {
                *why = "it did not answer in time".into();
                *asked = None;
                self.after_fruitless_ask(now_ms)
            }
            (
                Phase::Telling {
                    asked_until: None,
                    next_ask,
                    ..
                },
                StopEvent::Tick,
            ) if now_ms >= *next_ask => self.ask(now_ms),
            (Phase::Undoing { why }, StopEvent::Reported { in_force }) => {
                let why = std::mem::take(why);
                self.finish(StopEnd::Undone {
                    why,
                    undone: in_force.is_some(),
                })
            }
            // Late answers, early ticks, reports of nothing asked: nothing to do.
            _ => Vec::new(),
        }
    }

    /// After an ask that did not show the member holding the stop: ask again soon,
    /// or, past the timeout, keep the stop (force) or undo it.
    fn after_fruitless_ask(&mut self, now_ms: u64) -> Vec<StopCommand> {
        let Phase::Telling {
            until,
            next_ask,
            why,
            ..
        } = &mut self.phase
        else {
            return Vec::new();
        };
        if now_ms + STOP_ASK_AGAIN_MS < *until {
            *next_ask = now_ms + STOP_ASK_AGAIN_MS;
            return Vec::new();
        }
        let why = std::mem::take(why);
        if self.force {
            return self.finish(StopEnd::KeptUntold(why));
        }
        self.phase = Phase::Undoing { why };
        vec![StopCommand::Propose(Change::Stop {
            name: self.name.clone(),
            stopped: false,
        })]
    }

    fn ask(&mut self, now_ms: u64) -> Vec<StopCommand> {
        let Phase::Telling {
            until, asked_until, ..
        } = &mut self.phase
        else {
            return Vec::new();
        };
        let within_ms = until
            .saturating_sub(now_ms)
            .clamp(STOP_ASK_AGAIN_MS, STOP_ASK_WITHIN_MS);
        *asked_until = Some(now_ms + within_ms);
        vec![StopCommand::AskMember { within_ms }]
    }

    fn finish(&mut self, end: StopEnd) -> Vec<StopCommand> {
        self.phase = Phase::Over;
        vec![StopCommand::Finished(end)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, version: u64) -> ConfigPosition {
        ConfigPosition { epoch, version }
    }

    fn in_force(position: ConfigPosition) -> StopEvent {
        StopEvent::Reported {
            in_force: Some(position),
        }
    }

    fn start() -> StopSequence {
        let (mut s, commands) = StopSequence::start("b", false, 8_000);
        assert_eq!(
            commands,
            vec![StopCommand::Propose(Change::Stop {
                name: "b".into(),
                stopped: true
            })]
        );
        assert_eq!(
            s.handle(0, in_force(at(1, 5))),
            vec![StopCommand::AskMember {
                within_ms: STOP_ASK_WITHIN_MS
            }]
        );
        s
    }

    #[test]
    fn a_stop_is_over_once_the_member_holds_it_or_a_newer_configuration() {
        let mut s = start();
        assert!(s
            .handle(10, StopEvent::MemberHolds(Ok(at(1, 4))))
            .is_empty());
        assert_eq!(s.deadline(), Some(10 + STOP_ASK_AGAIN_MS));
        assert!(
            s.handle(50, StopEvent::Tick).is_empty(),
            "asked again too soon"
        );
        assert_eq!(
            s.handle(110, StopEvent::Tick),
            vec![StopCommand::AskMember {
                within_ms: STOP_ASK_WITHIN_MS
            }]
        );
        assert_eq!(
            s.handle(120, StopEvent::MemberHolds(Ok(at(2, 0)))),
            vec![StopCommand::Finished(StopEnd::Stopped)]
        );
        assert!(s.is_over());
    }

    #[test]
    fn a_member_not_told_in_time_has_its_stop_undone_unless_forced() {
        let mut s = start();
        // It never answers: each ask is given up after its wait.
        assert!(s.handle(STOP_ASK_WITHIN_MS, StopEvent::Tick).is_empty());
        let again = STOP_ASK_WITHIN_MS + STOP_ASK_AGAIN_MS;
        assert_eq!(
            s.handle(again, StopEvent::Tick),
            vec![StopCommand::AskMember {
                within_ms: 8_000 - again
            }]
        );
        let undo = s.handle(8_000, StopEvent::MemberHolds(Err("refused".into())));
        assert_eq!(
            undo,
            vec![StopCommand::Propose(Change::Stop {
                name: "b".into(),
                stopped: false
            })]
        );
        assert_eq!(
            s.handle(9_000, StopEvent::Reported { in_force: None }),
            vec![StopCommand::Finished(StopEnd::Undone {
                why: "refused".into(),
                undone: false
            })]
        );
        // Forced: kept.
        let (mut s, _) = StopSequence::start("b", true, 1_000);
        s.handle(0, in_force(at(1, 5)));
        assert_eq!(
            s.handle(1_000, StopEvent::Tick),
            vec![StopCommand::Finished(StopEnd::KeptUntold(
                "it did not answer in time".into()
            ))]
        );
    }

    #[test]
    fn a_stop_never_in_force_is_not_undone() {
        let (mut s, _) = StopSequence::start("b", false, 8_000);
        assert_eq!(
            s.handle(1, StopEvent::Reported { in_force: None }),
            vec![StopCommand::Finished(StopEnd::NotMade)]
        );
    }
}
