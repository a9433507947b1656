//! Snapshots for growing a cluster: the store's files and the replication state, taken
//! at one cut, and installed on a new instance without re-indexing.

use crate::book::{Book, BookKind, BookRecord};
use crate::checkpoint::Checkpoint;
use crate::cluster_state::ClusterState;
use crate::error::Result;
use crate::repository::{Identity, Repository, RepositoryOptions};
use quadmesh_repl::{ClusterConfig, HlcTime, HybridClock, OriginId, VersionVector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

/// The replication state that goes with a store snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotState {
    pub version_vector: VersionVector,
    pub clock: HlcTime,
    pub register: Vec<(String, u64, u64, bool)>,
    /// Range tombstones (absent from snapshots of servers older than them).
    #[serde(default)]
    pub tombstones: Vec<(String, u64, u64)>,
    pub config: Option<ClusterConfig>,
    /// The content digest at `version_vector`.
    #[serde(default)]
    pub digest: Option<quadmesh_repl::ContentDigest>,
    /// The books at `version_vector` (absent from snapshots of servers older than
    /// replicated books: the new repository then starts with the defaults).
    #[serde(default)]
    pub namespaces: Option<BTreeMap<String, BookRecord>>,
    #[serde(default)]
    pub access: Option<BTreeMap<String, BookRecord>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, BookRecord>>,
}

impl Repository {
    /// Writes a checkpoint of the store into `target` (which must not exist; RocksDB
    /// hard-links its files, so this takes well under a second) and returns the
    /// replication state at the same cut: the writer lock is held throughout, so no
    /// transaction falls between the two.
    pub fn snapshot(&self, target: &Path) -> Result<SnapshotState> {
        let writer = self.lock_writer();
        // The copy must not hold an entry that could still be lost here (group commit
        // applies before the shared sync).
        self.sync_pending_locked(&writer)?;
        self.store().backup(target)?;
        Ok(SnapshotState {
            version_vector: writer.replica.version_vector.clone(),
            clock: self.clock().last(),
            register: Checkpoint::encode_register(&writer.replica.register),
            tombstones: Checkpoint::encode_tombstones(&writer.replica.register),
            config: writer.cluster.config.clone(),
            digest: Some(writer.digests.current()),
            namespaces: Some(self.book(BookKind::Namespaces).records()),
            access: Some(self.book(BookKind::Access).records()),
            metadata: Some(self.book(BookKind::Metadata).records()),
        })
    }

    /// Makes a repository in `dir` from a store snapshot (moved into place) and its
    /// state, as instance `origin`, and opens it. Its clock starts above the snapshot's.
    pub fn install(
        name: &str,
        dir: &Path,
        store_snapshot: &Path,
        state: SnapshotState,
        origin: OriginId,
        clock: Arc<HybridClock>,
        options: RepositoryOptions,
    ) -> Result<Repository> {
        fs::create_dir_all(dir)?;
        fs::rename(store_snapshot, dir.join("store"))?;
        Identity { origin }.save(dir)?;
        Checkpoint {
            applied: Default::default(),
            version_vector: state.version_vector,
            clock: state.clock,
            register: state.register,
            tombstones: state.tombstones,
            truncated: VersionVector::new(),
            digest: state.digest,
        }
        .save(dir)?;
        ClusterState {
            config: state.config,
            removed: false,
            expired: None,
            promised: None,
            held_for_removal_until_ms: None,
        }
        .save(dir)?;
        if let Some(records) = state.namespaces {
            Book::install(dir, BookKind::Namespaces, records)?;
        }
        if let Some(records) = state.access {
            Book::install(dir, BookKind::Access, records)?;
        }
        if let Some(records) = state.metadata {
            Book::install(dir, BookKind::Metadata, records)?;
        }
        clock.observe(state.clock).ok();
        Repository::open(name, dir, clock, options, false)
    }
}
