//! Storage of quadmesh: oxigraph stores, and the single write path every change takes.
//!
//! A change is computed as an [`Effect`] (concrete quad inserts and deletes) by a
//! [`ChangeTracker`] over an oxigraph transaction, stamped with a hybrid logical clock,
//! appended to the repository's replication log ([`TxLog`]) and only then applied to the
//! store, under the last-writer [`Register`] that makes replicas converge. This crate
//! knows nothing of HTTP or of the network.
//!
//! Writing around the log does not compile: a repository's store is reached from
//! outside this crate only to read (a [`StoreReader`], or a [`ReadTransaction`] handed
//! out by shared reference), a peer's snapshot only by [`Repository::repair_from`], and
//! oxigraph's `Store` is not re-exported. What may be done from outside:
//!
//! ```no_run
//! use oxigraph::model::{GraphName, NamedNode, Quad};
//! fn read(repository: &quadmesh_store::Repository) -> bool {
//!     let quad = Quad::new(
//!         NamedNode::new_unchecked("http://s"),
//!         NamedNode::new_unchecked("http://p"),
//!         NamedNode::new_unchecked("http://o"),
//!         GraphName::DefaultGraph,
//!     );
//!     let view = repository.read_transaction().unwrap();
//!     view.get().contains(&quad).unwrap() && repository.reader().len().unwrap() > 0
//! }
//! ```
//!
//! What may not: write through a read view,
//!
//! ```compile_fail
//! use oxigraph::model::{GraphName, NamedNode, Quad};
//! fn write_around(repository: &quadmesh_store::Repository) {
//!     let quad = Quad::new(
//!         NamedNode::new_unchecked("http://s"),
//!         NamedNode::new_unchecked("http://p"),
//!         NamedNode::new_unchecked("http://o"),
//!         GraphName::DefaultGraph,
//!     );
//!     let view = repository.read_transaction().unwrap();
//!     view.get().insert(&quad);
//! }
//! ```
//!
//! reach the store itself,
//!
//! ```compile_fail
//! fn write_around(repository: &quadmesh_store::Repository) {
//!     let _ = repository.store();
//! }
//! ```
//!
//! or open oxigraph through this crate.
//!
//! ```compile_fail
//! let _ = quadmesh_store::oxigraph::store::Store::new();
//! ```

mod backup_log;
mod book;
mod bulk_insert;
mod catalog;
mod checkpoint;
#[cfg(test)]
mod checkpoint_tests;
mod cluster_state;
mod compaction;
mod digest_book;
mod effect;
mod error;
#[cfg(test)]
mod failstop_tests;
mod feed;
mod fence;
mod franz_options;
mod group_commit;
#[cfg(test)]
mod group_commit_tests;
mod log;
mod log_heal;
mod membership;
#[cfg(test)]
mod memory_bound_tests;
mod namespaces;
pub mod ntriples;
mod parallel_parse;
mod pattern;
mod query;
#[cfg(test)]
mod range_delete_tests;
mod rdf_input;
mod read_view;
mod reasoning;
mod register;
mod repair;
mod repository;
mod session;
mod snapshot;
mod threads;
mod tracker;
mod update;

pub use backup_log::{BackupPin, BACKUP_LOG_KEPT_MS};
pub use book::{Book, BookKind, BookRecord, MetaChange};
pub use catalog::{validate_repository_name, Catalog};
pub use cluster_state::ClusterState;
pub use digest_book::DigestCheck;
pub use effect::Effect;
pub use error::{Result, StoreError};
pub use fence::{FenceKeeper, FIRST_SAMPLES_GRACE};
pub use franz_options::{read_options, DatasetBehavior, FranzOptions};
pub use log::{LogHole, LogOptions, LogPosition};
pub use log_heal::{HealedLog, LogHealingStatus};
pub use namespaces::{check_namespace, Namespaces, DEFAULT_NAMESPACES};
pub use parallel_parse::{check_rdf_parallel, parse_rdf_parallel, parse_threads};
pub use pattern::{GraphSelector, QuadPattern};
pub use query::{evaluation_error, ParsedQuery, QueryForm, QueryRequest};
pub use rdf_input::{
    fresh_blank_node, keeps_any_iri, parse_rdf, parse_rdf_stream, read_quads, rename_blank_nodes,
    BlankNodeRenamer, BlankNodes,
};
pub use read_view::{ReadTransaction, StoreReader};
pub use reasoning::{EntailedDataset, Entailments, Reasoning};
pub use register::{LastWrite, Register};
pub use repair::{PeerSnapshot, RepairDeferred, Repaired};
pub use repository::{Applied, CommitReceipt, HeartbeatPoint, Repository, RepositoryOptions};
pub use session::PendingChanges;
pub use snapshot::SnapshotState;
pub use tracker::{effect_of, ChangeTracker, QuadChange};
pub use update::{apply_update, UpdateRequest};
