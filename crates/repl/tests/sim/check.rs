//! The checker: what a run must end with, judged from a [`History`] — every instance's
//! final log and quads, the operations as their clients saw them (each with whether
//! most clocks were off when it began), and the world's own record of which instances
//! applied each transaction and whose torn tails cut it. Nothing here asks the code
//! under test what happened: only how the run ended ([`Ending`]) and which instances
//! take part in convergence (`live`) come from it, and neither can excuse losing a write
//! a live instance applied and never lost in a torn tail (and the world checks each
//! expiry against real silence).
//!
//! Every violation starts with the name of the promise it breaks (`diverged`,
//! `last-writer-wins`, `lost`, `undone`, `real-time`), which the self-tests match.

use crate::model::{self, Quad, MARK_AHEAD_MS, MAX_OFFSET_MS};
use crate::world::{Op, EPOCH_MS, MAX_SKEW_MS, QUADS};
use quadmesh_repl::{ClusterConfig, ConfigPosition, Entry, OriginId, Promise, Stamp};
use std::collections::{BTreeMap, BTreeSet};

/// One transaction: its origin, sequence number and stamp (a sequence number cut off
/// in a torn tail may be stamped again, with another stamp).
pub type TxId = (OriginId, u64, Stamp);

pub fn tx_id(entry: &Entry) -> TxId {
    (entry.origin, entry.seq, entry.stamp())
}

/// How far apart in real time two writes to one quad must be, across instances, for
/// their stamps to have to follow real-time order (ms): the configured maximum offset
/// (a clock takes in peer times up to that far ahead of its own), plus the fixed slack
/// of normal operation — two clocks each up to `MAX_SKEW_MS` off, the high-water mark's
/// `MARK_AHEAD_MS` that a restart resumes from, and one for the strict comparison. It
/// does not grow with the clock steps a run made: a clock stepped further off than the
/// maximum offset must not make writes that land out of order.
pub const REAL_TIME_WINDOW_MS: u64 = MAX_OFFSET_MS + 2 * MAX_SKEW_MS + MARK_AHEAD_MS + 1;

/// A stamp as the trace shows times: simulated ms, logical counter, origin.
pub fn show(stamp: Stamp) -> String {
    format!(
        "{}.{}@{}",
        stamp.time.millis().saturating_sub(EPOCH_MS),
        stamp.time.logical(),
        stamp.origin.0
    )
}

/// One instance at the end of a run.
#[derive(Clone, Debug)]
pub struct Instance {
    pub origin: OriginId,
    pub log: Vec<Entry>,
    /// The quads present (`None`: down).
    pub contents: Option<BTreeSet<Quad>>,
    /// Takes part in convergence: up, expired neither by itself nor by the controlling
    /// instance.
    pub live: bool,
}

#[derive(Clone, Debug)]
pub struct History {
    pub instances: Vec<Instance>,
    pub ops: Vec<Op>,
    /// Which instances (by index) ever applied each transaction.
    pub applied_by: BTreeMap<TxId, BTreeSet<usize>>,
    /// Which instances' crashes cut it off their log.
    pub cut_by: BTreeMap<TxId, BTreeSet<usize>>,
    pub membership: Membership,
}

/// What membership did in a run, as the world saw it happen.
#[derive(Clone, Debug)]
pub struct Membership {
    /// The configuration every instance started from.
    pub initial: ClusterConfig,
    /// Every configuration committed, by whom, when, and of which one.
    pub made: Vec<Made>,
    /// Every configuration an instance took, in the order taken.
    pub adopted: Vec<Adopted>,
    /// Every promise an instance recorded.
    pub granted: Vec<Granted>,
    /// Every change or promotion reported to its operator as in force.
    pub in_force: Vec<InForce>,
    /// When a configuration removing each member was last written, by a removal
    /// without force (its writes held, what it declared waited for: none of its
    /// acknowledged writes may go) ...
    pub removed_held: BTreeMap<OriginId, u64>,
    /// ... or by force without a hand-over (it discards what only the member holds:
    /// the operator's `hand-over=false`, or a grow's member that never installed) ...
    pub removed_by_force: BTreeMap<OriginId, u64>,
    /// ... or by force with a hand-over (`RemoveHandingOver`: the members pull its own
    /// transactions until the hand-over ends; none of its acknowledged writes may go
    /// unless the end gave up).
    pub removed_handing_over: BTreeMap<OriginId, u64>,
    /// Members whose hand-over was last ended (the configuration ending it written) by
    /// giving up after the log's retention, and when.
    pub hand_over_gave_up: BTreeMap<OriginId, u64>,
    /// The first index of the servers a grow may add, and those a grow installed.
    pub first_spare: usize,
    pub installed: BTreeSet<OriginId>,
    /// The operator's attempts at removing members that grows left behind.
    pub cleanup_tries: u64,
}

impl Membership {
    pub fn new(initial: ClusterConfig) -> Self {
        Membership {
            initial,
            made: Vec::new(),
            adopted: Vec::new(),
            granted: Vec::new(),
            in_force: Vec::new(),
            removed_held: BTreeMap::new(),
            removed_by_force: BTreeMap::new(),
            removed_handing_over: BTreeMap::new(),
            hand_over_gave_up: BTreeMap::new(),
            first_spare: usize::MAX,
            installed: BTreeSet::new(),
            cleanup_tries: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Made {
    pub origin: OriginId,
    pub at: u64,
    pub base: ConfigPosition,
    pub config: ClusterConfig,
}

#[derive(Clone, Debug)]
pub struct Adopted {
    pub origin: OriginId,
    pub at: u64,
    pub config: ClusterConfig,
}

#[derive(Clone, Debug)]
pub struct Granted {
    pub origin: OriginId,
    pub at: u64,
    pub promise: Promise,
}

/// A change or promotion its proposer reported in force.
#[derive(Clone, Debug)]
pub struct InForce {
    pub origin: OriginId,
    pub at: u64,
    /// The configuration it was made of.
    pub base: ClusterConfig,
    pub config: ClusterConfig,
}

fn show_config(c: &ClusterConfig) -> String {
    format!(
        "{} controlled by {} with {:?}",
        c.position(),
        c.controlling().map_or("nobody", |m| m.name.as_str()),
        c.members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
    )
}

/// The membership promises (each violation starts with its name):
/// - `config-position`: no two different configurations ever exist at one position
///   (epoch, version) — made or taken anywhere;
/// - `config-backwards`: the configurations each instance takes move forward only;
/// - `config-quorum`: a change reported in force was held (that configuration or a
///   later one of its epoch) by a change quorum of the members of the configuration it
///   was made of, when reported; a promotion reported in force was granted by a
///   promotion quorum of its base's members;
/// - `config-fork`: two configurations never both take effect: every configuration
///   reported in force after a change reported in force (the initial configuration
///   counts as one) descends from it by the chain of configurations each was made of.
///   A promotion in force may be superseded by a newer epoch granted from the
///   configuration it was made of, before it made any change of its own.
pub fn check_membership(m: &Membership) -> Vec<String> {
    let mut violations = Vec::new();
    let mut at: BTreeMap<ConfigPosition, &ClusterConfig> = BTreeMap::new();
    at.insert(m.initial.position(), &m.initial);
    let everything = m
        .made
        .iter()
        .map(|x| (x.origin, x.at, &x.config))
        .chain(m.adopted.iter().map(|x| (x.origin, x.at, &x.config)));
    for (origin, when, config) in everything {
        match at.get(&config.position()) {
            Some(seen) if *seen != config => violations.push(format!(
                "config-position: two configurations at {}: {} and, at {origin} ({when} ms), {}",
                config.position(),
                show_config(seen),
                show_config(config)
            )),
            Some(_) => {}
            None => {
                at.insert(config.position(), config);
            }
        }
    }
    let mut held: BTreeMap<OriginId, ConfigPosition> = BTreeMap::new();
    for a in &m.adopted {
        let before = held.get(&a.origin).copied().unwrap_or(m.initial.position());
        if a.config.position() <= before {
            violations.push(format!(
                "config-backwards: {} took {} at {} ms, holding {before}",
                a.origin,
                a.config.position(),
                a.at
            ));
        }
        held.insert(a.origin, a.config.position());
    }
    for f in &m.in_force {
        let wanted = f.config.position();
        let (holders, needed, what) = if wanted.epoch > f.base.epoch {
            let holders = f
                .base
                .members
                .iter()
                .filter(|b| {
                    m.granted.iter().any(|g| {
                        g.origin == b.origin
                            && g.at <= f.at
                            && g.promise
                                == Promise {
                                    epoch: wanted.epoch,
                                    candidate: f.origin,
                                }
                    })
                })
                .count();
            (holders, f.base.promotion_quorum(), "granted")
        } else {
            let holds = |origin: OriginId| {
                m.adopted.iter().any(|a| {
                    a.origin == origin
                        && a.at <= f.at
                        && a.config.epoch == wanted.epoch
                        && a.config.position() >= wanted
                })
            };
            let holders = f.base.members.iter().filter(|b| holds(b.origin)).count();
            (holders, f.base.change_quorum(), "held")
        };
        if holders < needed {
            violations.push(format!(
                "config-quorum: {} reported {} in force at {} ms, but only {holders} of the {} members of {} {what} it, not {needed}",
                f.origin,
                show_config(&f.config),
                f.at,
                f.base.members.len(),
                f.base.position()
            ));
        }
    }
    let parent: BTreeMap<ConfigPosition, ConfigPosition> = m
        .made
        .iter()
        .map(|x| (x.config.position(), x.base))
        .collect();
    // The changes in force (the initial configuration counts as one): each must be in
    // the line of every configuration in force after it. A promotion in force may be
    // superseded by a newer epoch granted from the same configuration before it made
    // any change (as a Raft leader whose term ends before it commits anything): only
    // what a change quorum confirmed must last.
    let mut changes: Vec<ConfigPosition> = m
        .in_force
        .iter()
        .filter(|f| f.config.epoch == f.base.epoch)
        .map(|f| f.config.position())
        .collect();
    changes.push(m.initial.position());
    let mut later: Vec<ConfigPosition> = m.in_force.iter().map(|f| f.config.position()).collect();
    later.sort();
    later.dedup();
    for &older in &changes {
        for &newer in later.iter().filter(|p| **p > older) {
            let mut p = newer;
            while p > older {
                match parent.get(&p) {
                    Some(&q) => p = q,
                    None => break,
                }
            }
            if p != older {
                violations.push(format!(
                    "config-fork: {older} and {newer} both took effect, but {newer} does not descend from {older} (its line passes {p})"
                ));
            }
        }
    }
    violations
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every live instance holds the same transactions and none waits for its peers.
    Converged,
    /// An instance waits after a lost tail for a majority that expiry made impossible:
    /// an operator must re-grow it, from whatever some instance still holds.
    Blocked,
    /// Neither, within the time given (itself a violation).
    NotConverged,
}

/// What the promises allow, or the simulated faults go beyond: counted, never silent.
/// The first two are the promise itself (a write acknowledged at durability 1 is its
/// origin's alone until another instance applies it). The others break a promise but
/// no code could avoid them under the simulated faults (every copy cut off, most
/// clocks stepped together), or the design accepts them (expiry); [`check`] reports
/// them as violations when asked to be strict (`QUADMESH_SIM_STRICT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Excused {
    /// No other instance ever applied it, and its origin's crash cut it off.
    pub cut_before_replicated: u64,
    /// No other instance ever applied it, and its origin was expired (re-grown, its
    /// own writes go with it).
    pub origin_expired_unreplicated: u64,
    /// Other instances applied it, and every instance that ever did lost it in a torn
    /// tail: no copy exists anywhere. The simulated torn tail cuts whole applied
    /// transactions (a log without fsync, `--no-fsync`), so two crashes can do this.
    pub every_copy_cut: u64,
    /// The only copies left are on instances the cluster expired (the world confirms
    /// each expiry followed that much real silence), or removed (a stream opened before
    /// a removal may still carry a transaction to the removed instance). By design an expired member is
    /// re-grown from the controlling instance and its log discarded (`remove` asks for
    /// `--force` while it holds transactions no remaining member holds).
    pub only_on_expired_members: u64,
    /// Not a loss: real-time inversions of two writes, one of them made while so many
    /// clocks were off that the rest were no majority (world ground truth). The clock
    /// fence of issue 25 trusts a majority's clocks: this family is beyond it, and
    /// stays until clocks are checked against something other than each other.
    pub real_time_clock_majority_off: u64,
    /// No other instance ever applied it, and its origin was removed by force without
    /// a hand-over (an operator's `remove --force hand-over=false`: what only the
    /// member holds is discarded). A removal without force holds the member's writes
    /// and waits until the others hold what it declared: a write it took with it is a
    /// violation (`lost`); so is one a member removed by force with a hand-over took
    /// with it, unless ...
    pub removed_by_force: u64,
    /// ... no other instance ever applied it, and the hand-over of its origin, removed
    /// by force, gave up after the log's retention (the controlling instance logs that
    /// acknowledged writes may be lost).
    pub hand_over_gave_up: u64,
}

/// Whether the known limits in [`Excused`] are violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Only what the promise allows is excused.
    Strict,
    /// Copies all cut, or left only on expired members, and inversions while most
    /// clocks were off, are counted, not reported.
    CountKnownLimits,
}

/// Per quad, the newest transaction of a log that touches it — naming it, or deleting a
/// pattern it matches —: its stamp and what it leaves of the quad.
fn newest_per_quad<'a>(entries: impl Iterator<Item = &'a Entry>) -> BTreeMap<Quad, (Stamp, bool)> {
    let mut newest: BTreeMap<Quad, (Stamp, bool)> = BTreeMap::new();
    for entry in entries {
        let effect = model::decode(&entry.payload);
        for quad in 0..QUADS {
            if let Some(present) = effect.on(quad) {
                let slot = newest.entry(quad).or_insert((entry.stamp(), present));
                if entry.stamp() >= slot.0 {
                    *slot = (entry.stamp(), present);
                }
            }
        }
    }
    newest
}

/// Last-writer-wins over a log, straight from its definition: per quad, the transaction
/// with the newest stamp among those that touch it decides.
pub fn lww<'a>(entries: impl Iterator<Item = &'a Entry>) -> BTreeSet<Quad> {
    newest_per_quad(entries)
        .into_iter()
        .filter(|(_, (_, p))| *p)
        .map(|(q, _)| q)
        .collect()
}

/// Checks every promise; says what was broken, and which losses were excused.
pub fn check(h: &History, ending: Ending, strictness: Strictness) -> (Vec<String>, Excused) {
    let mut violations = Vec::new();
    let mut excused = Excused::default();
    let live: Vec<usize> = (0..h.instances.len())
        .filter(|&i| h.instances[i].live && h.instances[i].contents.is_some())
        .collect();
    let lenient = strictness == Strictness::CountKnownLimits;
    let index_of = |origin: OriginId| h.instances.iter().position(|i| i.origin == origin);
    let by_id = |log: &[Entry]| -> BTreeMap<(OriginId, u64), Stamp> {
        log.iter().map(|e| ((e.origin, e.seq), e.stamp())).collect()
    };

    // Convergence: every live instance holds the same transactions and quads.
    if ending == Ending::Converged {
        if let Some(&first) = live.first() {
            let first_log = by_id(&h.instances[first].log);
            let first_contents = h.instances[first].contents.as_ref();
            for &i in &live[1..] {
                let instance = &h.instances[i];
                if by_id(&instance.log) != first_log {
                    violations.push(format!(
                        "diverged: n{i} and n{first} hold different transactions"
                    ));
                }
                if instance.contents.as_ref() != first_contents {
                    violations.push(format!(
                        "diverged: n{i} holds {:?}, n{first} holds {:?}",
                        instance.contents, first_contents
                    ));
                }
            }
        }
    }

    // Last-writer-wins and undone, at each live instance over its own log.
    let acked: Vec<(&Op, TxId)> = h
        .ops
        .iter()
        .filter(|op| op.acknowledged)
        .filter_map(|op| op.entry.map(|e| (op, e)))
        .collect();
    for &i in &live {
        let instance = &h.instances[i];
        let contents = instance.contents.as_ref().expect("live");
        let newest = newest_per_quad(instance.log.iter());
        let expected: BTreeSet<Quad> = newest
            .iter()
            .filter(|(_, (_, p))| *p)
            .map(|(q, _)| *q)
            .collect();
        if *contents != expected {
            violations.push(format!(
                "last-writer-wins: n{i} holds {contents:?}, its log says {expected:?}"
            ));
        }
        let log = by_id(&instance.log);
        for quad in 0..QUADS {
            // The newest acknowledged write of the quad this instance holds decides it,
            // unless a newer transaction in its log touches the quad.
            let newest_acked = acked
                .iter()
                .filter(|(op, (o, s, st))| {
                    op.effect.on(quad).is_some() && log.get(&(*o, *s)) == Some(st)
                })
                .max_by_key(|(_, (_, _, stamp))| *stamp);
            let Some((op, (_, _, stamp))) = newest_acked else {
                continue;
            };
            let present = op.effect.on(quad).expect("touches it");
            let newer_in_log = newest.get(&quad).is_some_and(|(s, _)| s > stamp);
            if !newer_in_log && contents.contains(&quad) != present {
                violations.push(format!(
                    "undone: n{i}: the acknowledged {} ({}) leaves q{quad} {}, yet it is {}",
                    op.effect,
                    show(*stamp),
                    if present { "present" } else { "absent" },
                    if present { "absent" } else { "present" },
                ));
            }
        }
    }

    // Lost: every acknowledged write is kept — in the live instances' logs, or, when
    // the run needs an operator, in some instance's log to re-grow from.
    let mut kept: BTreeSet<TxId> = BTreeSet::new();
    for (i, instance) in h.instances.iter().enumerate() {
        if ending == Ending::Blocked || live.contains(&i) {
            kept.extend(instance.log.iter().map(tx_id));
        }
    }
    let newest = h
        .membership
        .made
        .iter()
        .map(|x| &x.config)
        .chain(h.membership.adopted.iter().map(|x| &x.config))
        .max_by_key(|c| c.position())
        .unwrap_or(&h.membership.initial);
    for (op, id) in &acked {
        if kept.contains(id) {
            continue;
        }
        let (origin, seq, _) = *id;
        let origin_index = index_of(origin);
        let applied = h.applied_by.get(id).cloned().unwrap_or_default();
        let unreplicated = applied.iter().all(|&i| Some(i) == origin_index);
        let cut_by_origin = h
            .cut_by
            .get(id)
            .is_some_and(|c| origin_index.is_some_and(|o| c.contains(&o)));
        let origin_live = origin_index.is_some_and(|o| live.contains(&o));
        let cut = h.cut_by.get(id).cloned().unwrap_or_default();
        // Where copies are left: instances that applied it and never lost it.
        let left: BTreeSet<usize> = applied.difference(&cut).copied().collect();
        // Removed in the end (the newest configuration says so), by force or not.
        let removed = newest.removed.contains(&origin);
        let forced = removed && h.membership.removed_by_force.contains_key(&origin);
        let held_removal = removed && h.membership.removed_held.contains_key(&origin);
        let handing_over = removed && h.membership.removed_handing_over.contains_key(&origin);
        // The wait for it ended by giving up, and no newer configuration lists it again.
        let gave_up = handing_over
            && !newest.is_handing_over(origin)
            && h.membership.hand_over_gave_up.contains_key(&origin);
        if unreplicated && cut_by_origin {
            excused.cut_before_replicated += 1;
        } else if unreplicated && !origin_live && forced {
            excused.removed_by_force += 1;
        } else if unreplicated && !origin_live && gave_up {
            excused.hand_over_gave_up += 1;
        } else if unreplicated && !origin_live && handing_over {
            violations.push(format!(
                "lost: acknowledged write {origin}#{seq} ({} at n{}, invoked at {} ms) went with \
                 its origin, removed by force with a hand-over (written at {} ms) that {}: no \
                 other instance applied it",
                op.effect,
                op.node,
                op.invoked,
                h.membership.removed_handing_over[&origin],
                if newest.is_handing_over(origin) {
                    "is still to come"
                } else {
                    "did not give up"
                },
            ));
        } else if unreplicated && !origin_live && held_removal {
            violations.push(format!(
                "lost: acknowledged write {origin}#{seq} ({} at n{}, invoked at {} ms) went with \
                 its origin, removed without force (written at {} ms): no other instance \
                 applied it",
                op.effect, op.node, op.invoked, h.membership.removed_held[&origin],
            ));
        } else if unreplicated && !origin_live {
            excused.origin_expired_unreplicated += 1;
        } else if lenient && left.is_empty() {
            excused.every_copy_cut += 1;
        } else if lenient && left.iter().all(|i| !live.contains(i)) {
            excused.only_on_expired_members += 1;
        } else {
            violations.push(format!(
                "lost: acknowledged write {origin}#{seq} ({} at n{}, held by {:?} of {} asked) \
                 is gone; applied by {applied:?}, cut by {cut:?}, live {live:?}",
                op.effect, op.node, op.holders_claimed, op.needed,
            ));
        }
    }

    // Real-time order, over the acknowledged writes kept that touch a quad in common (a
    // range delete and an insert of a quad it covers too).
    let kept_acked: Vec<(&Op, TxId, u64)> = acked
        .iter()
        .filter(|(_, id)| kept.contains(id))
        .map(|&(op, id)| (op, id, op.effect.touched()))
        .collect();
    for (a, (ao, _, astamp), a_touched) in &kept_acked {
        for (b, (bo, _, bstamp), b_touched) in &kept_acked {
            if a_touched & b_touched == 0 {
                continue;
            }
            let a_done = a.completed.expect("acknowledged");
            let ordered = if ao == bo {
                a_done < b.invoked
            } else {
                a_done + REAL_TIME_WINDOW_MS < b.invoked
            };
            if !ordered || astamp < bstamp {
                continue;
            }
            // At one instance the order never depends on clocks being right.
            if lenient && ao != bo && (a.clock_majority_off || b.clock_majority_off) {
                excused.real_time_clock_majority_off += 1;
            } else {
                violations.push(format!(
                    "real-time: n{} wrote {} at {}..{a_done} ({}), n{} {} at {} ({}), yet the earlier wins",
                    a.node,
                    a.effect,
                    a.invoked,
                    show(*astamp),
                    b.node,
                    b.effect,
                    b.invoked,
                    show(*bstamp)
                ));
            }
        }
    }
    violations.extend(check_membership(&h.membership));
    (violations, excused)
}
