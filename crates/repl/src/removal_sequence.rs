//! The sequence of a member's removal at the controlling instance (AllegroGraph's
//! `remove`): without force, the member is asked to hold its local writes and declare
//! what it holds, the others are given the removal's timeout to hold all of it, and
//! only then is the configuration changed; by force, the change is made at once (with
//! a hand-over where the member may still hold acknowledged writes).
//!
//! Events in, commands out, as the [`crate::Proposer`] it hands the change to: the
//! cluster runtime carries the commands out over HTTP with a real clock, the
//! simulation over its network with its own; neither decides anything of its own.

use crate::{Change, ClusterView, Member, MembershipError, Unreplicated, VersionVector};

/// How much longer than the removal's timeout a member holds its writes: the
/// confirmations and the notice of its removal come after the wait (ms).
pub const HOLD_MARGIN_MS: u64 = 30_000;
/// How long the hold's answer is waited for (ms).
pub const HOLD_ANSWER_WITHIN_MS: u64 = 10_000;
/// How often what the others hold is looked at again while they catch up (ms).
pub const HOLD_LOOK_EVERY_MS: u64 = 100;

/// What the operator asked for (AllegroGraph's `force`, `timeout`, `undo-repl`, and
/// quadmesh's `hand-over`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemovalRequest {
    /// Remove it even if it may hold transactions no other member has.
    pub force: bool,
    /// How long the others are given to hold what the member declared (ms).
    pub timeout_ms: u64,
    /// Removed by force, the cluster waits for it to hand over what only it holds
    /// (false when its data is known to be gone, or it keeps it apart: `undo-repl`).
    pub hand_over: bool,
}

/// What happened that the sequence must know of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemovalEvent {
    /// Time passed (the runtime feeds one at [`RemovalSequence::deadline`]).
    Tick,
    /// The member's answer to [`RemovalCommand::Hold`]: the version vector it held once
    /// it stopped acknowledging local writes, or why it could not be asked.
    Held(Result<VersionVector, String>),
    /// The change of [`RemovalCommand::Propose`] was reported: whether it is in force,
    /// and whether its configuration was committed at all.
    Reported { in_force: bool, made: bool },
}

/// What the runtime is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemovalCommand {
    /// Ask the member to acknowledge no local write for `hold_ms` and say what it
    /// holds (answer: [`RemovalEvent::Held`]); `hold_ms == 0` releases it (no answer
    /// needed, best effort: a hold also ends by itself).
    Hold { hold_ms: u64 },
    /// Make this configuration change (through the proposer; answer:
    /// [`RemovalEvent::Reported`]).
    Propose(Change),
    /// Removing by force what may hold acknowledged writes no other member has (why):
    /// worth a warning in the log.
    ForcedDespite(String),
    /// Over: refused, nothing changed (the member takes writes again).
    Refuse(MembershipError),
    /// Over: the change was reported (its outcome is the proposer's).
    Finished,
}

/// The removal of one member, run at the controlling instance.
///
/// Rules it keeps:
/// - without force, nothing changes before the member answered the hold: one that
///   cannot be asked is not removed (the answer says it may hold acknowledged writes no
///   other member has), and one whose declared transactions the others do not all hold
///   within the timeout is not removed either;
/// - the configuration is changed only once the others hold all the member declared;
/// - a held member is released when the removal is refused, and when the change is
///   refused before its configuration was written; written but not confirmed, it may
///   still take effect, so the member stays held until its hold ends (else a write it
///   acknowledged after the release would go with it: the simulation's seed 162802);
/// - by force, the change is made at once: with a hand-over from the member's last
///   promise when asked for ([`ClusterView::forced_removal`]), plain otherwise.
#[derive(Clone, Debug)]
pub struct RemovalSequence {
    member: Member,
    request: RemovalRequest,
    phase: Phase,
    answered: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// The hold was asked for at this time.
    Asking {
        since: u64,
    },
    /// The member declared this; the others have until `until` to hold it.
    Waiting {
        declared: VersionVector,
        until: u64,
        next_look: u64,
    },
    /// The change runs; `held` if the member's writes are held for it.
    Changing {
        held: bool,
    },
    Over,
}

impl RemovalSequence {
    /// Starts removing member `name` of the configuration `view` holds: `local` is
    /// what this instance holds, `now_ms` its clock. Refused at once (nothing to do)
    /// when there is no such member.
    pub fn start(
        name: &str,
        request: RemovalRequest,
        view: &ClusterView,
        local: &VersionVector,
        now_ms: u64,
    ) -> Result<(Self, Vec<RemovalCommand>), MembershipError> {
        let member = view
            .config()
            .member_named(name)
            .cloned()
            .ok_or_else(|| MembershipError::UnknownInstance(name.to_owned()))?;
        if !request.force {
            let sequence = RemovalSequence {
                member,
                request,
                phase: Phase::Asking { since: now_ms },
                answered: false,
            };
            let hold_ms = request.timeout_ms + HOLD_MARGIN_MS;
            return Ok((sequence, vec![RemovalCommand::Hold { hold_ms }]));
        }
        let mut commands = Vec::new();
        // Its last report may predate its latest writes, or there may be none: what
        // it may lose is said, not weighed (the operator chose force).
        let verdict = view.unreplicated(member.origin, local, now_ms, crate::pull::STALL_AFTER_MS);
        if let Some(detail) = unreplicated_detail(&verdict) {
            commands.push(RemovalCommand::ForcedDespite(detail));
        }
        let change = view
            .forced_removal(name, request.hand_over)
            .unwrap_or_else(|| Change::Remove {
                name: name.to_owned(),
            });
        commands.push(RemovalCommand::Propose(change));
        let sequence = RemovalSequence {
            member,
            request,
            phase: Phase::Changing { held: false },
            answered: false,
        };
        Ok((sequence, commands))
    }

    /// The member being removed.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// Whether the change is being made (the hold and the wait are over).
    pub fn is_changing(&self) -> bool {
        matches!(self.phase, Phase::Changing { .. })
    }

    /// Whether the member's writes are held for the change being made.
    pub fn is_held_for_change(&self) -> bool {
        self.phase == Phase::Changing { held: true }
    }

    /// Whether the member answered the hold (a refusal without an answer means it
    /// could not be asked; with one, that the others did not hold what it declared).
    pub fn member_answered(&self) -> bool {
        self.answered
    }

    /// Whether the sequence is over.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// When the runtime is to feed [`RemovalEvent::Tick`] next (none: it waits for an
    /// answer or a report only).
    pub fn deadline(&self) -> Option<u64> {
        match self.phase {
            Phase::Asking { since } => Some(since + HOLD_ANSWER_WITHIN_MS),
            Phase::Waiting { next_look, .. } => Some(next_look),
            Phase::Changing { .. } | Phase::Over => None,
        }
    }

    /// Moves the removal on at time `now_ms`, `view` and `local` as in
    /// [`RemovalSequence::start`].
    pub fn handle(
        &mut self,
        now_ms: u64,
        event: RemovalEvent,
        view: &ClusterView,
        local: &VersionVector,
    ) -> Vec<RemovalCommand> {
        match (&self.phase, event) {
            (Phase::Asking { since }, RemovalEvent::Tick) => {
                if now_ms < since + HOLD_ANSWER_WITHIN_MS {
                    return Vec::new();
                }
                self.not_held("it did not answer in time".to_owned())
            }
            (Phase::Asking { .. }, RemovalEvent::Held(Err(why))) => self.not_held(why),
            (Phase::Asking { .. }, RemovalEvent::Held(Ok(declared))) => {
                self.answered = true;
                self.phase = Phase::Waiting {
                    declared,
                    until: now_ms + self.request.timeout_ms,
                    next_look: now_ms,
                };
                self.look(now_ms, view, local)
            }
            (Phase::Waiting { next_look, .. }, RemovalEvent::Tick) if now_ms >= *next_look => {
                self.look(now_ms, view, local)
            }
            (Phase::Changing { held }, RemovalEvent::Reported { in_force, made }) => {
                let release = *held && !in_force && !made;
                self.phase = Phase::Over;
                let mut commands = Vec::new();
                if release {
                    commands.push(RemovalCommand::Hold { hold_ms: 0 });
                }
                commands.push(RemovalCommand::Finished);
                commands
            }
            // Late answers, early ticks, reports of nothing asked: nothing to do.
            _ => Vec::new(),
        }
    }

    /// The member could not be held: refused (nothing to release).
    fn not_held(&mut self, why: String) -> Vec<RemovalCommand> {
        self.phase = Phase::Over;
        vec![self.refusal(&Unreplicated::Unknown(why))]
    }

    /// Whether the others hold all the member declared: then the change, else after
    /// the timeout a refusal (and the member's release), else a look again soon.
    fn look(
        &mut self,
        now_ms: u64,
        view: &ClusterView,
        local: &VersionVector,
    ) -> Vec<RemovalCommand> {
        let Phase::Waiting {
            declared, until, ..
        } = &self.phase
        else {
            return Vec::new();
        };
        let until = *until;
        let verdict = view.unreplicated_declared(self.member.origin, declared, local);
        if verdict == Unreplicated::Nothing {
            self.phase = Phase::Changing { held: true };
            return vec![RemovalCommand::Propose(Change::Remove {
                name: self.member.name.clone(),
            })];
        }
        if now_ms >= until {
            self.phase = Phase::Over;
            return vec![RemovalCommand::Hold { hold_ms: 0 }, self.refusal(&verdict)];
        }
        if let Phase::Waiting { next_look, .. } = &mut self.phase {
            *next_look = now_ms + HOLD_LOOK_EVERY_MS;
        }
        Vec::new()
    }

    fn refusal(&self, verdict: &Unreplicated) -> RemovalCommand {
        RemovalCommand::Refuse(MembershipError::Unreplicated {
            name: self.member.name.clone(),
            detail: unreplicated_detail(verdict).unwrap_or_default(),
        })
    }
}

/// What a verdict says a removal would lose, in words (none: nothing).
fn unreplicated_detail(verdict: &Unreplicated) -> Option<String> {
    match verdict {
        Unreplicated::Nothing => None,
        Unreplicated::Transactions(n) => Some(format!(
            "holds {n} transaction{} no other member has yet",
            if *n == 1 { "" } else { "s" }
        )),
        Unreplicated::Unknown(why) => Some(format!(
            "cannot be asked what it holds ({why}): it may hold acknowledged writes no other member has"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::{three, vv};
    use crate::{HlcTime, OriginId};

    fn view() -> ClusterView {
        ClusterView::new(OriginId(1), three(), 0)
    }

    fn plain() -> RemovalRequest {
        RemovalRequest {
            force: false,
            timeout_ms: 8_000,
            hand_over: true,
        }
    }

    fn refused(commands: &[RemovalCommand]) -> Option<String> {
        commands.iter().find_map(|c| match c {
            RemovalCommand::Refuse(e) => Some(e.to_string()),
            _ => None,
        })
    }

    #[test]
    fn without_force_the_member_is_held_and_removed_once_the_others_hold_what_it_declared() {
        let mut v = view();
        let local = vv(&[(1, 5)]);
        let (mut s, commands) = RemovalSequence::start("b", plain(), &v, &local, 1_000).unwrap();
        assert_eq!(
            commands,
            vec![RemovalCommand::Hold {
                hold_ms: 8_000 + HOLD_MARGIN_MS
            }]
        );
        assert!(!s.is_changing());
        // It declares two of its own the others do not hold yet: looked at again.
        let declared = vv(&[(1, 5), (2, 2)]);
        assert!(s
            .handle(1_100, RemovalEvent::Held(Ok(declared)), &v, &local)
            .is_empty());
        assert_eq!(s.deadline(), Some(1_100 + HOLD_LOOK_EVERY_MS));
        assert!(s.handle(1_150, RemovalEvent::Tick, &v, &local).is_empty());
        // c reports holding them: the change.
        v.on_heartbeat(OriginId(3), HlcTime(900), vv(&[(2, 2)]), 1_200);
        let commands = s.handle(1_200, RemovalEvent::Tick, &v, &local);
        assert_eq!(
            commands,
            vec![RemovalCommand::Propose(Change::Remove { name: "b".into() })]
        );
        assert!(s.is_held_for_change());
        assert_eq!(s.deadline(), None);
        let commands = s.handle(
            2_000,
            RemovalEvent::Reported {
                in_force: true,
                made: true,
            },
            &v,
            &local,
        );
        assert_eq!(commands, vec![RemovalCommand::Finished]);
        assert!(s.is_over());
    }

    #[test]
    fn what_the_others_do_not_hold_in_time_refuses_the_removal_and_releases_the_member() {
        let v = view();
        let local = vv(&[(1, 5)]);
        let (mut s, _) = RemovalSequence::start("b", plain(), &v, &local, 0).unwrap();
        s.handle(10, RemovalEvent::Held(Ok(vv(&[(2, 3)]))), &v, &local);
        // Looked at until the timeout, then refused at the first look past it.
        assert!(s.handle(8_009, RemovalEvent::Tick, &v, &local).is_empty());
        assert_eq!(s.deadline(), Some(8_009 + HOLD_LOOK_EVERY_MS));
        assert!(s.handle(8_010, RemovalEvent::Tick, &v, &local).is_empty());
        let commands = s.handle(8_109, RemovalEvent::Tick, &v, &local);
        assert_eq!(commands[0], RemovalCommand::Hold { hold_ms: 0 });
        let why = refused(&commands).expect("refused");
        assert!(why.contains("holds 3 transactions"), "{why}");
        assert!(s.is_over());
        // Nothing more happens.
        assert!(s.handle(9_000, RemovalEvent::Tick, &v, &local).is_empty());
    }

    #[test]
    fn a_member_that_cannot_be_held_is_not_removed_without_force() {
        let v = view();
        let local = VersionVector::new();
        let (mut s, _) = RemovalSequence::start("b", plain(), &v, &local, 0).unwrap();
        let commands = s.handle(
            5,
            RemovalEvent::Held(Err("connection refused".into())),
            &v,
            &local,
        );
        assert_eq!(commands.len(), 1, "nothing to release: {commands:?}");
        assert!(refused(&commands).unwrap().contains("connection refused"));
        // Not answered at all: refused when the answer is overdue.
        let (mut s, _) = RemovalSequence::start("b", plain(), &v, &local, 0).unwrap();
        assert!(s
            .handle(HOLD_ANSWER_WITHIN_MS - 1, RemovalEvent::Tick, &v, &local)
            .is_empty());
        let commands = s.handle(HOLD_ANSWER_WITHIN_MS, RemovalEvent::Tick, &v, &local);
        assert!(refused(&commands).unwrap().contains("did not answer"));
        // A late answer changes nothing.
        assert!(s
            .handle(
                HOLD_ANSWER_WITHIN_MS + 1,
                RemovalEvent::Held(Ok(VersionVector::new())),
                &v,
                &local
            )
            .is_empty());
    }

    #[test]
    fn a_held_member_is_released_only_if_the_change_was_never_written() {
        let v = view();
        let local = VersionVector::new();
        for (in_force, made, released) in [
            (false, false, true),
            (false, true, false),
            (true, true, false),
        ] {
            let (mut s, _) = RemovalSequence::start("b", plain(), &v, &local, 0).unwrap();
            s.handle(1, RemovalEvent::Held(Ok(VersionVector::new())), &v, &local);
            assert!(s.is_held_for_change());
            let commands = s.handle(2, RemovalEvent::Reported { in_force, made }, &v, &local);
            assert_eq!(
                commands.contains(&RemovalCommand::Hold { hold_ms: 0 }),
                released,
                "in force {in_force}, made {made}: {commands:?}"
            );
            assert_eq!(commands.last(), Some(&RemovalCommand::Finished));
        }
    }

    #[test]
    fn by_force_the_change_is_made_at_once_with_a_hand_over_when_asked() {
        let v = view();
        let local = VersionVector::new();
        let forced = RemovalRequest {
            force: true,
            ..plain()
        };
        let (s, commands) = RemovalSequence::start("c", forced, &v, &local, 0).unwrap();
        assert!(
            matches!(&commands[0], RemovalCommand::ForcedDespite(why) if why.contains("cannot be asked"))
        );
        assert_eq!(
            commands[1],
            RemovalCommand::Propose(Change::RemoveHandingOver {
                name: "c".into(),
                promised: HlcTime(3)
            })
        );
        assert!(s.is_changing() && !s.is_held_for_change());
        let without = RemovalRequest {
            hand_over: false,
            ..forced
        };
        let (_, commands) = RemovalSequence::start("c", without, &v, &local, 0).unwrap();
        assert_eq!(
            commands.last(),
            Some(&RemovalCommand::Propose(Change::Remove {
                name: "c".into()
            }))
        );
        assert_eq!(
            RemovalSequence::start("nobody", forced, &v, &local, 0).unwrap_err(),
            MembershipError::UnknownInstance("nobody".into())
        );
    }
}
