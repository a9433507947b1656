//! The sequence of a grow at the controlling instance (AllegroGraph's
//! `grow-cluster`): the member is added first, through the proposer, and only once the
//! configuration adding it is in force is the new server handed a snapshot; a grow
//! whose configuration was made but not confirmed, or whose snapshot could not be
//! handed over, is undone by a change like any other.
//!
//! Events in, commands out: the cluster runtime takes and sends the snapshot over
//! HTTP, the simulation installs its spare server; neither decides what follows.

use crate::{Change, ClusterConfig, Member, MembershipError};

/// What happened that the grow must know of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrowEvent {
    /// The change of the last [`GrowCommand::Propose`] was reported: whether it is in
    /// force, and whether its configuration was committed at all.
    Reported { in_force: bool, made: bool },
    /// The snapshot's hand-over ended: whether the new server took it.
    HandedOver { taken: bool },
}

/// What the runtime is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrowCommand {
    /// Make this change (the grow, or its undo) through the proposer (answer:
    /// [`GrowEvent::Reported`]).
    Propose(Change),
    /// Take a snapshot and hand it to the new member's server, which starts from its
    /// cut (answer: [`GrowEvent::HandedOver`]).
    HandOverSnapshot,
    /// Over (see [`GrowEnd`]).
    Finished(GrowEnd),
}

/// How a grow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrowEnd {
    /// The member is in force and took its snapshot.
    Grown,
    /// Nothing was written: the grow's own error says why.
    NotMade,
    /// The member was added, but not confirmed or not handed its snapshot, and was taken
    /// out again: it got nothing.
    Undone,
    /// The member was added and could not be taken out again (the undo's error says
    /// why): the operator removes it once the cluster can confirm the change.
    UndoFailed,
}

/// A grow of the cluster by one member, run at the controlling instance.
///
/// Rules it keeps:
/// - a member that cannot join the configuration held (its name or its place taken,
///   its origin reused) is refused before anything is asked or written;
/// - the snapshot is handed over only once the configuration adding the member is in
///   force: a new instance never pulls under a membership that may not take effect;
/// - a member added (the configuration committed) but not confirmed, or whose server
///   did not take the snapshot, is taken out again by a change that waits for the same
///   confirmations as every other (`UndoGrow`); nothing is undone that was never
///   written;
/// - the grow is over once the last change it asked for was reported, or the
///   snapshot was taken.
#[derive(Clone, Debug)]
pub struct GrowSequence {
    member: Member,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Adding,
    HandingOver,
    Undoing,
    Over(GrowEnd),
}

impl GrowSequence {
    /// Starts growing the cluster of `config` (held at the controlling instance) by
    /// `member`: refused at once if it cannot join.
    pub fn start(
        config: &ClusterConfig,
        member: Member,
    ) -> Result<(Self, Vec<GrowCommand>), MembershipError> {
        config.with_member(member.clone())?;
        let command = GrowCommand::Propose(Change::Grow(member.clone()));
        let sequence = GrowSequence {
            member,
            phase: Phase::Adding,
        };
        Ok((sequence, vec![command]))
    }

    /// The member being added.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// How it ended (none while it runs).
    pub fn end(&self) -> Option<GrowEnd> {
        match self.phase {
            Phase::Over(end) => Some(end),
            _ => None,
        }
    }

    /// Moves the grow on.
    pub fn handle(&mut self, event: GrowEvent) -> Vec<GrowCommand> {
        match (self.phase, event) {
            (Phase::Adding, GrowEvent::Reported { in_force: true, .. }) => {
                self.phase = Phase::HandingOver;
                vec![GrowCommand::HandOverSnapshot]
            }
            (Phase::Adding, GrowEvent::Reported { made: false, .. }) => {
                self.finish(GrowEnd::NotMade)
            }
            (Phase::Adding, GrowEvent::Reported { .. })
            | (Phase::HandingOver, GrowEvent::HandedOver { taken: false }) => {
                self.phase = Phase::Undoing;
                vec![GrowCommand::Propose(Change::UndoGrow {
                    name: self.member.name.clone(),
                })]
            }
            (Phase::HandingOver, GrowEvent::HandedOver { taken: true }) => {
                self.finish(GrowEnd::Grown)
            }
            (Phase::Undoing, GrowEvent::Reported { in_force, .. }) => self.finish(if in_force {
                GrowEnd::Undone
            } else {
                GrowEnd::UndoFailed
            }),
            // Answers to nothing asked: nothing to do.
            _ => Vec::new(),
        }
    }

    fn finish(&mut self, end: GrowEnd) -> Vec<GrowCommand> {
        self.phase = Phase::Over(end);
        vec![GrowCommand::Finished(end)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures;
    use crate::HlcTime;

    fn member(name: &str, origin: u64) -> Member {
        Member {
            added_at: HlcTime::ZERO,
            ..fixtures::member(name, origin, origin == 1)
        }
    }

    fn config() -> ClusterConfig {
        ClusterConfig::new("c".into(), "r".into(), "t".into(), member("a", 1))
    }

    fn reported(in_force: bool, made: bool) -> GrowEvent {
        GrowEvent::Reported { in_force, made }
    }

    #[test]
    fn the_snapshot_is_handed_over_only_once_the_member_is_in_force() {
        let (mut g, commands) = GrowSequence::start(&config(), member("b", 2)).unwrap();
        assert_eq!(
            commands,
            vec![GrowCommand::Propose(Change::Grow(member("b", 2)))]
        );
        // A hand-over's end before it was asked for means nothing.
        assert!(g.handle(GrowEvent::HandedOver { taken: true }).is_empty());
        assert_eq!(
            g.handle(reported(true, true)),
            vec![GrowCommand::HandOverSnapshot]
        );
        assert_eq!(
            g.handle(GrowEvent::HandedOver { taken: true }),
            vec![GrowCommand::Finished(GrowEnd::Grown)]
        );
        assert_eq!(g.end(), Some(GrowEnd::Grown));
    }

    #[test]
    fn a_grow_not_written_is_not_undone_and_one_written_but_not_confirmed_is() {
        let (mut g, _) = GrowSequence::start(&config(), member("b", 2)).unwrap();
        assert_eq!(
            g.handle(reported(false, false)),
            vec![GrowCommand::Finished(GrowEnd::NotMade)]
        );
        let (mut g, _) = GrowSequence::start(&config(), member("b", 2)).unwrap();
        let undo = GrowCommand::Propose(Change::UndoGrow { name: "b".into() });
        assert_eq!(g.handle(reported(false, true)), vec![undo.clone()]);
        assert_eq!(
            g.handle(reported(true, true)),
            vec![GrowCommand::Finished(GrowEnd::Undone)]
        );
        // A snapshot the new server refused: undone; an undo not confirmed is said.
        let (mut g, _) = GrowSequence::start(&config(), member("b", 2)).unwrap();
        g.handle(reported(true, true));
        assert_eq!(g.handle(GrowEvent::HandedOver { taken: false }), vec![undo]);
        assert_eq!(
            g.handle(reported(false, true)),
            vec![GrowCommand::Finished(GrowEnd::UndoFailed)]
        );
    }

    #[test]
    fn a_member_that_cannot_join_is_refused_before_anything_is_asked() {
        let held = config().with_member(member("b", 2)).unwrap();
        assert_eq!(
            GrowSequence::start(&held, member("b", 3)).unwrap_err(),
            MembershipError::NameTaken("b".into())
        );
        let elsewhere_same_place = Member {
            name: "x".into(),
            ..member("b", 3)
        };
        assert!(matches!(
            GrowSequence::start(&held, elsewhere_same_place).unwrap_err(),
            MembershipError::PlaceTaken { .. }
        ));
    }
}
