//! A session's uncommitted work: a set of quad changes that its own reads see and
//! nobody else's do, until commit hands it to the writer as one transaction.

use crate::error::Result;
use crate::repository::{CommitReceipt, Repository};
use crate::tracker::{ChangeTracker, Writes};
use oxigraph::store::{Store, Transaction};

type StoreTransaction<'a> = Transaction<'a>;

self_cell::self_cell!(
    /// An oxigraph transaction kept between requests: a RocksDB snapshot of the store
    /// plus the session's own writes in a private batch. It takes no lock, so it
    /// never blocks a writer; it is never committed (commit goes through the writer).
    struct Snapshot {
        owner: Store,
        #[not_covariant]
        dependent: StoreTransaction,
    }
);

/// Pending changes of a session: its range deletes and, per quad, the wanted presence
/// (and presence when the session first wrote it), and, for a session that does not
/// auto-commit, the snapshot it reads.
///
/// Rules it keeps:
/// - a session without auto-commit reads the repository as of its start, or of its
///   last commit or rollback, plus its own pending writes; others' commits appear
///   after its next commit or rollback;
/// - a request that fails leaves the pending changes (and the snapshot's view of
///   them) as they were before it;
/// - the snapshot is a RocksDB snapshot: it holds back compaction of what was
///   overwritten since, for as long as the session lives (sessions have a lifetime).
#[derive(Default)]
pub struct PendingChanges {
    changes: Writes,
    snapshot: Option<Snapshot>,
}

impl std::fmt::Debug for PendingChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingChanges")
            .field("changes", &self.changes.quads.len())
            .field("patterns", &self.changes.patterns.len())
            .field("snapshot", &self.snapshot.is_some())
            .finish()
    }
}

impl PendingChanges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.changes.quads.len() + self.changes.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Drops the pending changes and the snapshot (a rollback).
    pub fn clear(&mut self) {
        self.changes = Writes::default();
        self.snapshot = None;
    }
}

/// Brings a fresh snapshot to the session's view: its range deletes, then its writes.
fn write_all(transaction: &mut Transaction<'_>, changes: &Writes) -> Result<()> {
    for pattern in &changes.patterns {
        for quad in pattern.matches_in(transaction)? {
            transaction.remove(&quad);
        }
    }
    for (quad, change) in &changes.quads {
        if change.present {
            transaction.insert(quad);
        } else {
            transaction.remove(quad);
        }
    }
    Ok(())
}

/// Puts back in `transaction` the presence each quad had before a failed request:
/// as `before` wanted it, or as it was when first written (quads a range delete of the
/// failed request removed were present).
fn undo(transaction: &mut Transaction<'_>, before: &Writes, after: &Writes) {
    for (quad, change) in &after.quads {
        // Swept by an earlier request: absent before this one.
        let wanted = match before.quads.get(quad) {
            Some(b) => b.present,
            None => change.was_present && !before.swept.contains(quad),
        };
        if change.present != wanted {
            if wanted {
                transaction.insert(quad);
            } else {
                transaction.remove(quad);
            }
        }
    }
    for quad in after.swept.difference(&before.swept) {
        if !after.quads.contains_key(quad) {
            transaction.insert(quad);
        }
    }
}

impl Repository {
    /// Runs `work` on the session's view: its snapshot (`stable`, a session without
    /// auto-commit) or the current store, with its pending changes applied. What `work`
    /// writes through the tracker joins the pending changes, unless it fails, in which
    /// case the pending changes stay as they were.
    pub fn in_session<R>(
        &self,
        pending: &mut PendingChanges,
        stable: bool,
        work: impl FnOnce(&mut ChangeTracker<'_, '_>) -> Result<R>,
    ) -> Result<R> {
        if !stable {
            pending.snapshot = None;
        }
        if pending.snapshot.is_none() {
            let changes = &pending.changes;
            pending.snapshot = Some(Snapshot::try_new(self.store().clone(), |store| {
                let mut transaction = store.start_transaction()?;
                write_all(&mut transaction, changes)?;
                Ok::<_, crate::error::StoreError>(transaction)
            })?);
        }
        let PendingChanges { changes, snapshot } = pending;
        let before = changes.clone();
        let current = std::mem::take(changes);
        let snapshot = snapshot.as_mut().expect("made above");
        let (result, after) = snapshot.with_dependent_mut(|_, transaction| {
            let mut tracker = ChangeTracker::with_writes(transaction, current);
            match work(&mut tracker) {
                Ok(result) => (Ok(result), tracker.into_writes()),
                Err(e) => {
                    let after = tracker.into_writes();
                    undo(transaction, &before, &after);
                    (Err(e), before)
                }
            }
        });
        *changes = after;
        result
    }

    /// Commits a session's pending changes as one transaction, relative to the store as
    /// it is now: every quad the session wrote is stamped (see `ChangeTracker`). After
    /// it, the session reads the store as it is then.
    pub fn commit_pending(&self, pending: &mut PendingChanges) -> Result<CommitReceipt> {
        let changes = std::mem::take(&mut pending.changes);
        let receipt = self.commit(|tracker| {
            // Its range deletes first, on the store as it is now; then its writes.
            for pattern in &changes.patterns {
                tracker.remove_pattern(pattern.clone())?;
            }
            for (quad, change) in &changes.quads {
                if change.present {
                    tracker.insert(quad.clone())?;
                } else {
                    tracker.remove(quad.clone())?;
                }
            }
            Ok(())
        });
        match receipt {
            Ok(_) => pending.snapshot = None,
            Err(_) => pending.changes = changes,
        }
        receipt
    }
}
