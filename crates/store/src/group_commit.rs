//! Group commit: the log frames of many transactions made durable by one sync.
//!
//! A transaction is appended to the log (written, not synced) and applied under the
//! writer lock, then *released* here; its committer leaves the writer lock and waits
//! ([`GroupCommit::wait_durable`]) until a sync covers its frame. Whoever finds no sync
//! running becomes the leader: it syncs the active segment up to everything released
//! so far, for all who wait; the others sleep on the condition variable. While one sync
//! runs, the next group gathers, so at any rate the log takes about one sync per sync
//! time instead of one per transaction.
//!
//! Rules it keeps:
//! - nothing is announced before it is durable: the count of appended entries (which
//!   wakes pull streams) and the published version vector (what readers, status and
//!   peers are told this instance holds) advance only for entries a successful sync
//!   covered, in log order. Pull streams and heartbeats read the log only up to
//!   [`GroupCommit::synced`] (see `feed.rs` and `heartbeat_point_locked`);
//! - a committer is answered only once `synced` reached its frame's end;
//! - a failed sync is final: every entry released and not yet covered stays
//!   unannounced, every waiter for one of them gets the failure, and so does every later
//!   wait (the repository stops taking writes; the restart's replay settles what reached
//!   the disk). A later sync that succeeds proves nothing: after a writeback error the
//!   kernel may report success for pages it dropped;
//! - entries are released only once applied, so a roll-back (which cuts the last,
//!   unreleased frame) never takes back bytes a sync was asked to cover;
//! - without fsync every release is durable at once, as the log was before.

use crate::log::LogPosition;
use quadmesh_repl::{OriginId, VersionVector};
use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use tokio::sync::watch;

/// A failed sync of the log: the entries it would have covered are not durable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a sync of the replication log failed ({reason}); the transactions appended since the last successful sync were not acknowledged")]
pub struct SyncFailed {
    pub reason: String,
}

/// An entry appended and applied, not yet announced.
#[derive(Clone, Copy, Debug)]
struct Released {
    end: LogPosition,
    origin: OriginId,
    seq: u64,
}

struct SyncState {
    /// The active segment (a duplicate of the log's handle: the same open file).
    file: Arc<File>,
    /// The segment `file` is.
    segment: u64,
    /// The end of the last entry released for syncing.
    written: LogPosition,
    /// Everything before this is durable.
    synced: LogPosition,
    /// Entries released and not yet durable, in log order.
    pending: VecDeque<Released>,
    /// A leader is syncing (outside this mutex) now.
    syncing: bool,
    failed: Option<SyncFailed>,
    /// Syncs made (successful or not), for tests and metrics.
    syncs: u64,
    /// Unit tests: the next sync fails with EIO.
    #[cfg(test)]
    fail_next: bool,
    /// Unit tests: syncs wait while this is set.
    #[cfg(test)]
    held: bool,
}

/// The shared sync of one repository's log, and the announcements that follow it.
pub(crate) struct GroupCommit {
    fsync: bool,
    state: Mutex<SyncState>,
    changed: Condvar,
    /// Counts durable log entries; pull streams wait on it.
    pub(crate) appended: watch::Sender<u64>,
    /// The version vector of what is applied and durable.
    pub(crate) applied_vector: watch::Sender<VersionVector>,
}

impl GroupCommit {
    /// Everything in the log up to `end` (in segment `segment`, open as `file`) is
    /// durable: it was synced before, or replayed from disk on open.
    pub(crate) fn new(
        fsync: bool,
        file: File,
        segment: u64,
        end: LogPosition,
        entries: u64,
        version_vector: VersionVector,
    ) -> Self {
        GroupCommit {
            fsync,
            state: Mutex::new(SyncState {
                file: Arc::new(file),
                segment,
                written: end,
                synced: end,
                pending: VecDeque::new(),
                syncing: false,
                failed: None,
                syncs: 0,
                #[cfg(test)]
                fail_next: false,
                #[cfg(test)]
                held: false,
            }),
            changed: Condvar::new(),
            appended: watch::Sender::new(entries),
            applied_vector: watch::Sender::new(version_vector),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything before this position is durable (and announced).
    pub(crate) fn synced(&self) -> LogPosition {
        self.lock().synced
    }

    /// Whether a sync failed (the repository then takes no more writes).
    pub(crate) fn failed(&self) -> Option<SyncFailed> {
        self.lock().failed.clone()
    }

    /// Syncs made since opening.
    pub(crate) fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The segment the shared sync syncs.
    pub(crate) fn segment(&self) -> u64 {
        self.lock().segment
    }

    /// Hands an entry that is appended and applied over for syncing. Called under the
    /// writer lock, in log order. `new_segment` is the log's active segment when the
    /// entry is the first of a segment not seen before (the log synced the segments
    /// before it when it rotated).
    pub(crate) fn release(
        &self,
        end: LogPosition,
        origin: OriginId,
        seq: u64,
        new_segment: Option<File>,
    ) {
        let mut state = self.lock();
        if end.segment != state.segment {
            let Some(file) = new_segment else {
                // Syncing the old segment's handle would acknowledge frames it does not
                // hold: fail safe.
                self.fail(
                    &mut state,
                    format!("no handle on log segment {} to sync", end.segment),
                );
                return;
            };
            state.file = Arc::new(file);
            state.segment = end.segment;
            let start = LogPosition {
                segment: end.segment,
                offset: 0,
            };
            self.mark_synced(&mut state, start);
        }
        state.written = end;
        state.pending.push_back(Released { end, origin, seq });
        if !self.fsync {
            self.mark_synced(&mut state, end);
        }
    }

    /// Starts over after the log was rewritten under the writer lock (its holes filled,
    /// the rewrite synced): everything up to `end` is durable and `file` is the active
    /// segment now; `added` entries were put into the log. Whatever was pending was
    /// made durable and announced before the rewrite (`sync_now`).
    pub(crate) fn reset_to(
        &self,
        file: File,
        end: LogPosition,
        version_vector: VersionVector,
        added: usize,
    ) {
        let mut state = self.lock();
        state.file = Arc::new(file);
        state.segment = end.segment;
        state.written = end;
        state.synced = end;
        state.pending.clear();
        self.applied_vector.send_replace(version_vector);
        self.appended.send_modify(|n| *n += added as u64);
        self.changed.notify_all();
    }

    /// Everything up to `upto` is durable (synced by the log itself, under the writer
    /// lock): announces it.
    pub(crate) fn synced_by_log(&self, upto: LogPosition) {
        let mut state = self.lock();
        self.mark_synced(&mut state, upto);
    }

    /// Announces every pending entry that ends at or before `upto`, and wakes waiters.
    fn mark_synced(&self, state: &mut SyncState, upto: LogPosition) {
        if state.failed.is_some() {
            return;
        }
        if upto > state.synced {
            state.synced = upto;
        }
        let mut count = 0;
        let mut durable = Vec::new();
        while let Some(front) = state.pending.front() {
            if front.end > state.synced {
                break;
            }
            durable.push(*front);
            state.pending.pop_front();
            count += 1;
        }
        if count > 0 {
            self.applied_vector.send_modify(|v| {
                for r in &durable {
                    v.advance(r.origin, r.seq);
                }
            });
            self.appended.send_modify(|n| *n += count);
        }
        self.changed.notify_all();
    }

    /// Makes everything released so far durable now (under the writer lock, before a
    /// checkpoint, a snapshot or a heartbeat that must cover it). Blocking.
    pub(crate) fn sync_now(&self) -> Result<(), SyncFailed> {
        let (file, upto) = {
            let state = self.lock();
            if let Some(failed) = &state.failed {
                return Err(failed.clone());
            }
            if state.synced >= state.written {
                return Ok(());
            }
            (state.file.clone(), state.written)
        };
        let result = self.sync_file(&file);
        let mut state = self.lock();
        self.finish(&mut state, upto, result)
    }

    /// Waits until a sync covers `end`, syncing for everyone waiting when no one else
    /// is. Must not be called under the writer lock (others' commits gather while it
    /// waits). Blocking.
    pub(crate) fn wait_durable(&self, end: LogPosition) -> Result<(), SyncFailed> {
        let mut state = self.lock();
        loop {
            if state.synced >= end {
                return Ok(());
            }
            if let Some(failed) = &state.failed {
                return Err(failed.clone());
            }
            if !state.syncing {
                state.syncing = true;
                let (file, upto) = (state.file.clone(), state.written);
                drop(state);
                let result = self.sync_file(&file);
                state = self.lock();
                state.syncing = false;
                let finished = self.finish(&mut state, upto, result);
                // Another waiter may have to lead the next sync.
                self.changed.notify_all();
                finished?;
                continue;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes the outcome of a sync that covered up to `upto`.
    fn finish(
        &self,
        state: &mut SyncState,
        upto: LogPosition,
        result: std::io::Result<()>,
    ) -> Result<(), SyncFailed> {
        state.syncs += 1;
        match result {
            Ok(()) => {
                self.mark_synced(state, upto);
                match &state.failed {
                    Some(failed) => Err(failed.clone()),
                    None => Ok(()),
                }
            }
            Err(e) => Err(self.fail(state, e.to_string())),
        }
    }

    /// A sync failed (here, or one the log made while entries were pending): nothing
    /// not yet synced will be announced or acknowledged.
    pub(crate) fn fail_pending(&self, reason: String) -> Option<SyncFailed> {
        let mut state = self.lock();
        if state.synced >= state.written && state.failed.is_none() {
            return None;
        }
        Some(self.fail(&mut state, reason))
    }

    fn fail(&self, state: &mut SyncState, reason: String) -> SyncFailed {
        let failed = state.failed.get_or_insert(SyncFailed { reason }).clone();
        self.changed.notify_all();
        failed
    }

    #[cfg(not(test))]
    fn sync_file(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }

    /// In unit tests a sync can be held back, and made to fail (EIO).
    #[cfg(test)]
    fn sync_file(&self, file: &File) -> std::io::Result<()> {
        let mut state = self.lock();
        while state.held {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if std::mem::take(&mut state.fail_next) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        drop(state);
        file.sync_data()
    }

    /// Unit tests: the next shared sync fails with EIO.
    #[cfg(test)]
    pub(crate) fn fail_next_sync(&self) {
        self.lock().fail_next = true;
    }

    /// Unit tests: shared syncs wait (`true`) or go on (`false`).
    #[cfg(test)]
    pub(crate) fn hold_syncs(&self, held: bool) {
        self.lock().held = held;
        self.changed.notify_all();
    }

    /// Unit tests: entries released and not yet durable.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Unit tests: whether a leader is syncing now.
    #[cfg(test)]
    pub(crate) fn syncing(&self) -> bool {
        self.lock().syncing
    }
}
