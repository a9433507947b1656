use crate::effect::Effect;
use crate::error::Result;
use oxigraph::model::{GraphName, NamedOrBlankNodeRef, Quad, QuadRef};
use oxigraph::store::Transaction;
use std::collections::{HashMap, HashSet};

/// What a request (or a session) did to one quad: whether the quad was there when the
/// request first touched it, and what the last operation naming it wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuadChange {
    pub was_present: bool,
    pub present: bool,
}

impl QuadChange {
    /// Whether the quad's presence really changes here.
    pub fn changes_locally(&self) -> bool {
        self.was_present != self.present
    }
}

/// Records the writes made through it on an oxigraph transaction.
///
/// Rules it keeps:
/// - the transaction always shows the state the recorded writes lead to, so later
///   operations of the same request or session see earlier ones;
/// - every quad an operation names is recorded with the presence the *last* operation
///   naming it wants, even when that changes nothing here: inserting a quad this
///   instance still holds, or deleting one it has not received yet, is a write the
///   user made and must be stamped, or last-writer-wins could never let it win over an
///   older operation still on its way from another instance;
/// - it also remembers whether each quad was present before the first operation, so
///   that a repository outside a cluster can log only what really changes.
pub struct ChangeTracker<'t, 's> {
    transaction: &'t mut Transaction<'s>,
    changes: HashMap<Quad, QuadChange>,
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
        changes: HashMap<Quad, QuadChange>,
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

    /// Asserts `quad`: present after this write, whatever it was before.
    pub fn insert(&mut self, quad: Quad) -> Result<()> {
        self.write(quad, true)
    }

    /// Retracts `quad`: absent after this write, whatever it was before.
    pub fn remove(&mut self, quad: Quad) -> Result<()> {
        self.write(quad, false)
    }

    fn write(&mut self, quad: Quad, present: bool) -> Result<()> {
        let now = self.transaction.contains(&quad)?;
        if now != present {
            if present {
                self.transaction.insert(&quad);
            } else {
                self.transaction.remove(&quad);
            }
        }
        self.changes
            .entry(quad)
            .and_modify(|change| change.present = present)
            .or_insert(QuadChange {
                was_present: now,
                present,
            });
        Ok(())
    }

    pub fn changes(&self) -> &HashMap<Quad, QuadChange> {
        &self.changes
    }

    pub fn into_changes(self) -> HashMap<Quad, QuadChange> {
        self.changes
    }
}

/// Splits recorded changes into an [`Effect`]: every quad written when `all_named`
/// (a replicated repository, where each named quad must be stamped), else only the
/// quads whose presence really changes.
pub fn effect_of(changes: HashMap<Quad, QuadChange>, all_named: bool) -> Effect {
    let mut effect = Effect::default();
    for (quad, change) in changes {
        if !all_named && !change.changes_locally() {
            continue;
        }
        if change.present {
            effect.inserts.push(quad);
        } else {
            effect.deletes.push(quad);
        }
    }
    effect
}

/// Graphs exist while they hold a quad (AllegroGraph's contexts): after deletes, every
/// named graph among `graphs` left without quads is dropped from the store's list of
/// graphs, so that `GRAPH ?g {}` agrees with `/contexts` and the graph store.
pub(crate) fn drop_emptied_graphs<'q>(
    transaction: &mut Transaction<'_>,
    graphs: impl IntoIterator<Item = &'q GraphName>,
) -> Result<()> {
    let mut seen = HashSet::new();
    for graph in graphs {
        let name: NamedOrBlankNodeRef<'_> = match graph {
            GraphName::NamedNode(n) => n.as_ref().into(),
            GraphName::BlankNode(b) => b.as_ref().into(),
            GraphName::DefaultGraph => continue,
        };
        if !seen.insert(graph) {
            continue;
        }
        let empty = transaction
            .quads_for_pattern(None, None, None, Some(graph.as_ref()))
            .next()
            .transpose()?
            .is_none();
        if empty {
            transaction.remove_named_graph(name)?;
        }
    }
    Ok(())
}
