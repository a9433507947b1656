//! Membership changes as state machines free of I/O: the [`Proposer`] (the controlling
//! instance growing, removing, stopping, moving its role or undoing a grow, or a
//! candidate gathering votes for a new epoch) and the [`Acceptor`] (every member,
//! deciding whether to confirm a change or grant a vote, recording its promise first).
//! Events go in with the time they happened; commands come out for a runtime to carry
//! out — the server over HTTP and its repository, or the simulation in `tests/sim` over
//! an in-memory network. Nothing here opens, reads a clock or spawns: time is an input.
//!
//! The rules of consent are `promotion.rs`'s ([`decide_vote`], [`decide_confirmation`],
//! the two quorum sizes of [`ClusterConfig`]) and the configurations are
//! [`ClusterConfig`]'s (`with_member`, `without_member`, …); this module only sequences
//! them: what is asked of whom, in which order, what is written when, and when an
//! attempt is over.
//!
//! The runtime's contract:
//! - a [`Proposer`] is fed [`ProposerEvent::Tick`] no later than
//!   [`Proposer::deadline`], every answer to a question it asked (late, repeated or
//!   stale answers are fine: they are matched to the question), and the outcome of each
//!   [`ProposerCommand::Commit`];
//! - [`ProposerCommand::Commit`] is carried out atomically against the configuration
//!   held at that moment: only if it is still at `base` (otherwise the commit fails with
//!   [`MembershipError::ChangedMeanwhile`]), stamping the change with the commit's time;
//! - the proposer's own instance is asked like every other member, through its
//!   [`Acceptor`] (so a controlling instance that granted a newer epoch stops changing
//!   the configuration at once);
//! - an [`Acceptor`]'s commands are carried out in order, and each
//!   [`AcceptorCommand::PersistPromise`] and [`AcceptorCommand::Adopt`] is durable
//!   before anything after it (the answer) leaves the instance.

use crate::cluster::{ClusterConfig, CommitDefaults, Member, MembershipError};
use crate::promotion::{
    decide_confirmation, decide_vote, ConfigPosition, ConsentRefusal, Promise, VoteRequest,
};
use crate::stamp::{HlcTime, OriginId};
use std::collections::BTreeMap;

/// How long the members have to answer one round of questions (a member that has not
/// answered by then counts as refusing; ms).
pub const ASK_WITHIN_MS: u64 = 6_000;
/// How long after a member said it does not hold the configuration yet it is asked
/// again (it is on its way to it; ms).
pub const ASK_AGAIN_MS: u64 = 100;
/// Rounds of votes a candidate asks for, each above the newest epoch a refusal named.
pub const PROMOTION_ATTEMPTS: u32 = 3;

/// A change of the configuration, made by its controlling instance (every variant but
/// [`Change::Promote`]) or by a candidate a majority granted a new epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new member; its `added_at` is the commit's time, whatever it says here.
    Grow(Member),
    Remove {
        name: String,
    },
    /// A removal (by force) of a member that may hold transactions of its own no
    /// remaining member has: it goes on the hand-over list (see
    /// [`ClusterConfig::handing_over`]); `promised` is its last promise known here.
    RemoveHandingOver {
        name: String,
        promised: HlcTime,
    },
    /// A removed member handed over what it held, or the wait for it ended.
    EndHandOver {
        origin: OriginId,
    },
    /// Takes out a member a failed grow added: a removal, confirmed like any change.
    UndoGrow {
        name: String,
    },
    MoveControlling {
        to: String,
    },
    Stop {
        name: String,
        stopped: bool,
    },
    Settings(CommitDefaults),
    /// Member `name` controls the new `epoch` (a candidate's own change).
    Promote {
        name: String,
        epoch: u64,
    },
}

impl Change {
    /// The configuration this change makes of `current`, stamped at `time`.
    pub fn apply(
        &self,
        current: &ClusterConfig,
        time: HlcTime,
    ) -> Result<ClusterConfig, MembershipError> {
        match self {
            Change::Grow(member) => current.with_member(Member {
                added_at: time,
                ..member.clone()
            }),
            Change::Remove { name } | Change::UndoGrow { name } => {
                current.without_member(name).map(|(next, _)| next)
            }
            Change::RemoveHandingOver { name, promised } => current
                .without_member_handing_over(name, *promised, time)
                .map(|(next, _)| next),
            Change::EndHandOver { origin } => current.with_hand_over_ended(*origin),
            Change::MoveControlling { to } => current.with_controlling_moved(to),
            Change::Stop { name, stopped } => current.with_stopped(name, *stopped),
            Change::Settings(settings) => current.with_settings(settings),
            Change::Promote { name, epoch } => current.with_promoted(name, *epoch),
        }
    }
}

/// Why one member did not consent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Withheld {
    /// It answered, and refused.
    #[error(transparent)]
    Refused(ConsentRefusal),
    /// It could not be asked, or its answer could not be read.
    #[error("{0}")]
    Failed(String),
}

/// A question a proposer asks: an answer names the one it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Question {
    /// Do you hold the configuration at this position (or a later one of its epoch),
    /// having promised no newer epoch?
    Confirm(ConfigPosition),
    /// Do you grant this candidate this epoch?
    Vote(VoteRequest),
}

/// Something that happened to a proposer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposerEvent {
    /// Time passed.
    Tick,
    /// Member `from` answered `question`.
    Answer {
        from: OriginId,
        question: Question,
        answer: Result<(), Withheld>,
    },
    /// The commit asked for was made: this is the configuration now held.
    Committed(ClusterConfig),
    /// The commit asked for was not made.
    CommitFailed(CommitError),
}

/// Why a runtime did not make a commit it was asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The change cannot be made of the configuration held (it moved on meanwhile, …).
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The instance takes no local writes now (expired, removed, awaiting its peers
    /// after a lost tail, …): the reason.
    #[error("this instance takes no writes now: {0}")]
    NotWritable(String),
}

/// What the runtime is to do for a proposer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposerCommand {
    /// Ask member `to` the question (the proposer's own instance too).
    Ask { to: OriginId, question: Question },
    /// Commit `change` as the next configuration, if the one held is still at `base`.
    Commit {
        base: ConfigPosition,
        change: Change,
    },
    /// The attempt is over: the configuration now in force, or why not. Nothing more
    /// comes out of this proposer.
    Report(Result<ClusterConfig, ProposalError>),
}

/// Why a change or a promotion did not take effect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error(transparent)]
    Commit(CommitError),
    #[error("this instance is not a member of its configuration")]
    NotAMember,
    /// A promotion is made by [`Proposer::promote`], with votes, never as a change.
    #[error("a promotion needs votes: it is no change of the controlling instance")]
    PromotionAsChange,
    #[error("'{0}' is the controlling instance already")]
    AlreadyControlling(String),
    /// The member the role would move to was away longer than the log is kept, as this
    /// instance's view knows: it must be removed and grown again, never take the role.
    #[error("instance '{0}' was away longer than the log is kept (expired): it cannot take the controlling role; remove it and grow it again")]
    TargetExpired(String),
    /// Its own instance promised or holds a newer epoch: another member controls now.
    #[error("another member controls the cluster now: this instance says {0}")]
    Superseded(ConsentRefusal),
    #[error("the configuration change cannot be made now: nothing was changed; it needs {needed} of the {members} members of {position} to confirm it, {confirmed} did ({refusals})")]
    CannotChangeNow {
        position: ConfigPosition,
        members: usize,
        needed: usize,
        confirmed: usize,
        refusals: String,
    },
    #[error("the configuration change cannot be made now: nothing was changed; {position} is not in force yet: it needs {needed} of the members of the configuration it was made of to hold it, {confirmed} did ({refusals})")]
    BaseNotInForce {
        position: ConfigPosition,
        needed: usize,
        confirmed: usize,
        refusals: String,
    },
    #[error("the configuration change was made but is not confirmed: it takes effect only if enough members receive it before another member is promoted; it needs {needed} of the {members} members of {base} to confirm {position}, {confirmed} did ({refusals})")]
    NotConfirmed {
        base: ConfigPosition,
        position: ConfigPosition,
        members: usize,
        needed: usize,
        confirmed: usize,
        refusals: String,
    },
    /// The member the role is handed to did not confirm (it must hold the
    /// configuration before and after the change).
    #[error("the controlling role cannot be handed to '{name}': it did not confirm configuration {position} ({why}); {}", if *made { "the change was made but is not confirmed: it takes effect only if enough members receive it before another member is promoted" } else { "nothing was changed" })]
    TargetCannotConfirm {
        name: String,
        position: ConfigPosition,
        /// Whether the change was committed (the round was the new configuration's).
        made: bool,
        why: String,
    },
    #[error("the promotion to epoch {epoch} needs {needed} of the {members} members of {position} to grant it, {granted} did ({refusals}); nothing was changed")]
    NotGranted {
        epoch: u64,
        position: ConfigPosition,
        members: usize,
        needed: usize,
        granted: usize,
        refusals: String,
    },
    #[error("the runtime committed {got} where {expected} was due")]
    UnexpectedCommit {
        expected: ConfigPosition,
        got: ConfigPosition,
    },
}

/// What a proposer is after.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Goal {
    Change(Change),
    Promote { name: String },
}

#[derive(Clone, Debug)]
enum Phase {
    /// Asking `question` of the members of `base`: the answers so far (the last of
    /// each member), and when to ask again those that did not hold it yet.
    Asking {
        question: Question,
        answers: BTreeMap<OriginId, Result<(), Withheld>>,
        again: BTreeMap<OriginId, u64>,
        deadline: u64,
    },
    /// The commit is with the runtime.
    Committing {
        expected: ConfigPosition,
    },
    Done,
}

/// One attempt to change the configuration, or to be promoted.
///
/// Rules it keeps:
/// - a change is made only by the controlling instance of `base` (the configuration it
///   holds), and only once a change quorum of `base`'s members (itself included)
///   confirmed `base` itself, and so did a change quorum of the configuration `base`
///   was made of (counted among `base`'s members): `base` is in force. Nothing is
///   written while too few can consent;
/// - the change is committed against `base` only, and only where local writes are
///   taken (the runtime's commit refuses otherwise, [`CommitError::NotWritable`]) (a configuration that moved on
///   meanwhile fails the commit), raising its version by one;
/// - it is reported in force only once a change quorum of `base`'s members confirmed
///   the new position; otherwise it is reported made but not confirmed (it takes effect
///   only if enough members receive it before another member is promoted);
/// - its own instance's refusal to confirm because it promised or holds a newer epoch
///   ends the attempt at once: another member controls the cluster;
/// - the controlling role moves only to a member that confirms both the configuration
///   held and the one naming it, and never to one the proposer's view expired
///   (refused before anything is asked: [`ProposalError::TargetExpired`]);
/// - a member that said it does not hold the configuration yet is asked again every
///   [`ASK_AGAIN_MS`]; one that has not consented within [`ASK_WITHIN_MS`] of the round's
///   start counts as refusing, and a round ends as soon as its quorum is met or can no
///   longer be;
/// - a promotion asks every member of `base` for epoch `max(base epoch, promised) + 1`,
///   and commits [`Change::Promote`] against `base` once a promotion quorum (a strict
///   majority) granted it; a refusal naming a newer epoch starts a new round above it,
///   [`PROMOTION_ATTEMPTS`] rounds at most;
/// - it reports exactly once, and then issues nothing more.
#[derive(Clone, Debug)]
pub struct Proposer {
    local: OriginId,
    base: ClusterConfig,
    goal: Goal,
    phase: Phase,
    /// The configuration committed (a change's, between commit and confirmations).
    made: Option<ClusterConfig>,
    attempts: u32,
}

impl Proposer {
    /// A change by this instance (`local`) of the configuration it holds (`base`), by
    /// an instance that knows of no expired member (see
    /// [`Proposer::change_knowing_expired`], which a runtime with a view calls).
    /// The first commands ask for the confirmations of `base`.
    pub fn change(
        local: OriginId,
        base: ClusterConfig,
        change: Change,
        now: u64,
    ) -> (Self, Vec<ProposerCommand>) {
        Self::change_knowing_expired(local, base, change, &[], now)
    }

    /// A change by this instance (`local`) of the configuration it holds (`base`),
    /// whose view expired the members `expired` (`ClusterView::expired_members`): the
    /// role is never moved to one of them ([`ProposalError::TargetExpired`], reported
    /// at once: nothing is asked or written). The first commands ask for the
    /// confirmations of `base`.
    pub fn change_knowing_expired(
        local: OriginId,
        base: ClusterConfig,
        change: Change,
        expired: &[OriginId],
        now: u64,
    ) -> (Self, Vec<ProposerCommand>) {
        let mut proposer = Proposer {
            local,
            goal: Goal::Change(change.clone()),
            phase: Phase::Done,
            made: None,
            attempts: 0,
            base,
        };
        let refused = match proposer.base.controlling() {
            _ if matches!(change, Change::Promote { .. }) => Some(ProposalError::PromotionAsChange),
            Some(c) if c.origin == local => None,
            Some(c) => Some(MembershipError::NotControlling(c.name.clone()).into()),
            None => Some(ProposalError::NotAMember),
        };
        // A change that cannot be made of `base` is refused before anyone is asked.
        let refused = refused.or_else(|| {
            change
                .apply(&proposer.base, HlcTime::ZERO)
                .err()
                .map(Into::into)
        });
        // An expired member may lack what the log no longer keeps, and refuses writes
        // itself: the cluster would be left controlled by one that must be grown again.
        let refused = refused.or_else(|| match &change {
            Change::MoveControlling { to } => proposer
                .base
                .member_named(to)
                .filter(|m| expired.contains(&m.origin))
                .map(|m| ProposalError::TargetExpired(m.name.clone())),
            _ => None,
        });
        if let Some(error) = refused {
            let report = proposer.report(Err(error));
            return (proposer, vec![report]);
        }
        let question = Question::Confirm(proposer.base.position());
        let commands = proposer.start_round(question, now);
        (proposer, commands)
    }

    /// A promotion of this instance (`local`), holding `base` and having promised
    /// `promised`, to controlling instance of a new epoch.
    pub fn promote(
        local: OriginId,
        base: ClusterConfig,
        promised: Option<Promise>,
        now: u64,
    ) -> (Self, Vec<ProposerCommand>) {
        let own = base.member(local).cloned();
        let mut proposer = Proposer {
            local,
            goal: Goal::Promote {
                name: own.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
            },
            phase: Phase::Done,
            made: None,
            attempts: 0,
            base,
        };
        let promised_epoch = promised.map(|p| p.epoch).unwrap_or_default();
        let refused = match own {
            None => Some(ProposalError::NotAMember),
            // One that granted a newer epoch to another may have been superseded: it
            // may ask again (to take the role back).
            Some(m) if m.controlling && promised_epoch <= proposer.base.epoch => {
                Some(ProposalError::AlreadyControlling(m.name))
            }
            Some(_) => None,
        };
        if let Some(error) = refused {
            let report = proposer.report(Err(error));
            return (proposer, vec![report]);
        }
        let epoch = proposer.base.epoch.max(promised_epoch) + 1;
        let commands = proposer.vote_round(epoch, now);
        (proposer, commands)
    }

    /// When [`ProposerEvent::Tick`] is due, if ever.
    pub fn deadline(&self) -> Option<u64> {
        match &self.phase {
            Phase::Asking {
                again, deadline, ..
            } => Some(
                again
                    .values()
                    .copied()
                    .min()
                    .map_or(*deadline, |a| a.min(*deadline)),
            ),
            _ => None,
        }
    }

    /// Whether it reported (nothing more will come out of it).
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The configuration it started from.
    pub fn base(&self) -> &ClusterConfig {
        &self.base
    }

    /// The configuration it committed, if it did (in force or not).
    pub fn made(&self) -> Option<&ClusterConfig> {
        self.made.as_ref()
    }

    /// Feeds one event; returns the commands to carry out, in order.
    pub fn handle(&mut self, now: u64, event: ProposerEvent) -> Vec<ProposerCommand> {
        match event {
            ProposerEvent::Tick => self.tick(now),
            ProposerEvent::Answer {
                from,
                question,
                answer,
            } => self.answer(now, from, question, answer),
            ProposerEvent::Committed(config) => self.committed(now, config),
            ProposerEvent::CommitFailed(error) => match self.phase {
                Phase::Committing { .. } => vec![self.report(Err(match error {
                    CommitError::Membership(e) => ProposalError::Membership(e),
                    e => ProposalError::Commit(e),
                }))],
                _ => Vec::new(),
            },
        }
    }

    fn vote_round(&mut self, epoch: u64, now: u64) -> Vec<ProposerCommand> {
        self.attempts += 1;
        let question = Question::Vote(VoteRequest {
            epoch,
            candidate: self.local,
            position: self.base.position(),
        });
        self.start_round(question, now)
    }

    fn start_round(&mut self, question: Question, now: u64) -> Vec<ProposerCommand> {
        self.phase = Phase::Asking {
            question,
            answers: BTreeMap::new(),
            again: BTreeMap::new(),
            deadline: now + ASK_WITHIN_MS,
        };
        self.base
            .members
            .iter()
            .map(|m| ProposerCommand::Ask {
                to: m.origin,
                question,
            })
            .collect()
    }

    fn needed(&self, question: &Question) -> usize {
        match question {
            Question::Confirm(_) => self.base.change_quorum(),
            Question::Vote(_) => self.base.promotion_quorum(),
        }
    }

    fn tick(&mut self, now: u64) -> Vec<ProposerCommand> {
        let Phase::Asking {
            question,
            again,
            deadline,
            ..
        } = &mut self.phase
        else {
            return Vec::new();
        };
        if now >= *deadline {
            return self.round_over(now);
        }
        let question = *question;
        let due: Vec<OriginId> = again
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(o, _)| *o)
            .collect();
        due.into_iter()
            .map(|to| {
                again.remove(&to);
                ProposerCommand::Ask { to, question }
            })
            .collect()
    }

    fn answer(
        &mut self,
        now: u64,
        from: OriginId,
        asked: Question,
        answer: Result<(), Withheld>,
    ) -> Vec<ProposerCommand> {
        let local = self.local;
        let is_member = self.base.is_member(from);
        let Phase::Asking {
            question,
            answers,
            again,
            ..
        } = &mut self.phase
        else {
            return Vec::new();
        };
        // Answers to an earlier round, or from no member of `base`, count for nothing.
        if asked != *question || !is_member {
            return Vec::new();
        }
        if from == local {
            if let (Question::Confirm(_), Err(Withheld::Refused(refusal))) = (&asked, &answer) {
                if matches!(
                    refusal,
                    ConsentRefusal::Promised { .. } | ConsentRefusal::Superseded { .. }
                ) {
                    let refusal = refusal.clone();
                    return vec![self.report(Err(ProposalError::Superseded(refusal)))];
                }
            }
        }
        // A consent, once given, stands (a repeated answer may arrive after a later
        // `NotYet` of a re-ask sent earlier).
        if answers.get(&from).is_some_and(|a| a.is_ok()) {
            return Vec::new();
        }
        if matches!(
            answer,
            Err(Withheld::Refused(ConsentRefusal::NotYet { .. }))
        ) {
            again.insert(from, now + ASK_AGAIN_MS);
        } else {
            again.remove(&from);
        }
        answers.insert(from, answer);
        let (met, impossible) = self.tally();
        if met {
            self.quorum_met(asked)
        } else if impossible {
            self.round_over(now)
        } else {
            Vec::new()
        }
    }

    /// The quorums the current round needs: who counts (`None`: every member of
    /// `base`) and how many. Before a change, also a change quorum of the configuration
    /// `base` was made of, among its members that are in `base`: `base` must be in
    /// force before it is changed (a change quorum of `base` alone need not meet a
    /// promotion quorum of the configuration before it when the number of members
    /// changed: the simulation found a change of an unconfirmed removal from three to
    /// two and a promotion from before it both taking effect).
    fn quorums(&self, question: &Question) -> Vec<(Option<Vec<OriginId>>, usize)> {
        let mut quorums = vec![(None, self.needed(question))];
        if *question == Question::Confirm(self.base.position()) {
            if let Some(needed) = self.base.made_of_change_quorum() {
                quorums.push((Some(self.base.made_of.clone()), needed));
            }
        }
        if let (Question::Confirm(_), Some(target)) = (question, self.role_target()) {
            quorums.push((Some(vec![target.origin]), 1));
        }
        quorums
    }

    /// The member a [`Change::MoveControlling`] hands the role to: it must confirm
    /// both the configuration held and the one naming it (a role handed to a member
    /// that cannot be reached, is expired or behind would leave the cluster with a
    /// controlling instance that does not know it is one).
    fn role_target(&self) -> Option<&Member> {
        match &self.goal {
            Goal::Change(Change::MoveControlling { to }) => self.base.member_named(to),
            _ => None,
        }
    }

    /// Whether the round's quorums are all met, and whether one can no longer be.
    fn tally(&self) -> (bool, bool) {
        let Phase::Asking {
            question,
            answers,
            again,
            ..
        } = &self.phase
        else {
            return (false, false);
        };
        let (mut met, mut impossible) = (true, false);
        for (among, needed) in self.quorums(question) {
            let counts = |o: &OriginId| among.as_ref().is_none_or(|a| a.contains(o));
            let eligible = self.base.members.iter().filter(|m| counts(&m.origin));
            let (mut consented, mut open) = (0, 0);
            for m in eligible {
                match answers.get(&m.origin) {
                    Some(Ok(())) => consented += 1,
                    // Not asked back yet, or to be asked again: may still consent.
                    None => open += 1,
                    Some(Err(_)) if again.contains_key(&m.origin) => open += 1,
                    Some(Err(_)) => {}
                }
            }
            met &= consented >= needed;
            impossible |= consented + open < needed;
        }
        (met, impossible)
    }

    fn quorum_met(&mut self, question: Question) -> Vec<ProposerCommand> {
        match (question, &self.goal) {
            (Question::Confirm(wanted), Goal::Change(change)) if wanted == self.base.position() => {
                let change = change.clone();
                self.phase = Phase::Committing {
                    expected: self.next_position(None),
                };
                vec![ProposerCommand::Commit {
                    base: self.base.position(),
                    change,
                }]
            }
            (Question::Confirm(_), _) => {
                let made = self.made.clone().expect("confirmed after the commit");
                vec![self.report(Ok(made))]
            }
            (Question::Vote(request), Goal::Promote { name }) => {
                let change = Change::Promote {
                    name: name.clone(),
                    epoch: request.epoch,
                };
                self.phase = Phase::Committing {
                    expected: self.next_position(Some(request.epoch)),
                };
                vec![ProposerCommand::Commit {
                    base: self.base.position(),
                    change,
                }]
            }
            (Question::Vote(_), Goal::Change(_)) => unreachable!("a change asks for no votes"),
        }
    }

    fn next_position(&self, epoch: Option<u64>) -> ConfigPosition {
        ConfigPosition {
            epoch: epoch.unwrap_or(self.base.epoch),
            version: self.base.version + 1,
        }
    }

    fn committed(&mut self, now: u64, config: ClusterConfig) -> Vec<ProposerCommand> {
        let Phase::Committing { expected } = self.phase else {
            return Vec::new();
        };
        if config.position() != expected {
            let got = config.position();
            return vec![self.report(Err(ProposalError::UnexpectedCommit { expected, got }))];
        }
        match self.goal {
            Goal::Promote { .. } => vec![self.report(Ok(config))],
            Goal::Change(_) => {
                self.made = Some(config);
                self.start_round(Question::Confirm(expected), now)
            }
        }
    }

    /// The round ended without its quorum.
    fn round_over(&mut self, now: u64) -> Vec<ProposerCommand> {
        let Phase::Asking {
            question, answers, ..
        } = &self.phase
        else {
            return Vec::new();
        };
        let question = *question;
        let needed = self.needed(&question);
        let consented = answers.values().filter(|a| a.is_ok()).count();
        let name = |o: &OriginId| {
            self.base
                .member(*o)
                .map_or_else(|| o.to_string(), |m| m.name.clone())
        };
        let mut refusals: Vec<String> = answers
            .iter()
            .filter_map(|(o, a)| a.as_ref().err().map(|why| format!("{}: {why}", name(o))))
            .collect();
        refusals.extend(
            self.base
                .members
                .iter()
                .filter(|m| !answers.contains_key(&m.origin))
                .map(|m| format!("{}: no answer", m.name)),
        );
        let refusals = refusals.join("; ");
        let (position, members) = (self.base.position(), self.base.members.len());
        let made_of = self.base.made_of_change_quorum().map(|needed| {
            let confirmed = self
                .base
                .made_of
                .iter()
                .filter(|o| self.base.is_member(**o) && answers.get(o).is_some_and(|a| a.is_ok()))
                .count();
            (needed, confirmed)
        });
        // The member the role goes to: why it did not confirm, and whether it said so
        // (or could not be asked) rather than not answering yet.
        let target_withheld = self
            .role_target()
            .and_then(|t| match answers.get(&t.origin) {
                Some(Ok(())) => None,
                Some(Err(why)) => Some((t.name.clone(), why.to_string(), true)),
                None => Some((t.name.clone(), "no answer".to_owned(), false)),
            });
        let target_blocks = target_withheld
            .as_ref()
            .is_some_and(|(_, _, answered)| *answered || consented >= needed);
        let error = match question {
            Question::Confirm(wanted) if target_blocks => {
                let (name, why, _) = target_withheld.expect("checked");
                ProposalError::TargetCannotConfirm {
                    name,
                    position: wanted,
                    made: wanted != position,
                    why,
                }
            }
            Question::Confirm(wanted)
                if wanted == position
                    && consented >= needed
                    && made_of.is_some_and(|(n, c)| c < n) =>
            {
                let (needed, confirmed) = made_of.expect("checked");
                ProposalError::BaseNotInForce {
                    position,
                    needed,
                    confirmed,
                    refusals,
                }
            }
            Question::Confirm(wanted) if wanted == position => ProposalError::CannotChangeNow {
                position,
                members,
                needed,
                confirmed: consented,
                refusals,
            },
            Question::Confirm(wanted) => ProposalError::NotConfirmed {
                base: position,
                position: wanted,
                members,
                needed,
                confirmed: consented,
                refusals,
            },
            Question::Vote(request) => {
                // A member that knows a newer epoch (a failed attempt elsewhere) says so:
                // ask again above it, a few times at most.
                let known = answers
                    .values()
                    .filter_map(|a| match a {
                        Err(Withheld::Refused(ConsentRefusal::StaleEpoch { known })) => {
                            Some(*known)
                        }
                        Err(Withheld::Refused(ConsentRefusal::PromisedOther { epoch, .. })) => {
                            Some(*epoch)
                        }
                        _ => None,
                    })
                    .max();
                if let Some(known) = known.filter(|k| *k >= request.epoch) {
                    if self.attempts < PROMOTION_ATTEMPTS {
                        return self.vote_round(known + 1, now);
                    }
                }
                ProposalError::NotGranted {
                    epoch: request.epoch,
                    position,
                    members,
                    needed,
                    granted: consented,
                    refusals,
                }
            }
        };
        vec![self.report(Err(error))]
    }

    fn report(&mut self, outcome: Result<ClusterConfig, ProposalError>) -> ProposerCommand {
        self.phase = Phase::Done;
        ProposerCommand::Report(outcome)
    }
}

/// What the runtime is to do for an acceptor, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptorCommand {
    /// Record this promise durably (before the answer leaves).
    PersistPromise(Promise),
    /// Take this configuration, durably: it replaces the one held.
    Adopt(Box<ClusterConfig>),
    /// Record, durably, that this instance was removed (the configuration adopted
    /// has it no more): it takes no writes from now on.
    MarkRemoved,
    /// Send this answer to the question asked.
    Answer(Result<(), ConsentRefusal>),
}

/// A member's side of membership: the configuration it holds and the promise it made,
/// and how it answers votes and confirmations and takes configurations it hears of.
///
/// Rules it keeps:
/// - a configuration is taken only if it is newer (epoch first, then version) than the
///   one held, so the configurations an instance holds move forward only; one without
///   this instance means it was removed, for good;
/// - a vote is granted or refused by [`decide_vote`] against the configuration and
///   promise held at that moment; a grant's promise is persisted before the answer,
///   so it survives a crash right after it (a retried request from the same candidate
///   for the same epoch is granted again, without writing);
/// - a confirmation is decided by [`decide_confirmation`] and writes nothing;
/// - an acceptor is rebuilt after a restart from what was persisted (configuration and
///   promise): nothing it answered is forgotten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptor {
    local: OriginId,
    config: ClusterConfig,
    promised: Option<Promise>,
    removed: bool,
}

impl Acceptor {
    /// From what the instance persisted.
    pub fn new(local: OriginId, config: ClusterConfig, promised: Option<Promise>) -> Self {
        let removed = !config.is_member(local);
        Acceptor {
            local,
            config,
            promised,
            removed,
        }
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn promised(&self) -> Option<Promise> {
        self.promised
    }

    /// Whether a configuration without this instance was taken.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// A candidate asks for this member's vote.
    pub fn on_vote(&mut self, request: &VoteRequest) -> Vec<AcceptorCommand> {
        match decide_vote(&self.config, self.promised, request) {
            Ok(promise) if self.promised == Some(promise) => {
                vec![AcceptorCommand::Answer(Ok(()))]
            }
            Ok(promise) => {
                self.promised = Some(promise);
                vec![
                    AcceptorCommand::PersistPromise(promise),
                    AcceptorCommand::Answer(Ok(())),
                ]
            }
            Err(refusal) => vec![AcceptorCommand::Answer(Err(refusal))],
        }
    }

    /// The controlling instance asks whether this member confirms the change that made
    /// configuration `wanted`.
    pub fn on_confirm(&self, wanted: ConfigPosition) -> Vec<AcceptorCommand> {
        vec![AcceptorCommand::Answer(decide_confirmation(
            &self.config,
            self.promised,
            wanted,
        ))]
    }

    /// A configuration arrived (a configuration transaction pulled, a change told).
    pub fn on_config(&mut self, config: &ClusterConfig) -> Vec<AcceptorCommand> {
        if !config.supersedes(&self.config) {
            return Vec::new();
        }
        self.config = config.clone();
        let mut commands = vec![AcceptorCommand::Adopt(Box::new(config.clone()))];
        if !self.removed && !config.is_member(self.local) {
            self.removed = true;
            commands.push(AcceptorCommand::MarkRemoved);
        }
        commands
    }

    /// The question a proposer asked, answered: the commands to carry out (the last
    /// one the answer).
    pub fn on_question(&mut self, question: &Question) -> Vec<AcceptorCommand> {
        match question {
            Question::Confirm(wanted) => self.on_confirm(*wanted),
            Question::Vote(request) => self.on_vote(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::{member, three};

    fn asks(commands: &[ProposerCommand]) -> Vec<(u64, Question)> {
        commands
            .iter()
            .filter_map(|c| match c {
                ProposerCommand::Ask { to, question } => Some((to.0, *question)),
                _ => None,
            })
            .collect()
    }

    fn yes(from: u64, question: Question) -> ProposerEvent {
        ProposerEvent::Answer {
            from: OriginId(from),
            question,
            answer: Ok(()),
        }
    }

    fn no(from: u64, question: Question, refusal: ConsentRefusal) -> ProposerEvent {
        ProposerEvent::Answer {
            from: OriginId(from),
            question,
            answer: Err(Withheld::Refused(refusal)),
        }
    }

    fn reported(commands: &[ProposerCommand]) -> Option<&Result<ClusterConfig, ProposalError>> {
        commands.iter().find_map(|c| match c {
            ProposerCommand::Report(r) => Some(r),
            _ => None,
        })
    }

    #[test]
    fn the_role_moves_only_to_a_member_that_confirms_before_and_after() {
        let base = three();
        let to_c = Change::MoveControlling { to: "c".into() };
        let before = Question::Confirm(base.position());
        // a and b consent (a change quorum), c cannot be reached: nothing is written.
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), to_c.clone(), 0);
        assert!(p.handle(1, yes(1, before)).is_empty());
        assert!(p.handle(2, yes(2, before)).is_empty(), "waits for c");
        let failed = ProposerEvent::Answer {
            from: OriginId(3),
            question: before,
            answer: Err(Withheld::Failed("connection refused".into())),
        };
        match reported(&p.handle(3, failed)) {
            Some(Err(ProposalError::TargetCannotConfirm { name, made, .. })) => {
                assert_eq!((name.as_str(), *made), ("c", false));
            }
            other => panic!("{other:?}"),
        }
        // c says no before b answered: the role cannot go there, whatever b says.
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), to_c.clone(), 0);
        p.handle(1, yes(1, before));
        let failed = ProposerEvent::Answer {
            from: OriginId(3),
            question: before,
            answer: Err(Withheld::Failed("connection refused".into())),
        };
        assert!(matches!(
            reported(&p.handle(2, failed)),
            Some(Err(ProposalError::TargetCannotConfirm { made: false, .. }))
        ));
        // c consents: committed, then reported once c holds the new configuration too.
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), to_c.clone(), 0);
        assert!(p.handle(1, yes(1, before)).is_empty());
        assert!(p.handle(2, yes(3, before)).len() == 1, "a and c: committed");
        let made = to_c.apply(&base, HlcTime(9)).unwrap();
        let after = Question::Confirm(made.position());
        p.handle(4, ProposerEvent::Committed(made.clone()));
        assert!(p.handle(5, yes(1, after)).is_empty());
        assert!(p.handle(6, yes(2, after)).is_empty(), "c has not confirmed");
        match reported(&p.handle(ASK_WITHIN_MS + 10, ProposerEvent::Tick)) {
            Some(Err(ProposalError::TargetCannotConfirm { made: true, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_role_is_never_moved_to_a_member_the_view_expired() {
        let base = three();
        let to_c = Change::MoveControlling { to: "c".into() };
        let (p, commands) =
            Proposer::change_knowing_expired(OriginId(1), base.clone(), to_c, &[OriginId(3)], 0);
        assert_eq!(
            commands,
            vec![ProposerCommand::Report(Err(ProposalError::TargetExpired(
                "c".into()
            )))],
            "refused before anyone is asked"
        );
        assert!(p.is_done());
        // Another member's expiry does not stand in the way; nor does c's of any
        // other change (removing it is how it goes).
        let to_b = Change::MoveControlling { to: "b".into() };
        let (_, commands) =
            Proposer::change_knowing_expired(OriginId(1), base.clone(), to_b, &[OriginId(3)], 0);
        assert_eq!(asks(&commands).len(), 3, "{commands:?}");
        let remove_c = Change::Remove { name: "c".into() };
        let (_, commands) = Proposer::change_knowing_expired(
            OriginId(1),
            base.clone(),
            remove_c,
            &[OriginId(3)],
            0,
        );
        assert_eq!(asks(&commands).len(), 3, "{commands:?}");
        // An unknown name is reported as unknown, whatever is expired.
        let to_x = Change::MoveControlling { to: "x".into() };
        let (_, commands) =
            Proposer::change_knowing_expired(OriginId(1), base, to_x, &[OriginId(3)], 0);
        assert!(
            matches!(
                reported(&commands),
                Some(Err(ProposalError::Membership(
                    MembershipError::UnknownInstance(_)
                )))
            ),
            "{commands:?}"
        );
    }

    #[test]
    fn a_change_is_committed_after_consent_and_reported_after_confirmations() {
        let base = three();
        let remove = Change::Remove { name: "c".into() };
        let (mut p, first) = Proposer::change(OriginId(1), base.clone(), remove.clone(), 0);
        let before = Question::Confirm(base.position());
        assert_eq!(asks(&first), vec![(1, before), (2, before), (3, before)]);
        assert!(p.handle(5, yes(1, before)).is_empty());
        assert_eq!(
            p.handle(6, yes(2, before)),
            vec![ProposerCommand::Commit {
                base: base.position(),
                change: remove.clone()
            }]
        );
        // A late consent of the first round counts for nothing now.
        assert!(p.handle(7, yes(3, before)).is_empty());
        let made = remove.apply(&base, HlcTime(9)).unwrap();
        let after = Question::Confirm(made.position());
        let asked = p.handle(8, ProposerEvent::Committed(made.clone()));
        assert_eq!(asks(&asked).len(), 3, "asks the members of the base, c too");
        assert!(p.handle(9, yes(1, after)).is_empty());
        // b has not received it yet: asked again a little later.
        let not_yet = ConsentRefusal::NotYet {
            ours: base.position(),
        };
        assert!(p.handle(10, no(2, after, not_yet)).is_empty());
        assert_eq!(p.deadline(), Some(10 + ASK_AGAIN_MS));
        assert_eq!(
            asks(&p.handle(10 + ASK_AGAIN_MS, ProposerEvent::Tick)),
            vec![(2, after)]
        );
        assert_eq!(
            p.handle(200, yes(2, after)),
            vec![ProposerCommand::Report(Ok(made))]
        );
        assert!(p.is_done() && p.deadline().is_none());
        assert!(p.handle(201, yes(3, after)).is_empty(), "reports once");
    }

    #[test]
    fn only_the_controlling_instance_changes_and_only_what_can_be_changed() {
        let (p, commands) =
            Proposer::change(OriginId(2), three(), Change::Remove { name: "c".into() }, 0);
        assert!(p.is_done());
        assert_eq!(
            commands,
            vec![ProposerCommand::Report(Err(
                MembershipError::NotControlling("a".into()).into()
            ))]
        );
        let (_, commands) =
            Proposer::change(OriginId(1), three(), Change::Remove { name: "x".into() }, 0);
        assert_eq!(
            reported(&commands),
            Some(&Err(MembershipError::UnknownInstance("x".into()).into()))
        );
        let (_, commands) = Proposer::change(
            OriginId(1),
            three(),
            Change::Promote {
                name: "a".into(),
                epoch: 1,
            },
            0,
        );
        assert_eq!(
            reported(&commands),
            Some(&Err(ProposalError::PromotionAsChange))
        );
    }

    #[test]
    fn nothing_is_written_when_too_few_can_consent() {
        let base = three();
        let before = Question::Confirm(base.position());
        let change = Change::Settings(CommitDefaults::default());
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), change.clone(), 0);
        p.handle(1, yes(1, before));
        let promised = ConsentRefusal::Promised {
            promised: 1,
            epoch: 0,
        };
        assert!(p.handle(2, no(2, before, promised.clone())).is_empty());
        // c's refusal makes the quorum impossible: over at once, nothing committed.
        let over = p.handle(3, no(3, before, promised));
        assert!(matches!(
            reported(&over),
            Some(Err(ProposalError::CannotChangeNow {
                needed: 2,
                confirmed: 1,
                ..
            }))
        ));
        assert!(!over
            .iter()
            .any(|c| matches!(c, ProposerCommand::Commit { .. })));
        // Silence counts as refusing once the round's time is up.
        let (mut p, _) = Proposer::change(OriginId(1), base, change, 0);
        p.handle(1, yes(1, before));
        assert!(p.handle(ASK_WITHIN_MS - 1, ProposerEvent::Tick).is_empty());
        let over = p.handle(ASK_WITHIN_MS, ProposerEvent::Tick);
        match reported(&over) {
            Some(Err(e @ ProposalError::CannotChangeNow { .. })) => {
                assert!(e.to_string().contains("b: no answer"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_change_not_confirmed_in_time_is_reported_made_but_not_in_force() {
        let base = three();
        let grow = Change::Grow(member("d", 4, false));
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), grow.clone(), 0);
        let before = Question::Confirm(base.position());
        p.handle(1, yes(1, before));
        p.handle(2, yes(3, before));
        let made = grow.apply(&base, HlcTime(5)).unwrap();
        assert_eq!(made.member_named("d").unwrap().added_at, HlcTime(5));
        p.handle(3, ProposerEvent::Committed(made.clone()));
        assert_eq!(p.made(), Some(&made));
        p.handle(4, yes(1, Question::Confirm(made.position())));
        let over = p.handle(3 + ASK_WITHIN_MS, ProposerEvent::Tick);
        assert!(
            matches!(
                reported(&over),
                Some(Err(ProposalError::NotConfirmed { confirmed: 1, .. }))
            ),
            "{over:?}"
        );
    }

    /// The removal from three to two was made but not confirmed (only a knew it): the
    /// two-member configuration's change quorum is one, but it is changed only once a
    /// change quorum of the three (two) hold it.
    #[test]
    fn a_configuration_is_changed_only_once_it_is_in_force() {
        let (base, _) = three().without_member("c").unwrap();
        assert_eq!(base.change_quorum(), 1);
        assert_eq!(base.made_of_change_quorum(), Some(2));
        let before = Question::Confirm(base.position());
        let change = Change::Settings(CommitDefaults::default());
        let (mut p, first) = Proposer::change(OriginId(1), base.clone(), change.clone(), 0);
        assert_eq!(asks(&first).len(), 2);
        assert!(
            p.handle(1, yes(1, before)).is_empty(),
            "a alone is not enough"
        );
        let not_yet = ConsentRefusal::NotYet {
            ours: three().position(),
        };
        p.handle(2, no(2, before, not_yet));
        let over = p.handle(ASK_WITHIN_MS, ProposerEvent::Tick);
        assert!(
            matches!(
                reported(&over),
                Some(Err(ProposalError::BaseNotInForce {
                    needed: 2,
                    confirmed: 1,
                    ..
                }))
            ),
            "{over:?}"
        );
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), change.clone(), 0);
        p.handle(1, yes(1, before));
        assert_eq!(
            p.handle(2, yes(2, before)),
            vec![ProposerCommand::Commit {
                base: base.position(),
                change
            }]
        );
    }

    #[test]
    fn its_own_promise_of_a_newer_epoch_ends_the_change_at_once() {
        let base = three();
        let before = Question::Confirm(base.position());
        let (mut p, _) =
            Proposer::change(OriginId(1), base, Change::Remove { name: "b".into() }, 0);
        p.handle(1, yes(2, before));
        let refusal = ConsentRefusal::Promised {
            promised: 3,
            epoch: 0,
        };
        assert_eq!(
            p.handle(2, no(1, before, refusal.clone())),
            vec![ProposerCommand::Report(Err(ProposalError::Superseded(
                refusal
            )))]
        );
    }

    #[test]
    fn a_failed_commit_or_an_unexpected_one_is_reported() {
        let base = three();
        let before = Question::Confirm(base.position());
        let change = Change::Remove { name: "b".into() };
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), change.clone(), 0);
        p.handle(1, yes(1, before));
        p.handle(1, yes(2, before));
        let failed = MembershipError::ChangedMeanwhile("moved".into());
        assert_eq!(
            p.handle(2, ProposerEvent::CommitFailed(failed.clone().into())),
            vec![ProposerCommand::Report(Err(failed.into()))]
        );
        let (mut p, _) = Proposer::change(OriginId(1), base.clone(), change, 0);
        p.handle(1, yes(1, before));
        p.handle(1, yes(2, before));
        let skipped = base
            .with_settings(&CommitDefaults::default())
            .and_then(|c| c.with_settings(&CommitDefaults::default()))
            .unwrap();
        assert!(matches!(
            reported(&p.handle(2, ProposerEvent::Committed(skipped))),
            Some(Err(ProposalError::UnexpectedCommit { .. }))
        ));
    }

    /// A promotion driven against three acceptors, as a runtime would.
    #[test]
    fn a_candidate_granted_by_a_majority_commits_its_epoch() {
        let base = three();
        let mut acceptors: Vec<Acceptor> = (1..=3)
            .map(|o| Acceptor::new(OriginId(o), base.clone(), None))
            .collect();
        let (mut p, mut pending) = Proposer::promote(OriginId(2), base.clone(), None, 0);
        // a is gone: its questions are lost.
        let mut outcome = None;
        let mut persisted = Vec::new();
        while let Some(command) = pending.first().cloned() {
            pending.remove(0);
            match command {
                ProposerCommand::Ask { to, question } if to.0 != 1 => {
                    let answer = acceptors[to.0 as usize - 1].on_question(&question);
                    for c in &answer {
                        if let AcceptorCommand::PersistPromise(promise) = c {
                            persisted.push((to.0, *promise));
                        }
                    }
                    let Some(AcceptorCommand::Answer(a)) = answer.last().cloned() else {
                        panic!("an answer comes last: {answer:?}")
                    };
                    pending.extend(p.handle(
                        1,
                        ProposerEvent::Answer {
                            from: to,
                            question,
                            answer: a.map_err(Withheld::Refused),
                        },
                    ));
                }
                ProposerCommand::Ask { .. } => {}
                ProposerCommand::Commit { base: at, change } => {
                    assert_eq!(at, base.position());
                    let config = change.apply(&base, HlcTime(7)).unwrap();
                    pending.extend(p.handle(2, ProposerEvent::Committed(config)));
                }
                ProposerCommand::Report(r) => outcome = Some(r),
            }
        }
        let promoted = outcome.unwrap().unwrap();
        assert_eq!((promoted.epoch, promoted.version), (1, base.version + 1));
        assert_eq!(promoted.controlling().unwrap().name, "b");
        let promise = Promise {
            epoch: 1,
            candidate: OriginId(2),
        };
        assert_eq!(persisted, vec![(2, promise), (3, promise)]);
        // c now refuses the old controlling instance's changes of epoch 0.
        assert_eq!(
            acceptors[2].on_confirm(base.position()),
            vec![AcceptorCommand::Answer(Err(ConsentRefusal::Promised {
                promised: 1,
                epoch: 0
            }))]
        );
    }

    #[test]
    fn a_candidate_asks_again_above_a_newer_epoch_a_few_times() {
        let base = three();
        let (mut p, first) = Proposer::promote(OriginId(2), base.clone(), None, 0);
        let Some((_, Question::Vote(request))) = asks(&first).first().copied() else {
            panic!()
        };
        assert_eq!(request.epoch, 1);
        let stale = |known| ConsentRefusal::StaleEpoch { known };
        let mut question = Question::Vote(request);
        for round in 1..=PROMOTION_ATTEMPTS {
            p.handle(1, yes(2, question));
            p.handle(1, no(1, question, stale(4 * round as u64)));
            let next = p.handle(1, no(3, question, stale(4 * round as u64)));
            if round < PROMOTION_ATTEMPTS {
                let asked = asks(&next);
                assert_eq!(asked.len(), 3, "{next:?}");
                let Question::Vote(r) = asked[0].1 else {
                    panic!()
                };
                assert_eq!(r.epoch, 4 * round as u64 + 1);
                question = asked[0].1;
            } else {
                assert!(matches!(
                    reported(&next),
                    Some(Err(ProposalError::NotGranted { granted: 1, .. }))
                ));
            }
        }
        // A controlling instance is not promoted again, unless it promised a newer
        // epoch to another.
        let (_, refused) = Proposer::promote(OriginId(1), base.clone(), None, 0);
        assert_eq!(
            reported(&refused),
            Some(&Err(ProposalError::AlreadyControlling("a".into())))
        );
        let promised = Promise {
            epoch: 2,
            candidate: OriginId(3),
        };
        let (_, asked) = Proposer::promote(OriginId(1), base, Some(promised), 0);
        assert!(matches!(
            asks(&asked)[0].1,
            Question::Vote(VoteRequest { epoch: 3, .. })
        ));
    }

    #[test]
    fn an_acceptor_persists_before_answering_and_moves_forward_only() {
        let base = three();
        let mut a = Acceptor::new(OriginId(3), base.clone(), None);
        let request = VoteRequest {
            epoch: 1,
            candidate: OriginId(2),
            position: base.position(),
        };
        let promise = Promise {
            epoch: 1,
            candidate: OriginId(2),
        };
        assert_eq!(
            a.on_vote(&request),
            vec![
                AcceptorCommand::PersistPromise(promise),
                AcceptorCommand::Answer(Ok(()))
            ]
        );
        // Retried: granted again, nothing to write.
        assert_eq!(a.on_vote(&request), vec![AcceptorCommand::Answer(Ok(()))]);
        assert_eq!(a.promised(), Some(promise));
        // Rebuilt from what was persisted, it refuses another candidate of epoch 1.
        let mut again = Acceptor::new(OriginId(3), base.clone(), a.promised());
        assert!(matches!(
            again.on_vote(&VoteRequest {
                candidate: OriginId(1),
                ..request
            })[..],
            [AcceptorCommand::Answer(Err(
                ConsentRefusal::PromisedOther { .. }
            ))]
        ));
        let newer = base.with_controlling_moved("b").unwrap();
        assert_eq!(
            again.on_config(&newer),
            vec![AcceptorCommand::Adopt(Box::new(newer.clone()))]
        );
        assert!(again.on_config(&base).is_empty(), "an older one is ignored");
        assert!(again.on_config(&newer).is_empty());
        let (without, _) = newer.without_member("c").unwrap();
        assert_eq!(
            again.on_config(&without),
            vec![
                AcceptorCommand::Adopt(Box::new(without.clone())),
                AcceptorCommand::MarkRemoved
            ]
        );
        assert!(again.is_removed());
        assert_eq!(again.config(), &without);
    }
}
