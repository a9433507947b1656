//! A session's uncommitted work: a set of quad changes that its own reads see and
//! nobody else's do, until commit hands it to the writer as one transaction.

use crate::error::Result;
use crate::repository::{CommitReceipt, Repository};
use crate::tracker::ChangeTracker;
use oxigraph::model::Quad;
use std::collections::HashMap;

/// Pending changes of a session: quad → wanted presence.
///
/// No oxigraph transaction is held between requests, so an open session never blocks
/// any writer; each request rebuilds its view as the current store plus these changes.
#[derive(Debug, Default, Clone)]
pub struct PendingChanges {
    changes: HashMap<Quad, bool>,
}

impl PendingChanges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn clear(&mut self) {
        self.changes.clear();
    }
}

impl Repository {
    /// Runs `work` on a view of the store with the session's pending changes applied.
    /// What `work` writes through the tracker joins the pending changes, unless it fails,
    /// in which case the pending changes stay as they were.
    pub fn in_session<R>(
        &self,
        pending: &mut PendingChanges,
        work: impl FnOnce(&mut ChangeTracker<'_, '_>) -> Result<R>,
    ) -> Result<R> {
        let mut transaction = self.store().start_transaction()?;
        for (quad, &present) in &pending.changes {
            if present {
                transaction.insert(quad);
            } else {
                transaction.remove(quad);
            }
        }
        let mut tracker = ChangeTracker::with_changes(&mut transaction, pending.changes.clone());
        let result = work(&mut tracker)?;
        pending.changes = tracker.into_changes();
        Ok(result)
    }

    /// Commits a session's pending changes as one transaction, relative to the store as
    /// it is now (changes others already made are not repeated).
    pub fn commit_pending(&self, pending: &mut PendingChanges) -> Result<CommitReceipt> {
        let changes = std::mem::take(&mut pending.changes);
        let receipt = self.commit(|tracker| {
            for (quad, present) in &changes {
                if *present {
                    tracker.insert(quad.clone())?;
                } else {
                    tracker.remove(quad.clone())?;
                }
            }
            Ok(())
        });
        if receipt.is_err() {
            pending.changes = changes;
        }
        receipt
    }
}
