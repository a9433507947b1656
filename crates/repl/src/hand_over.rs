//! When the hand-over of a member removed by force is over (the configuration's
//! `handing_over`, see [`ClusterConfig::handing_over`](crate::ClusterConfig)).
//!
//! While a removed member is listed, every member pulls its own transactions from it
//! whenever it can be reached, and the frontier stays at its last known promise. The
//! controlling instance looks at each listed member now and then: it asks the removed
//! instance about itself (the server's `repl/membership` with its own origin: once it
//! knows it was removed it answers its last own sequence number, and acknowledges
//! nothing after it), feeds the answer here with what it holds of that origin, and
//! carries out the decision — tell the removed instance it was removed
//! (`repl/removed`), and/or propose [`Change::EndHandOver`] through the
//! [`Proposer`](crate::Proposer), trying again at its next look if that change fails.
//! Nothing here asks, reads a clock or writes: the answer and the time are inputs.

use crate::cluster::HandOver;
use crate::membership_engine::Change;
use crate::stamp::OriginId;

/// What the removed instance said when asked about itself, or that it could not be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedAnswer {
    /// It could not be asked, or did not answer in time.
    Unreachable,
    /// It answered.
    Answered {
        /// Its cluster id is the one of the configuration listing it.
        same_cluster: bool,
        /// It says it knows it was removed: from then on it acknowledges nothing, so
        /// `held` is all it will ever hand over.
        removed: bool,
        /// The last of its own transactions it holds (its own sequence number).
        held: u64,
    },
    /// A server answered at its address that it holds no copy of the repository at
    /// all (it never got one — a grow whose snapshot failed — or its data is gone):
    /// nothing more can come from there.
    HoldsNothing,
}

/// How a hand-over ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOverEnd {
    /// This instance holds every own transaction the removed instance holds, up to
    /// `last`, and it knows it was removed: nothing it acknowledged is lost.
    HandedOver { last: u64 },
    /// It was not over within the log's retention of the removal: what the removed
    /// instance alone holds beyond `held` (what this instance holds of it) is lost.
    GaveUp { held: u64 },
    /// The removed instance's server holds no copy of the repository: nothing more
    /// can come of it. What this instance holds of it, up to `held`, is all there is;
    /// anything else it acknowledged went with its data (when it ever had any).
    NothingThere { held: u64 },
}

impl HandOverEnd {
    /// The change that ends the hand-over of removed member `origin`.
    pub fn change(origin: OriginId) -> Change {
        Change::EndHandOver { origin }
    }
}

/// What to do about one hand-over after a look at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandOverDecision {
    /// Tell the removed instance it was removed (`repl/removed`: it checks with the
    /// controlling instance before it believes it); it answered, not knowing it.
    pub tell_removed: bool,
    /// The hand-over is over: propose [`Change::EndHandOver`] ([`HandOverEnd::change`]).
    /// `None`: look again later.
    pub end: Option<HandOverEnd>,
}

impl HandOverDecision {
    /// Nothing to do but look again later.
    pub fn is_waiting(&self) -> bool {
        *self == HandOverDecision::default()
    }
}

/// Decides, at the controlling instance, what to do about `hand_over`: this instance
/// holds its member's own transactions up to `held_here`, the removed instance
/// answered `answer` (or could not be asked), the log is kept `retention_ms`, and it
/// is `now_ms` by this instance's wall clock (ms since the Unix epoch, as the
/// removal's commit time in `hand_over.removed_at`).
///
/// Rules it keeps:
/// - a hand-over is over when the removed instance says, of this cluster, that it knows
///   it was removed and this instance holds every own transaction it names
///   ([`HandOverEnd::HandedOver`]), however long that took;
/// - otherwise it is over once more than the log's retention passed since the removal
///   ([`HandOverEnd::GaveUp`]): what the removed instance alone held is lost, and the
///   caller must say so loudly;
/// - a removed instance that answered without saying it knows it was removed (or as
///   another cluster's) is told, at every look, give-up or not: what it acknowledges
///   until it knows is lost once the wait ends;
/// - a server at its address that holds no copy of the repository ends the wait at
///   once ([`HandOverEnd::NothingThere`]): a grow that never handed its snapshot over,
///   or data that is gone, and waiting for the retention would only hold the frontier;
/// - an instance that cannot be reached is only waited for (until the retention).
pub fn decide_hand_over(
    hand_over: &HandOver,
    held_here: u64,
    answer: RemovedAnswer,
    retention_ms: u64,
    now_ms: u64,
) -> HandOverDecision {
    let mut decision = HandOverDecision::default();
    match answer {
        RemovedAnswer::Answered {
            same_cluster: true,
            removed: true,
            held,
        } if held_here >= held => {
            decision.end = Some(HandOverEnd::HandedOver { last: held });
            return decision;
        }
        // It knows, and this instance is still taking its transactions over.
        RemovedAnswer::Answered {
            same_cluster: true,
            removed: true,
            ..
        } => {}
        RemovedAnswer::Answered { .. } => decision.tell_removed = true,
        RemovedAnswer::HoldsNothing => {
            decision.end = Some(HandOverEnd::NothingThere { held: held_here });
            return decision;
        }
        RemovedAnswer::Unreachable => {}
    }
    let waited_ms = now_ms.saturating_sub(hand_over.removed_at.millis());
    if waited_ms > retention_ms {
        decision.end = Some(HandOverEnd::GaveUp { held: held_here });
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::member;
    use crate::stamp::HlcTime;

    const RETENTION_MS: u64 = 10_000;
    const REMOVED_AT_MS: u64 = 1_700_000_000_000;

    fn hand_over() -> HandOver {
        HandOver {
            member: member("c", 3, false),
            promised: HlcTime::from_parts(REMOVED_AT_MS - 500, 0),
            removed_at: HlcTime::from_parts(REMOVED_AT_MS, 7),
        }
    }

    fn answered(removed: bool, held: u64) -> RemovedAnswer {
        RemovedAnswer::Answered {
            same_cluster: true,
            removed,
            held,
        }
    }

    fn decide(held_here: u64, answer: RemovedAnswer, after_ms: u64) -> HandOverDecision {
        decide_hand_over(
            &hand_over(),
            held_here,
            answer,
            RETENTION_MS,
            REMOVED_AT_MS + after_ms,
        )
    }

    const WAIT: HandOverDecision = HandOverDecision {
        tell_removed: false,
        end: None,
    };

    #[test]
    fn it_is_over_once_the_removed_instance_knows_and_everything_it_holds_is_here() {
        // It knows it was removed and holds 7 of its own: over once 7 are here.
        assert_eq!(decide(5, answered(true, 7), 1_000), WAIT);
        assert!(decide(5, answered(true, 7), 1_000).is_waiting());
        let over = HandOverDecision {
            tell_removed: false,
            end: Some(HandOverEnd::HandedOver { last: 7 }),
        };
        assert_eq!(decide(7, answered(true, 7), 1_000), over);
        // Holding more (relayed from a member that took them earlier) is as good.
        assert_eq!(
            decide(9, answered(true, 7), 1_000).end,
            Some(HandOverEnd::HandedOver { last: 7 })
        );
        // Long after the retention too: handed over, not given up.
        assert_eq!(decide(7, answered(true, 7), 5 * RETENTION_MS), over);
    }

    #[test]
    fn a_removed_instance_that_does_not_know_is_told_and_not_believed_done() {
        // Holding all it says it holds is not enough: it may acknowledge more.
        let told = HandOverDecision {
            tell_removed: true,
            end: None,
        };
        assert_eq!(decide(7, answered(false, 7), 1_000), told);
        // Nor is an answer as another cluster's instance (another server at its address).
        let stranger = RemovedAnswer::Answered {
            same_cluster: false,
            removed: true,
            held: 0,
        };
        assert_eq!(decide(7, stranger, 1_000), told);
        // Past the retention it is still told, and the wait ends.
        assert_eq!(
            decide(4, answered(false, 7), RETENTION_MS + 1),
            HandOverDecision {
                tell_removed: true,
                end: Some(HandOverEnd::GaveUp { held: 4 }),
            }
        );
    }

    #[test]
    fn the_wait_ends_only_after_the_log_retention_of_the_removal() {
        assert_eq!(decide(3, RemovedAnswer::Unreachable, 0), WAIT);
        assert_eq!(decide(3, RemovedAnswer::Unreachable, RETENTION_MS), WAIT);
        let gave_up = HandOverDecision {
            tell_removed: false,
            end: Some(HandOverEnd::GaveUp { held: 3 }),
        };
        assert_eq!(
            decide(3, RemovedAnswer::Unreachable, RETENTION_MS + 1),
            gave_up
        );
        // Knowing it was removed, but not all of it here yet: given up as well.
        assert_eq!(decide(3, answered(true, 7), RETENTION_MS + 1), gave_up);
        // A clock behind the removal's time waits.
        assert_eq!(
            decide_hand_over(
                &hand_over(),
                3,
                RemovedAnswer::Unreachable,
                RETENTION_MS,
                REMOVED_AT_MS - 60_000
            ),
            WAIT
        );
    }

    #[test]
    fn a_server_holding_no_copy_of_the_repository_ends_the_wait_at_once() {
        let nothing_there = HandOverDecision {
            tell_removed: false,
            end: Some(HandOverEnd::NothingThere { held: 2 }),
        };
        assert_eq!(decide(2, RemovedAnswer::HoldsNothing, 0), nothing_there);
        assert_eq!(
            decide(2, RemovedAnswer::HoldsNothing, RETENTION_MS + 1),
            nothing_there
        );
    }

    #[test]
    fn the_end_is_proposed_as_a_configuration_change() {
        let config = crate::cluster::fixtures::three();
        let (listed, _) = config
            .without_member_handing_over("c", HlcTime(5), HlcTime(9))
            .unwrap();
        let change = HandOverEnd::change(OriginId(3));
        assert_eq!(
            change,
            Change::EndHandOver {
                origin: OriginId(3)
            }
        );
        let ended = change.apply(&listed, HlcTime(10)).unwrap();
        assert!(!ended.is_handing_over(OriginId(3)));
    }
}
