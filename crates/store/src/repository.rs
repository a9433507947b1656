use crate::book::{Book, BookKind, BookRecord, MetaChange};
use crate::bulk_insert;
use crate::checkpoint::{Checkpoint, ClockMark};
use crate::cluster_state::ClusterState;
use crate::compaction::Compactor;
use crate::digest_book::{digest_of, DigestBook, DigestCheck};
use crate::effect::Effect;
use crate::error::{Result, StoreError};
use crate::group_commit::{GroupCommit, SyncFailed};
use crate::log::{IndexedEntry, LogOptions, LogPosition, TxLog};
use crate::namespaces::Namespaces;
use crate::register::Register;
use crate::tracker::{drop_emptied_graphs, effect_of, ChangeTracker};
use oxigraph::model::{GraphNameRef, Quad};
use oxigraph::store::Store;
use quadmesh_repl::{
    admission, Admission, AwaitingPeers, ClusterConfig, Entry, EntryKind, HlcTime, HybridClock,
    OriginId, Stamp, VersionVector,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::watch;

/// Insert-only transactions from this size on go through oxigraph's bulk loader.
const BULK_INSERTS: usize = 10_000;

/// How far ahead of a reading the clock's high-water mark is moved when a reading
/// reaches it: one synced write of `clock.json` per this much clock progress at most.
/// Well under the peers' maximum clock offset, so that a clock restarted at the mark is
/// never refused by them.
const CLOCK_RESERVE_MS: u64 = 200;

/// Marks a repository whose log lost a torn tail in a crash while in a cluster; holds
/// the reason. Removed once every other member reported how far our transactions went.
const AWAITING_PEERS_FILE: &str = "awaiting-peers.txt";
/// Present while a repository whose log is not synced at every append is open: found
/// at open, the last run did not stop cleanly and the log may have lost whole frames.
const RUNNING_UNSYNCED_FILE: &str = "running-unsynced";
/// Present while a repository whose log is synced (group commit) is open, holding the
/// machine's boot id. A transaction is applied before the shared sync that makes its
/// frame durable, so a crash of the *machine* (power loss: the page cache is gone) may
/// lose whole frames whose effects the store holds. Found at open with another boot
/// id, or marked by a failed sync ([`SYNC_FAILED_MARK`]), the repository waits for its
/// peers as after a lost tail; found with the same boot id, only the process stopped,
/// and every frame it wrote is in the file.
const RUNNING_SYNCED_FILE: &str = "running-synced";
/// What a failed shared sync writes into [`RUNNING_SYNCED_FILE`].
const SYNC_FAILED_MARK: &str = "sync-failed";
/// Present while a scrub's finding of damage is not repaired (see `Repository::damaged`).
const DAMAGED_FILE: &str = "damaged.txt";
/// A heartbeat's promise (see [`Repository::heartbeat_point`]), all read under one
/// writer lock.
///
/// Rules it keeps:
/// - everything stamped before `clock` by this instance is in the log before `end`,
///   and `version_vector` counts durable transactions only;
/// - `digest` is the content's digest at exactly `version_vector`;
/// - `config` is the configuration held at that moment: one is made durable before it
///   is held, and so is every entry logged before it, so the transactions this
///   instance took under an older configuration are all counted in `version_vector`.
#[derive(Clone, Debug)]
pub struct HeartbeatPoint {
    pub clock: HlcTime,
    pub version_vector: VersionVector,
    pub end: LogPosition,
    pub digest: quadmesh_repl::ContentDigest,
    pub config: Option<quadmesh_repl::ConfigPosition>,
}

/// A checkpoint that holds the writer this long is logged: commits and replication
/// wait behind it.
const SLOW_CHECKPOINT: std::time::Duration = std::time::Duration::from_millis(20);
/// How many times `checkpoint_every` entries may pass without a checkpoint before one is
/// taken on the write path, the writer held (see `Repository::checkpoint_if_due`).
const INLINE_CHECKPOINT_AFTER: u64 = 4;

/// What a checkpoint records, cut under the writer lock, saved once the store is
/// flushed (see [`Repository::checkpoint`]).
struct CheckpointCut {
    checkpoint: Checkpoint,
    /// Entries since the previous checkpoint when cut, and their bytes.
    entries: u64,
    bytes: u64,
    /// Checkpoints saved and repairs made when cut: either moving on makes it stale.
    generation: (u64, u64),
}

#[derive(Clone, Copy, Debug)]
pub struct RepositoryOptions {
    pub log: LogOptions,
    /// Flush the store and write a checkpoint after this many log entries.
    pub checkpoint_every: u64,
    /// Also after this many bytes of log entries: the store's write buffers hold what
    /// was written since its last flush, so this bounds them (`None`: by count alone).
    pub checkpoint_every_bytes: Option<u64>,
    /// The most new quads the bulk loader holds and encodes at once in each of its
    /// threads (a load, or a peer's load applied, larger than that is written in
    /// several batches): what bounds the loader's memory.
    pub loader_batch_quads: usize,
    /// The clock fence on local writes, with how long a sample of a peer's clock
    /// counts (the lease: a member that measured no majority's clocks for that long
    /// takes no local writes). `None`: no fence, for a repository whose peers' clocks
    /// nobody probes (the store's own tests); the server always sets it.
    pub clock_fence: Option<std::time::Duration>,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        RepositoryOptions {
            log: LogOptions::default(),
            checkpoint_every: 10_000,
            checkpoint_every_bytes: None,
            loader_batch_quads: bulk_insert::LOADER_BATCH_MAX,
            clock_fence: None,
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
/// - every change goes through [`Repository::commit`] (local; its deletes by pattern
///   as range tombstones), [`Repository::commit_inserts`] (loads),
///   [`Repository::commit_config`] (cluster configuration),
///   [`Repository::commit_book`] (namespaces, users: a `Meta` entry) or
///   [`Repository::apply_remote`] / [`Repository::apply_remote_batch`] (a peer's
///   transactions; `apply_archived` replays a backup's the same way): stamped,
///   appended to the log, applied to the store, and announced, sent to peers and
///   acknowledged only once a log sync covers it (group commit: one sync for every
///   transaction waiting, taken outside the writer lock; configuration entries are
///   synced before they are applied). Two paths change state without a new log entry, both
///   restoring what the log already says: `repair_from` (a damaged store from a peer's
///   snapshot) and `merge_books` (a peer's book records, with their own stamps);
/// - the writer lock orders commits, so sequence numbers of this origin have no gaps,
///   each origin's transactions are applied in sequence order without gaps, and the log
///   order is the apply order;
/// - the store never holds a change the log lacks; on open, log entries after the last
///   checkpoint are re-applied through the register, which makes that harmless. It may
///   hold one whose frame is written but not yet synced: a checkpoint, a snapshot, a
///   clean stop and leaving sync the log first, and a machine crash meanwhile is found
///   at the next open (`RUNNING_SYNCED_FILE`) and waited out like a lost tail;
/// - a failed shared sync fails every transaction it would have covered (none is
///   acknowledged, announced or sent) and stops writes until a restart replays the log;
/// - fail-stop: a transaction enters through one sequence, append then apply
///   ([`Repository::append_then_apply`]). If applying fails (store commit, bulk loader,
///   configuration file), the log entry is rolled back before the writer lock is
///   released, so nothing of it was announced or streamed, its sequence number is free
///   again and a peer's transaction will be received again; the client gets the error
///   (a full disk: [`StoreError::DiskFull`], retried by the client or the puller once
///   space is back, with no operator). If the roll-back itself fails, the repository
///   stops taking writes ([`StoreError::WritesStopped`], not ready) until a restart
///   replays its log;
/// - a failed checkpoint fails no write: it is logged and tried again later;
/// - the clock never goes backwards across restarts: every reading is below the
///   high-water mark in `clock.json` ([`ClockMark`]), written before a reading passes it;
///   on open the clock takes that mark, the checkpoint's clock and every replayed entry's
///   time without the peer offset bound, and warns when the physical clock is behind;
/// - after a crash that cut a torn tail off the log of a replicated repository, no local
///   write is taken ([`StoreError::AwaitingPeers`]) until every other member's heartbeat
///   reported no transaction of ours that we lack (pull streams send back our own lost
///   transactions first): a sequence number peers already hold is never reused;
/// - a replicated repository whose log is damaged inside opens anyway, stepping over
///   the damage (holes): it takes no local write ([`StoreError::LogHealing`]) until what
///   the holes took is fetched back from the peers and put back
///   ([`Repository::heal_log`]); the replay stops at the first transaction it cannot
///   apply in order, and then no peer's transaction is applied either until the holes
///   are filled. A repository outside a cluster refuses to open, naming file and offset.
pub struct Repository {
    name: String,
    dir: PathBuf,
    /// Shared with the compaction after bulk loads, which holds it only while it runs.
    store: Arc<Store>,
    origin: OriginId,
    clock: Arc<HybridClock>,
    options: RepositoryOptions,
    namespaces: Namespaces,
    /// Users, roles and grants as this repository's cluster replicates them.
    access: Book,
    metadata: Book,
    writer: Mutex<Writer>,
    /// The shared log sync (group commit), and what it announces once durable: the
    /// count of log entries (pull streams wait on it) and the version vector of what the
    /// store holds (readers wait on it without taking the writer lock).
    group: GroupCommit,
    /// The repository's place in its cluster, published whenever it changes: read
    /// without the writer lock (which a commit holds across its fsync, a bulk load for
    /// seconds).
    cluster_published: watch::Sender<ClusterState>,
    /// Transactions committed here, and received from peers and applied (for metrics).
    local_commits: AtomicU64,
    remote_applied: AtomicU64,
    /// Log entries rolled back because they could not be applied (for metrics).
    rollbacks: AtomicU64,
    /// The background compaction after bulk loads.
    compacting: Arc<Compactor>,
    /// Set under the writer lock while a checkpoint flushes the store without it: every
    /// frame appended meanwhile is synced before it is applied (see
    /// [`Repository::checkpoint`]).
    flushing: AtomicBool,
    /// Enough entries since the last checkpoint for the next (the server's upkeep
    /// takes it, off the write path).
    checkpoint_due: AtomicBool,
    /// A checkpoint without the writer lock is running (one at a time).
    checkpointing: AtomicBool,
    /// Why writes are refused, if they are (read without the writer lock).
    health: Mutex<Health>,
    /// Set while `health.awaiting` is: heartbeats only take the writer lock then.
    awaiting_peers: AtomicBool,
    /// The samples of the peers' clocks, for the clock fence on local writes.
    fence: crate::fence::FenceKeeper,
    /// Set when a scrub found the store differing from what the write path put there,
    /// cleared by a repair (`repair_from`): until then this instance knows it is the
    /// one that is wrong, whatever its peers say.
    damaged: AtomicBool,
    /// Transactions put back into the log's holes since opening (for metrics).
    pub(crate) frames_put_back: AtomicU64,
    /// Set while `health.healing` says the replay stopped at a hole: peers'
    /// transactions are refused then (read on every one without the health lock).
    pub(crate) replay_paused: AtomicBool,
}

/// What keeps a repository from taking writes.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// A write failed after its log append and could not be rolled back: no writes at
    /// all until a restart replays the log.
    stopped: Option<String>,
    /// The log lost a torn tail: no local writes until the other members answered
    /// (the rules are [`AwaitingPeers`]'s).
    awaiting: Option<LostTailWait>,
    /// This instance is leaving its cluster (a copy stopping): it acknowledges no more
    /// local writes, since a write acknowledged now might not be pulled by anyone before
    /// the process ends.
    leaving: bool,
    /// The controlling instance is removing this instance: no local write is
    /// acknowledged until then (see [`Repository::hold_local_writes_for_removal`]).
    held_for_removal_until: Option<std::time::Instant>,
    /// The log was found damaged inside and is not healed yet.
    pub(crate) healing: Option<crate::log_heal::LogHealing>,
}

impl Health {
    fn held_for_removal(&self) -> bool {
        self.held_for_removal_until
            .is_some_and(|until| std::time::Instant::now() < until)
    }
}

/// Waiting for the other members' word after a lost tail.
#[derive(Debug)]
struct LostTailWait {
    reason: String,
    peers: AwaitingPeers,
    /// The configuration's members when last evaluated (read without the writer lock).
    members: Vec<OriginId>,
}

pub(crate) struct Writer {
    /// The log and how far the store has applied it.
    pub(crate) durable: DurableState,
    /// What this replica holds of every origin, and the register deciding what wins.
    pub(crate) replica: ReplicaState,
    /// The content digest, kept with every change (anti-entropy).
    pub(crate) digests: DigestBook,
    pub(crate) cluster: ClusterState,
    /// How many times the store was changed other than by a log entry (a repair from a
    /// peer's snapshot, the only such change): see [`Writer::store_version`].
    pub(crate) repairs: u64,
    /// `RepositoryOptions::loader_batch_quads`, for the loads applied here.
    loader_batch_quads: usize,
}

impl Writer {
    /// Changes whenever the store does: every transaction, committed or applied,
    /// advances the version vector, and the one change made outside the log, a repair,
    /// counts in `repairs`. Equal at two moments, the store held the same quads (other
    /// writes, heartbeats and checkpoints take the lock without changing it).
    fn store_version(&self) -> (VersionVector, u64) {
        (self.replica.version_vector.clone(), self.repairs)
    }
}

/// The writer's durable part: the log, and how far the store applied it.
///
/// Rules it keeps: `applied` never passes the log's end; what the log dropped of each
/// origin is in `truncated` (a peer lacking it must be grown again); the log is kept
/// from the backup pin's cut while the pin holds.
pub(crate) struct DurableState {
    pub(crate) log: TxLog,
    /// The end of the last entry applied to the store.
    pub(crate) applied: LogPosition,
    pub(crate) entries_since_checkpoint: u64,
    /// Bytes of the log entries appended since the previous checkpoint.
    pub(crate) bytes_since_checkpoint: u64,
    /// Checkpoints saved since opening (a checkpoint cut before another was saved is
    /// stale).
    pub(crate) checkpoints: u64,
    /// For each origin, the highest sequence number no longer in the log.
    pub(crate) truncated: VersionVector,
    /// No clock reading of this repository reaches this (ms); persisted in `clock.json`.
    pub(crate) clock_reserved: u64,
    /// The last backup's cut: the log since it is kept for the next incremental backup.
    pub(crate) backup_pin: Option<crate::backup_log::BackupPin>,
}

/// The writer's replica core: what it holds of every origin and what wins.
///
/// Rules it keeps: `version_vector` counts exactly the transactions applied here; the
/// register forgets only what is older than `frontier` (set by replication: no
/// transaction not yet received can be older); `stable` is what every member has.
pub(crate) struct ReplicaState {
    pub(crate) register: Register,
    pub(crate) version_vector: VersionVector,
    pub(crate) frontier: HlcTime,
    pub(crate) stable: VersionVector,
    /// How many entries the register kept after it was last pruned.
    pub(crate) pruned_len: usize,
}

/// How many entries the register grows by before the frontier's move prunes it without
/// waiting for a checkpoint (a load adds one per quad, in a handful of log entries).
const REGISTER_PRUNE_GROWTH: usize = 100_000;

impl ReplicaState {
    /// Prunes the register behind `frontier` once it has grown by
    /// [`REGISTER_PRUNE_GROWTH`] entries, and by as many as it kept after the last
    /// prune, since then: its memory follows what replication has not yet passed, not
    /// what was written since the last checkpoint, and a frontier that does not move
    /// (a member away) costs time linear in what is written, not quadratic.
    fn prune_when_grown(&mut self, frontier: HlcTime) {
        let grown = self.register.len().saturating_sub(self.pruned_len);
        if grown >= REGISTER_PRUNE_GROWTH.max(self.pruned_len) {
            self.prune(frontier);
        }
    }

    fn prune(&mut self, frontier: HlcTime) {
        self.register.prune(frontier);
        self.pruned_len = self.register.len();
    }
}

/// When an appended entry is synced (see [`Repository::append_then_apply`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameSync {
    /// Before it is applied (configuration entries, loads through the bulk loader).
    BeforeApply,
    /// After it is applied, by a sync shared with the commits around it.
    Shared,
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
        let cluster = ClusterState::load(dir)?;
        let held_for_removal_until_ms = cluster.held_for_removal_until_ms;
        // Damage inside the log: a member of a cluster steps over it and fetches back
        // what it took from its peers; alone, the open fails naming file and offset.
        let log = if cluster.replicated() {
            TxLog::open_salvaging(&dir.join("log"), options.log)?
        } else {
            TxLog::open(&dir.join("log"), options.log)?
        };
        let checkpoint = Checkpoint::load(dir)?.unwrap_or_default();
        // Times this repository issued itself: taken whatever physical time says.
        let clock_reserved = ClockMark::load(dir)?;
        clock.restore(checkpoint.clock);
        clock.restore(HlcTime::from_parts(clock_reserved, 0));
        let mut writer = Writer {
            durable: DurableState {
                log,
                applied: checkpoint.applied,
                entries_since_checkpoint: 0,
                bytes_since_checkpoint: 0,
                checkpoints: 0,
                truncated: checkpoint.truncated.clone(),
                clock_reserved,
                backup_pin: crate::backup_log::BackupPin::load(dir)?,
            },
            replica: ReplicaState {
                register: checkpoint.decode_register()?,
                version_vector: checkpoint.version_vector.clone(),
                frontier: HlcTime::ZERO,
                stable: VersionVector::new(),
                pruned_len: 0,
            },
            cluster,
            digests: DigestBook::new(checkpoint.digest.unwrap_or_default()),
            repairs: 0,
            loader_batch_quads: options.loader_batch_quads,
        };
        let namespaces = Namespaces::open(dir, options.log.fsync)?;
        let access = Book::open(dir, BookKind::Access, options.log.fsync, || {
            Ok(BTreeMap::new())
        })?;
        let metadata = Book::open(dir, BookKind::Metadata, options.log.fsync, || {
            Ok(BTreeMap::new())
        })?;
        let books = Books {
            namespaces: namespaces.book(),
            access: &access,
            metadata: &metadata,
        };
        let (replayed, replay_paused) = writer.replay(&store, &clock, dir, &books)?;
        let healing = crate::log_heal::LogHealing::plan(name, &writer, replay_paused);
        // After a crash the store may already hold entries the checkpoint does not
        // cover (its own write-ahead log), so the replay cannot tell which quads really
        // changed: count them all again.
        if replayed > 0 || checkpoint.digest.is_none() {
            let digest = digest_of(store.iter().map(|q| q.map_err(StoreError::from)))?;
            writer.digests = DigestBook::new(digest);
        }
        let version_vector = writer.replica.version_vector.clone();
        writer.digests.record(&version_vector);
        if replayed > 0 {
            tracing::info!(
                repository = name,
                replayed,
                "re-applied log entries after the last checkpoint"
            );
        }
        let behind_ms = clock.ahead_of_physical_ms();
        if behind_ms > clock.max_offset_ms() {
            tracing::warn!(
                repository = name,
                behind_ms,
                "THE PHYSICAL CLOCK IS {behind_ms} ms BEHIND times this repository issued before \
                 (was it stepped back?): stamps count on logically from them, so they never go \
                 backwards, but peers hold this instance's transactions until their clocks catch up"
            );
        }
        let awaiting =
            awaiting_peers_on_open(name, dir, &writer, replay_paused, options.log.fsync)?;
        let members = writer
            .cluster
            .config
            .as_ref()
            .map_or_else(Vec::new, ClusterConfig::origins);
        let group = GroupCommit::new(
            options.log.fsync,
            writer.durable.log.active_handle()?,
            writer.durable.log.end().segment,
            writer.durable.log.end(),
            writer.durable.log.index().len() as u64,
            writer.replica.version_vector.clone(),
        );
        let cluster_published = watch::Sender::new(writer.cluster.clone());
        let fence = crate::fence::FenceKeeper::new(clock.max_offset_ms(), options.clock_fence);
        let repository = Repository {
            name: name.to_owned(),
            dir: dir.to_owned(),
            store: Arc::new(store),
            origin: identity.origin,
            clock,
            options,
            namespaces,
            access,
            metadata,
            writer: Mutex::new(writer),
            group,
            cluster_published,
            local_commits: AtomicU64::new(0),
            remote_applied: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            compacting: Arc::default(),
            flushing: AtomicBool::new(false),
            checkpoint_due: AtomicBool::new(false),
            checkpointing: AtomicBool::new(false),
            awaiting_peers: AtomicBool::new(awaiting.is_some()),
            replay_paused: AtomicBool::new(replay_paused),
            fence,
            damaged: AtomicBool::new(dir.join(DAMAGED_FILE).exists()),
            health: Mutex::new(Health {
                stopped: None,
                awaiting: awaiting.map(|reason| LostTailWait {
                    reason,
                    peers: AwaitingPeers::new(),
                    members,
                }),
                leaving: false,
                // A hold saved before a restart holds on for what is left of it.
                held_for_removal_until: held_for_removal_until_ms
                    .map(|until| until.saturating_sub(wall_clock_ms()))
                    .filter(|left| *left > 0)
                    .map(|left| std::time::Instant::now() + std::time::Duration::from_millis(left)),
                healing,
            }),
            frames_put_back: AtomicU64::new(0),
        };
        // A full disk must not keep the server from starting: the checkpoint is retried.
        if let Err(e) = repository.checkpoint() {
            tracing::warn!(repository = name, error = %e, "checkpoint after opening failed; it is retried later");
        }
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

    /// The store itself, to this crate only: outside it, reads go through
    /// [`Repository::reader`] and writes through the log.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// Users, roles and grants as replicated with this repository.
    pub fn access_book(&self) -> &Book {
        &self.access
    }

    /// Settings and attribute definitions as replicated with this repository.
    pub fn metadata_book(&self) -> &Book {
        &self.metadata
    }

    pub(crate) fn book(&self, kind: BookKind) -> &Book {
        match kind {
            BookKind::Namespaces => self.namespaces.book(),
            BookKind::Access => &self.access,
            BookKind::Metadata => &self.metadata,
        }
    }

    pub fn origin(&self) -> OriginId {
        self.origin
    }

    pub fn clock(&self) -> &Arc<HybridClock> {
        &self.clock
    }

    /// Wakes up whenever an entry is appended to the log.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.group.appended.subscribe()
    }

    /// The version vector of what the store holds, updated after every apply; waiting
    /// on it never takes the writer lock.
    pub fn watch_version_vector(&self) -> watch::Receiver<VersionVector> {
        self.group.applied_vector.subscribe()
    }

    /// Computes an effect with `build` against the current state, then stamps, logs and
    /// applies it as one transaction. `build` sees earlier writes of its own; if it fails,
    /// nothing is written.
    pub fn commit(
        &self,
        build: impl FnOnce(&mut ChangeTracker<'_, '_>) -> Result<()>,
    ) -> Result<CommitReceipt> {
        self.await_clock_samples();
        let mut writer = self.lock_writer();
        self.check_local_write(&writer)?;
        self.check_clock_fence(&writer)?;
        let mut transaction = self.store.start_transaction()?;
        let mut tracker = ChangeTracker::new(&mut transaction);
        build(&mut tracker)?;
        let writes = tracker.into_writes();
        let mut digests_after = writer.digests.current();
        for (quad, present) in writes.local_changes() {
            let text = crate::digest_book::digest_key(quad);
            if present {
                digests_after.insert(text.as_bytes());
            } else {
                digests_after.remove(text.as_bytes());
            }
        }
        drop_emptied_graphs(
            &mut transaction,
            writes
                .local_changes()
                .filter(|(_, present)| !present)
                .map(|(q, _)| &q.graph_name),
        )?;
        let swept = writes.swept.len();
        // In a cluster every quad the write names is stamped, changed here or not, and
        // every range delete is kept as a tombstone.
        let effect = effect_of(writes, writer.cluster.replicated());
        if effect.is_empty() {
            return Ok(CommitReceipt::default());
        }
        let entry = self.stamp_entry(&mut writer, EntryKind::Data, effect.encode())?;
        let stamp = entry.stamp();
        let ((), durable) =
            self.append_then_apply(&mut writer, &entry, FrameSync::Shared, |writer| {
                transaction.commit()?;
                writer.digests.set_current(digests_after);
                if writer.cluster.replicated() {
                    for pattern in &effect.patterns {
                        writer
                            .replica
                            .register
                            .add_tombstone(pattern.clone(), stamp);
                    }
                    for quad in &effect.inserts {
                        writer.replica.register.record(quad.clone(), stamp, true);
                    }
                    for quad in &effect.deletes {
                        writer.replica.register.record(quad.clone(), stamp, false);
                    }
                }
                Ok(())
            })?;
        // Answered only once durable; others' commits gather meanwhile.
        drop(writer);
        self.await_durable(durable)?;
        self.local_commits.fetch_add(1, Ordering::Relaxed);
        Ok(CommitReceipt {
            transaction: Some((entry.seq, stamp)),
            inserted: effect.inserts.len(),
            deleted: effect.deletes.len() + swept,
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
        self.await_clock_samples();
        let began = Instant::now();
        let threads = crate::parallel_parse::parse_threads();
        // Prepared outside the writer lock, against the store as it is when the lock is
        // left here: true if the store has not changed when this load takes the lock
        // (every change of the store is made under it), else checked again under it.
        let (seen, replicated) = {
            let writer = self.lock_writer();
            (writer.store_version(), writer.cluster.replicated())
        };
        let quads = bulk_insert::unique(quads);
        let dedup = began.elapsed();
        let batch = self.options.loader_batch_quads;
        let mut prepared = bulk_insert::prepare(&self.store, quads, replicated, threads, batch)?;
        let waited = Instant::now();
        let mut writer = self.lock_writer();
        let lock_wait = waited.elapsed();
        self.check_local_write(&writer)?;
        self.check_clock_fence(&writer)?;
        // Taken over (a commit, a peer's transaction applied, a repair): still true if
        // the store holds the same of its quads.
        let taken_over = writer.store_version() != seen;
        let still_true = writer.cluster.replicated() == prepared.replicated
            && (!taken_over
                || bulk_insert::presence(&self.store, &prepared.quads, threads)?
                    == prepared.present);
        if !still_true {
            let quads = std::mem::take(&mut prepared.quads);
            drop(prepared);
            let replicated = writer.cluster.replicated();
            prepared = bulk_insert::prepare(&self.store, quads, replicated, threads, batch)?;
        }
        if prepared.inserted == 0 {
            return Ok(CommitReceipt::default());
        }
        let bulk_insert::PreparedLoad {
            quads,
            inserted,
            payload,
            digest,
            loader,
            timings,
            ..
        } = prepared;
        let entry = self.stamp_entry(&mut writer, EntryKind::Data, payload)?;
        let stamp = entry.stamp();
        // The bulk loader ingests its files at once (all or nothing), so a failure leaves
        // the store as it was and the append can be rolled back. It also syncs the files
        // it ingests, so the frame is synced first: the store never durably holds a load
        // whose frame a machine crash could still take. One sync per load costs nothing.
        let appending = Instant::now();
        let mut ingest = std::time::Duration::ZERO;
        let ((), durable) =
            self.append_then_apply(&mut writer, &entry, FrameSync::BeforeApply, |writer| {
                let ingesting = Instant::now();
                loader.commit()?;
                ingest = ingesting.elapsed();
                writer.digests.added(digest);
                if writer.cluster.replicated() {
                    writer.replica.register.reserve(quads.len());
                    for quad in quads {
                        writer.replica.register.record(quad, stamp, true);
                    }
                }
                Ok(())
            })?;
        let under_lock = appending.elapsed();
        drop(writer);
        self.await_durable(durable)?;
        self.compact_soon();
        self.local_commits.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "quadmesh::load", repository = %self.name, quads = inserted,
            taken_over, prepared_again = !still_true, ?dedup, presence = ?timings.presence,
            digest_and_encode = ?timings.digest_and_encode, ?lock_wait,
            append_and_sync = ?under_lock.saturating_sub(ingest), ?ingest,
            total = ?began.elapsed(), "bulk load committed");
        Ok(CommitReceipt {
            transaction: Some((entry.seq, stamp)),
            inserted,
            deleted: 0,
        })
    }

    /// Bulk-loaded files are laid out for writing, not reading: compacted once loads
    /// pause (see [`Compactor`]).
    fn compact_soon(&self) {
        self.compacting.ask(Arc::downgrade(&self.store), &self.name);
    }

    fn stamp_entry(&self, writer: &mut Writer, kind: EntryKind, payload: Vec<u8>) -> Result<Entry> {
        Ok(Entry {
            kind,
            origin: self.origin,
            seq: writer.replica.version_vector.get(self.origin) + 1,
            time: self.reading(writer)?,
            payload,
        })
    }

    /// A clock reading for a stamp, below the persisted high-water mark (moved first
    /// when the reading reaches it).
    fn reading(&self, writer: &mut Writer) -> Result<HlcTime> {
        let time = self.clock.now()?;
        self.reserve(writer, time)?;
        Ok(time)
    }

    fn reserve(&self, writer: &mut Writer, time: HlcTime) -> Result<()> {
        if time.millis() >= writer.durable.clock_reserved {
            let upto = time.millis() + CLOCK_RESERVE_MS;
            ClockMark::save(&self.dir, upto, self.options.log.fsync)
                .map_err(StoreError::classify_disk_full)?;
            writer.durable.clock_reserved = upto;
        }
        Ok(())
    }

    /// Refuses a local write when the repository takes none.
    fn check_local_write(&self, writer: &Writer) -> Result<()> {
        writer.cluster.check_writable(&self.name)?;
        let health = self.lock_health();
        if let Some(reason) = &health.stopped {
            return Err(StoreError::WritesStopped {
                repository: self.name.clone(),
                reason: reason.clone(),
            });
        }
        if let Some(healing) = &health.healing {
            return Err(StoreError::LogHealing {
                repository: self.name.clone(),
                reason: healing.to_string(),
            });
        }
        if let Some(wait) = &health.awaiting {
            return Err(StoreError::AwaitingPeers {
                repository: self.name.clone(),
                reason: wait.reason.clone(),
            });
        }
        if health.leaving || health.held_for_removal() {
            return Err(StoreError::Leaving(self.name.clone()));
        }
        Ok(())
    }

    /// Refuses a local write of data (quads, book records: whatever last-writer-wins
    /// decides by stamp) while the clock fence does. Configuration changes are not
    /// fenced: they are ordered by their position, not their stamp, and removing
    /// members that are gone is how a cluster gets its majority back.
    fn check_clock_fence(&self, writer: &Writer) -> Result<()> {
        let verdict = self.fence_verdict(&writer.cluster);
        if verdict.is_fenced() {
            return Err(StoreError::ClockFenced {
                repository: self.name.clone(),
                reason: verdict.to_string(),
            });
        }
        Ok(())
    }

    /// The clock fence's verdict for a local write now, among the members of
    /// `cluster`'s configuration (none outside a cluster: never fenced).
    fn fence_verdict(&self, cluster: &ClusterState) -> quadmesh_repl::FenceVerdict {
        let members = cluster
            .config
            .as_ref()
            .filter(|_| !cluster.removed)
            .map_or_else(Vec::new, ClusterConfig::origins);
        self.fence.verdict(self.origin, &members, &self.clock)
    }

    /// Waits (at most [`crate::FIRST_SAMPLES_GRACE`] after the members changed) while the
    /// clock fence refuses only for want of samples of members not yet measured, so that
    /// a write right after a start or a grow is not refused for it. Blocking.
    fn await_clock_samples(&self) {
        loop {
            let verdict = self.fence_verdict(&self.cluster());
            if !self.fence.worth_waiting(&verdict) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Keeps what `peer` answered a clock probe sent at `sent` and answered at
    /// `received`: its physical time and clock reading (ms).
    pub fn record_clock_sample(
        &self,
        peer: OriginId,
        peer_physical_ms: u64,
        peer_reading_ms: u64,
        sent: std::time::Instant,
        received: std::time::Instant,
    ) {
        self.fence
            .record(peer, peer_physical_ms, peer_reading_ms, sent, received);
    }

    /// This instance's physical clock minus `peer`'s (ms), by a clock sample that still
    /// counts (for status and metrics).
    pub fn clock_offset_from(&self, peer: OriginId) -> Option<i64> {
        self.fence.offset_from(peer, &self.clock)
    }

    /// Why the clock fence refuses local writes now, if it does (for readiness, status
    /// and metrics), by the configuration last published.
    pub fn clock_fence_refusal(&self) -> Option<String> {
        let verdict = self.fence_verdict(&self.cluster());
        verdict.is_fenced().then(|| verdict.to_string())
    }

    /// Refuses every local write from now on (remote transactions still apply, and
    /// peers still pull): this instance is leaving its cluster. Takes the writer lock,
    /// so a write in progress ends first and none starts after this returns. Blocking.
    pub fn stop_local_writes_for_leaving(&self) {
        let writer = self.lock_writer();
        self.lock_health().leaving = true;
        // A write already applied and waiting for its shared sync is made durable (and
        // announced) now, so that what the members must pull before we go includes it.
        if let Err(e) = self.sync_pending_locked(&writer) {
            tracing::warn!(repository = %self.name, error = %e, "could not sync the log before leaving");
        }
    }

    /// The controlling instance is about to remove this instance: local writes are
    /// refused for `hold` (or until released), and the version vector returned holds
    /// every transaction this instance will ever have acknowledged if the removal goes
    /// ahead within that time. Taken under the writer lock, so a write in progress ends
    /// first and none starts after this returns. A `hold` of zero releases. Blocking.
    ///
    /// The hold's end is saved in `cluster.json` before this returns (wall clock), so a
    /// restart before it ends keeps holding: the removal may still take effect, and a
    /// write taken after the restart would go with it.
    pub fn hold_local_writes_for_removal(
        &self,
        hold: std::time::Duration,
    ) -> Result<VersionVector> {
        let mut writer = self.lock_writer();
        let until_ms = (!hold.is_zero()).then(|| wall_clock_ms() + hold.as_millis() as u64);
        if writer.cluster.held_for_removal_until_ms != until_ms {
            writer.cluster.held_for_removal_until_ms = until_ms;
            self.publish_cluster(&writer);
            writer.cluster.save(&self.dir)?;
        }
        self.lock_health().held_for_removal_until =
            (!hold.is_zero()).then(|| std::time::Instant::now() + hold);
        Ok(writer.replica.version_vector.clone())
    }

    /// Once this instance knows it was removed: the sequence number of its last own
    /// transaction, all it will ever have written (taken under the writer lock: a write
    /// in progress ends first, and a removed repository takes none after it, whether
    /// it was acknowledged yet or not). `None` while it does not know. Blocking.
    pub fn own_last_once_removed(&self) -> Option<u64> {
        let writer = self.lock_writer();
        writer
            .cluster
            .removed
            .then(|| writer.replica.version_vector.get(self.origin))
    }

    pub(crate) fn lock_health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why this repository refuses writes, if it does (for readiness, status, metrics).
    pub fn write_refusal(&self) -> Option<String> {
        let health = self.lock_health();
        if let (None, Some(healing)) = (&health.stopped, &health.healing) {
            return Some(format!("takes no local writes: {healing}"));
        }
        match (&health.stopped, &health.awaiting) {
            (Some(reason), _) => Some(format!("takes no writes: {reason}")),
            (None, Some(wait)) => {
                let waiting: Vec<String> = wait
                    .peers
                    .waiting_for(self.origin, &wait.members)
                    .iter()
                    .map(|o| o.to_string())
                    .collect();
                let blocked = if wait.peers.blocked(self.origin, &wait.members) {
                    "; too many members expired for a majority to answer: re-grow this instance from a member"
                } else {
                    ""
                };
                Some(format!(
                    "takes no local writes yet: {} (waiting for: {}){blocked}",
                    wait.reason,
                    waiting.join(", ")
                ))
            }
            (None, None) if health.leaving => {
                Some("takes no local writes: this instance is leaving its cluster".into())
            }
            (None, None) if health.held_for_removal() => Some(
                "takes no local writes: the controlling instance is removing this instance from its cluster".into(),
            ),
            (None, None) => self
                .clock_fence_refusal()
                .map(|reason| format!("takes no local writes: {reason}")),
        }
    }

    /// Log entries rolled back because they could not be applied, since opening.
    pub fn rollbacks(&self) -> u64 {
        self.rollbacks.load(Ordering::Relaxed)
    }

    /// The one way a transaction enters the log and the store: appends `entry`, then
    /// applies it with `apply`, then releases it for announcing once durable, and
    /// returns where its entry ends: the caller answers only after
    /// [`Repository::await_durable`] of that position, outside the writer lock.
    ///
    /// With [`FrameSync::BeforeApply`] the entry is synced before it is applied (and announced at
    /// once); with [`FrameSync::Shared`] it is written but not synced: applied at once, and
    /// made durable by a sync shared with the commits around it (`group_commit.rs`).
    /// Until then nothing of it leaves this process: pull streams and heartbeats read
    /// the log only up to the synced position, and the published version vector and the
    /// stream wake-ups advance only then.
    ///
    /// If `apply` fails it must leave the store and the writer as they were; the append
    /// is then rolled back before the writer lock (held by the caller throughout) is
    /// released: it was never released for syncing, so nothing of the entry left this
    /// process. If the roll-back fails too, the repository stops taking writes.
    fn append_then_apply<T>(
        &self,
        writer: &mut Writer,
        entry: &Entry,
        sync: FrameSync,
        apply: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<(T, LogPosition)> {
        if let Some(reason) = &self.lock_health().stopped {
            return Err(StoreError::WritesStopped {
                repository: self.name.clone(),
                reason: reason.clone(),
            });
        }
        if let Some(failed) = self.group.failed() {
            return Err(self.sync_failed(failed));
        }
        // While a checkpoint flushes the store without the writer lock, nothing may reach
        // the store before its frame is durable (the flush could make it durable first).
        let sync = if self.flushing.load(Ordering::Acquire) {
            FrameSync::BeforeApply
        } else {
            sync
        };
        let sync_failures = writer.durable.log.sync_failures();
        let appended = match sync {
            FrameSync::BeforeApply => writer.durable.log.append(entry),
            FrameSync::Shared => writer.durable.log.append_unsynced(entry),
        };
        let indexed = match appended {
            Ok(indexed) => indexed,
            Err(e) => {
                if let Some(reason) = writer.durable.log.broken() {
                    self.stop_writes(reason.to_owned());
                }
                // A failed sync of the log (this entry's, or the rotation's) may have
                // lost frames appended before it and not yet synced: they fail too.
                if writer.durable.log.sync_failures() != sync_failures {
                    if let Some(failed) = self.group.fail_pending(e.to_string()) {
                        return Err(self.sync_failed(failed));
                    }
                }
                return Err(e.classify_disk_full());
            }
        };
        // The handle the shared sync uses for a segment it has not seen yet (taken before
        // applying: a failure here can still be rolled back).
        let new_segment = if indexed.end.segment != self.group.segment() {
            Some(writer.durable.log.active_handle().map_err(StoreError::from))
        } else {
            None
        };
        let applied = match new_segment.transpose() {
            Ok(handle) => apply(writer).map(|value| (value, handle)),
            Err(e) => Err(e),
        };
        match applied {
            Ok((value, handle)) => {
                self.after_append(writer, &indexed, handle);
                if sync == FrameSync::BeforeApply {
                    // The log synced the file up to this entry, and everything before.
                    self.group.synced_by_log(indexed.end);
                }
                self.checkpoint_if_due(writer);
                Ok((value, indexed.end))
            }
            Err(e) => {
                let e = e.classify_disk_full();
                self.rollbacks.fetch_add(1, Ordering::Relaxed);
                match writer.durable.log.roll_back(&indexed) {
                    Ok(()) => tracing::warn!(repository = %self.name, origin = %entry.origin,
                        seq = entry.seq, error = %e,
                        "a transaction could not be applied; its log entry was rolled back"),
                    Err(rollback) => self.stop_writes(format!(
                        "transaction {} of origin {} is in the log but could not be applied ({e}), and rolling it back failed ({rollback})",
                        entry.seq, entry.origin
                    )),
                }
                Err(e)
            }
        }
    }

    /// Waits (outside the writer lock) until the log is durable up to `end`: the entry
    /// that ends there may then be acknowledged. A failed shared sync fails every
    /// transaction it would have covered and stops writes (see [`SyncFailed`]).
    /// Blocking.
    fn await_durable(&self, end: LogPosition) -> Result<()> {
        self.group
            .wait_durable(end)
            .map_err(|failed| self.sync_failed(failed))
    }

    /// A sync of the log failed with entries applied that it would have made durable:
    /// they cannot be taken back out of the store, so the repository stops taking
    /// writes (the restart's replay settles what reached the disk), and the next open
    /// is told that frames may be lost (`RUNNING_SYNCED_FILE`), as after a lost tail.
    fn sync_failed(&self, failed: SyncFailed) -> StoreError {
        let reason = failed.to_string();
        // Written by every transaction it fails (a failed sync is rare; the disk may
        // take one of the writes).
        let marker = self.dir.join(RUNNING_SYNCED_FILE);
        if let Err(e) = fs::write(&marker, format!("{SYNC_FAILED_MARK}: {reason}\n"))
            .and_then(|()| fs::File::open(&marker)?.sync_all())
        {
            tracing::error!(repository = %self.name, error = %e,
                "cannot record the failed sync for the next open either");
        }
        self.stop_writes(reason.clone());
        StoreError::WritesStopped {
            repository: self.name.clone(),
            reason,
        }
    }

    pub(crate) fn stop_writes(&self, reason: String) {
        let mut health = self.lock_health();
        if health.stopped.is_none() {
            tracing::error!(repository = %self.name, %reason,
                "the repository stops taking writes until the server is restarted and replays its log");
            health.stopped = Some(reason);
        }
    }

    /// Everything in the log before this position is durable (and announced).
    pub(crate) fn durable_position(&self) -> LogPosition {
        self.group.synced()
    }

    /// Unit tests: shared syncs wait (`true`) or go on.
    #[cfg(test)]
    pub(crate) fn hold_group_syncs(&self, held: bool) {
        self.group.hold_syncs(held);
    }

    /// Unit tests: the next shared sync fails with EIO.
    #[cfg(test)]
    pub(crate) fn fail_next_group_sync(&self) {
        self.group.fail_next_sync();
    }

    /// Unit tests: transactions applied and waiting for the shared sync.
    #[cfg(test)]
    pub(crate) fn group_pending(&self) -> usize {
        self.group.pending()
    }

    /// Unit tests: whether a shared sync is under way.
    #[cfg(test)]
    pub(crate) fn group_syncing(&self) -> bool {
        self.group.syncing()
    }

    /// Log syncs made since opening (each covers every transaction waiting for it).
    pub fn log_syncs(&self) -> u64 {
        self.group.syncs()
    }

    /// A peer's heartbeat: its version vector. After a crash cut our log's tail, local
    /// writes resume once the other members answered how far our transactions went
    /// (those they had were streamed back to us before their heartbeat; see
    /// [`AwaitingPeers`]). Says whether the peer holds transactions of ours that we
    /// lack, which a new stream fetches back. `under`: the configuration the peer held
    /// when it took `theirs` (the heartbeat's; `None` from older senders) — its word
    /// counts only under one at least as new as ours.
    pub fn on_peer_heartbeat(
        &self,
        peer: OriginId,
        theirs: &VersionVector,
        under: Option<quadmesh_repl::ConfigPosition>,
    ) -> bool {
        if !self.awaiting_peers.load(Ordering::Acquire) {
            // Not after a lost tail: no peer can hold more of ours than we wrote.
            return false;
        }
        let writer = self.lock_writer();
        let ours = writer.replica.version_vector.get(self.origin);
        let ahead = {
            let mut health = self.lock_health();
            let Some(wait) = health.awaiting.as_mut() else {
                return false;
            };
            let held = writer
                .cluster
                .config
                .as_ref()
                .map(|c| c.position())
                .unwrap_or_default();
            wait.peers
                .on_report(peer, theirs.get(self.origin), ours, under, held)
        };
        self.end_awaiting_if_answered(&writer);
        ahead
    }

    /// Whether this instance waits, after a crash cut its log's tail, for the other
    /// members' word on its own transactions (no local write until then).
    pub fn is_awaiting_peers(&self) -> bool {
        self.awaiting_peers.load(Ordering::Acquire)
    }

    /// This instance's view expired `peer` (silent longer than the log is kept): while
    /// waiting after a lost tail, it counts as having answered, beside a majority that
    /// did (see [`AwaitingPeers`]).
    pub fn on_peer_expired(&self, peer: OriginId) {
        if !self.awaiting_peers.load(Ordering::Acquire) {
            return;
        }
        let writer = self.lock_writer();
        let members: Vec<OriginId> = writer
            .cluster
            .config
            .as_ref()
            .map_or_else(Vec::new, ClusterConfig::origins);
        if let Some(wait) = self.lock_health().awaiting.as_mut() {
            wait.peers.on_expired(peer);
            if wait.peers.blocked(self.origin, &members) {
                tracing::error!(repository = %self.name, member = %peer,
                    "after a lost log tail, too many members expired for a majority to say how far this instance's transactions went: local writes stay refused; re-grow this instance from a member (see the runbook)");
            }
        }
        self.end_awaiting_if_answered(&writer);
    }

    fn end_awaiting_if_answered(&self, writer: &Writer) {
        let members: Vec<OriginId> = writer
            .cluster
            .config
            .as_ref()
            .map_or_else(Vec::new, ClusterConfig::origins);
        let mut health = self.lock_health();
        let Some(wait) = health.awaiting.as_mut() else {
            return;
        };
        wait.members = members;
        if !wait.peers.satisfied(self.origin, &wait.members) {
            return;
        }
        let expired: Vec<String> = wait.peers.expired().map(|o| o.to_string()).collect();
        if let Err(e) = fs::remove_file(self.dir.join(AWAITING_PEERS_FILE)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(repository = %self.name, error = %e, "cannot remove the recovery marker; trying again at the next heartbeat");
                return;
            }
        }
        health.awaiting = None;
        self.awaiting_peers.store(false, Ordering::Release);
        let seq = writer.replica.version_vector.get(self.origin);
        if expired.is_empty() {
            tracing::warn!(repository = %self.name, seq,
                "every other member reported how far this instance's transactions went; local writes resume");
        } else {
            tracing::warn!(repository = %self.name, seq, expired = ?expired,
                "a majority of members reported how far this instance's transactions went and the others were expired (they must be grown again); local writes resume");
        }
    }

    /// Changes the cluster configuration (at the controlling instance): `change` gets
    /// the current configuration and the time the change is stamped with, and returns
    /// the new one, which replicates as a transaction of its own kind.
    pub fn commit_config(
        &self,
        change: impl FnOnce(Option<&ClusterConfig>, HlcTime) -> Result<ClusterConfig>,
    ) -> Result<ClusterConfig> {
        let mut writer = self.lock_writer();
        self.check_local_write(&writer)?;
        let mut entry = self.stamp_entry(&mut writer, EntryKind::Config, Vec::new())?;
        let config = change(writer.cluster.config.as_ref(), entry.time)?;
        entry.payload = serde_json::to_vec(&config).expect("a configuration serialises");
        let (origin, dir) = (self.origin, self.dir.clone());
        let adopted = config.clone();
        // Synced before it is applied (`cluster.json`), as every entry was before group
        // commit: configuration changes are rare and their rules need no replay.
        let ((), durable) =
            self.append_then_apply(&mut writer, &entry, FrameSync::BeforeApply, move |writer| {
                writer.adopt_config(adopted, origin, &dir)
            })?;
        drop(writer);
        // Durable already, unless a shared sync failed meanwhile (then it is not
        // announced, and not acknowledged either).
        self.await_durable(durable)?;
        Ok(config)
    }

    /// Changes records of a book (namespaces; users, roles and grants) as one stamped,
    /// logged transaction, so that they replicate like data. `build` sees the book and
    /// the transaction's stamp under the writer lock and returns the records to write
    /// (normally with that stamp; records passed on from elsewhere keep their own); none
    /// writes nothing. Only records newer than the kept ones take effect, here as on
    /// every peer.
    pub fn commit_book(
        &self,
        kind: BookKind,
        build: impl FnOnce(&Book, Stamp) -> Result<BTreeMap<String, BookRecord>>,
    ) -> Result<CommitReceipt> {
        self.await_clock_samples();
        let mut writer = self.lock_writer();
        self.check_local_write(&writer)?;
        self.check_clock_fence(&writer)?;
        let mut entry = self.stamp_entry(&mut writer, EntryKind::Meta, Vec::new())?;
        let records = build(self.book(kind), entry.stamp())?;
        if records.is_empty() {
            return Ok(CommitReceipt::default());
        }
        let change = MetaChange {
            book: kind,
            records,
        };
        entry.payload = change.encode();
        let ((), durable) =
            self.append_then_apply(&mut writer, &entry, FrameSync::Shared, |_| {
                self.book(kind).merge(&change.records).map(drop)
            })?;
        drop(writer);
        self.await_durable(durable)?;
        self.local_commits.fetch_add(1, Ordering::Relaxed);
        Ok(CommitReceipt {
            transaction: Some((entry.seq, entry.stamp())),
            inserted: 0,
            deleted: 0,
        })
    }

    /// Takes the records of a peer's books newer than ours (a repair: books merge in
    /// any order, so a peer's state can only bring back what this instance lost).
    pub fn merge_books(
        &self,
        namespaces: &BTreeMap<String, BookRecord>,
        access: &BTreeMap<String, BookRecord>,
        metadata: &BTreeMap<String, BookRecord>,
    ) -> Result<usize> {
        let _writer = self.lock_writer();
        Ok(self.namespaces.book().merge(namespaces)?
            + self.access.merge(access)?
            + self.metadata.merge(metadata)?)
    }

    /// Applies a transaction received from a peer: logged first, then each quad operation
    /// applied only where the register says it is newer. An origin's transactions must
    /// come in sequence order: one past a gap is refused with [`StoreError::Gap`].
    pub fn apply_remote(&self, entry: &Entry) -> Result<Applied> {
        self.apply_logged(entry, false)
    }

    /// Applies a batch of a peer's transactions in order, as [`Repository::apply_remote`]
    /// each, under one writer lock and made durable by one sync at the end. Returns what
    /// became of each transaction taken (a prefix of `entries`, all of them unless one
    /// failed) and the failure that stopped the batch, if one did: the transactions
    /// before it are applied and durable. If the shared sync fails, none is reported
    /// (they are not durable; the repository stops taking writes).
    ///
    /// `sender` is the peer whose pull stream carried them: once this instance holds a
    /// configuration that removed it (and does not wait for it to hand over), the rest
    /// is refused with [`StoreError::SenderRemoved`], checked under the writer lock
    /// against the configuration held then. So a member that took a removal takes
    /// nothing more from the removed one, and every transaction of it that this
    /// instance holds was counted in its heartbeats sent under that removal
    /// ([`HeartbeatPoint::config`]).
    pub fn apply_remote_batch(
        &self,
        sender: OriginId,
        entries: &[Entry],
    ) -> (Vec<Applied>, Option<StoreError>) {
        self.apply_batch(Some(sender), entries, false)
    }

    /// [`Repository::apply_remote`], or with `skips_allowed` (replaying a backup's log,
    /// whose configuration entries stay behind) an origin's sequence may jump forward.
    pub(crate) fn apply_logged(&self, entry: &Entry, skips_allowed: bool) -> Result<Applied> {
        let (mut outcomes, error) =
            self.apply_batch(None, std::slice::from_ref(entry), skips_allowed);
        match error {
            Some(e) => Err(e),
            None => Ok(outcomes.pop().expect("one outcome per entry")),
        }
    }

    fn apply_batch(
        &self,
        sender: Option<OriginId>,
        entries: &[Entry],
        skips_allowed: bool,
    ) -> (Vec<Applied>, Option<StoreError>) {
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut error = None;
        let mut durable = None;
        let mut bulk = false;
        // Decoded before the writer lock is taken (a load's text is most of the work of
        // applying it), on every core; each is taken under the lock as it was decoded.
        // Not those already held (streams relay what other members sent too): the
        // version vector only grows, so they are duplicates under the lock as well.
        let threads = crate::parallel_parse::parse_threads();
        let held = self.version_vector();
        let mut decoded: Vec<Option<Result<Effect>>> = entries
            .iter()
            .map(|entry| {
                (entry.kind == EntryKind::Data && entry.seq > held.get(entry.origin))
                    .then(|| Effect::decode_on(&entry.payload, threads))
            })
            .collect();
        {
            let mut writer = self.lock_writer();
            for (entry, effect) in entries.iter().zip(decoded.iter_mut()) {
                // Checked before each entry: one of the batch may be the configuration
                // that removed the sender.
                if let Some(sender) = sender.filter(|s| writer.cluster.removed_for_good(*s)) {
                    error = Some(StoreError::SenderRemoved {
                        repository: self.name.clone(),
                        peer: sender,
                    });
                    break;
                }
                match self.apply_one_locked(&mut writer, entry, effect.take(), skips_allowed) {
                    Ok((applied, end, took_bulk)) => {
                        outcomes.push(applied);
                        durable = end.or(durable);
                        bulk |= took_bulk;
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
        }
        if bulk {
            self.compact_soon();
        }
        // One sync for the whole batch, outside the writer lock.
        if let Some(end) = durable {
            if let Err(e) = self.await_durable(end) {
                return (Vec::new(), Some(e));
            }
        }
        let new = outcomes.iter().filter(|a| **a == Applied::New).count();
        self.remote_applied.fetch_add(new as u64, Ordering::Relaxed);
        (outcomes, error)
    }

    /// One peer's transaction under the writer lock: what became of it, the end of its
    /// log entry (to wait for) when it was appended, and whether it took the bulk path.
    /// `decoded` is its effect as decoded before the lock (a data entry's).
    fn apply_one_locked(
        &self,
        writer: &mut Writer,
        entry: &Entry,
        decoded: Option<Result<Effect>>,
        skips_allowed: bool,
    ) -> Result<(Applied, Option<LogPosition>, bool)> {
        let admitted = admission(&writer.replica.version_vector, entry.origin, entry.seq);
        if admitted == Admission::Duplicate {
            return Ok((Applied::Duplicate, None, false));
        }
        if self.replay_paused.load(Ordering::Acquire) {
            // The log holds transactions after a hole that are not applied yet: one
            // appended now would come after them out of order.
            let health = self.lock_health();
            return Err(StoreError::LogHealing {
                repository: self.name.clone(),
                reason: health
                    .healing
                    .as_ref()
                    .map_or_else(String::new, |healing| healing.to_string()),
            });
        }
        match admitted {
            Admission::Gap { have } if !skips_allowed => {
                return Err(StoreError::Gap {
                    origin: entry.origin,
                    have,
                    got: entry.seq,
                });
            }
            _ => {}
        }
        let (effect, config, meta) = match entry.kind {
            EntryKind::Data => (
                Some(decoded.unwrap_or_else(|| Effect::decode(&entry.payload))?),
                None,
                None,
            ),
            EntryKind::Config => (None, Some(decode_config(&entry.payload)?), None),
            EntryKind::Meta => (None, None, Some(MetaChange::decode(&entry.payload)?)),
            EntryKind::Heartbeat => {
                return Err(StoreError::Corrupt {
                    what: "replicated transaction".into(),
                    detail: "a heartbeat is not a transaction".into(),
                })
            }
        };
        self.clock.observe(entry.time)?;
        // A configuration is saved (`cluster.json`) when applied, a large load ingested
        // through the bulk loader, which syncs its files: both synced first, as every
        // entry was before group commit.
        let bulk_shaped = effect.as_ref().is_some_and(|e| {
            e.deletes.is_empty() && e.patterns.is_empty() && e.inserts.len() >= BULK_INSERTS
        });
        let sync = if config.is_some() || bulk_shaped {
            FrameSync::BeforeApply
        } else {
            FrameSync::Shared
        };
        let (bulk, end) = self.append_then_apply(writer, entry, sync, |writer| {
            if let Some(effect) = &effect {
                // Admission records in the register before the store commits: put it back
                // if the commit fails, so that the transaction is admitted again later.
                let saved = writer.replica.register.save(
                    effect.inserts.iter().chain(&effect.deletes),
                    effect.patterns.iter(),
                );
                return match writer.apply(&self.store, effect, entry.stamp()) {
                    Ok(bulk) => Ok(bulk),
                    Err(e) => {
                        writer.replica.register.restore(saved);
                        Err(e)
                    }
                };
            }
            if let Some(config) = config {
                writer.adopt_config(config, self.origin, &self.dir)?;
            }
            if let Some(change) = meta {
                self.book(change.book).merge(&change.records)?;
            }
            Ok(false)
        })?;
        Ok((Applied::New, Some(end), bulk))
    }

    /// Makes everything appended so far durable and announced (under the writer lock,
    /// before the log is rewritten). Blocking.
    pub(crate) fn make_log_durable(&self) -> Result<()> {
        self.group
            .sync_now()
            .map_err(|failed| self.sync_failed(failed))
    }

    /// Runs the replay on after the log's holes were filled (see `heal_log`), and
    /// publishes what it applied and what was put back. Under the writer lock.
    pub(crate) fn resume_replay(
        &self,
        writer: &mut Writer,
        put_back: usize,
    ) -> Result<(usize, bool)> {
        let books = Books {
            namespaces: self.namespaces.book(),
            access: &self.access,
            metadata: &self.metadata,
        };
        let result = writer.replay(&self.store, &self.clock, &self.dir, &books)?;
        // Everything in the log is on disk again (the rewrite was synced): the shared
        // sync starts over at its end, with the active segment as it is now.
        self.group.reset_to(
            writer.durable.log.active_handle()?,
            writer.durable.log.end(),
            writer.replica.version_vector.clone(),
            put_back,
        );
        self.publish_cluster(writer);
        Ok(result)
    }

    /// Takes an entry that is logged and applied into the writer's state, and releases
    /// it for syncing: it is announced (stream wake-ups, the published version vector)
    /// once durable. `new_segment` is the active segment's handle when the entry is the
    /// first the shared sync sees in it.
    fn after_append(
        &self,
        writer: &mut Writer,
        indexed: &IndexedEntry,
        new_segment: Option<std::fs::File>,
    ) {
        writer
            .replica
            .version_vector
            .advance(indexed.origin, indexed.seq);
        let version_vector = writer.replica.version_vector.clone();
        writer.digests.record(&version_vector);
        self.publish_cluster(writer);
        writer.durable.applied = indexed.end;
        writer.durable.entries_since_checkpoint += 1;
        writer.durable.bytes_since_checkpoint += indexed.bytes();
        self.group
            .release(indexed.end, indexed.origin, indexed.seq, new_segment);
    }

    /// A checkpoint is due every `checkpoint_every` entries, taken by the server's
    /// upkeep (`checkpoint_due`, then [`Repository::checkpoint`]) without holding up
    /// writes; at [`INLINE_CHECKPOINT_AFTER`] times that many, nobody took it (no
    /// server runs, or it lags far behind) and it is taken here, the writer held. A
    /// failed checkpoint fails nothing here: the entry is in the log and the store; the
    /// checkpoint is tried again.
    fn checkpoint_if_due(&self, writer: &mut Writer) {
        if self.checkpoint_passed(&writer.durable, 1) {
            self.checkpoint_due.store(true, Ordering::Release);
        }
        if self.checkpoint_passed(&writer.durable, INLINE_CHECKPOINT_AFTER) {
            if let Err(e) = self.checkpoint_locked(writer) {
                tracing::warn!(repository = %self.name, error = %e, "checkpoint failed; it is tried again later");
            }
        }
    }

    /// Whether `times` checkpoints' worth of entries, or of bytes, were logged since the
    /// last checkpoint.
    fn checkpoint_passed(&self, durable: &DurableState, times: u64) -> bool {
        durable.entries_since_checkpoint >= self.options.checkpoint_every.saturating_mul(times)
            || self
                .options
                .checkpoint_every_bytes
                .is_some_and(|bytes| durable.bytes_since_checkpoint >= bytes.saturating_mul(times))
    }

    /// Whether enough entries, or bytes, were logged since the last checkpoint for the
    /// next.
    pub fn checkpoint_due(&self) -> bool {
        self.checkpoint_due.load(Ordering::Acquire)
    }

    /// Tells the repository how far replication has come: `frontier` (no transaction
    /// not yet received is older) and `stable` (what every member has). The next
    /// checkpoint prunes the register and the log behind them.
    pub fn set_horizon(&self, frontier: HlcTime, stable: VersionVector) {
        let mut writer = self.lock_writer();
        writer.replica.frontier = frontier;
        writer.replica.stable = stable;
        // Range tombstones go as soon as the frontier passes them, register entries at
        // the next checkpoint or once they have grown (a load); after a lost tail
        // nothing is forgotten.
        if writer.cluster.replicated() && !self.awaiting_peers.load(Ordering::Acquire) {
            writer.replica.register.prune_tombstones(frontier);
            writer.replica.prune_when_grown(frontier);
        }
    }

    /// A clean stop: checkpoints, and makes the log durable if it is not synced at every
    /// append, so that the next open knows no transaction was lost. Nothing may be
    /// written after it.
    pub fn close(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        self.checkpoint_locked(&mut writer)?;
        if !self.options.log.fsync {
            writer.durable.log.sync_all()?;
            fs::remove_file(self.dir.join(RUNNING_UNSYNCED_FILE))?;
        } else if self.group.failed().is_none() {
            // The checkpoint synced every frame: nothing can be lost now.
            fs::remove_file(self.dir.join(RUNNING_SYNCED_FILE))?;
        }
        Ok(())
    }

    /// Flushes the store, records what it now durably holds, prunes the register behind
    /// the frontier and drops log segments every member has.
    ///
    /// The flush (tens of milliseconds: a file per column family, each synced) runs
    /// without the writer lock, so commits and replication go on meanwhile. Rules it
    /// keeps:
    /// - what it records is cut under the writer lock with every frame up to the cut
    ///   synced, and saved only after the flush, which makes durable in the store
    ///   everything applied up to the cut (and perhaps more: replay after a crash
    ///   recounts the digest for that reason already);
    /// - while it flushes, every entry's frame is synced before the entry is applied
    ///   (`flushing`), so the store never durably holds a transaction its log could
    ///   still lose;
    /// - a cut is dropped if another checkpoint was saved or a repair changed the store
    ///   meanwhile; the next checkpoint records the newer state;
    /// - one at a time: a call while one runs returns at once.
    pub fn checkpoint(&self) -> Result<()> {
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.checkpoint_unlocked_flush();
        self.checkpointing.store(false, Ordering::Release);
        result
    }

    fn checkpoint_unlocked_flush(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let cut = {
            let mut writer = self.lock_writer();
            self.sync_pending_locked(&writer)?;
            self.flushing.store(true, Ordering::Release);
            self.cut_checkpoint(&mut writer)
        };
        #[cfg(test)]
        crate::checkpoint_tests::before_flush();
        let flushed = self.store.flush();
        let mut writer = self.lock_writer();
        self.flushing.store(false, Ordering::Release);
        flushed?;
        if (writer.durable.checkpoints, writer.repairs) != cut.generation {
            return Ok(());
        }
        let result = self.finish_checkpoint(&mut writer, cut);
        tracing::debug!(repository = %self.name, ms = started.elapsed().as_millis() as u64,
            "checkpoint (the store flushed without the writer lock)");
        result
    }

    pub(crate) fn checkpoint_locked(&self, writer: &mut Writer) -> Result<()> {
        let started = std::time::Instant::now();
        let result = self.checkpoint_work(writer);
        let held = started.elapsed();
        if held >= SLOW_CHECKPOINT {
            tracing::info!(repository = %self.name, ms = held.as_millis() as u64,
                "a checkpoint held the writer (commits and replication wait meanwhile)");
        }
        result
    }

    fn checkpoint_work(&self, writer: &mut Writer) -> Result<()> {
        // The log first: the flushed store and the checkpoint must not hold an entry
        // whose frame is not yet durable (group commit applies before it syncs).
        self.sync_pending_locked(writer)?;
        self.store.flush()?;
        let cut = self.cut_checkpoint(writer);
        self.finish_checkpoint(writer, cut)
    }

    /// What a checkpoint records now, the register pruned behind the frontier first
    /// (every frame up to here must be synced: the caller's).
    fn cut_checkpoint(&self, writer: &mut Writer) -> CheckpointCut {
        // Alone, no operation can arrive from anywhere with an older stamp.
        let frontier = if writer.cluster.replicated() {
            writer.replica.frontier
        } else {
            HlcTime(u64::MAX)
        };
        // After a lost tail, our own lost transactions may still come back from peers,
        // older than any frontier: nothing is forgotten until the members answered.
        if !self.awaiting_peers.load(Ordering::Acquire) {
            writer.replica.prune(frontier);
        }
        CheckpointCut {
            checkpoint: Checkpoint {
                applied: writer.durable.applied,
                version_vector: writer.replica.version_vector.clone(),
                clock: self.clock.last(),
                register: Checkpoint::encode_register(&writer.replica.register),
                tombstones: Checkpoint::encode_tombstones(&writer.replica.register),
                truncated: writer.durable.truncated.clone(),
                digest: Some(writer.digests.current()),
            },
            entries: writer.durable.entries_since_checkpoint,
            bytes: writer.durable.bytes_since_checkpoint,
            generation: (writer.durable.checkpoints, writer.repairs),
        }
    }

    /// Saves `cut` (the store durably holds everything up to it) and drops the log
    /// segments it and every member no longer need.
    fn finish_checkpoint(&self, writer: &mut Writer, mut cut: CheckpointCut) -> Result<()> {
        let stable = if writer.cluster.replicated() {
            writer.replica.stable.clone()
        } else {
            writer.replica.version_vector.clone()
        };
        // Keep from the first entry some member still lacks (or the next incremental
        // backup needs, or that the store may not hold yet); seal the active segment
        // when every entry in it can go.
        let pinned = writer
            .durable
            .backup_pin
            .as_ref()
            .and_then(|pin| pin.in_force(self.clock.last()));
        let applied = cut.checkpoint.applied;
        let keep_from = writer
            .durable
            .log
            .index()
            .iter()
            .find(|e| {
                !stable.covers(e.origin, e.seq)
                    || pinned.is_some_and(|pin| !pin.covers(e.origin, e.seq))
                    || e.end > applied
            })
            .map(|e| e.start);
        let keep_from = match keep_from {
            Some(position) => position,
            None => {
                writer.durable.log.seal_active_segment()?;
                writer.durable.log.end()
            }
        };
        cut.checkpoint.truncated = writer.durable.truncated.clone();
        cut.checkpoint.save(&self.dir)?;
        for removed in writer.durable.log.remove_segments_before(keep_from)? {
            writer
                .durable
                .truncated
                .advance(removed.origin, removed.seq);
        }
        let durable = &mut writer.durable;
        durable.entries_since_checkpoint =
            durable.entries_since_checkpoint.saturating_sub(cut.entries);
        durable.bytes_since_checkpoint = durable.bytes_since_checkpoint.saturating_sub(cut.bytes);
        durable.checkpoints += 1;
        if !self.checkpoint_passed(&writer.durable, 1) {
            self.checkpoint_due.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Makes every entry appended so far durable, under the writer lock (held by the
    /// caller, so that none is appended meanwhile): before a checkpoint, a snapshot, a
    /// clean stop. Blocking.
    pub(crate) fn sync_pending_locked(&self, _writer: &Writer) -> Result<()> {
        self.group
            .sync_now()
            .map_err(|failed| self.sync_failed(failed))
    }

    /// A promise for heartbeats, taken under the writer lock: every transaction of this
    /// origin stamped before `time` is in the log before `end`, and every later one will
    /// be stamped after `time`. A stream that sends the log up to `end` and then this
    /// time keeps the promise.
    ///
    /// The promise stays below the clock's persisted high-water mark: if moving the mark
    /// fails (a full disk), the mark itself is promised, which is weaker but still kept.
    ///
    /// The content digest at that version vector comes with it (anti-entropy).
    pub fn heartbeat_point(&self) -> Result<HeartbeatPoint> {
        let mut writer = self.lock_writer();
        self.heartbeat_point_locked(&mut writer)
    }

    /// [`Repository::heartbeat_point`] under a writer lock already held.
    pub(crate) fn heartbeat_point_locked(&self, writer: &mut Writer) -> Result<HeartbeatPoint> {
        let mut time = self.clock.now()?;
        if let Err(e) = self.reserve(writer, time) {
            tracing::debug!(repository = %self.name, error = %e, "cannot move the clock's high-water mark");
            time = time.min(HlcTime::from_parts(writer.durable.clock_reserved, 0));
        }
        // Only what is durable is promised (group commit: entries after the synced
        // position are applied but not yet durable, and no stream sends them yet): the
        // version vector and the end stop before them, and the clock before the first of
        // our own among them, since the stream that sends this promise sends only up to
        // the synced position.
        let durable = self.group.synced();
        let index = writer.durable.log.index();
        let first_pending = index.partition_point(|e| e.end <= durable);
        let (settled, pending) = index.split_at(first_pending);
        let mut version_vector = writer.replica.version_vector.clone();
        let mut end = writer.durable.log.end();
        let mut digest = writer.digests.current();
        if !pending.is_empty() {
            let mut first_pending_seq: BTreeMap<OriginId, u64> = BTreeMap::new();
            for e in pending {
                first_pending_seq.entry(e.origin).or_insert(e.seq);
                if e.origin == self.origin {
                    time = time.min(e.time);
                }
            }
            let mut durable_vector = VersionVector::new();
            for (origin, seq) in writer.replica.version_vector.iter() {
                let seq = first_pending_seq
                    .get(&origin)
                    .map_or(seq, |first| first - 1);
                if seq > 0 {
                    durable_vector.advance(origin, seq);
                }
            }
            match writer.digests.at(&durable_vector) {
                Some(at) => {
                    version_vector = durable_vector;
                    end = durable;
                    digest = at;
                }
                None => {
                    // The digest at the durable vector is no longer kept: make the
                    // rest durable now, and promise all of it.
                    self.sync_pending_locked(writer)?;
                }
            }
        }
        if self.awaiting_peers.load(Ordering::Acquire) {
            let last_own = settled
                .iter()
                .rev()
                .find(|e| e.origin == self.origin)
                .map(|e| e.time);
            time = AwaitingPeers::promise(time, last_own);
        }
        Ok(HeartbeatPoint {
            clock: time,
            version_vector,
            end,
            digest,
            config: writer.cluster.config.as_ref().map(ClusterConfig::position),
        })
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
        let current = writer.replica.version_vector.clone();
        writer.digests.record(&current);
        self.damaged.store(true, Ordering::Release);
        // Kept across restarts: replay after a crash recomputes the digest from the
        // store, which would hide the damage from this instance's own scrubs.
        let found = format!("the store's digest was {scanned}; its write path had {booked}\n");
        if let Err(e) = fs::write(self.dir.join(DAMAGED_FILE), found) {
            tracing::warn!(repository = %self.name, error = %e, "cannot record the damage on disk");
        }
        Ok(false)
    }

    /// Whether a scrub found the store damaged and no repair has mended it yet.
    pub fn knows_damage(&self) -> bool {
        self.damaged.load(Ordering::Acquire)
    }

    pub(crate) fn clear_damage(&self) -> Result<()> {
        match fs::remove_file(self.dir.join(DAMAGED_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.damaged.store(false, Ordering::Release);
        Ok(())
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
    /// This instance was removed with `undo-repl`: the repository leaves replication
    /// altogether and keeps its data as an ordinary repository, taking writes again.
    /// Its origin id stays its own (never reused by the cluster it left, which retired it).
    pub fn leave_cluster(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        tracing::warn!(repository = %self.name, "removed from the cluster: kept as an ordinary repository (undo-repl)");
        writer.cluster = ClusterState::default();
        self.publish_cluster(&writer);
        writer.cluster.save(&self.dir)?;
        // Held while the removal was prepared; an ordinary repository takes writes.
        self.lock_health().held_for_removal_until = None;
        Ok(())
    }

    pub fn mark_removed(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        if !writer.cluster.removed {
            tracing::warn!(repository = %self.name, "this instance was removed from the cluster");
            writer.cluster.removed = true;
            self.publish_cluster(&writer);
            writer.cluster.save(&self.dir)?;
        }
        Ok(())
    }

    /// Takes a cluster configuration told by another member rather than pulled (a
    /// stopped instance pulls from nobody, and asks; see
    /// `quadmesh_repl::told_config_in_order`, which the caller checks): only if it is
    /// newer than the one held, saved before it is taken, as one pulled would be. It
    /// changes membership only, never data: the configuration transaction itself
    /// arrives with the pulls once this instance pulls again, and is then passed over
    /// as not newer. Returns whether it was taken.
    pub fn take_told_config(&self, config: ClusterConfig) -> Result<bool> {
        let mut writer = self.lock_writer();
        let before = writer.cluster.config.as_ref().map(ClusterConfig::position);
        writer.adopt_config(config, self.origin, &self.dir)?;
        let taken = writer.cluster.config.as_ref().map(ClusterConfig::position) != before;
        self.publish_cluster(&writer);
        Ok(taken)
    }

    /// Transactions committed here, and transactions from peers applied here, since
    /// this process opened the repository.
    pub fn transaction_counts(&self) -> (u64, u64) {
        (
            self.local_commits.load(Ordering::Relaxed),
            self.remote_applied.load(Ordering::Relaxed),
        )
    }

    /// What the store holds (published after each apply: no writer lock).
    pub fn version_vector(&self) -> VersionVector {
        self.group.applied_vector.borrow().clone()
    }

    /// The repository's place in its cluster (published: no writer lock).
    pub fn cluster(&self) -> ClusterState {
        self.cluster_published.borrow().clone()
    }

    /// Wakes when the repository's place in its cluster changes.
    pub fn subscribe_cluster(&self) -> watch::Receiver<ClusterState> {
        self.cluster_published.subscribe()
    }

    /// Publishes the writer's cluster state if it changed.
    pub(crate) fn publish_cluster(&self, writer: &Writer) {
        self.cluster_published.send_if_modified(|published| {
            if *published == writer.cluster {
                return false;
            }
            *published = writer.cluster.clone();
            true
        });
    }

    pub fn register_len(&self) -> usize {
        self.lock_writer().replica.register.len()
    }

    /// Range tombstones (deletes by pattern) the register keeps until the frontier
    /// passes them.
    pub fn tombstones_len(&self) -> usize {
        self.lock_writer().replica.register.tombstones_len()
    }

    /// Number of entries in the log, and of its segment files.
    pub fn log_len(&self) -> (usize, usize) {
        let writer = self.lock_writer();
        (
            writer.durable.log.index().len(),
            writer.durable.log.segment_count(),
        )
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

/// The books of a repository while it opens.
pub(crate) struct Books<'a> {
    namespaces: &'a Book,
    access: &'a Book,
    metadata: &'a Book,
}

impl Books<'_> {
    fn get(&self, kind: BookKind) -> &Book {
        match kind {
            BookKind::Namespaces => self.namespaces,
            BookKind::Access => self.access,
            BookKind::Metadata => self.metadata,
        }
    }
}

fn decode_config(payload: &[u8]) -> Result<ClusterConfig> {
    serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
        what: "cluster configuration entry".into(),
        detail: e.to_string(),
    })
}

impl Writer {
    /// Re-applies the log entries the checkpoint does not cover: those after `applied`,
    /// skipping those the version vector already counts (put back into a hole after
    /// they were applied). Returns how many it applied, and whether it stopped early:
    /// with holes in the log, at the first entry that is not next in its origin's
    /// sequence (what comes before it is in a hole), leaving the rest for after the
    /// holes are filled.
    pub(crate) fn replay(
        &mut self,
        store: &Store,
        clock: &HybridClock,
        dir: &Path,
        books: &Books<'_>,
    ) -> Result<(usize, bool)> {
        let entries = self.durable.log.read_from(self.durable.applied)?;
        let holes = !self.durable.log.holes().is_empty();
        let mut count = 0;
        let origin = serde_json::from_slice::<Identity>(&fs::read(dir.join("identity.json"))?)
            .map(|i| i.origin)
            .unwrap_or(OriginId(0));
        for (indexed, entry) in entries {
            let admitted = admission(&self.replica.version_vector, entry.origin, entry.seq);
            if admitted == Admission::Duplicate {
                self.durable.applied = indexed.end;
                continue;
            }
            if let (true, Admission::Gap { have }) = (holes, admitted) {
                tracing::warn!(origin = %entry.origin, seq = entry.seq, have,
                    "the replay stops before a transaction whose predecessor is in a hole of the log");
                return Ok((count, true));
            }
            count += 1;
            // Our own or already admitted times: taken whatever physical time says.
            clock.restore(entry.time);
            match entry.kind {
                EntryKind::Data => {
                    self.apply(
                        store,
                        &Effect::decode_on(&entry.payload, crate::parallel_parse::parse_threads())?,
                        entry.stamp(),
                    )?;
                }
                EntryKind::Config => {
                    self.adopt_config(decode_config(&entry.payload)?, origin, dir)?
                }
                EntryKind::Meta => {
                    let change = MetaChange::decode(&entry.payload)?;
                    books.get(change.book).merge(&change.records)?;
                }
                EntryKind::Heartbeat => {}
            }
            self.replica.version_vector.advance(entry.origin, entry.seq);
            self.durable.applied = indexed.end;
        }
        Ok((count, false))
    }

    /// Applies each operation of `effect` that the register admits; says whether it
    /// went through the bulk loader.
    fn apply(&mut self, store: &Store, effect: &Effect, stamp: Stamp) -> Result<bool> {
        if effect.deletes.is_empty()
            && effect.patterns.is_empty()
            && effect.inserts.len() >= BULK_INSERTS
        {
            self.replica.register.reserve(effect.inserts.len());
            let admitted: Vec<&Quad> = effect
                .inserts
                .iter()
                .filter(|q| self.replica.register.admit(q, stamp, true))
                .collect();
            // On every core: which are new here, their digest, the loader's files.
            let threads = crate::parallel_parse::parse_threads();
            let present = bulk_insert::presence(store, &admitted, threads)?;
            let fresh: Vec<&Quad> = admitted
                .into_iter()
                .zip(present)
                .filter_map(|(quad, present)| (!present).then_some(quad))
                .collect();
            let digest = bulk_insert::digest_on(&fresh, threads);
            let mut loader =
                bulk_insert::loader_for(store, fresh.len(), threads, self.loader_batch_quads);
            loader.load_quads(fresh.into_iter().cloned())?;
            loader.commit()?;
            self.digests.added(digest);
            return Ok(true);
        }
        let mut transaction = store.start_transaction()?;
        let mut digest = self.digests.current();
        let mut deleted_from = Vec::new();
        // Range deletes first: each matching quad written before them goes.
        for pattern in &effect.patterns {
            for quad in pattern.matches_in(&transaction)? {
                if self.replica.register.sweeps(&quad, stamp) {
                    transaction.remove(&quad);
                    digest.remove(crate::digest_book::digest_key(&quad).as_bytes());
                    deleted_from.push(quad.graph_name);
                }
            }
            self.replica.register.add_tombstone(pattern.clone(), stamp);
        }
        for quad in &effect.inserts {
            if self.replica.register.admit(quad, stamp, true) && !transaction.contains(quad)? {
                transaction.insert(quad);
                digest.insert(crate::digest_book::digest_key(quad).as_bytes());
            }
        }
        for quad in &effect.deletes {
            if self.replica.register.admit(quad, stamp, false) && transaction.contains(quad)? {
                transaction.remove(quad);
                digest.remove(crate::digest_book::digest_key(quad).as_bytes());
                deleted_from.push(quad.graph_name.clone());
            }
        }
        drop_emptied_graphs(&mut transaction, &deleted_from)?;
        transaction.commit()?;
        self.digests.set_current(digest);
        Ok(false)
    }

    /// Takes a configuration if it is newer than ours (epoch first, then version); one
    /// without us means we were removed.
    fn adopt_config(&mut self, config: ClusterConfig, local: OriginId, dir: &Path) -> Result<()> {
        let newer = self
            .cluster
            .config
            .as_ref()
            .is_none_or(|c| config.supersedes(c));
        if !newer {
            return Ok(());
        }
        // Saved first, taken after: a failure leaves the writer as it was.
        let mut next = self.cluster.clone();
        let removed = !config.is_member(local);
        let cluster_id = config.cluster_id.clone();
        next.removed |= removed;
        next.config = Some(config);
        next.save(dir)?;
        self.cluster = next;
        if removed {
            tracing::warn!(cluster = %cluster_id, "this instance was removed from the cluster");
        }
        Ok(())
    }
}

/// Whether local writes must wait for the other members after this open: the log lost a
/// torn tail (now, or in an earlier open not yet resolved) while the repository is
/// replicated. Returns the reason, persisted until resolved.
fn awaiting_peers_on_open(
    name: &str,
    dir: &Path,
    writer: &Writer,
    replay_paused: bool,
    fsync: bool,
) -> Result<Option<String>> {
    let marker = dir.join(AWAITING_PEERS_FILE);
    let running_unsynced = dir.join(RUNNING_UNSYNCED_FILE);
    let running_synced = dir.join(RUNNING_SYNCED_FILE);
    let lost = if replay_paused {
        // A hole after the last checkpoint may have held our own newest transactions,
        // which no surviving entry reveals.
        Some("its replication log is damaged after its last checkpoint".to_owned())
    } else if let Some(cut) = writer.durable.log.cut_on_open() {
        Some(format!(
            "a crash cut {} bytes off the end of its replication log ({} at offset {})",
            cut.bytes,
            cut.file.display(),
            cut.offset
        ))
    } else if running_unsynced.exists() {
        // Without fsync a power loss can take whole frames, leaving no torn tail.
        Some("the last run, which did not sync its replication log (--no-fsync), did not stop cleanly: whole transactions may be lost from its end".to_owned())
    } else {
        synced_run_lost_frames(&running_synced)?
    };
    if let Some(lost) = lost {
        if writer.cluster.replicated() {
            let reason = format!(
                "{lost}; waiting until every other member has reported how far this \
                 instance's own transactions went (any it lost are fetched back from them \
                 first), so that no sequence number is used twice"
            );
            let mut file = fs::File::create(&marker)?;
            std::io::Write::write_all(&mut file, reason.as_bytes())?;
            file.sync_all()?;
        }
    }
    if fsync {
        match fs::remove_file(&running_unsynced) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let mut file = fs::File::create(&running_synced)?;
        std::io::Write::write_all(&mut file, boot_id().as_bytes())?;
        file.sync_all()?;
        fs::File::open(dir)?.sync_all()?;
    } else {
        match fs::remove_file(&running_synced) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        fs::File::create(&running_unsynced)?.sync_all()?;
        fs::File::open(dir)?.sync_all()?;
    }
    if !marker.exists() {
        return Ok(None);
    }
    let reason = fs::read_to_string(&marker)?;
    tracing::warn!(repository = name, %reason, "local writes are refused for now");
    Ok(Some(reason))
}

/// The machine's boot id: another one means the machine restarted (its page cache,
/// and any frame written to it but not synced, is gone). Empty where unknown, which
/// never matches a recorded one.
fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// Whether the last run of a synced log may have lost whole frames the store holds:
/// it did not stop cleanly ([`RUNNING_SYNCED_FILE`] is there) and the machine
/// restarted since, or a shared sync failed.
fn synced_run_lost_frames(marker: &Path) -> Result<Option<String>> {
    let recorded = match fs::read_to_string(marker) {
        Ok(recorded) => recorded,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let recorded = recorded.trim();
    if recorded.starts_with(SYNC_FAILED_MARK) {
        return Ok(Some(format!(
            "a sync of its replication log failed in the last run ({recorded}): transactions applied after the last good sync may be lost from its end"
        )));
    }
    let now = boot_id();
    if recorded.is_empty() || now.is_empty() || recorded != now {
        return Ok(Some(
            "the last run did not stop cleanly and the machine restarted since: transactions applied but not yet synced (group commit) may be lost from the end of its replication log".to_owned(),
        ));
    }
    Ok(None)
}

/// The wall clock in milliseconds since the epoch (0 before it).
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod config_entry_tests {
    use super::decode_config;

    #[test]
    fn configuration_entries_of_both_forms_decode() {
        // Written by the release before members had their own repository names: every
        // member holds the cluster's.
        let old = br#"{"cluster_id":"c","repository":"books","token":"t","version":2,"epoch":0,
            "members":[{"name":"a","origin":1,"address":"a:10035","controlling":true,"added_at":1},
                       {"name":"b","origin":2,"address":"b:10035","controlling":false,"added_at":2}],
            "removed":[]}"#;
        let config = decode_config(old).unwrap();
        assert!(config.members.iter().all(|m| m.repository == "books"));
        // Written now: each member's own name is kept.
        let mut new = config.clone();
        new.members[1].repository = "books-eu".into();
        let decoded = decode_config(&serde_json::to_vec(&new).unwrap()).unwrap();
        assert_eq!(decoded.members[1].repository, "books-eu");
        assert_eq!(decoded, new);
    }
}

#[cfg(test)]
mod register_growth_tests {
    use super::*;
    use oxigraph::model::{GraphName, NamedNode};

    fn quad(i: usize) -> Quad {
        let node = NamedNode::new_unchecked(format!("http://e.com/{i}"));
        Quad::new(node.clone(), node.clone(), node, GraphName::DefaultGraph)
    }

    fn record(replica: &mut ReplicaState, range: std::ops::Range<usize>, time: u64) {
        for i in range {
            let stamp = Stamp::new(HlcTime(time), OriginId(1));
            replica.register.record(quad(i), stamp, true);
        }
    }

    #[test]
    fn the_register_is_pruned_once_grown_not_only_at_checkpoints() {
        const GROWTH: usize = REGISTER_PRUNE_GROWTH;
        let mut replica = ReplicaState {
            register: Register::new(),
            version_vector: VersionVector::new(),
            frontier: HlcTime::ZERO,
            stable: VersionVector::new(),
            pruned_len: 0,
        };
        // A load's worth of entries behind the frontier: kept until it has grown enough.
        record(&mut replica, 0..GROWTH - 1, 10);
        replica.prune_when_grown(HlcTime(20));
        assert_eq!(replica.register.len(), GROWTH - 1);
        record(&mut replica, GROWTH - 1..GROWTH, 10);
        replica.prune_when_grown(HlcTime(20));
        assert_eq!(replica.register.len(), 0);
        // Entries the frontier has not passed stay, whatever their number.
        record(&mut replica, 0..GROWTH, 30);
        replica.prune_when_grown(HlcTime(20));
        assert_eq!(replica.register.len(), GROWTH);
        // The next prune waits until the register has grown by as much as it kept.
        record(&mut replica, GROWTH..2 * GROWTH - 1, 30);
        replica.prune_when_grown(HlcTime(40));
        assert_eq!(replica.register.len(), 2 * GROWTH - 1);
        record(&mut replica, 2 * GROWTH - 1..2 * GROWTH, 30);
        replica.prune_when_grown(HlcTime(40));
        assert_eq!(replica.register.len(), 0);
    }
}
