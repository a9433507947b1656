use crate::checkpoint::Checkpoint;
use crate::cluster_state::ClusterState;
use crate::digest_book::{digest_of, DigestBook, DigestCheck};
use crate::effect::Effect;
use crate::error::{Result, StoreError};
use crate::log::{IndexedEntry, LogOptions, LogPosition, TxLog};
use crate::namespaces::Namespaces;
use crate::register::Register;
use crate::tracker::{drop_emptied_graphs, effect_of, ChangeTracker};
use oxigraph::model::{GraphNameRef, Quad};
use oxigraph::store::Store;
use quadmesh_repl::{
    ClusterConfig, Entry, EntryKind, HlcTime, HybridClock, OriginId, Stamp, VersionVector,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Insert-only transactions from this size on go through oxigraph's bulk loader.
const BULK_INSERTS: usize = 10_000;

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
/// is made (or installed from a snapshot); a copy grown elsewhere gets an id of its own.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub(crate) origin: OriginId,
}

impl Identity {
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        fs::write(
            dir.join("identity.json"),
            serde_json::to_vec(self).expect("serialises"),
        )?;
        Ok(())
    }
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
/// - every change goes through [`Repository::commit`] (local),
///   [`Repository::commit_config`] (cluster configuration) or
///   [`Repository::apply_remote`] (a peer's transaction): stamped, appended to the log
///   durably, and only then applied to the store;
/// - the writer lock orders commits, so sequence numbers of this origin have no gaps,
///   each origin's transactions are applied in sequence order without gaps, and the log
///   order is the apply order;
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
    /// Counts appended log entries; pull streams wait on it.
    appended: watch::Sender<u64>,
    /// What the store holds, published after each apply: readers wait on it without
    /// taking the writer lock.
    applied_vector: watch::Sender<VersionVector>,
    /// Transactions committed here, and received from peers and applied (for metrics).
    local_commits: AtomicU64,
    remote_applied: AtomicU64,
    /// A background compaction after bulk loads: running, and asked to run again.
    compacting: Arc<(AtomicBool, AtomicBool)>,
}

pub(crate) struct Writer {
    pub(crate) log: TxLog,
    pub(crate) register: Register,
    pub(crate) version_vector: VersionVector,
    /// The end of the last entry applied to the store.
    pub(crate) applied: LogPosition,
    entries_since_checkpoint: u64,
    pub(crate) cluster: ClusterState,
    /// For each origin, the highest sequence number no longer in the log.
    pub(crate) truncated: VersionVector,
    /// Set by replication: no transaction not yet received can be older.
    frontier: HlcTime,
    /// Set by replication: what every member has.
    stable: VersionVector,
    /// The content digest, kept with every change (anti-entropy).
    pub(crate) digests: DigestBook,
}

/// What became of a peer's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Logged and applied.
    New,
    /// Already here; nothing done.
    Duplicate,
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
            identity.save(dir)?;
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
            cluster: ClusterState::load(dir)?,
            truncated: checkpoint.truncated.clone(),
            frontier: HlcTime::ZERO,
            stable: VersionVector::new(),
            digests: DigestBook::new(checkpoint.digest.unwrap_or_default()),
        };
        let replayed = writer.replay(&store, &clock, dir)?;
        // After a crash the store may already hold entries the checkpoint does not
        // cover (its own write-ahead log), so the replay cannot tell which quads really
        // changed: count them all again.
        if replayed > 0 || checkpoint.digest.is_none() {
            let digest = digest_of(store.iter().map(|q| q.map_err(StoreError::from)))?;
            writer.digests = DigestBook::new(digest);
        }
        let version_vector = writer.version_vector.clone();
        writer.digests.record(&version_vector);
        if replayed > 0 {
            tracing::info!(
                repository = name,
                replayed,
                "re-applied log entries after the last checkpoint"
            );
        }
        let appended = watch::Sender::new(writer.log.index().len() as u64);
        let applied_vector = watch::Sender::new(writer.version_vector.clone());
        let repository = Repository {
            name: name.to_owned(),
            dir: dir.to_owned(),
            store,
            origin: identity.origin,
            clock,
            options,
            namespaces: Namespaces::open(dir)?,
            writer: Mutex::new(writer),
            appended,
            applied_vector,
            local_commits: AtomicU64::new(0),
            remote_applied: AtomicU64::new(0),
            compacting: Arc::default(),
        };
        repository.checkpoint()?;
        Ok(repository)
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, Writer> {
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

    /// Wakes up whenever an entry is appended to the log.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// The version vector of what the store holds, updated after every apply; waiting
    /// on it never takes the writer lock.
    pub fn watch_version_vector(&self) -> watch::Receiver<VersionVector> {
        self.applied_vector.subscribe()
    }

    /// Computes an effect with `build` against the current state, then stamps, logs and
    /// applies it as one transaction. `build` sees earlier writes of its own; if it fails,
    /// nothing is written.
    pub fn commit(
        &self,
        build: impl FnOnce(&mut ChangeTracker<'_, '_>) -> Result<()>,
    ) -> Result<CommitReceipt> {
        let mut writer = self.lock_writer();
        writer.cluster.check_writable(&self.name)?;
        let mut transaction = self.store.start_transaction()?;
        let mut tracker = ChangeTracker::new(&mut transaction);
        build(&mut tracker)?;
        let changes = tracker.into_changes();
        let mut digests_after = writer.digests.current();
        for (quad, change) in &changes {
            if change.changes_locally() {
                let text = quad.to_string();
                if change.present {
                    digests_after.insert(text.as_bytes());
                } else {
                    digests_after.remove(text.as_bytes());
                }
            }
        }
        drop_emptied_graphs(
            &mut transaction,
            changes
                .iter()
                .filter(|(_, c)| !c.present)
                .map(|(q, _)| &q.graph_name),
        )?;
        // In a cluster every quad the write names is stamped, changed here or not.
        let effect = effect_of(changes, writer.cluster.replicated());
        if effect.is_empty() {
            return Ok(CommitReceipt::default());
        }
        let entry = self.stamp_entry(&writer, EntryKind::Data, effect.encode())?;
        let indexed = writer.log.append(&entry)?;
        transaction.commit()?;
        writer.digests.set_current(digests_after);
        let stamp = entry.stamp();
        if writer.cluster.replicated() {
            for quad in &effect.inserts {
                writer.register.record(quad.clone(), stamp, true);
            }
            for quad in &effect.deletes {
                writer.register.record(quad.clone(), stamp, false);
            }
        }
        self.after_append(&mut writer, &indexed)?;
        self.local_commits.fetch_add(1, Ordering::Relaxed);
        Ok(CommitReceipt {
            transaction: Some((entry.seq, stamp)),
            inserted: effect.inserts.len(),
            deleted: effect.deletes.len(),
        })
    }

    /// Commits inserts only, as one transaction. Large ones (a load) go into the store
    /// through oxigraph's bulk loader, which writes sorted files instead of growing an
    /// indexed write batch: the same effect, logged the same way, much less work.
    pub fn commit_inserts(&self, quads: Vec<Quad>) -> Result<CommitReceipt> {
        if quads.len() < BULK_INSERTS {
            return self.commit(|tracker| {
                for quad in quads {
                    tracker.insert(quad)?;
                }
                Ok(())
            });
        }
        let mut writer = self.lock_writer();
        writer.cluster.check_writable(&self.name)?;
        // The effect: each quad once; in a cluster every quad named (each must be
        // stamped, see `ChangeTracker`), else only those not yet present. Only the
        // new ones go to the bulk loader.
        let replicated = writer.cluster.replicated();
        let mut seen = HashSet::with_capacity(quads.len());
        let mut named = vec![false; quads.len()];
        let mut new = vec![false; quads.len()];
        for (i, quad) in quads.iter().enumerate() {
            if seen.insert(quad) {
                new[i] = !self.store.contains(quad)?;
                named[i] = replicated || new[i];
            }
        }
        drop(seen);
        let mut fresh = Vec::new();
        let mut inserts = Vec::new();
        for ((quad, named), new) in quads.into_iter().zip(named).zip(new) {
            if new {
                fresh.push(inserts.len());
            }
            if named {
                inserts.push(quad);
            }
        }
        if inserts.is_empty() {
            return Ok(CommitReceipt::default());
        }
        let effect = Effect {
            inserts,
            deletes: Vec::new(),
        };
        let entry = self.stamp_entry(&writer, EntryKind::Data, effect.encode())?;
        let indexed = writer.log.append(&entry)?;
        let mut loader = self.store.bulk_loader();
        loader.load_quads(fresh.iter().map(|&i| effect.inserts[i].clone()))?;
        loader.commit()?;
        for &i in &fresh {
            writer.digests.inserted(&effect.inserts[i]);
        }
        self.compact_soon();
        let stamp = entry.stamp();
        if writer.cluster.replicated() {
            for quad in &effect.inserts {
                writer.register.record(quad.clone(), stamp, true);
            }
        }
        self.after_append(&mut writer, &indexed)?;
        self.local_commits.fetch_add(1, Ordering::Relaxed);
        Ok(CommitReceipt {
            transaction: Some((entry.seq, stamp)),
            inserted: effect.inserts.len(),
            deleted: 0,
        })
    }

    /// Bulk-loaded files are laid out for writing, not reading; compact in the
    /// background (one compaction at a time, once more if loads came meanwhile).
    fn compact_soon(&self) {
        let (running, again) = &*self.compacting;
        again.store(true, Ordering::SeqCst);
        if running.swap(true, Ordering::SeqCst) {
            return;
        }
        let (store, compacting, name) = (
            self.store.clone(),
            self.compacting.clone(),
            self.name.clone(),
        );
        std::thread::spawn(move || {
            let (running, again) = &*compacting;
            loop {
                while again.swap(false, Ordering::SeqCst) {
                    if let Err(e) = store.optimize() {
                        tracing::warn!(repository = %name, error = %e, "compaction after a bulk load failed");
                    }
                }
                running.store(false, Ordering::SeqCst);
                // A load that asked between the last check and now found `running` set
                // and left the work to this thread: take it back, unless another did.
                if !again.load(Ordering::SeqCst) || running.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        });
    }

    fn stamp_entry(&self, writer: &Writer, kind: EntryKind, payload: Vec<u8>) -> Result<Entry> {
        Ok(Entry {
            kind,
            origin: self.origin,
            seq: writer.version_vector.get(self.origin) + 1,
            time: self.clock.now()?,
            payload,
        })
    }

    /// Changes the cluster configuration (at the controlling instance): `change` gets
    /// the current configuration and the time the change is stamped with, and returns
    /// the new one, which replicates as a transaction of its own kind.
    pub fn commit_config(
        &self,
        change: impl FnOnce(Option<&ClusterConfig>, HlcTime) -> Result<ClusterConfig>,
    ) -> Result<ClusterConfig> {
        let mut writer = self.lock_writer();
        if writer.cluster.removed {
            return Err(StoreError::Removed(self.name.clone()));
        }
        let mut entry = self.stamp_entry(&writer, EntryKind::Config, Vec::new())?;
        let config = change(writer.cluster.config.as_ref(), entry.time)?;
        entry.payload = serde_json::to_vec(&config).expect("a configuration serialises");
        let indexed = writer.log.append(&entry)?;
        writer.adopt_config(config.clone(), self.origin, &self.dir)?;
        self.after_append(&mut writer, &indexed)?;
        Ok(config)
    }

    /// Applies a transaction received from a peer: logged first, then each quad operation
    /// applied only where the register says it is newer. An origin's transactions must
    /// come in sequence order: one past a gap is refused with [`StoreError::Gap`].
    pub fn apply_remote(&self, entry: &Entry) -> Result<Applied> {
        let mut writer = self.lock_writer();
        let have = writer.version_vector.get(entry.origin);
        if entry.seq <= have {
            return Ok(Applied::Duplicate);
        }
        if entry.seq != have + 1 {
            return Err(StoreError::Gap {
                origin: entry.origin,
                have,
                got: entry.seq,
            });
        }
        let (effect, config) = match entry.kind {
            EntryKind::Data => (Some(Effect::decode(&entry.payload)?), None),
            EntryKind::Config => (None, Some(decode_config(&entry.payload)?)),
            EntryKind::Heartbeat => {
                return Err(StoreError::Corrupt {
                    what: "replicated transaction".into(),
                    detail: "a heartbeat is not a transaction".into(),
                })
            }
        };
        self.clock.observe(entry.time)?;
        let indexed = writer.log.append(entry)?;
        if let Some(effect) = effect {
            if writer.apply(&self.store, &effect, entry.stamp())? {
                self.compact_soon();
            }
        }
        if let Some(config) = config {
            writer.adopt_config(config, self.origin, &self.dir)?;
        }
        self.after_append(&mut writer, &indexed)?;
        self.remote_applied.fetch_add(1, Ordering::Relaxed);
        Ok(Applied::New)
    }

    fn after_append(&self, writer: &mut Writer, indexed: &IndexedEntry) -> Result<()> {
        writer.version_vector.advance(indexed.origin, indexed.seq);
        let version_vector = writer.version_vector.clone();
        writer.digests.record(&version_vector);
        self.applied_vector
            .send_modify(|v| v.advance(indexed.origin, indexed.seq));
        writer.applied = indexed.end;
        writer.entries_since_checkpoint += 1;
        self.appended.send_modify(|n| *n += 1);
        if writer.entries_since_checkpoint >= self.options.checkpoint_every {
            self.checkpoint_locked(writer)?;
        }
        Ok(())
    }

    /// Tells the repository how far replication has come: `frontier` (no transaction
    /// not yet received is older) and `stable` (what every member has). The next
    /// checkpoint prunes the register and the log behind them.
    pub fn set_horizon(&self, frontier: HlcTime, stable: VersionVector) {
        let mut writer = self.lock_writer();
        writer.frontier = frontier;
        writer.stable = stable;
    }

    /// Flushes the store, records what it now durably holds, prunes the register behind
    /// the frontier and drops log segments every member has.
    pub fn checkpoint(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        self.checkpoint_locked(&mut writer)
    }

    fn checkpoint_locked(&self, writer: &mut Writer) -> Result<()> {
        self.store.flush()?;
        let replicated = writer.cluster.replicated();
        // Alone, no operation can arrive from anywhere with an older stamp.
        let frontier = if replicated {
            writer.frontier
        } else {
            HlcTime(u64::MAX)
        };
        writer.register.prune(frontier);
        let stable = if replicated {
            writer.stable.clone()
        } else {
            writer.version_vector.clone()
        };
        // Keep from the first entry some member still lacks (or that the store may not
        // hold yet); seal the active segment when every entry in it can go.
        let keep_from = writer
            .log
            .index()
            .iter()
            .find(|e| !stable.covers(e.origin, e.seq) || e.end > writer.applied)
            .map(|e| e.start);
        let keep_from = match keep_from {
            Some(position) => position,
            None => {
                writer.log.seal_active_segment()?;
                writer.log.end()
            }
        };
        let checkpoint = Checkpoint {
            applied: writer.applied,
            version_vector: writer.version_vector.clone(),
            clock: self.clock.last(),
            register: Checkpoint::encode_register(&writer.register),
            truncated: writer.truncated.clone(),
            digest: Some(writer.digests.current()),
        };
        checkpoint.save(&self.dir)?;
        for removed in writer.log.remove_segments_before(keep_from)? {
            writer.truncated.advance(removed.origin, removed.seq);
        }
        writer.entries_since_checkpoint = 0;
        Ok(())
    }

    /// A promise for heartbeats, taken under the writer lock: every transaction of this
    /// origin stamped before `time` is in the log before `end`, and every later one will
    /// be stamped after `time`. A stream that sends the log up to `end` and then this
    /// time keeps the promise.
    /// The content digest at that version vector comes with it (anti-entropy).
    pub fn heartbeat_point(
        &self,
    ) -> Result<(
        HlcTime,
        VersionVector,
        LogPosition,
        quadmesh_repl::ContentDigest,
    )> {
        let writer = self.lock_writer();
        Ok((
            self.clock.now()?,
            writer.version_vector.clone(),
            writer.log.end(),
            writer.digests.current(),
        ))
    }

    /// Recomputes the content digest from the store itself (a full scan of a snapshot,
    /// taken at one cut with the version vector; writers are not held up) and corrects
    /// the kept digest if the store no longer matches it: damage done behind the write
    /// path's back (a bad disk, a bad restore) then shows in comparisons with peers.
    /// Returns whether the store matched. Blocking, and as long as a full scan.
    pub fn scrub(&self) -> Result<bool> {
        let (snapshot, booked) = {
            let writer = self.lock_writer();
            (self.store.start_transaction()?, writer.digests.current())
        };
        let scanned = digest_of(
            snapshot
                .quads_for_pattern(None, None, None, None)
                .map(|q| q.map_err(StoreError::from)),
        )?;
        drop(snapshot);
        if scanned == booked {
            return Ok(true);
        }
        tracing::error!(
            repository = %self.name,
            kept = %booked,
            store = %scanned,
            "the store does not hold what its write path put there (damaged behind its back?); \
             peers will see the difference"
        );
        let mut writer = self.lock_writer();
        writer.digests.correct(booked, scanned);
        let current = writer.version_vector.clone();
        writer.digests.record(&current);
        Ok(false)
    }

    /// Compares a peer's digest at `version_vector` with ours when we were there.
    pub fn check_digest(
        &self,
        version_vector: &VersionVector,
        theirs: &quadmesh_repl::ContentDigest,
    ) -> DigestCheck {
        self.lock_writer().digests.check(version_vector, theirs)
    }

    /// Records that this instance was removed from its cluster (a peer said so).
    pub fn mark_removed(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        if !writer.cluster.removed {
            tracing::warn!(repository = %self.name, "this instance was removed from the cluster");
            writer.cluster.removed = true;
            writer.cluster.save(&self.dir)?;
        }
        Ok(())
    }

    /// Transactions committed here, and transactions from peers applied here, since
    /// this process opened the repository.
    pub fn transaction_counts(&self) -> (u64, u64) {
        (
            self.local_commits.load(Ordering::Relaxed),
            self.remote_applied.load(Ordering::Relaxed),
        )
    }

    pub fn version_vector(&self) -> VersionVector {
        self.lock_writer().version_vector.clone()
    }

    pub fn cluster(&self) -> ClusterState {
        self.lock_writer().cluster.clone()
    }

    pub fn register_len(&self) -> usize {
        self.lock_writer().register.len()
    }

    /// Number of entries in the log, and of its segment files.
    pub fn log_len(&self) -> (usize, usize) {
        let writer = self.lock_writer();
        (writer.log.index().len(), writer.log.segment_count())
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

    /// Every quad, for export.
    pub fn quads(&self) -> impl Iterator<Item = Result<Quad>> + '_ {
        self.store.iter().map(|q| q.map_err(StoreError::from))
    }
}

fn decode_config(payload: &[u8]) -> Result<ClusterConfig> {
    serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
        what: "cluster configuration entry".into(),
        detail: e.to_string(),
    })
}

impl Writer {
    /// Re-applies the log entries the checkpoint does not cover.
    fn replay(&mut self, store: &Store, clock: &HybridClock, dir: &Path) -> Result<usize> {
        let entries = self.log.read_from(self.applied)?;
        let count = entries.len();
        let origin = serde_json::from_slice::<Identity>(&fs::read(dir.join("identity.json"))?)
            .map(|i| i.origin)
            .unwrap_or(OriginId(0));
        for (indexed, entry) in entries {
            clock.observe(entry.time).ok();
            match entry.kind {
                EntryKind::Data => {
                    self.apply(store, &Effect::decode(&entry.payload)?, entry.stamp())?;
                }
                EntryKind::Config => {
                    self.adopt_config(decode_config(&entry.payload)?, origin, dir)?
                }
                EntryKind::Heartbeat => {}
            }
            self.version_vector.advance(entry.origin, entry.seq);
            self.applied = indexed.end;
        }
        Ok(count)
    }

    /// Applies each operation of `effect` that the register admits; says whether it
    /// went through the bulk loader.
    fn apply(&mut self, store: &Store, effect: &Effect, stamp: Stamp) -> Result<bool> {
        if effect.deletes.is_empty() && effect.inserts.len() >= BULK_INSERTS {
            let admitted: Vec<&Quad> = effect
                .inserts
                .iter()
                .filter(|q| self.register.admit(q, stamp, true))
                .collect();
            for quad in &admitted {
                if !store.contains(*quad)? {
                    self.digests.inserted(quad);
                }
            }
            let mut loader = store.bulk_loader();
            loader.load_quads(admitted.into_iter().cloned())?;
            loader.commit()?;
            return Ok(true);
        }
        let mut transaction = store.start_transaction()?;
        let mut digest = self.digests.current();
        for quad in &effect.inserts {
            if self.register.admit(quad, stamp, true) && !transaction.contains(quad)? {
                transaction.insert(quad);
                digest.insert(quad.to_string().as_bytes());
            }
        }
        let mut deleted_from = Vec::new();
        for quad in &effect.deletes {
            if self.register.admit(quad, stamp, false) && transaction.contains(quad)? {
                transaction.remove(quad);
                digest.remove(quad.to_string().as_bytes());
                deleted_from.push(&quad.graph_name);
            }
        }
        drop_emptied_graphs(&mut transaction, deleted_from)?;
        transaction.commit()?;
        self.digests.set_current(digest);
        Ok(false)
    }

    /// Takes a configuration if it is newer than ours; one without us means we were
    /// removed.
    fn adopt_config(&mut self, config: ClusterConfig, local: OriginId, dir: &Path) -> Result<()> {
        let newer = self
            .cluster
            .config
            .as_ref()
            .is_none_or(|c| config.version > c.version);
        if !newer {
            return Ok(());
        }
        if !config.is_member(local) {
            tracing::warn!(cluster = %config.cluster_id, "this instance was removed from the cluster");
            self.cluster.removed = true;
        }
        self.cluster.config = Some(config);
        self.cluster.save(dir)
    }
}
