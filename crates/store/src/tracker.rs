use crate::effect::Effect;
use crate::error::Result;
use oxigraph::model::{Quad, QuadRef};
use oxigraph::store::Transaction;
use std::collections::HashMap;

/// Records the net effect of writes made through it on an oxigraph transaction.
///
/// Rules it keeps:
/// - the transaction always shows the state the recorded changes lead to, so later
///   operations of the same request or session see earlier ones;
/// - `changes` maps each quad whose presence differs from where it started to its
///   final presence; inserting a present quad or deleting an absent one records nothing,
///   and undoing a change removes it again.
pub struct ChangeTracker<'t, 's> {
    transaction: &'t mut Transaction<'s>,
    changes: HashMap<Quad, bool>,
}

impl<'t, 's> ChangeTracker<'t, 's> {
    pub fn new(transaction: &'t mut Transaction<'s>) -> Self {
        ChangeTracker {
            transaction,
            changes: HashMap::new(),
        }
    }

    /// Starts from changes recorded earlier (a session's pending work), which must
    /// already be visible in the transaction.
    pub fn with_changes(
        transaction: &'t mut Transaction<'s>,
        changes: HashMap<Quad, bool>,
    ) -> Self {
        ChangeTracker {
            transaction,
            changes,
        }
    }

    pub fn transaction(&self) -> &Transaction<'s> {
        self.transaction
    }

    pub fn contains(&self, quad: QuadRef<'_>) -> Result<bool> {
        Ok(self.transaction.contains(quad)?)
    }

    pub fn insert(&mut self, quad: Quad) -> Result<()> {
        if self.transaction.contains(&quad)? {
            return Ok(());
        }
        self.transaction.insert(&quad);
        self.note(quad, true);
        Ok(())
    }

    pub fn remove(&mut self, quad: Quad) -> Result<()> {
        if !self.transaction.contains(&quad)? {
            return Ok(());
        }
        self.transaction.remove(&quad);
        self.note(quad, false);
        Ok(())
    }

    fn note(&mut self, quad: Quad, present: bool) {
        match self.changes.get(&quad) {
            Some(&was) if was != present => {
                self.changes.remove(&quad);
            }
            _ => {
                self.changes.insert(quad, present);
            }
        }
    }

    pub fn changes(&self) -> &HashMap<Quad, bool> {
        &self.changes
    }

    pub fn into_changes(self) -> HashMap<Quad, bool> {
        self.changes
    }
}

/// Splits recorded changes into an [`Effect`].
pub fn effect_of(changes: HashMap<Quad, bool>) -> Effect {
    let mut effect = Effect::default();
    for (quad, present) in changes {
        if present {
            effect.inserts.push(quad);
        } else {
            effect.deletes.push(quad);
        }
    }
    effect
}
