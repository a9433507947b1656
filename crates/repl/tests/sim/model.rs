//! An in-memory repository that keeps the rules of the real one
//! (`crates/store/src/repository.rs`) that replication relies on, over quads named by a
//! small number:
//! - one origin's transactions are applied in sequence order; one past a gap is
//!   refused, one already here is a duplicate;
//! - each quad keeps the stamp of its last write (a missing entry counts as oldest); a
//!   write applies only if its stamp is newer, so the order of arrival does not matter;
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

use quadmesh_repl::{
    AwaitingPeers, ClockError, Entry, EntryKind, HlcTime, HybridClock, OriginId, PhysicalClock,
    Stamp, VersionVector,
};
use std::collections::{BTreeMap, BTreeSet};
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

/// A transaction's writes: (quad, present after it).
pub fn encode(ops: &[(Quad, bool)]) -> Vec<u8> {
    ops.iter().flat_map(|&(q, p)| [q, u8::from(p)]).collect()
}

pub fn decode(payload: &[u8]) -> Vec<(Quad, bool)> {
    payload.chunks(2).map(|c| (c[0], c[1] == 1)).collect()
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub log: Vec<Entry>,
    pub clock_mark_ms: u64,
    pub awaiting_marker: bool,
    pub expired: Option<String>,
    pub removed: bool,
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
    /// Per quad: the stamp of its last write and whether it is present after it;
    /// entries older than the frontier are forgotten (`prune`).
    register: BTreeMap<Quad, (Stamp, bool)>,
    /// The quads present (the store).
    store: BTreeSet<Quad>,
    /// After a lost tail, until the other members answered (the real rules).
    awaiting: Option<AwaitingPeers>,
    members: Vec<OriginId>,
    /// Log entries appended since opening (pull streams wait on it).
    pub appended: u64,
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
            register: BTreeMap::new(),
            store: BTreeSet::new(),
            awaiting: disk.awaiting_marker.then(AwaitingPeers::new),
            members: members.to_vec(),
            disk,
            appended: 0,
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

    fn admit(&mut self, entry: &Entry) {
        if entry.kind == EntryKind::Data {
            for (quad, present) in decode(&entry.payload) {
                let newer = self
                    .register
                    .get(&quad)
                    .is_none_or(|(stamp, _)| entry.stamp() > *stamp);
                if newer {
                    self.register.insert(quad, (entry.stamp(), present));
                    if present {
                        self.store.insert(quad);
                    } else {
                        self.store.remove(&quad);
                    }
                }
            }
        }
        self.vv.advance(entry.origin, entry.seq);
    }

    /// Forgets the register entries older than `frontier` (a missing entry counts as
    /// oldest); says how many.
    pub fn prune(&mut self, frontier: HlcTime) -> usize {
        // Our own lost transactions may still come back, older than any frontier.
        if self.awaiting.is_some() {
            return 0;
        }
        let before = self.register.len();
        self.register.retain(|_, (stamp, _)| stamp.time >= frontier);
        before - self.register.len()
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
        ops: &[(Quad, bool)],
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
            payload: encode(ops),
        };
        self.disk.log.push(entry.clone());
        self.admit(&entry);
        self.appended += 1;
        Ok(entry)
    }

    /// A peer's transaction.
    pub fn apply_remote(&mut self, entry: &Entry, disk_full: bool) -> Result<Applied, ApplyError> {
        let have = self.vv.get(entry.origin);
        if entry.seq <= have {
            return Ok(Applied::Duplicate);
        }
        if entry.seq != have + 1 {
            return Err(ApplyError::Gap);
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
    pub fn on_peer_heartbeat(&mut self, peer: OriginId, theirs: &VersionVector) -> bool {
        let ours = self.vv.get(self.origin);
        let ahead = theirs.get(self.origin) > ours;
        if let Some(waiting) = self.awaiting.as_mut() {
            waiting.on_report(peer, theirs.get(self.origin), ours);
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
