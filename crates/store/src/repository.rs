use crate::checkpoint::Checkpoint;
use crate::effect::Effect;
use crate::error::{Result, StoreError};
use crate::log::{IndexedEntry, LogOptions, LogPosition, TxLog};
use crate::namespaces::Namespaces;
use crate::register::Register;
use crate::tracker::{effect_of, ChangeTracker};
use oxigraph::model::{GraphNameRef, Quad};
use oxigraph::store::Store;
use quadmesh_repl::{Entry, EntryKind, HlcTime, HybridClock, OriginId, Stamp, VersionVector};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Copy, Debug)]
pub struct RepositoryOptions {
    pub log: LogOptions,
    /// Flush the store and write a checkpoint after this many log entries.
    pub checkpoint_every: u64,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        RepositoryOptions {
            log: LogOptions::default(),
            checkpoint_every: 10_000,
        }
    }
}

/// Who this repository is as a replication origin. Written once, when the repository
/// is made; a copy grown elsewhere gets an id of its own.
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    origin: OriginId,
}

/// What a commit did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The transaction's number and stamp, when it changed anything.
    pub transaction: Option<(u64, Stamp)>,
    pub inserted: usize,
    pub deleted: usize,
}

/// One repository: an oxigraph store, its replication log and its last-writer register,
/// written by exactly one writer at a time.
///
/// Rules it keeps:
/// - every change goes through [`Repository::commit`] (local) or
///   [`Repository::apply_remote`] (a peer's transaction): an effect is computed,
///   stamped, appended to the log durably, and only then applied to the store;
/// - the writer lock orders commits, so sequence numbers of this origin have no gaps
///   and the log order is the apply order;
/// - the store never holds a change the log lacks; on open, log entries after the last
///   checkpoint are re-applied through the register, which makes that harmless.
pub struct Repository {
    name: String,
    dir: PathBuf,
    store: Store,
    origin: OriginId,
    clock: Arc<HybridClock>,
    options: RepositoryOptions,
    namespaces: Namespaces,
    writer: Mutex<Writer>,
}

struct Writer {
    log: TxLog,
    register: Register,
    version_vector: VersionVector,
    /// The end of the last entry applied to the store.
    applied: LogPosition,
    entries_since_checkpoint: u64,
    /// Whether other members exist: only then must the register remember writes.
    replicated: bool,
}

impl Repository {
    /// Opens the repository in `dir`, creating it when `create` is set.
    pub fn open(
        name: &str,
        dir: &Path,
        clock: Arc<HybridClock>,
        options: RepositoryOptions,
        create: bool,
    ) -> Result<Self> {
        if create {
            fs::create_dir_all(dir)?;
        }
        let identity_path = dir.join("identity.json");
        let identity: Identity = if identity_path.exists() {
            serde_json::from_slice(&fs::read(&identity_path)?).map_err(|e| StoreError::Corrupt {
                what: identity_path.display().to_string(),
                detail: e.to_string(),
            })?
        } else if create {
            let identity = Identity {
                origin: OriginId(rand::random::<u64>() >> 1),
            };
            fs::write(
                &identity_path,
                serde_json::to_vec(&identity).expect("serialises"),
            )?;
            identity
        } else {
            return Err(StoreError::RepositoryNotFound(name.to_owned()));
        };
        let store = Store::open(dir.join("store"))?;
        let log = TxLog::open(&dir.join("log"), options.log)?;
        let checkpoint = Checkpoint::load(dir)?.unwrap_or_default();
        clock.observe(checkpoint.clock).ok();
        let mut writer = Writer {
            register: checkpoint.decode_register()?,
            version_vector: checkpoint.version_vector.clone(),
            applied: checkpoint.applied,
            log,
            entries_since_checkpoint: 0,
            replicated: false,
        };
        let replayed = writer.replay(&store, &clock)?;
        if replayed > 0 {
            tracing::info!(
                repository = name,
                replayed,
                "re-applied log entries after the last checkpoint"
            );
        }
        let repository = Repository {
            name: name.to_owned(),
            dir: dir.to_owned(),
            store,
            origin: identity.origin,
            clock,
            options,
            namespaces: Namespaces::open(dir)?,
            writer: Mutex::new(writer),
        };
        repository.checkpoint()?;
        Ok(repository)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave the store ahead of the log (the
        // log is written first), so the state behind a poisoned lock is still sound.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    pub fn origin(&self) -> OriginId {
        self.origin
    }

    pub fn clock(&self) -> &Arc<HybridClock> {
        &self.clock
    }

    /// Computes an effect with `build` against the current state, then stamps, logs and
    /// applies it as one transaction. `build` sees earlier writes of its own; if it fails,
    /// nothing is written.
    pub fn commit(
        &self,
        build: impl FnOnce(&mut ChangeTracker<'_, '_>) -> Result<()>,
    ) -> Result<CommitReceipt> {
        let mut writer = self.lock_writer();
        let mut transaction = self.store.start_transaction()?;
        let mut tracker = ChangeTracker::new(&mut transaction);
        build(&mut tracker)?;
        let effect = effect_of(tracker.into_changes());
        if effect.is_empty() {
            return Ok(CommitReceipt::default());
        }
        let time = self.clock.now()?;
        let seq = writer.version_vector.get(self.origin) + 1;
        let entry = Entry {
            kind: EntryKind::Data,
            origin: self.origin,
            seq,
            time,
            payload: effect.encode(),
        };
        let indexed = writer.log.append(&entry)?;
        transaction.commit()?;
        let stamp = entry.stamp();
        if writer.replicated {
            for quad in &effect.inserts {
                writer.register.record(quad.clone(), stamp, true);
            }
            for quad in &effect.deletes {
                writer.register.record(quad.clone(), stamp, false);
            }
        }
        self.after_apply(&mut writer, &indexed)?;
        Ok(CommitReceipt {
            transaction: Some((seq, stamp)),
            inserted: effect.inserts.len(),
            deleted: effect.deletes.len(),
        })
    }

    /// Applies a transaction received from a peer: logged first, then each quad operation
    /// applied only where the register says it is newer. Returns false (and does
    /// nothing) for a transaction already applied.
    pub fn apply_remote(&self, entry: &Entry) -> Result<bool> {
        let mut writer = self.lock_writer();
        if writer.version_vector.covers(entry.origin, entry.seq) {
            return Ok(false);
        }
        let effect = match entry.kind {
            EntryKind::Data => Some(Effect::decode(&entry.payload)?),
            EntryKind::Config => None,
        };
        self.clock.observe(entry.time)?;
        let indexed = writer.log.append(entry)?;
        if let Some(effect) = effect {
            writer.apply(&self.store, &effect, entry.stamp())?;
        }
        self.after_apply(&mut writer, &indexed)?;
        Ok(true)
    }

    fn after_apply(&self, writer: &mut Writer, indexed: &IndexedEntry) -> Result<()> {
        writer.version_vector.advance(indexed.origin, indexed.seq);
        writer.applied = indexed.end;
        writer.entries_since_checkpoint += 1;
        if writer.entries_since_checkpoint >= self.options.checkpoint_every {
            self.checkpoint_locked(writer)?;
        }
        Ok(())
    }

    /// Flushes the store, records what it now durably holds, prunes the register behind
    /// the frontier and drops log segments no one needs any more.
    pub fn checkpoint(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        self.checkpoint_locked(&mut writer)
    }

    fn checkpoint_locked(&self, writer: &mut Writer) -> Result<()> {
        self.store.flush()?;
        if !writer.replicated {
            // Alone, no operation can arrive from anywhere with an older stamp.
            writer.register.prune(HlcTime(u64::MAX));
        }
        let checkpoint = Checkpoint {
            applied: writer.applied,
            version_vector: writer.version_vector.clone(),
            clock: self.clock.last(),
            register: Checkpoint::encode_register(&writer.register),
        };
        checkpoint.save(&self.dir)?;
        if !writer.replicated {
            // Every member (this one) has every entry, and the store holds them.
            writer.log.seal_active_segment()?;
            let applied = writer.applied.max(writer.log.end());
            writer.log.remove_segments_before(applied)?;
        }
        writer.entries_since_checkpoint = 0;
        Ok(())
    }

    pub fn version_vector(&self) -> VersionVector {
        self.lock_writer().version_vector.clone()
    }

    pub fn register_len(&self) -> usize {
        self.lock_writer().register.len()
    }

    /// Number of quads, in one graph or in all.
    pub fn size(&self, graph: Option<GraphNameRef<'_>>) -> Result<usize> {
        match graph {
            None => Ok(self.store.len()?),
            Some(graph) => {
                let mut count = 0;
                for quad in self.store.quads_for_pattern(None, None, None, Some(graph)) {
                    quad?;
                    count += 1;
                }
                Ok(count)
            }
        }
    }

    /// Every quad, for export and snapshots.
    pub fn quads(&self) -> impl Iterator<Item = Result<Quad>> + '_ {
        self.store.iter().map(|q| q.map_err(StoreError::from))
    }
}

impl Writer {
    /// Re-applies the log entries the checkpoint does not cover.
    fn replay(&mut self, store: &Store, clock: &HybridClock) -> Result<usize> {
        let entries = self.log.read_from(self.applied)?;
        let count = entries.len();
        for (indexed, entry) in entries {
            clock.observe(entry.time).ok();
            if entry.kind == EntryKind::Data {
                self.apply(store, &Effect::decode(&entry.payload)?, entry.stamp())?;
            }
            self.version_vector.advance(entry.origin, entry.seq);
            self.applied = indexed.end;
        }
        Ok(count)
    }

    /// Applies each operation of `effect` that the register admits.
    fn apply(&mut self, store: &Store, effect: &Effect, stamp: Stamp) -> Result<()> {
        let mut transaction = store.start_transaction()?;
        for quad in &effect.inserts {
            if self.register.admit(quad, stamp, true) {
                transaction.insert(quad);
            }
        }
        for quad in &effect.deletes {
            if self.register.admit(quad, stamp, false) {
                transaction.remove(quad);
            }
        }
        transaction.commit()?;
        Ok(())
    }
}
