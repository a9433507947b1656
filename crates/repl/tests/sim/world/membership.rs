//! Membership in the simulated cluster, run by the engines of `repl`: every node's
//! [`Acceptor`] holds its configuration and promise (kept across crashes, as
//! `cluster.json` is), and an operator's change or promotion is a [`Proposer`] at the
//! node it was asked of (lost in a crash, as the server's request handler is). The
//! world only carries their commands out: questions and answers travel as messages
//! over the simulated network (delayed, sometimes twice, dropped by partitions and
//! crashes), a commit takes the next configuration at the proposer's node, and every
//! node sends the configuration it holds to its members every maintenance round (the
//! configuration transactions its pull streams would carry).
//!
//! During the faults, at random: the controlling instance (by the configuration it
//! holds) grows the cluster onto a spare server (the engine's `GrowSequence`: the
//! server starts empty and pulls everything once the grow is in force; a hand-over
//! that fails, or a grow not confirmed, is undone), removes a member without force
//! (the engine's `RemovalSequence`, as the cluster runtime's `membership::remove`: the
//! member is asked over the network to hold its local writes — it refuses them as
//! `leaving` from then on, for the removal's timeout plus 30 s, across crashes (the
//! server's hold, in memory, does not survive one: see ARCHITECTURE.md) — and to
//! declare its version vector; the configuration changes only once the others hold
//! all of it between them, within the timeout, else the member is released; a change
//! written but not confirmed keeps it held, since it may still take effect; a member
//! that could not be held is removed by force one time in two: with a hand-over,
//! `RemoveHandingOver`, three times in four), stops a member (the engine's
//! `StopSequence`: undone when the member does not learn it within the timeout, or
//! kept with `force`) or starts one, moves its role, or changes the settings;
//! a member removed by force with a hand-over keeps acknowledging writes until it
//! learns it was removed (as the real one does), every member pulls its own
//! transactions from it while it is listed, and the controlling instance runs the
//! engine's `decide_hand_over` every maintenance round (asking it about itself over
//! the network, telling it it was removed) and ends the wait through the engine
//! (`EndHandOver`);
//! a member that has not heard from the controlling instance for a while asks to be
//! promoted, and now and then one does so while it is still heard (an operator's
//! mistake the votes must survive). Everything the engines did is recorded as ground
//! truth ([`crate::check::Membership`]) for the checker.

use super::{World, EPOCH_MS};
use crate::check::{Adopted, Granted, InForce, Made};
use crate::model::{Repo, SimClock};
use quadmesh_repl::{
    decide_hand_over, Acceptor, AcceptorCommand, Change, ClusterConfig, ClusterView,
    CommitDefaults, CommitError, ConfigPosition, ConsentRefusal, GrowCommand, GrowEvent,
    GrowSequence, HandOverEnd, HlcTime, Member, MembershipError, ProposalError, Proposer,
    ProposerCommand, ProposerEvent, Question, RemovalCommand, RemovalEvent, RemovalRequest,
    RemovalSequence, RemovedAnswer, StopCommand, StopEnd, StopEvent, StopSequence, VersionVector,
    Withheld,
};
use std::collections::VecDeque;

/// A membership message in flight between two nodes (by index).
#[derive(Clone, Debug)]
pub enum Ctl {
    Ask {
        from: usize,
        to: usize,
        question: Question,
    },
    Answer {
        from: usize,
        to: usize,
        question: Question,
        answer: Result<(), ConsentRefusal>,
    },
    /// A configuration, and what the sender held when it sent it: the transactions
    /// before the configuration's entry in its log, which a member applies before it
    /// (see [`World::takes_config`]).
    Config {
        from: usize,
        to: usize,
        config: Box<ClusterConfig>,
        held: VersionVector,
    },
    /// `repl/membership` about the removed member itself, asked by the controlling
    /// instance during a hand-over.
    AskAbout { from: usize, to: usize },
    About {
        from: usize,
        to: usize,
        answer: RemovedAnswer,
    },
    /// `repl/hold`: hold local writes for `hold_ms` (0 releases) and answer the
    /// version vector taken once they stopped.
    Hold {
        from: usize,
        to: usize,
        hold_ms: u64,
    },
    Held {
        from: usize,
        to: usize,
        answer: Result<VersionVector, String>,
    },
    /// A stopped instance asks another member about itself (`repl/membership`); the
    /// answer carries that member's configuration and what it held (a `Config`).
    AskConfig { from: usize, to: usize },
    /// The controlling instance asks a member it stops which configuration it holds
    /// (`repl/membership`), and its answer.
    AskPosition { from: usize, to: usize },
    Position {
        from: usize,
        to: usize,
        position: ConfigPosition,
    },
}

impl Ctl {
    fn ends(&self) -> (usize, usize) {
        match self {
            Ctl::Ask { from, to, .. }
            | Ctl::Answer { from, to, .. }
            | Ctl::Config { from, to, .. }
            | Ctl::AskAbout { from, to }
            | Ctl::About { from, to, .. }
            | Ctl::Hold { from, to, .. }
            | Ctl::Held { from, to, .. }
            | Ctl::AskConfig { from, to }
            | Ctl::AskPosition { from, to }
            | Ctl::Position { from, to, .. } => (*from, *to),
        }
    }
}

/// How often a stopped instance asks the other members for their configuration (the
/// server's `STOPPED_POLL`).
pub const CONFIG_ASK_MS: u64 = 1_000;

/// The removal's and the stop's timeout (`remove`'s and `repl/stop`'s default): how
/// long the others are given to hold what the member declared, or the member to learn
/// it is stopped (ms). One operator in two passes a shorter one (`timeout`), which the
/// faults outlast more often. The sequences themselves are the engine's
/// (`RemovalSequence`, `StopSequence`); the member's hold here survives its crash (the
/// server's, in memory, does not), which is stricter.
pub const DEFAULT_TIMEOUT_MS: u64 = 8_000;

/// A membership operation a scenario starts at a given time.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// A change as the engine makes it: a removal so is one by force.
    Change {
        node: usize,
        change: Change,
    },
    /// A removal without force (the member held, what it declared waited for).
    Remove {
        node: usize,
        name: String,
    },
    /// `remove --force` with a hand-over: `RemoveHandingOver` with the member's last
    /// promise known at `node`.
    RemoveHandingOver {
        node: usize,
        name: String,
    },
    Promote {
        node: usize,
    },
}

/// What membership did in a run.
#[derive(Clone, Debug, Default)]
pub struct MembershipStats {
    pub changes_started: u64,
    pub changes_in_force: u64,
    pub removals_in_force: u64,
    pub moves_in_force: u64,
    /// Refused before anything was written (too few could consent, or the
    /// configuration held was not in force yet).
    pub changes_not_made: u64,
    /// Made, but not confirmed by a change quorum in time.
    pub changes_not_confirmed: u64,
    /// Ended because the proposer's own instance promised a newer epoch.
    pub changes_superseded: u64,
    pub promotions_started: u64,
    pub promotions_in_force: u64,
    pub promotions_not_granted: u64,
    /// Refused at once (not controlling any more, already controlling, …).
    pub refused_at_once: u64,
    /// Moves of the role to a member the node's view expired, refused by the engine.
    pub moves_refused_expired: u64,
    pub commits_failed: u64,
    /// Removals without force started (the member asked to hold its writes).
    pub removals_started: u64,
    /// Refused: the member could not be held (unreachable, no answer in time, or it
    /// did not take the caller for the controlling instance).
    pub removals_not_held: u64,
    /// Refused: the others did not hold what the member declared within the timeout.
    pub removals_unreplicated: u64,
    /// Members released after a removal refused or failed.
    pub holds_released: u64,
    /// Removals by force after the member could not be held.
    pub removals_forced: u64,
    /// Proposers lost in a crash of their node.
    pub lost_in_crash: u64,
    pub grows_in_force: u64,
    /// Grows whose snapshot could not be handed over, or not confirmed: undone.
    pub grows_undone: u64,
    /// Servers a grow handed the cluster to (they start empty and pull everything).
    pub grown_installed: u64,
    /// Configurations written removing a member by force with a hand-over.
    pub hand_overs_made: u64,
    /// Hand-overs ended in force: everything the removed member held was taken over ...
    pub hand_overs_completed: u64,
    /// ... or the wait for it gave up after the log's retention ...
    pub hand_overs_gave_up: u64,
    /// ... or its server held no copy of the repository (a grow's target that never
    /// got the snapshot, removed by force with the default hand-over).
    pub hand_overs_nothing_there: u64,
    /// Times a removed member that answered not knowing it was removed was told.
    pub removed_told: u64,
    /// Members stopped (`repl/stop`) and started again, by configurations in force.
    pub stops_in_force: u64,
    pub starts_in_force: u64,
    /// Stops (the engine's `StopSequence`) the member was told of in time; not told,
    /// and kept by force; not told, and undone.
    pub stops_told: u64,
    pub stops_kept_untold: u64,
    pub stops_undone: u64,
    /// Configurations stopped nodes took from members they asked (they pull from
    /// nobody).
    pub configs_told_while_stopped: u64,
}

impl MembershipStats {
    pub fn add(&mut self, o: &MembershipStats) {
        self.changes_started += o.changes_started;
        self.changes_in_force += o.changes_in_force;
        self.removals_in_force += o.removals_in_force;
        self.moves_in_force += o.moves_in_force;
        self.changes_not_made += o.changes_not_made;
        self.changes_not_confirmed += o.changes_not_confirmed;
        self.changes_superseded += o.changes_superseded;
        self.promotions_started += o.promotions_started;
        self.promotions_in_force += o.promotions_in_force;
        self.promotions_not_granted += o.promotions_not_granted;
        self.refused_at_once += o.refused_at_once;
        self.moves_refused_expired += o.moves_refused_expired;
        self.commits_failed += o.commits_failed;
        self.removals_started += o.removals_started;
        self.removals_not_held += o.removals_not_held;
        self.removals_unreplicated += o.removals_unreplicated;
        self.holds_released += o.holds_released;
        self.removals_forced += o.removals_forced;
        self.lost_in_crash += o.lost_in_crash;
        self.grows_in_force += o.grows_in_force;
        self.grows_undone += o.grows_undone;
        self.grown_installed += o.grown_installed;
        self.hand_overs_made += o.hand_overs_made;
        self.hand_overs_completed += o.hand_overs_completed;
        self.hand_overs_gave_up += o.hand_overs_gave_up;
        self.hand_overs_nothing_there += o.hand_overs_nothing_there;
        self.removed_told += o.removed_told;
        self.stops_in_force += o.stops_in_force;
        self.starts_in_force += o.starts_in_force;
        self.stops_told += o.stops_told;
        self.stops_kept_untold += o.stops_kept_untold;
        self.stops_undone += o.stops_undone;
        self.configs_told_while_stopped += o.configs_told_while_stopped;
    }
}

/// A member that has not heard from the controlling instance for this long may ask
/// to be promoted (ms).
const PROMOTE_AFTER_SILENCE_MS: u64 = 1_500;

impl World {
    // ---- the membership network ----

    fn send_ctl(&mut self, msg: Ctl) {
        let (from, to) = msg.ends();
        // A spare server a grow never installed runs: it answers about itself.
        let sends =
            self.up(from) || (matches!(msg, Ctl::About { .. }) && self.never_installed(from));
        if !sends || self.cut(from, to) {
            return;
        }
        let delay = if self.rng.chance(0.02) {
            self.rng.range(100, 600)
        } else {
            self.rng.range(1, 30)
        };
        // Questions may come twice; a hold is one HTTP request and its answer.
        let twice = matches!(msg, Ctl::Ask { .. } | Ctl::Answer { .. }) && self.rng.chance(0.01);
        for _ in 0..=usize::from(twice) {
            self.order += 1;
            self.ctl_flights.push(Some(msg.clone()));
            self.ctl_queue.push(std::cmp::Reverse((
                self.now + delay,
                self.order,
                self.ctl_flights.len() - 1,
            )));
        }
    }

    pub(super) fn deliver_ctl(&mut self) {
        while let Some(&std::cmp::Reverse((at, _, index))) = self.ctl_queue.peek() {
            if at > self.now {
                break;
            }
            self.ctl_queue.pop();
            let Some(msg) = self.ctl_flights[index].take() else {
                continue;
            };
            let (from, to) = msg.ends();
            // Lost on a cut link or at a node that is down (its connection is gone). A
            // spare server a grow never installed runs: it answers, holding no copy.
            let answers =
                self.up(to) || (matches!(msg, Ctl::AskAbout { .. }) && self.never_installed(to));
            if !answers || self.cut(from, to) {
                continue;
            }
            match msg {
                Ctl::Ask { question, .. } => {
                    let commands = self.nodes[to].acceptor.on_question(&question);
                    if let Some(answer) = self.carry_out(to, commands) {
                        self.send_ctl(Ctl::Answer {
                            from: to,
                            to: from,
                            question,
                            answer,
                        });
                    }
                }
                Ctl::Answer {
                    question, answer, ..
                } => {
                    let event = ProposerEvent::Answer {
                        from: self.nodes[from].origin,
                        question,
                        answer: answer.map_err(Withheld::Refused),
                    };
                    self.feed_proposer(to, event);
                }
                Ctl::Config { config, held, .. } => {
                    // A stopped node told it was started runs again, before it may take
                    // the configuration itself (as the server's node).
                    let started = quadmesh_repl::started_by(
                        self.config_of(to),
                        &config,
                        self.nodes[to].origin,
                    );
                    if let (true, Some(at)) = (self.stopped_here(to), started) {
                        self.log(|| format!("n{to} learns it was started again at {at:?}"));
                        self.nodes[to].started_at = Some(at);
                        self.reconcile_pullers(to);
                    }
                    if self.takes_config(to, &config, &held) {
                        let (stopped, before) =
                            (self.stopped_here(to), self.config_of(to).position());
                        let commands = self.nodes[to].acceptor.on_config(&config);
                        self.carry_out(to, commands);
                        if stopped && self.config_of(to).position() != before {
                            self.membership_stats().configs_told_while_stopped += 1;
                        }
                    }
                }
                Ctl::AskAbout { .. } => {
                    let answer = self.about_itself(to);
                    self.send_ctl(Ctl::About {
                        from: to,
                        to: from,
                        answer,
                    });
                }
                Ctl::About { answer, .. } => {
                    let origin = self.nodes[from].origin;
                    self.nodes[to].hand_over_answers.insert(origin, answer);
                }
                Ctl::Hold { hold_ms, .. } => {
                    let answer = self.hold(to, from, hold_ms);
                    self.send_ctl(Ctl::Held {
                        from: to,
                        to: from,
                        answer,
                    });
                }
                Ctl::Held { answer, .. } => self.on_held(to, from, answer),
                Ctl::AskConfig { .. } => {
                    // As `repl/membership`: its configuration and what it holds, which
                    // the stopped asker takes as a configuration told apart from the log.
                    let config = self.config_of(to).clone();
                    self.send_config(to, from, &config);
                }
                Ctl::AskPosition { .. } => {
                    let position = self.config_of(to).position();
                    self.send_ctl(Ctl::Position {
                        from: to,
                        to: from,
                        position,
                    });
                }
                Ctl::Position { position, .. } => {
                    let asked = self.nodes[to]
                        .stop
                        .as_ref()
                        .and_then(|s| self.config_of(to).member_named(s.name()))
                        .is_some_and(|m| self.index_of(m.origin) == from);
                    if asked {
                        self.feed_stop(to, StopEvent::MemberHolds(Ok(position)));
                    }
                }
            }
        }
        if self.ctl_queue.is_empty() {
            self.ctl_flights.clear();
        }
    }

    /// Carries out an acceptor's commands at `node`; returns its answer, if any.
    fn carry_out(
        &mut self,
        node: usize,
        commands: Vec<AcceptorCommand>,
    ) -> Option<Result<(), ConsentRefusal>> {
        let origin = self.nodes[node].origin;
        let mut answer = None;
        for command in commands {
            match command {
                // The acceptor is the persisted state itself: it outlives crashes.
                AcceptorCommand::PersistPromise(promise) => {
                    self.log(|| {
                        format!(
                            "n{node} promises epoch {} to {}",
                            promise.epoch, promise.candidate
                        )
                    });
                    self.membership.granted.push(Granted {
                        origin,
                        at: self.now,
                        promise,
                    });
                }
                AcceptorCommand::Adopt(config) => {
                    self.log(|| {
                        format!(
                            "n{node} takes {} (controlling {:?}, members {:?})",
                            config.position(),
                            config.controlling().map(|c| &c.name),
                            config.members.iter().map(|m| &m.name).collect::<Vec<_>>()
                        )
                    });
                    self.membership.adopted.push(Adopted {
                        origin,
                        at: self.now,
                        config: (*config).clone(),
                    });
                    let n = &mut self.nodes[node];
                    n.view.set_config(*config.clone());
                    if let Some(repo) = n.repo.as_mut() {
                        repo.set_members(&config.origins());
                    }
                    // As the node's reconcile: pullers of peers that left or were
                    // stopped go (their streams closed), new members get one — also one
                    // that left in a configuration a promotion then superseded.
                    if self.up(node) {
                        self.reconcile_pullers(node);
                    }
                }
                AcceptorCommand::MarkRemoved => {
                    self.log(|| format!("n{node} learns it was removed"));
                    if let Some(repo) = self.nodes[node].repo.as_mut() {
                        repo.disk.removed = true;
                    }
                }
                AcceptorCommand::Answer(a) => answer = Some(a),
            }
        }
        answer
    }

    /// Every maintenance round a node sends the configuration it holds to its members,
    /// as its pull streams would carry its configuration transactions: not to a member
    /// that pulls nothing from it — one stopped (as far as it knows), or that holds
    /// this node as stopped — unless it waits for the members' word after a lost tail
    /// (`quadmesh_repl::pulled_peers`).
    pub(super) fn gossip_config(&mut self, node: usize) {
        let config = self.config_of(node).clone();
        let origin = self.nodes[node].origin;
        for m in &config.members {
            let to = self.index_of(m.origin);
            let awaiting = self.nodes[to]
                .repo
                .as_ref()
                .is_some_and(|r| r.is_awaiting());
            let streams =
                awaiting || (!self.stopped_here(to) && !self.config_of(to).is_stopped(origin));
            if to != node && streams {
                self.send_config(node, to, &config);
            }
        }
    }

    /// Sends `config` from `from` to `to`, with what `from` holds now.
    fn send_config(&mut self, from: usize, to: usize, config: &ClusterConfig) {
        let held = self.nodes[from]
            .repo
            .as_ref()
            .map(|r| r.vv.clone())
            .unwrap_or_default();
        self.send_ctl(Ctl::Config {
            from,
            to,
            config: Box::new(config.clone()),
            held,
        });
    }

    /// Whether `node` takes `config`, sent by an instance that held `held`. The server
    /// learns configurations from the log of the instance that sent them, after the
    /// transactions before them: a configuration ending a hand-over follows, in the
    /// controlling instance's log, every transaction of the removed member it took over
    /// (so a member holds them before it lets the frontier pass the removed member's
    /// promise, and none can come later, older than what it pruned). The simulation's
    /// configurations travel apart from the streams: one ending a hand-over this node
    /// still waits for is taken only once it holds as much of that member as the
    /// sender did (it is sent again at the next round) — `quadmesh_repl::
    /// told_config_in_order`, the rule a stopped server takes configurations told by
    /// members by.
    fn takes_config(&self, node: usize, config: &ClusterConfig, held: &VersionVector) -> bool {
        let Some(repo) = self.nodes[node].repo.as_ref() else {
            return false;
        };
        quadmesh_repl::told_config_in_order(self.config_of(node), config, &repo.vv, held)
    }

    /// As `repl/membership` asked of an instance about itself: of this cluster, whether
    /// it knows it was removed, and its last own transaction (all it will ever hand
    /// over once it knows: it writes nothing after).
    fn about_itself(&self, node: usize) -> RemovedAnswer {
        let Some(repo) = self.nodes[node].repo.as_ref() else {
            // As the server's `not_replicated`: a spare that never got the snapshot.
            if self.never_installed(node) {
                return RemovedAnswer::HoldsNothing;
            }
            return RemovedAnswer::Unreachable;
        };
        RemovedAnswer::Answered {
            same_cluster: true,
            removed: repo.disk.removed || self.nodes[node].acceptor.is_removed(),
            held: repo.vv.get(self.nodes[node].origin),
        }
    }

    /// A stopped node asks the other members for their configuration every second
    /// (as the server's node does: it pulls from nobody, so no configuration would
    /// reach it otherwise).
    pub(super) fn ask_for_configuration(&mut self, node: usize) {
        if !self.stopped_here(node) || self.now < self.nodes[node].next_config_ask {
            return;
        }
        self.nodes[node].next_config_ask = self.now + CONFIG_ASK_MS;
        let origin = self.nodes[node].origin;
        let others: Vec<usize> = self
            .config_of(node)
            .members
            .iter()
            .filter(|m| m.origin != origin)
            .map(|m| self.index_of(m.origin))
            .collect();
        for to in others {
            self.send_ctl(Ctl::AskConfig { from: node, to });
        }
    }

    /// A spare server no grow ever handed the cluster to (it holds no repository).
    fn never_installed(&self, node: usize) -> bool {
        node >= self.membership.first_spare
            && self.nodes[node].repo.is_none()
            && !self.membership.installed.contains(&self.nodes[node].origin)
    }

    // ---- the proposer's runtime ----

    pub(super) fn tick_proposer(&mut self, node: usize) {
        let due = self.nodes[node]
            .proposer
            .as_ref()
            .and_then(|p| p.deadline())
            .is_some_and(|d| d <= self.now);
        if due {
            self.feed_proposer(node, ProposerEvent::Tick);
        }
    }

    fn feed_proposer(&mut self, node: usize, event: ProposerEvent) {
        let now = self.now;
        let Some(proposer) = self.nodes[node].proposer.as_mut() else {
            return;
        };
        let commands = proposer.handle(now, event);
        self.run_proposer(node, commands);
    }

    fn run_proposer(&mut self, node: usize, commands: Vec<ProposerCommand>) {
        let mut queue: VecDeque<ProposerCommand> = commands.into();
        while let Some(command) = queue.pop_front() {
            let event = match command {
                ProposerCommand::Ask { to, question } => {
                    let to = self.index_of(to);
                    if to != node {
                        self.send_ctl(Ctl::Ask {
                            from: node,
                            to,
                            question,
                        });
                        continue;
                    }
                    // Its own instance is asked like any member, through its acceptor.
                    let commands = self.nodes[node].acceptor.on_question(&question);
                    let answer = self.carry_out(node, commands).expect("an answer");
                    ProposerEvent::Answer {
                        from: self.nodes[node].origin,
                        question,
                        answer: answer.map_err(Withheld::Refused),
                    }
                }
                ProposerCommand::Commit { base, change } => self.commit_config(node, base, &change),
                ProposerCommand::Report(outcome) => {
                    let proposer = self.nodes[node].proposer.take().expect("reporting");
                    let request = self.nodes[node].request.take();
                    let made = proposer.made().is_some();
                    self.reported(node, proposer, outcome.clone());
                    self.after_removal(node, &outcome, made);
                    self.after_stop(node, &request, &outcome);
                    self.after_hand_over_end(node, &outcome);
                    self.after_grow(node, request, outcome, made);
                    return;
                }
            };
            let now = self.now;
            let Some(proposer) = self.nodes[node].proposer.as_mut() else {
                return;
            };
            queue.extend(proposer.handle(now, event));
        }
    }

    /// As `Repository::commit_config`: the next configuration, made of the one held
    /// if it is still `base` and the node takes local writes (`check_local_write`),
    /// stamped now, then told to every member at once.
    fn commit_config(
        &mut self,
        node: usize,
        base: quadmesh_repl::ConfigPosition,
        change: &Change,
    ) -> ProposerEvent {
        let current = self.config_of(node).clone();
        let repo = self.nodes[node].repo.as_ref().expect("up");
        let unwritable = if let Some(why) = &repo.disk.expired {
            Some(why.clone())
        } else if repo.disk.removed {
            Some("removed".to_owned())
        } else if repo.is_awaiting() {
            Some("awaiting its peers after a lost tail".to_owned())
        } else {
            None
        };
        if let Some(why) = unwritable {
            self.membership_stats().commits_failed += 1;
            return ProposerEvent::CommitFailed(CommitError::NotWritable(why));
        }
        if current.position() != base {
            self.membership_stats().commits_failed += 1;
            return ProposerEvent::CommitFailed(
                MembershipError::ChangedMeanwhile(format!("{base} became {}", current.position()))
                    .into(),
            );
        }
        let time = HlcTime::from_parts(EPOCH_MS + self.now, 0);
        let config = match change.apply(&current, time) {
            Ok(config) => config,
            Err(e) => {
                self.membership_stats().commits_failed += 1;
                return ProposerEvent::CommitFailed(e.into());
            }
        };
        self.log(|| format!("n{node} commits {} ({change:?})", config.position()));
        self.membership.made.push(Made {
            origin: self.nodes[node].origin,
            at: self.now,
            base,
            config: config.clone(),
        });
        // Ground truth: how each member was last removed — with its writes held, by
        // force, or by force with a hand-over — and how its hand-over last ended (what
        // the checker judges a loss with its origin by).
        let now = self.now;
        let m = &mut self.membership;
        match change {
            Change::Remove { name } | Change::RemoveHandingOver { name, .. } => {
                let origin = current.member_named(name).expect("applied").origin;
                let held = self.nodes[node]
                    .removal
                    .as_ref()
                    .is_some_and(|r| r.is_held_for_change());
                for how in [
                    &mut m.removed_held,
                    &mut m.removed_by_force,
                    &mut m.removed_handing_over,
                ] {
                    how.remove(&origin);
                }
                m.hand_over_gave_up.remove(&origin);
                let how = match change {
                    Change::RemoveHandingOver { .. } => &mut m.removed_handing_over,
                    _ if held => &mut m.removed_held,
                    _ => &mut m.removed_by_force,
                };
                how.insert(origin, now);
                if matches!(change, Change::RemoveHandingOver { .. }) {
                    self.stats.membership.hand_overs_made += 1;
                }
            }
            Change::EndHandOver { origin } => {
                let gave_up = matches!(
                    self.nodes[node].ending_hand_over,
                    Some((o, HandOverEnd::GaveUp { .. })) if o == *origin
                );
                if gave_up {
                    m.hand_over_gave_up.insert(*origin, now);
                } else {
                    m.hand_over_gave_up.remove(origin);
                }
            }
            _ => {}
        }
        let commands = self.nodes[node].acceptor.on_config(&config);
        self.carry_out(node, commands);
        let mut told: Vec<usize> = current
            .members
            .iter()
            .chain(&config.members)
            .map(|m| self.index_of(m.origin))
            .filter(|&i| i != node)
            .collect();
        told.sort_unstable();
        told.dedup();
        for to in told {
            self.send_config(node, to, &config);
        }
        ProposerEvent::Committed(config)
    }

    fn reported(
        &mut self,
        node: usize,
        proposer: Proposer,
        outcome: Result<ClusterConfig, ProposalError>,
    ) {
        self.log(|| format!("n{node} reports {outcome:?}"));
        let base = proposer.base().clone();
        let stats = self.membership_stats();
        match outcome {
            Ok(config) => {
                let promotion = config.epoch > base.epoch;
                if promotion {
                    stats.promotions_in_force += 1;
                } else {
                    stats.changes_in_force += 1;
                    stats.removals_in_force += u64::from(config.members.len() < base.members.len());
                    stats.moves_in_force += u64::from(
                        config.controlling().map(|c| c.origin)
                            != base.controlling().map(|c| c.origin),
                    );
                    let stopped = |c: &ClusterConfig, b: &ClusterConfig| {
                        c.stopped.iter().filter(|o| !b.stopped.contains(o)).count() as u64
                    };
                    stats.stops_in_force += stopped(&config, &base);
                    stats.starts_in_force += stopped(&base, &config);
                }
                self.membership.in_force.push(InForce {
                    origin: self.nodes[node].origin,
                    at: self.now,
                    base,
                    config,
                });
            }
            Err(ProposalError::CannotChangeNow { .. } | ProposalError::BaseNotInForce { .. }) => {
                stats.changes_not_made += 1
            }
            Err(ProposalError::NotConfirmed { .. }) => stats.changes_not_confirmed += 1,
            Err(ProposalError::Superseded(_)) => stats.changes_superseded += 1,
            Err(ProposalError::NotGranted { .. }) => stats.promotions_not_granted += 1,
            Err(ProposalError::Membership(MembershipError::ChangedMeanwhile(_))) => {}
            Err(ProposalError::TargetExpired(_)) => stats.moves_refused_expired += 1,
            Err(_) => stats.refused_at_once += 1,
        }
    }

    fn membership_stats(&mut self) -> &mut MembershipStats {
        &mut self.stats.membership
    }

    // ---- operators ----

    /// Starts a change at `node` (an operator's request there), unless one is running
    /// (a removal without force runs its own change once the member's writes are held
    /// and replicated). Whether it started.
    pub fn start_change(&mut self, node: usize, change: Change) -> bool {
        let removing = self.nodes[node]
            .removal
            .as_ref()
            .is_some_and(|r| !r.is_changing());
        if !self.up(node) || self.nodes[node].proposer.is_some() || removing {
            return false;
        }
        self.log(|| format!("n{node} starts {change:?}"));
        self.membership_stats().changes_started += 1;
        let base = self.config_of(node).clone();
        // As the server: the engine is told which members this node's view expired.
        let expired = self.nodes[node].view.expired_members();
        let (proposer, commands) = Proposer::change_knowing_expired(
            self.nodes[node].origin,
            base,
            change.clone(),
            &expired,
            self.now,
        );
        self.nodes[node].proposer = Some(proposer);
        self.nodes[node].request = Some(change);
        self.run_proposer(node, commands);
        true
    }

    /// Starts a promotion of `node`, unless it is making a change already.
    pub fn start_promotion(&mut self, node: usize) {
        if !self.up(node) || self.nodes[node].proposer.is_some() {
            return;
        }
        self.log(|| format!("n{node} asks to be promoted"));
        self.membership_stats().promotions_started += 1;
        let base = self.config_of(node).clone();
        let promised = self.nodes[node].acceptor.promised();
        let (proposer, commands) =
            Proposer::promote(self.nodes[node].origin, base, promised, self.now);
        self.nodes[node].proposer = Some(proposer);
        self.run_proposer(node, commands);
    }

    pub(super) fn start_scripted(&mut self, scripted: Scripted) {
        match scripted {
            Scripted::Change { node, change } => {
                self.start_change(node, change);
            }
            Scripted::Remove { node, name } => self.start_removal(node, name),
            Scripted::RemoveHandingOver { node, name } => {
                if let Some(change) = self.removal_handing_over(node, &name) {
                    self.start_change(node, change);
                }
            }
            Scripted::Promote { node } => self.start_promotion(node),
        }
    }

    /// A grow of the cluster by `member` at `node` (an operator's request there), in
    /// the engine's sequence (`GrowSequence`), as `membership::grow`.
    fn start_grow(&mut self, node: usize, member: Member) {
        if !self.available(node) {
            return;
        }
        let Ok((grow, commands)) = GrowSequence::start(self.config_of(node), member) else {
            return;
        };
        self.nodes[node].grow = Some(grow);
        self.run_grow(node, commands, None);
    }

    /// Carries out the grow's commands: its changes by the node's proposer; the
    /// snapshot's hand-over (now and then the new server refuses it) installs the new
    /// member, which starts from it — here empty, pulling everything, as no log in the
    /// model is truncated — under `in_force`, the configuration adding it.
    fn run_grow(
        &mut self,
        node: usize,
        commands: Vec<GrowCommand>,
        in_force: Option<ClusterConfig>,
    ) {
        for command in commands {
            let Some(grow) = self.nodes[node].grow.as_ref() else {
                return;
            };
            let member = grow.member().clone();
            match command {
                GrowCommand::Propose(change) => {
                    if matches!(change, Change::UndoGrow { .. }) {
                        self.log(|| format!("n{node} takes {} out again", member.name));
                        self.membership_stats().grows_undone += 1;
                    }
                    if !self.start_change(node, change) {
                        let not_made = GrowEvent::Reported {
                            in_force: false,
                            made: false,
                        };
                        self.feed_grow(node, not_made, None);
                    }
                }
                GrowCommand::HandOverSnapshot => {
                    let taken = !self.rng.chance(0.25);
                    if let (true, Some(config)) = (taken, &in_force) {
                        self.membership_stats().grows_in_force += 1;
                        self.install(self.index_of(member.origin), config.clone());
                    }
                    self.feed_grow(node, GrowEvent::HandedOver { taken }, None);
                }
                GrowCommand::Finished(end) => {
                    self.log(|| format!("n{node}'s grow of {} ends: {end:?}", member.name));
                    self.nodes[node].grow = None;
                }
            }
        }
    }

    fn feed_grow(&mut self, node: usize, event: GrowEvent, in_force: Option<ClusterConfig>) {
        let Some(grow) = self.nodes[node].grow.as_mut() else {
            return;
        };
        let commands = grow.handle(event);
        self.run_grow(node, commands, in_force);
    }

    /// A change was reported at `node` (`made`: its configuration was committed): the
    /// grow it is making is told, if the change was the grow's or its undo.
    fn after_grow(
        &mut self,
        node: usize,
        request: Option<Change>,
        outcome: Result<ClusterConfig, ProposalError>,
        made: bool,
    ) {
        if !matches!(request, Some(Change::Grow(_) | Change::UndoGrow { .. })) {
            return;
        }
        let reported = GrowEvent::Reported {
            in_force: outcome.is_ok(),
            made,
        };
        self.feed_grow(node, reported, outcome.ok());
    }

    /// `repl/stop` of member `name` at `node` (an operator's request there), in the
    /// engine's sequence (`StopSequence`), as `membership::stop`: the member is given
    /// the stop's timeout to learn it, else the stop is undone (kept with `force`).
    fn start_stop(&mut self, node: usize, name: String, force: bool) {
        if !self.available(node) {
            return;
        }
        let timeout_ms = self.operator_timeout();
        let (stop, commands) = StopSequence::start(&name, force, timeout_ms);
        self.nodes[node].stop = Some(stop);
        self.run_stop(node, commands);
    }

    /// Carries out the stop's commands: its changes by the node's proposer, the asks
    /// as messages (one not answered is given up by the engine).
    fn run_stop(&mut self, node: usize, commands: Vec<StopCommand>) {
        for command in commands {
            let Some(stop) = self.nodes[node].stop.as_ref() else {
                return;
            };
            let name = stop.name().to_owned();
            match command {
                StopCommand::Propose(change) => {
                    if !self.start_change(node, change) {
                        let not_made = StopEvent::Reported { in_force: None };
                        self.feed_stop(node, not_made);
                    }
                }
                StopCommand::AskMember { .. } => {
                    if let Some(member) = self.config_of(node).member_named(&name).cloned() {
                        let to = self.index_of(member.origin);
                        self.send_ctl(Ctl::AskPosition { from: node, to });
                    }
                }
                StopCommand::Finished(end) => {
                    self.log(|| format!("n{node}'s stop of {name} ends: {end:?}"));
                    let stats = self.membership_stats();
                    match end {
                        StopEnd::Stopped => stats.stops_told += 1,
                        StopEnd::KeptUntold(_) => stats.stops_kept_untold += 1,
                        StopEnd::Undone { .. } => stats.stops_undone += 1,
                        StopEnd::NotMade => {}
                    }
                    self.nodes[node].stop = None;
                }
            }
        }
    }

    fn feed_stop(&mut self, node: usize, event: StopEvent) {
        let now = self.phys(node);
        let Some(stop) = self.nodes[node].stop.as_mut() else {
            return;
        };
        let commands = stop.handle(now, event);
        self.run_stop(node, commands);
    }

    /// The `timeout` an operator passes to a removal or a stop: the default, or, one
    /// time in two, a shorter one.
    fn operator_timeout(&mut self) -> u64 {
        if self.rng.chance(0.5) {
            DEFAULT_TIMEOUT_MS
        } else {
            self.rng.range(50, DEFAULT_TIMEOUT_MS)
        }
    }

    /// Feeds the stop `node` is making a tick when it is due.
    pub(super) fn tick_stop(&mut self, node: usize) {
        let due = self.nodes[node]
            .stop
            .as_ref()
            .and_then(|s| s.deadline())
            .is_some_and(|d| d <= self.phys(node));
        if due {
            self.feed_stop(node, StopEvent::Tick);
        }
    }

    /// A change was reported at `node`: the stop it is making is told, if the change
    /// was the stop's or its undo.
    fn after_stop(
        &mut self,
        node: usize,
        request: &Option<Change>,
        outcome: &Result<ClusterConfig, ProposalError>,
    ) {
        let ours = matches!(
            (request, &self.nodes[node].stop),
            (Some(Change::Stop { name, .. }), Some(stop)) if name == stop.name()
        );
        if ours {
            let reported = StopEvent::Reported {
                in_force: outcome.as_ref().ok().map(|c| c.position()),
            };
            self.feed_stop(node, reported);
        }
    }

    /// The new server takes the snapshot: its repository (empty here), the grown
    /// configuration, and pullers to every member.
    fn install(&mut self, i: usize, config: ClusterConfig) {
        if self.nodes[i].repo.is_some() || !config.is_member(self.nodes[i].origin) {
            return;
        }
        self.membership_stats().grown_installed += 1;
        let origin = self.nodes[i].origin;
        self.membership.installed.insert(origin);
        let clock = SimClock {
            now: self.clock_now.clone(),
            offset: self.nodes[i].offset.clone(),
        };
        let disk = self.nodes[i].disk.take().unwrap_or_default();
        self.nodes[i].repo = Some(Repo::open(origin, disk, clock, &config.origins()));
        let phys = self.phys(i);
        self.nodes[i].view = ClusterView::new(origin, config.clone(), phys);
        self.nodes[i].acceptor = Acceptor::new(origin, config.clone(), None);
        self.membership.adopted.push(Adopted {
            origin,
            at: self.now,
            config,
        });
        self.nodes[i].next_maintain = self.now;
        self.heard_at[i] = vec![self.now; self.nodes.len()];
        self.log(|| format!("n{i} is installed"));
        self.start_pullers(i);
    }

    /// A crash loses the request being handled (a removal's too: the member's hold
    /// ends by itself), and the hand-over task's answers.
    pub(super) fn lose_proposer(&mut self, node: usize) {
        self.nodes[node].request = None;
        self.nodes[node].removal = None;
        self.nodes[node].grow = None;
        self.nodes[node].stop = None;
        self.nodes[node].ending_hand_over = None;
        self.nodes[node].hand_over_answers.clear();
        if self.nodes[node].proposer.take().is_some() {
            self.membership_stats().lost_in_crash += 1;
        }
    }

    /// Whether `node` can be asked to change or be promoted: up, not removed (as far as
    /// it knows), not expired, not busy.
    fn available(&self, node: usize) -> bool {
        self.nodes[node].proposer.is_none()
            && self.nodes[node].removal.is_none()
            && self.nodes[node].grow.is_none()
            && self.nodes[node].stop.is_none()
            && !self.nodes[node].acceptor.is_removed()
            && self.nodes[node]
                .repo
                .as_ref()
                .is_some_and(|r| r.disk.expired.is_none() && !r.disk.removed)
    }

    /// A member a grow added that never got its snapshot — its grow's request died
    /// with a crash, or its undo failed — and no request is dealing with now: the
    /// operator removes it by force (it holds nothing), as the grow's answer says.
    fn orphan(&self) -> Option<(usize, String)> {
        let newest = self.newest_config();
        let busy = |origin| {
            self.nodes
                .iter()
                .any(|n| n.grow.as_ref().is_some_and(|g| g.member().origin == origin))
        };
        newest
            .members
            .iter()
            .map(|m| (self.index_of(m.origin), m))
            .find(|(i, m)| {
                !self.membership.installed.contains(&m.origin)
                    && self.nodes[*i].repo.is_none()
                    && *i >= self.membership.first_spare
                    && !busy(m.origin)
            })
            .map(|(i, m)| (i, m.name.clone()))
    }

    /// After the faults, the operator starts again every member it stopped, at the
    /// controlling instance of the newest configuration (one at a time).
    pub(super) fn start_stopped_members(&mut self) {
        let newest = self.newest_config();
        let Some(name) = newest
            .members
            .iter()
            .find(|m| newest.is_stopped(m.origin))
            .map(|m| m.name.clone())
        else {
            return;
        };
        let Some(node) = self.operator_controlling_node(&name) else {
            return;
        };
        self.start_change(
            node,
            Change::Stop {
                name,
                stopped: false,
            },
        );
    }

    /// The operator's clean-up: an orphaned grow's member removed by force, at the
    /// controlling instance of the newest configuration. Also after the faults end.
    pub(super) fn remove_orphan(&mut self) {
        let Some((_, name)) = self.orphan() else {
            return;
        };
        let Some(node) = self.operator_controlling_node(&name) else {
            return;
        };
        if self.rng.chance(0.5) {
            // `remove --force` as it comes (with a hand-over): its server answers that
            // it holds no copy, which ends the hand-over at once.
            if let Some(change) = self.removal_handing_over(node, &name) {
                self.start_change(node, change);
            }
        } else {
            // `hand-over=false`: the operator knows it never got anything.
            self.start_change(node, Change::Remove { name });
        }
    }

    /// Where the operator makes a clean-up change to member `name` (removing an
    /// orphaned grow's member; starting a stopped one after the faults): the controlling
    /// instance of the newest configuration, as status shows it. `None` when that
    /// cannot be now, or the operator promoted instead: every third try another member
    /// (members may have promised a newer epoch to a candidate that never took it — a
    /// stopped member hears from nobody and asks —, or the controlling instance waits
    /// after a lost tail for the very member's word), and the controlling instance
    /// itself when it granted a newer epoch to a candidate that never took it (it
    /// changes nothing any more until it is promoted itself).
    fn operator_controlling_node(&mut self, name: &str) -> Option<usize> {
        self.membership.cleanup_tries += 1;
        if self.membership.cleanup_tries.is_multiple_of(3) {
            self.promote_another_member();
            return None;
        }
        let node = self
            .newest_config()
            .controlling()
            .map(|c| self.index_of(c.origin))?;
        if !self.available(node) || self.config_of(node).member_named(name).is_none() {
            return None;
        }
        let superseded = self.nodes[node]
            .acceptor
            .promised()
            .is_some_and(|p| p.epoch > self.config_of(node).epoch);
        if superseded {
            self.start_promotion(node);
            return None;
        }
        Some(node)
    }

    /// The operator's remedy when the controlling instance of the newest
    /// configuration cannot change it (members promised a newer epoch to a candidate
    /// that never took it): another member, available and not waiting after a lost
    /// tail, is promoted.
    fn promote_another_member(&mut self) {
        let newest = self.newest_config().clone();
        let candidates: Vec<usize> = newest
            .members
            .iter()
            .map(|m| self.index_of(m.origin))
            .filter(|&i| {
                self.available(i)
                    && newest.controlling().map(|c| c.origin) != Some(self.nodes[i].origin)
                    && self.nodes[i]
                        .repo
                        .as_ref()
                        .is_some_and(|r| !r.is_awaiting())
            })
            .collect();
        // Not one the operator stopped, unless there is no other (promoting it starts
        // it: it may be the very member whose promise to a candidate that never took
        // it denies every change).
        let running: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| !newest.is_stopped(self.nodes[i].origin))
            .collect();
        let candidates = if running.is_empty() {
            candidates
        } else {
            running
        };
        if !candidates.is_empty() {
            let i = candidates[self.rng.below(candidates.len() as u64) as usize];
            self.start_promotion(i);
        }
    }

    // ---- removal without force: the hold ----

    /// `remove` without force at `node` (an operator's request there), in the engine's
    /// sequence (`RemovalSequence`): the member is asked to hold its writes first.
    pub fn start_removal(&mut self, node: usize, name: String) {
        if !self.available(node) {
            return;
        }
        let Some(member) = self.config_of(node).member_named(&name).cloned() else {
            return;
        };
        if self.index_of(member.origin) == node {
            return;
        }
        self.log(|| format!("n{node} asks {name} to hold its writes"));
        self.membership_stats().removals_started += 1;
        let request = RemovalRequest {
            force: false,
            timeout_ms: self.operator_timeout(),
            hand_over: true,
        };
        let local = self.nodes[node].repo.as_ref().expect("up").vv.clone();
        let started = RemovalSequence::start(
            &name,
            request,
            &self.nodes[node].view,
            &local,
            self.phys(node),
        );
        let Ok((sequence, commands)) = started else {
            return;
        };
        self.nodes[node].removal = Some(sequence);
        self.run_removal(node, commands);
    }

    /// Feeds the removal `node` is making (if any) `event`.
    fn feed_removal(&mut self, node: usize, event: RemovalEvent) {
        let now = self.phys(node);
        let local = self.nodes[node].repo.as_ref().expect("up").vv.clone();
        let n = &mut self.nodes[node];
        let Some(removal) = n.removal.as_mut() else {
            return;
        };
        let commands = removal.handle(now, event, &n.view, &local);
        self.run_removal(node, commands);
    }

    /// Carries out the removal's commands, as `membership::remove` does: the hold and
    /// its release as messages, the change by the node's proposer.
    fn run_removal(&mut self, node: usize, commands: Vec<RemovalCommand>) {
        for command in commands {
            let Some(removal) = self.nodes[node].removal.as_ref() else {
                return;
            };
            let target = self.index_of(removal.member().origin);
            match command {
                RemovalCommand::Hold { hold_ms: 0 } => {
                    self.membership_stats().holds_released += 1;
                    self.send_ctl(Ctl::Hold {
                        from: node,
                        to: target,
                        hold_ms: 0,
                    });
                }
                RemovalCommand::Hold { hold_ms } => {
                    if self.up(target) {
                        self.send_ctl(Ctl::Hold {
                            from: node,
                            to: target,
                            hold_ms,
                        });
                    } else {
                        // Its server is down: the request is refused at once (no one
                        // listens).
                        let refused = Err("connection refused".to_owned());
                        self.feed_removal(node, RemovalEvent::Held(refused));
                    }
                }
                RemovalCommand::ForcedDespite(detail) => {
                    self.log(|| format!("n{node} removes by force: {detail}"));
                }
                RemovalCommand::Propose(change) => {
                    // Not started (the node is busy): as a change that was not made.
                    if !self.start_change(node, change) {
                        let not_made = RemovalEvent::Reported {
                            in_force: false,
                            made: false,
                        };
                        self.feed_removal(node, not_made);
                    }
                }
                RemovalCommand::Refuse(why) => {
                    let removal = self.nodes[node].removal.take().expect("refusing");
                    self.log(|| format!("n{node} refuses the removal: {why}"));
                    if removal.member_answered() {
                        self.membership_stats().removals_unreplicated += 1;
                    } else {
                        self.not_held(node, removal.member().name.clone(), target);
                    }
                }
                RemovalCommand::Finished => {
                    self.nodes[node].removal = None;
                }
            }
        }
    }

    /// As `routes::repl::hold` at the member: only its controlling instance (by the
    /// configuration the member holds) may hold it; the answer is its version vector,
    /// taken once it stopped taking local writes.
    fn hold(
        &mut self,
        member: usize,
        caller: usize,
        hold_ms: u64,
    ) -> Result<VersionVector, String> {
        let caller_origin = self.nodes[caller].origin;
        if self.config_of(member).controlling().map(|c| c.origin) != Some(caller_origin) {
            return Err("only the controlling instance holds a member's writes".into());
        }
        let now = self.now;
        let repo = self.nodes[member].repo.as_mut().expect("up");
        repo.disk.held_until = (hold_ms > 0).then_some(now + hold_ms);
        let vv = repo.vv.clone();
        self.log(|| format!("n{member} holds its writes for {hold_ms} ms, declaring {vv:?}"));
        Ok(vv)
    }

    /// The member's answer to a hold (or to a release, which needs nothing).
    fn on_held(&mut self, node: usize, member: usize, answer: Result<VersionVector, String>) {
        let asked = self.nodes[node]
            .removal
            .as_ref()
            .is_some_and(|r| self.index_of(r.member().origin) == member);
        if asked {
            self.feed_removal(node, RemovalEvent::Held(answer));
        }
    }

    /// A member other than `node` that `node` does not see connected, in a
    /// configuration that stays above two members without it.
    fn unheard_member(&self, node: usize) -> Option<String> {
        let config = self.config_of(node);
        if config.members.len() <= 2 {
            return None;
        }
        config
            .members
            .iter()
            .filter(|m| m.origin != self.nodes[node].origin)
            .find(|m| {
                self.nodes[node]
                    .view
                    .peer(m.origin)
                    .is_none_or(|p| !p.connected)
            })
            .map(|m| m.name.clone())
    }

    /// Member `name` (server `target`) could not be held: the removal was refused, and
    /// the operator, one time in two, removes it by force instead (`remove --force`):
    /// as the server, with a hand-over (`RemoveHandingOver`, its last promise known
    /// here), three times in four; else saying its data is gone (`hand-over=false`),
    /// which discards what only it holds — always for a grow's member that never
    /// installed (it holds nothing, and never comes up to hand anything over).
    fn not_held(&mut self, node: usize, name: String, target: usize) {
        self.membership_stats().removals_not_held += 1;
        if self.rng.chance(0.5) {
            self.log(|| format!("n{node} removes {name} by force"));
            self.membership_stats().removals_forced += 1;
            let Some(member) = self.config_of(node).member_named(&name).cloned() else {
                return;
            };
            let never_installed = target >= self.membership.first_spare
                && !self.membership.installed.contains(&member.origin);
            let change = if !never_installed && !self.rng.chance(0.25) {
                self.removal_handing_over(node, &name)
            } else {
                Some(Change::Remove { name })
            };
            if let Some(change) = change {
                self.start_change(node, change);
            }
        }
    }

    /// `remove --force` of member `name` at `node` with a hand-over, as the server's
    /// `membership::remove` makes it (`ClusterView::forced_removal`).
    fn removal_handing_over(&self, node: usize, name: &str) -> Option<Change> {
        self.nodes[node].view.forced_removal(name, true)
    }

    // ---- hand-over after a removal by force ----

    /// As `replication/hand_over.rs`, every maintenance round at the instance that
    /// controls by the configuration it holds: each member removed by force and still
    /// to hand over is asked about itself (the answer comes back over the network and
    /// is used at the next look; none by then counts as unreachable), and the engine
    /// (`decide_hand_over`) says whether to tell it it was removed — here the
    /// configuration removing it is sent, which it takes as the real one takes
    /// `repl/removed` once it checked it — and whether the hand-over is over, which is
    /// ended by the engine's `EndHandOver` (tried again at the next look if it fails).
    pub(super) fn look_at_hand_overs(&mut self, node: usize, retention_ms: u64) {
        let origin = self.nodes[node].origin;
        let config = self.config_of(node).clone();
        let looks = self.up(node)
            && !self.nodes[node].acceptor.is_removed()
            && config.controlling().map(|c| c.origin) == Some(origin);
        if !looks {
            self.nodes[node].hand_over_answers.clear();
            return;
        }
        let now_ms = self.phys(node);
        for hand_over in &config.handing_over {
            let removed = hand_over.member.origin;
            let answer = self.nodes[node]
                .hand_over_answers
                .remove(&removed)
                .unwrap_or(RemovedAnswer::Unreachable);
            let held_here = self.nodes[node].repo.as_ref().expect("up").vv.get(removed);
            let decision = decide_hand_over(hand_over, held_here, answer, retention_ms, now_ms);
            let target = self.index_of(removed);
            self.send_ctl(Ctl::AskAbout {
                from: node,
                to: target,
            });
            if decision.tell_removed {
                self.log(|| format!("n{node} tells {} it was removed", hand_over.member.name));
                self.membership_stats().removed_told += 1;
                self.send_config(node, target, &config);
            }
            let Some(end) = decision.end else {
                continue;
            };
            if self.nodes[node].proposer.is_some() || self.nodes[node].removal.is_some() {
                continue;
            }
            // It granted a newer epoch to a candidate that never took it: it changes
            // nothing any more until promoted itself (the operator's remedy, as for an
            // orphaned grow).
            let superseded = self.nodes[node]
                .acceptor
                .promised()
                .is_some_and(|p| p.epoch > config.epoch);
            if superseded {
                self.start_promotion(node);
                return;
            }
            self.log(|| {
                format!(
                    "n{node} ends the hand-over of {}: {end:?}",
                    hand_over.member.name
                )
            });
            self.nodes[node].ending_hand_over = Some((removed, end));
            self.start_change(node, HandOverEnd::change(removed));
            return;
        }
    }

    /// The change ending a hand-over was reported: counted by how it ended. One that
    /// could not be made (too few members confirm: some promised a newer epoch to a
    /// candidate that never took it) is tried again at the next look; every third
    /// time, the operator — who sees the hand-over stuck in status — promotes another
    /// member, as for an orphaned grow.
    fn after_hand_over_end(&mut self, node: usize, outcome: &Result<ClusterConfig, ProposalError>) {
        let Some((_, end)) = self.nodes[node].ending_hand_over.take() else {
            return;
        };
        match outcome {
            Ok(_) => {
                let stats = self.membership_stats();
                match end {
                    HandOverEnd::HandedOver { .. } => stats.hand_overs_completed += 1,
                    HandOverEnd::GaveUp { .. } => stats.hand_overs_gave_up += 1,
                    HandOverEnd::NothingThere { .. } => stats.hand_overs_nothing_there += 1,
                }
            }
            Err(ProposalError::BaseNotInForce { .. } | ProposalError::CannotChangeNow { .. }) => {
                self.membership.cleanup_tries += 1;
                if self.membership.cleanup_tries.is_multiple_of(3) {
                    self.promote_another_member();
                }
            }
            Err(_) => {}
        }
    }

    /// Feeds the removal `node` is making a tick when it is due.
    pub(super) fn tick_removal(&mut self, node: usize) {
        let due = self.nodes[node]
            .removal
            .as_ref()
            .and_then(|r| r.deadline())
            .is_some_and(|d| d <= self.phys(node));
        if due {
            self.feed_removal(node, RemovalEvent::Tick);
        }
    }

    /// The removal's change was reported (`made`: its configuration was committed).
    fn after_removal(
        &mut self,
        node: usize,
        outcome: &Result<ClusterConfig, ProposalError>,
        made: bool,
    ) {
        if self.nodes[node]
            .removal
            .as_ref()
            .is_some_and(|r| r.is_changing())
        {
            let reported = RemovalEvent::Reported {
                in_force: outcome.is_ok(),
                made,
            };
            self.feed_removal(node, reported);
        }
    }

    pub(super) fn random_membership(&mut self) {
        let n = self.nodes.len();
        if self.rng.chance(0.01) {
            self.remove_orphan();
        }
        // An operator's change at an instance that believes it controls the cluster.
        if self.rng.chance(0.004) {
            let controlling: Vec<usize> = (0..n)
                .filter(|&i| {
                    self.available(i)
                        && self.config_of(i).controlling().map(|c| c.origin)
                            == Some(self.nodes[i].origin)
                })
                .collect();
            if !controlling.is_empty() {
                let node = controlling[self.rng.below(controlling.len() as u64) as usize];
                let config = self.config_of(node).clone();
                // The operator picks, as `repl status` shows them, members that are
                // up, connected and take writes: the role moved to one that must be
                // grown again
                // would leave nobody to grow it from (a liveness hazard the server
                // does not refuse; not what this simulation is after).
                let others: Vec<_> = config
                    .members
                    .iter()
                    .filter(|m| m.origin != self.nodes[node].origin)
                    .filter(|m| self.available(self.index_of(m.origin)))
                    .filter(|m| {
                        self.nodes[node]
                            .view
                            .peer(m.origin)
                            .is_some_and(|p| p.connected && !p.expired)
                    })
                    .cloned()
                    .collect();
                // A member this node's view expired, as `repl status` shows it: now and
                // then the operator tries to hand it the role anyway (the engine refuses).
                let expired = config
                    .members
                    .iter()
                    .find(|m| self.nodes[node].view.is_expired(m.origin))
                    .map(|m| m.name.clone());
                // A member an operator stopped (`repl/stop`), as status shows it.
                let stopped = config
                    .members
                    .iter()
                    .find(|m| config.is_stopped(m.origin))
                    .map(|m| m.name.clone());
                let roll = self.rng.below(10);
                // A server no configuration has named yet: a grow's target.
                let spare = (0..n).find(|&i| {
                    let origin = self.nodes[i].origin;
                    self.nodes[i].repo.is_none()
                        && self.nodes.iter().all(|m| {
                            !m.acceptor.config().is_member(origin)
                                && !m.acceptor.config().removed.contains(&origin)
                        })
                });
                if let (Some(spare), 8) = (spare, roll) {
                    let member = Member {
                        name: format!("n{spare}"),
                        origin: self.nodes[spare].origin,
                        address: format!("n{spare}:10035"),
                        repository: "r".into(),
                        controlling: false,
                        added_at: HlcTime::ZERO,
                    };
                    self.start_grow(node, member);
                } else if let (Some(name), 7) = (expired, roll) {
                    self.start_change(node, Change::MoveControlling { to: name });
                } else if let (Some(name), 5) = (stopped.clone(), roll) {
                    // `repl/start` of a member an operator stopped.
                    self.start_change(
                        node,
                        Change::Stop {
                            name,
                            stopped: false,
                        },
                    );
                } else if let (Some(name), 9) = (self.unheard_member(node), roll) {
                    // A member it cannot hear: the hold most likely fails, and the
                    // operator may then remove it by force; or stopped, which it may
                    // not learn in time (undone, or kept by force).
                    if self.rng.chance(0.7) {
                        self.start_removal(node, name);
                    } else {
                        let force = self.rng.chance(0.5);
                        self.start_stop(node, name, force);
                    }
                } else if others.is_empty() || roll >= 8 {
                    let count = self.rng.range(1, 9) as usize;
                    let settings = CommitDefaults {
                        transaction_latency_count: Some(count),
                        ..Default::default()
                    };
                    self.start_change(node, Change::Settings(settings));
                } else {
                    let target = others[self.rng.below(others.len() as u64) as usize].clone();
                    if roll < 4 && config.members.len() > 2 {
                        // As `remove` without force.
                        self.start_removal(node, target.name);
                    } else if roll == 6 {
                        // `repl/stop` (the engine refuses the controlling instance),
                        // now and then with `force`.
                        let force = self.rng.chance(0.3);
                        self.start_stop(node, target.name, force);
                    } else {
                        self.start_change(node, Change::MoveControlling { to: target.name });
                    }
                }
            }
        }
        // A member asks to be promoted: mostly when the controlling instance has been
        // silent for a while, now and then while it is not.
        let node = self.rng.below(n as u64) as usize;
        if !self.available(node) {
            return;
        }
        let Some(controlling) = self.config_of(node).controlling().map(|c| c.origin) else {
            return;
        };
        // A member an operator stopped hears from nobody by design: nobody promotes it
        // for that.
        if controlling == self.nodes[node].origin || self.stopped_here(node) {
            return;
        }
        let ctl = self.index_of(controlling);
        let silent = self.now.saturating_sub(self.heard_at[node][ctl]) > PROMOTE_AFTER_SILENCE_MS;
        let chance = if silent { 0.02 } else { 0.0003 };
        if self.rng.chance(chance) {
            self.start_promotion(node);
        }
    }
}
