//! An in-memory repository that keeps the rules of the real one
//! (`crates/store/src/repository.rs`) that replication relies on, over quads named by a
//! small number:
//! - one origin's transactions are applied in sequence order; one past a gap is
//!   refused, one already here is a duplicate (`quadmesh_repl::admission`, the store's
//!   own rule, not a copy);
//! - what it holds is decided by the real register, `quadmesh_repl::Register`, over
//!   numbered quads and range deletes by [`Pattern`]: each quad keeps the stamp of its
//!   last write (a missing entry counts as oldest) and an explicit write applies only if
//!   newer and not older than a tombstone covering it; a range delete removes what it
//!   covers whose last write is older and stays as a tombstone; so the order of arrival
//!   does not matter;
//! - log first: a failed append (full disk) writes and acknowledges nothing;
//! - the clock observes a peer's time before its transaction is taken (and may refuse
//!   it), and never goes back across restarts: readings stay below a high-water mark
//!   moved 200 ms ahead before a reading reaches it, restored on open with every
//!   replayed time;
//! - after a crash that cut a torn tail off the log, no local write until every other
//!   member reported no transaction of ours that we lack (`awaiting_peers`);
//! - removed and expired are recorded durably and refuse writes;
//! - a clock further than the maximum offset from a majority's refuses local writes
//!   (the clock fence of issue 25; the world decides it from what the instance heard).

use crate::world::QUADS;
use quadmesh_repl::{
    admission, Admission, AwaitingPeers, ClockError, ConfigPosition, Entry, EntryKind, HlcTime,
    HybridClock, OriginId, PhysicalClock, RangePattern, Register, VersionVector,
};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

pub type Quad = u8;

/// The simulated physical clock of one instance: true time plus its offset.
#[derive(Clone)]
pub struct SimClock {
    pub now: Arc<AtomicU64>,
    pub offset: Arc<AtomicI64>,
}

impl PhysicalClock for SimClock {
    fn now_millis(&self) -> u64 {
        self.now
            .load(Ordering::Relaxed)
            .saturating_add_signed(self.offset.load(Ordering::Relaxed))
    }
}

/// The maximum peer clock offset the clocks accept (ms).
pub const MAX_OFFSET_MS: u64 = 500;
/// How far the high-water mark moves ahead of a reading (ms), as `clock.json`.
pub const MARK_AHEAD_MS: u64 = 200;

/// Residue classes a range delete may name (besides every quad).
pub const CLASSES: u8 = 2;

/// What a range delete removes: every quad, or the quads of one residue class modulo
/// [`CLASSES`] (two shapes, as the store's "everything" and "one graph").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    All,
    Class(u8),
}

impl RangePattern for Pattern {
    type Item = Quad;
    type Shape = u8;

    fn shape(&self) -> u8 {
        match self {
            Pattern::All => 0,
            Pattern::Class(_) => 1,
        }
    }

    fn project(shape: u8, quad: &Quad) -> Option<Pattern> {
        Some(match shape {
            0 => Pattern::All,
            _ => Pattern::Class(quad % CLASSES),
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::All => write!(f, "*"),
            Pattern::Class(c) => write!(f, "q%{CLASSES}={c}"),
        }
    }
}

/// What one transaction does: range deletes, then explicit writes (quad, present after
/// it), each quad named at most once — a replace is a clear and then inserts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    pub sweeps: Vec<Pattern>,
    pub writes: Vec<(Quad, bool)>,
}

impl Effect {
    pub fn write(quad: Quad, present: bool) -> Effect {
        Effect {
            sweeps: Vec::new(),
            writes: vec![(quad, present)],
        }
    }

    /// What it leaves of `quad`: `Some(present)`, or `None` when it does not touch it.
    /// Its explicit write of the quad, if any, comes after its range deletes.
    pub fn on(&self, quad: Quad) -> Option<bool> {
        self.writes
            .iter()
            .rev()
            .find(|(q, _)| *q == quad)
            .map(|&(_, present)| present)
            .or_else(|| {
                self.sweeps
                    .iter()
                    .any(|p| p.matches(&quad))
                    .then_some(false)
            })
    }

    /// The quads it touches, one bit each.
    pub fn touched(&self) -> u64 {
        (0..QUADS)
            .filter(|&q| self.on(q).is_some())
            .fold(0, |bits, q| bits | 1 << q)
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.sweeps.iter().map(|p| format!("delete {p}")).collect();
        parts.extend(self.writes.iter().map(|(q, p)| format!("q{q}={p}")));
        write!(f, "{}", parts.join(", "))
    }
}

/// A transaction's payload: the number of range deletes, each a byte (`ALL_BYTE` or the
/// class), then (quad, present) pairs.
pub fn encode(effect: &Effect) -> Vec<u8> {
    let mut out = vec![effect.sweeps.len() as u8];
    out.extend(effect.sweeps.iter().map(|p| match p {
        Pattern::All => ALL_BYTE,
        Pattern::Class(c) => *c,
    }));
    out.extend(effect.writes.iter().flat_map(|&(q, p)| [q, u8::from(p)]));
    out
}

const ALL_BYTE: u8 = 0xff;

pub fn decode(payload: &[u8]) -> Effect {
    let (&n, rest) = payload.split_first().expect("a payload");
    let (sweeps, writes) = rest.split_at(usize::from(n));
    Effect {
        sweeps: sweeps
            .iter()
            .map(|&b| match b {
                ALL_BYTE => Pattern::All,
                c => Pattern::Class(c),
            })
            .collect(),
        writes: writes.chunks(2).map(|c| (c[0], c[1] == 1)).collect(),
    }
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub log: Vec<Entry>,
    pub clock_mark_ms: u64,
    pub awaiting_marker: bool,
    pub expired: Option<String>,
    pub removed: bool,
    /// Until when (world ms) local writes are held for a removal (`repl/hold`). Kept on
    /// disk, across crashes: the server keeps it in memory only, and a member restarted
    /// while held took writes its removal then lost (long-run seed 46108).
    pub held_until: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CommitError {
    DiskFull,
    AwaitingPeers,
    /// The clock is further than the maximum offset from a majority's (issue 25).
    ClockFenced,
    Expired,
    Removed,
    Clock(ClockError),
}

#[derive(Debug, PartialEq, Eq)]
pub enum ApplyError {
    Gap,
    DiskFull,
    Clock(ClockError),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    New,
    Duplicate,
}

pub struct Repo {
    pub origin: OriginId,
    physical: SimClock,
    pub disk: Disk,
    pub clock: HybridClock<SimClock>,
    pub vv: VersionVector,
    /// Per quad the stamp of its last write, and the range deletes (tombstones), as the
    /// real one: `quadmesh_repl::Register`. What is older than the frontier is forgotten
    /// (`prune`).
    register: Register<Pattern>,
    /// The quads present (the store).
    store: BTreeSet<Quad>,
    /// After a lost tail, until the other members answered (the real rules).
    awaiting: Option<AwaitingPeers>,
    members: Vec<OriginId>,
    /// Log entries appended since opening (pull streams wait on it).
    pub appended: u64,
    /// Quads removed by range deletes, and explicit writes refused as older than a range
    /// delete covering them, since the world last took the counts.
    pub swept: u64,
    pub refused_by_tombstone: u64,
}

impl Repo {
    /// Opens a repository from what its disk holds: replays the log.
    pub fn open(origin: OriginId, disk: Disk, clock: SimClock, members: &[OriginId]) -> Repo {
        let physical = clock.clone();
        let clock = HybridClock::new(clock, MAX_OFFSET_MS);
        clock.restore(HlcTime::from_parts(disk.clock_mark_ms, 0));
        let mut repo = Repo {
            origin,
            physical,
            clock,
            vv: VersionVector::new(),
            register: Register::new(),
            store: BTreeSet::new(),
            awaiting: disk.awaiting_marker.then(AwaitingPeers::new),
            members: members.to_vec(),
            disk,
            appended: 0,
            swept: 0,
            refused_by_tombstone: 0,
        };
        for entry in repo.disk.log.clone() {
            repo.clock.restore(entry.time);
            repo.admit(&entry);
        }
        repo
    }

    /// The log's last `cut` entries are lost (a torn tail): what the disk holds after
    /// the crash.
    pub fn crash(mut self, cut: usize) -> (Disk, Vec<Entry>) {
        let keep = self.disk.log.len().saturating_sub(cut);
        let lost = self.disk.log.split_off(keep);
        if !lost.is_empty() {
            self.disk.awaiting_marker = true;
        }
        (self.disk, lost)
    }

    /// Takes a transaction in through the register: its range deletes remove every
    /// present quad they match whose last write is older and stay as tombstones; then
    /// its explicit writes apply where they win. Says whether every explicit write won.
    fn admit(&mut self, entry: &Entry) -> bool {
        let mut all_won = true;
        if entry.kind == EntryKind::Data {
            let stamp = entry.stamp();
            let effect = decode(&entry.payload);
            for pattern in effect.sweeps {
                let register = &self.register;
                let before = self.store.len();
                self.store
                    .retain(|q| !(pattern.matches(q) && register.sweeps(q, stamp)));
                self.swept += (before - self.store.len()) as u64;
                self.register.add_tombstone(pattern, stamp);
            }
            for (quad, present) in effect.writes {
                if self.register.admit(&quad, stamp, present) {
                    if present {
                        self.store.insert(quad);
                    } else {
                        self.store.remove(&quad);
                    }
                } else {
                    all_won = false;
                    if self
                        .register
                        .newest_tombstone(&quad)
                        .is_some_and(|t| stamp < t)
                    {
                        self.refused_by_tombstone += 1;
                    }
                }
            }
        }
        self.vv.advance(entry.origin, entry.seq);
        all_won
    }

    /// The members after a configuration change (whose answers a lost tail awaits).
    pub fn set_members(&mut self, members: &[OriginId]) {
        self.members = members.to_vec();
        self.end_awaiting_if_answered();
    }

    /// Forgets the register entries and tombstones older than `frontier` (a missing
    /// entry counts as oldest); says how many of each.
    pub fn prune(&mut self, frontier: HlcTime) -> (usize, usize) {
        // Our own lost transactions may still come back, older than any frontier.
        if self.awaiting.is_some() {
            return (0, 0);
        }
        self.register.prune(frontier)
    }

    fn reserve(&mut self, time: HlcTime) {
        if time.millis() >= self.disk.clock_mark_ms {
            self.disk.clock_mark_ms = time.millis() + MARK_AHEAD_MS;
        }
    }

    /// A local write, stamped, logged and applied. `clock_fenced`: the world's clock
    /// fence (issue 25) found this instance's clock too far from a majority's.
    pub fn commit(
        &mut self,
        effect: &Effect,
        disk_full: bool,
        clock_fenced: bool,
    ) -> Result<Entry, CommitError> {
        if self.disk.removed {
            return Err(CommitError::Removed);
        }
        if self.disk.expired.is_some() {
            return Err(CommitError::Expired);
        }
        if self.awaiting.is_some() {
            return Err(CommitError::AwaitingPeers);
        }
        if disk_full {
            // The mark cannot move nor the log grow: nothing is written.
            return Err(CommitError::DiskFull);
        }
        if clock_fenced {
            return Err(CommitError::ClockFenced);
        }
        let time = self.clock.now().map_err(CommitError::Clock)?;
        self.reserve(time);
        let entry = Entry {
            kind: EntryKind::Data,
            origin: self.origin,
            seq: self.vv.get(self.origin) + 1,
            time,
            payload: encode(effect),
        };
        self.disk.log.push(entry.clone());
        // Stamped after every time this instance has seen: newer than all it holds.
        assert!(
            self.admit(&entry),
            "a local write loses to {:?}",
            self.register
        );
        self.appended += 1;
        Ok(entry)
    }

    /// A peer's transaction.
    pub fn apply_remote(&mut self, entry: &Entry, disk_full: bool) -> Result<Applied, ApplyError> {
        match admission(&self.vv, entry.origin, entry.seq) {
            Admission::Duplicate => return Ok(Applied::Duplicate),
            Admission::Gap { .. } => return Err(ApplyError::Gap),
            Admission::Next => {}
        }
        self.clock.observe(entry.time).map_err(ApplyError::Clock)?;
        if disk_full {
            return Err(ApplyError::DiskFull);
        }
        self.disk.log.push(entry.clone());
        self.admit(entry);
        self.appended += 1;
        Ok(Applied::New)
    }

    /// A heartbeat's promise: a reading below the high-water mark (the mark itself when
    /// it cannot move), and what this instance has.
    pub fn heartbeat_point(&mut self, disk_full: bool) -> (HlcTime, VersionVector) {
        let mut time = self.clock.now().expect("the logical counter carries over");
        if disk_full {
            time = time.min(HlcTime::from_parts(self.disk.clock_mark_ms, 0));
        } else {
            self.reserve(time);
        }
        if self.awaiting.is_some() {
            let last_own = self
                .disk
                .log
                .iter()
                .rev()
                .find(|e| e.origin == self.origin)
                .map(|e| e.time);
            time = AwaitingPeers::promise(time, last_own);
        }
        (time, self.vv.clone())
    }

    /// What a reading of the clock would be now, at least (ms): its physical time, or
    /// the last reading when that is ahead.
    pub fn clock_reading_ms(&self) -> u64 {
        self.clock.last().millis().max(self.clock_physical_ms())
    }

    pub fn clock_physical_ms(&self) -> u64 {
        self.physical.now_millis()
    }

    /// A peer's heartbeat: after a lost tail, local writes resume once the other
    /// members answered. Says whether the peer holds own transactions we lack.
    /// `under`: the configuration the peer held when it took `theirs`; `held`: the one
    /// this node holds.
    pub fn on_peer_heartbeat(
        &mut self,
        peer: OriginId,
        theirs: &VersionVector,
        under: Option<ConfigPosition>,
        held: ConfigPosition,
    ) -> bool {
        let ours = self.vv.get(self.origin);
        let ahead = theirs.get(self.origin) > ours;
        if let Some(waiting) = self.awaiting.as_mut() {
            waiting.on_report(peer, theirs.get(self.origin), ours, under, held);
            self.end_awaiting_if_answered();
        }
        ahead
    }

    /// A member this instance's view expired.
    pub fn on_peer_expired(&mut self, peer: OriginId) {
        if let Some(waiting) = self.awaiting.as_mut() {
            waiting.on_expired(peer);
            self.end_awaiting_if_answered();
        }
    }

    fn end_awaiting_if_answered(&mut self) {
        if self
            .awaiting
            .as_ref()
            .is_some_and(|w| w.satisfied(self.origin, &self.members))
        {
            self.awaiting = None;
            self.disk.awaiting_marker = false;
        }
    }

    /// Awaiting peers, and never to be freed: so many members are expired that no
    /// majority can answer (an operator must re-grow it from a member).
    pub fn awaiting_blocked(&self) -> bool {
        self.awaiting
            .as_ref()
            .is_some_and(|w| w.blocked(self.origin, &self.members))
    }

    pub fn is_awaiting(&self) -> bool {
        self.awaiting.is_some()
    }

    /// The quads present.
    pub fn contents(&self) -> BTreeSet<Quad> {
        self.store.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(origin: u64, seq: u64, ms: u64, effect: &Effect) -> Entry {
        Entry {
            kind: EntryKind::Data,
            origin: OriginId(origin),
            seq,
            time: HlcTime::from_parts(1_700_000_000_000 + ms, 0),
            payload: encode(effect),
        }
    }

    fn open(log: Vec<Entry>) -> Repo {
        let clock = SimClock {
            now: Arc::new(AtomicU64::new(1_700_000_000_000)),
            offset: Arc::new(AtomicI64::new(0)),
        };
        let disk = Disk {
            log,
            ..Disk::default()
        };
        Repo::open(OriginId(9), disk, clock, &[OriginId(1), OriginId(2)])
    }

    #[test]
    fn payloads_round_trip() {
        let effect = Effect {
            sweeps: vec![Pattern::All, Pattern::Class(1)],
            writes: vec![(3, true), (4, false)],
        };
        assert_eq!(decode(&encode(&effect)), effect);
        assert_eq!(
            decode(&encode(&Effect::write(5, true))),
            Effect::write(5, true)
        );
    }

    #[test]
    fn an_older_insert_arriving_after_a_range_delete_is_not_applied_and_a_newer_one_is() {
        let clear_odd = Effect {
            sweeps: vec![Pattern::Class(1)],
            writes: Vec::new(),
        };
        let repo = open(vec![
            entry(1, 1, 50, &Effect::write(3, true)),
            entry(1, 2, 200, &clear_odd),
            // Stamped before the delete, arriving after it.
            entry(2, 1, 100, &Effect::write(1, true)),
            entry(2, 2, 150, &Effect::write(2, true)),
            entry(2, 3, 300, &Effect::write(5, true)),
        ]);
        assert_eq!(repo.contents(), BTreeSet::from([2, 5]));
    }

    #[test]
    fn a_replace_inserts_after_its_own_range_delete() {
        let replace = Effect {
            sweeps: vec![Pattern::All],
            writes: vec![(0, true)],
        };
        let repo = open(vec![
            entry(1, 1, 100, &Effect::write(1, true)),
            entry(2, 1, 200, &replace),
        ]);
        assert_eq!(repo.contents(), BTreeSet::from([0]));
    }

    #[test]
    fn pruning_forgets_tombstones_behind_the_frontier() {
        let mut repo = open(vec![entry(
            1,
            1,
            200,
            &Effect {
                sweeps: vec![Pattern::All],
                writes: Vec::new(),
            },
        )]);
        let frontier = |ms: u64| HlcTime::from_parts(1_700_000_000_000 + ms, 0);
        assert_eq!(repo.prune(frontier(200)), (0, 0), "not older than it");
        assert_eq!(repo.prune(frontier(201)), (0, 1));
    }
}
