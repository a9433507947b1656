//! Repairing a replica whose store was damaged behind the write path's back, from a
//! peer's snapshot (anti-entropy's repair).
//!
//! The snapshot is a peer's store at version vector `at`; this instance has applied at
//! least `at`. A quad that no transaction outside `at` touched must be in the same
//! state here as in the snapshot, since both applied exactly the same transactions to
//! it: where it is not, this store is wrong and takes the snapshot's state. Quads that
//! later transactions touched are left alone (the register decided them here as it did
//! everywhere). Nothing is logged or stamped: a repair restores what the log already
//! says, it is no new write.

use crate::digest_book::digest_of;
use crate::effect::Effect;
use crate::error::{Result, StoreError};
use crate::repository::Repository;
use crate::tracker::drop_emptied_graphs;
use oxigraph::model::Quad;
use oxigraph::store::Store;
use quadmesh_repl::{EntryKind, RangePattern, VersionVector};
use std::collections::HashSet;

/// At most this many quads are changed in one store transaction.
const REPAIR_BATCH: usize = 10_000;

/// What a repair did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Quads the snapshot holds that this store had lost.
    pub restored: usize,
    /// Quads this store held that the snapshot does not.
    pub removed: usize,
}

/// Why a repair cannot be made now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairDeferred {
    /// The snapshot holds transactions this instance has not applied yet (it will
    /// pull them): the snapshot's transactions must all be here first.
    Behind { missing: u64 },
}

/// A peer's store, unpacked from its snapshot, to repair from: read only by
/// [`Repository::repair_from`] (no other use of it can be made from outside the
/// store, so no write reaches a store around its log this way).
pub struct PeerSnapshot {
    store: Store,
}

impl PeerSnapshot {
    /// Opens the store of an unpacked snapshot at `dir`. Blocking.
    pub fn open(dir: &std::path::Path) -> Result<Self> {
        Ok(PeerSnapshot {
            store: Store::open(dir)?,
        })
    }
}

impl Repository {
    /// Makes this store agree with `snapshot`, a peer's store at version vector `at`,
    /// on every quad no transaction outside `at` touched (see the module's doc).
    /// Holds the writer lock throughout (two full scans): writes wait, reads go on.
    /// Afterwards the content digest is recomputed from the store and the damage mark
    /// is cleared.
    pub fn repair_from(
        &self,
        snapshot: &PeerSnapshot,
        at: &VersionVector,
    ) -> Result<std::result::Result<Repaired, RepairDeferred>> {
        let mut writer = self.lock_writer();
        let missing = writer.replica.version_vector.missing_from(at);
        if missing > 0 {
            return Ok(Err(RepairDeferred::Behind { missing }));
        }
        // Every transaction outside `at` is still in our log: truncation stops at what
        // every member has, and the peer that took the snapshot is a member.
        if let Some((origin, gone)) = writer
            .durable
            .truncated
            .iter()
            .find(|&(origin, gone)| !at.covers(origin, gone))
        {
            return Err(StoreError::Corrupt {
                what: "a repair snapshot".into(),
                detail: format!(
                    "it is older than this log keeps (transactions up to {gone} of origin \
                     {origin} were truncated)"
                ),
            });
        }
        let later: Vec<_> = writer
            .durable
            .log
            .index()
            .iter()
            .filter(|e| !at.covers(e.origin, e.seq))
            .copied()
            .collect();
        let mut touched: HashSet<Quad> = HashSet::new();
        let mut later_patterns = Vec::new();
        for entry in writer.durable.log.read_entries(&later)? {
            if entry.kind == EntryKind::Data {
                let effect = Effect::decode(&entry.payload)?;
                touched.extend(effect.inserts);
                touched.extend(effect.deletes);
                later_patterns.extend(effect.patterns);
            }
        }
        // A quad a later range delete matches was touched by it too.
        let touched =
            |quad: &Quad| touched.contains(quad) || later_patterns.iter().any(|p| p.matches(quad));

        let store = self.store();
        // Counted before the store changes (under the writer lock throughout): a load
        // prepared meanwhile checks its quads' presence again.
        writer.repairs = writer.repairs.wrapping_add(1);
        let mut repaired = Repaired::default();
        let mut batch = Vec::new();
        for quad in snapshot.store.iter() {
            let quad = quad?;
            if !touched(&quad) && !store.contains(&quad)? {
                batch.push(quad);
                if batch.len() == REPAIR_BATCH {
                    repaired.restored += insert_all(store, &mut batch)?;
                }
            }
        }
        repaired.restored += insert_all(store, &mut batch)?;
        // Removals are collected before any is made: the scan must not see its own
        // deletes.
        let mut extra = Vec::new();
        for quad in store.iter() {
            let quad = quad?;
            if !touched(&quad) && !snapshot.store.contains(&quad)? {
                extra.push(quad);
            }
        }
        for chunk in extra.chunks(REPAIR_BATCH) {
            let mut transaction = store.start_transaction()?;
            for quad in chunk {
                transaction.remove(quad);
            }
            drop_emptied_graphs(&mut transaction, chunk.iter().map(|q| &q.graph_name))?;
            transaction.commit()?;
            repaired.removed += chunk.len();
        }
        store.flush()?;

        let digest = digest_of(store.iter().map(|q| q.map_err(StoreError::from)))?;
        let current = writer.replica.version_vector.clone();
        writer.digests.repaired(digest, &current);
        self.clear_damage()?;
        tracing::warn!(
            repository = %self.name(),
            restored = repaired.restored,
            removed = repaired.removed,
            "repaired the store from a peer's snapshot"
        );
        Ok(Ok(repaired))
    }
}

fn insert_all(store: &Store, batch: &mut Vec<Quad>) -> Result<usize> {
    let count = batch.len();
    if count > 0 {
        let mut transaction = store.start_transaction()?;
        for quad in batch.drain(..) {
            transaction.insert(&quad);
        }
        transaction.commit()?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogOptions;
    use crate::repository::RepositoryOptions;
    use oxigraph::model::{GraphName, Literal, NamedNode};
    use quadmesh_repl::{HybridClock, SystemClock};
    use std::sync::Arc;

    fn quad(i: usize) -> Quad {
        Quad::new(
            NamedNode::new_unchecked(format!("http://example.org/s{i}")),
            NamedNode::new_unchecked("http://example.org/p"),
            Literal::from(i as i64),
            GraphName::NamedNode(NamedNode::new_unchecked("http://example.org/g")),
        )
    }

    fn open(dir: &std::path::Path) -> Repository {
        let options = RepositoryOptions {
            log: LogOptions {
                fsync: false,
                segment_bytes: 1 << 20,
            },
            checkpoint_every: 10_000,
            clock_fence: None,
            ..RepositoryOptions::default()
        };
        let clock = Arc::new(HybridClock::new(SystemClock::with_offset_ms(0), 500));
        Repository::open("r", dir, clock, options, true).unwrap()
    }

    fn contents(store: &Store) -> Vec<Quad> {
        let mut quads: Vec<Quad> = store.iter().map(|q| q.unwrap()).collect();
        quads.sort_by_key(|q| q.to_string());
        quads
    }

    #[test]
    fn literals_the_store_keeps_in_canonical_form_are_no_damage() {
        let dir = tempfile::tempdir().unwrap();
        let repository = open(&dir.path().join("repo"));
        let xsd =
            |t: &str| NamedNode::new_unchecked(format!("http://www.w3.org/2001/XMLSchema#{t}"));
        let literals = [
            Literal::new_typed_literal("5.40", xsd("decimal")),
            Literal::new_typed_literal("007", xsd("integer")),
            Literal::new_typed_literal("05", xsd("int")),
            Literal::new_typed_literal("1.0E0", xsd("double")),
            Literal::new_typed_literal("1", xsd("boolean")),
            Literal::new_typed_literal("2026-11-25T10:00:00.50Z", xsd("dateTime")),
            Literal::new_typed_literal("not a number", xsd("integer")),
        ];
        repository
            .commit(|tracker| {
                literals.iter().enumerate().try_for_each(|(i, l)| {
                    tracker.insert(Quad::new(
                        NamedNode::new_unchecked(format!("http://example.org/s{i}")),
                        NamedNode::new_unchecked("http://example.org/p"),
                        l.clone(),
                        GraphName::DefaultGraph,
                    ))
                })
            })
            .unwrap();
        assert!(
            repository.scrub().unwrap(),
            "a scan of the store agrees with the write path"
        );
        assert!(!repository.knows_damage());
    }

    #[test]
    fn a_repair_restores_lost_quads_removes_strays_and_keeps_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let repository = open(&dir.path().join("repo"));
        repository
            .commit(|tracker| (1..=5).try_for_each(|i| tracker.insert(quad(i))))
            .unwrap();
        // Checkpointed: a restart replays nothing that would undo the damage below.
        repository.checkpoint().unwrap();
        // A peer's snapshot at this point (here: our own, taken before the damage).
        let state = repository.snapshot(&dir.path().join("snapshot")).unwrap();
        let snapshot = PeerSnapshot::open(&dir.path().join("snapshot")).unwrap();

        // Damage behind the write path's back: one quad lost, one stray.
        repository.store().remove(&quad(2)).unwrap();
        repository.store().insert(&quad(99)).unwrap();
        assert!(!repository.scrub().unwrap());
        assert!(repository.knows_damage());
        // The finding outlives a restart.
        drop(repository);
        let repository = open(&dir.path().join("repo"));
        assert!(repository.knows_damage());
        // Later writes, not in the snapshot: a delete and an insert.
        repository
            .commit(|tracker| {
                tracker.remove(quad(3))?;
                tracker.insert(quad(6))
            })
            .unwrap();

        // A snapshot ahead of us cannot be used yet.
        let mut ahead = state.version_vector.clone();
        ahead.advance(quadmesh_repl::OriginId(7), 1);
        assert_eq!(
            repository.repair_from(&snapshot, &ahead).unwrap(),
            Err(RepairDeferred::Behind { missing: 1 })
        );
        assert!(repository.knows_damage());

        let repaired = repository
            .repair_from(&snapshot, &state.version_vector)
            .unwrap()
            .unwrap();
        assert_eq!(
            repaired,
            Repaired {
                restored: 1,
                removed: 1
            }
        );
        assert_eq!(
            contents(repository.store()),
            [1, 2, 4, 5, 6].map(quad).to_vec()
        );
        assert!(!repository.knows_damage());
        assert!(repository.scrub().unwrap(), "the digest follows the repair");

        drop(repository);
        let repository = open(&dir.path().join("repo"));
        assert!(!repository.knows_damage());
    }
}
