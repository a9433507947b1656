use crate::effect::Effect;
use crate::error::Result;
use crate::pattern::QuadPattern;
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

/// The writes of a request or a session: range deletes, in order, and per quad named
/// the net change; plus the quads the range deletes removed here that no write names.
#[derive(Clone, Debug, Default)]
pub struct Writes {
    pub quads: HashMap<Quad, QuadChange>,
    pub patterns: Vec<QuadPattern>,
    /// Quads present before that a range delete removed and no later write names: the
    /// pattern covers them on every instance, so they are not listed one by one.
    pub swept: HashSet<Quad>,
}

impl Writes {
    pub fn is_empty(&self) -> bool {
        self.quads.is_empty() && self.patterns.is_empty()
    }

    /// Quads whose presence changes here: (quad, present after).
    pub fn local_changes(&self) -> impl Iterator<Item = (&Quad, bool)> {
        self.quads
            .iter()
            .filter(|(_, c)| c.changes_locally())
            .map(|(q, c)| (q, c.present))
            .chain(self.swept.iter().map(|q| (q, false)))
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
/// - a delete by pattern is recorded as the pattern (a range tombstone), which every
///   instance applies to what it holds, and quads written earlier in the same request
///   that it matches are recorded as deleted: the transaction's explicit writes, which
///   are applied after its patterns everywhere, then end as they end here;
/// - it also remembers whether each quad was present before the first operation, so
///   that a repository outside a cluster can log only what really changes.
pub struct ChangeTracker<'t, 's> {
    transaction: &'t mut Transaction<'s>,
    writes: Writes,
}

impl<'t, 's> ChangeTracker<'t, 's> {
    pub fn new(transaction: &'t mut Transaction<'s>) -> Self {
        Self::with_writes(transaction, Writes::default())
    }

    /// Starts from writes recorded earlier (a session's pending work), which must
    /// already be visible in the transaction.
    pub fn with_writes(transaction: &'t mut Transaction<'s>, writes: Writes) -> Self {
        ChangeTracker {
            transaction,
            writes,
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

    /// Removes every quad matching `pattern`, here and, as a range tombstone, on every
    /// instance (each matching quad written before this transaction). Answers how many
    /// quads it removed here.
    pub fn remove_pattern(&mut self, pattern: QuadPattern) -> Result<usize> {
        // A pattern naming one quad outright is that quad's explicit delete: the same
        // effect on every instance, and no tombstone to keep.
        if let Some(quad) = pattern.names_one_quad() {
            let here = self.transaction.contains(&quad)?;
            self.remove(quad)?;
            return Ok(usize::from(here));
        }
        let matches = pattern.matches_in(self.transaction)?;
        for quad in &matches {
            self.transaction.remove(quad);
            match self.writes.quads.get_mut(quad) {
                Some(change) => change.present = false,
                None => {
                    self.writes.swept.insert(quad.clone());
                }
            }
        }
        // (A quad written present earlier in this request is in the transaction, so
        // among the matches; one written absent stays absent.)
        self.writes.patterns.push(pattern);
        Ok(matches.len())
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
        // A quad a range delete removed earlier in this request was present before it.
        let was_present = self.writes.swept.remove(&quad) || now;
        self.writes
            .quads
            .entry(quad)
            .and_modify(|change| change.present = present)
            .or_insert(QuadChange {
                was_present,
                present,
            });
        Ok(())
    }

    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    pub fn into_writes(self) -> Writes {
        self.writes
    }
}

/// Splits recorded writes into an [`Effect`]: every quad written when `all_named`
/// (a replicated repository, where each named quad must be stamped, and every range
/// delete is kept as a tombstone), else only the quads whose presence really changes
/// (and the range deletes only if they removed something here).
pub fn effect_of(writes: Writes, all_named: bool) -> Effect {
    let mut effect = Effect::default();
    for (quad, change) in writes.quads {
        if !all_named && !change.changes_locally() {
            continue;
        }
        if change.present {
            effect.inserts.push(quad);
        } else {
            effect.deletes.push(quad);
        }
    }
    if all_named || !writes.swept.is_empty() {
        effect.patterns = writes.patterns;
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
