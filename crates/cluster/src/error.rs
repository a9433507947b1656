//! How a cluster operation fails, typed: the server maps each kind to an HTTP status
//! in one place (its `error.rs`), and the machine codes peers act on
//! (`quadmesh_repl::wire::ErrorCode`) follow from the kind, never from the message.

use crate::removal::RemovalRefused;
use quadmesh_store::StoreError;

/// Every way a cluster operation can fail.
///
/// Rules it keeps: a refusal the caller can act on has its own kind (or is the store's
/// typed error, membership errors included); the message only explains.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The store refused or failed (membership errors included).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the caller gave cannot be used (a setting, a parameter).
    #[error("{0}")]
    Invalid(String),
    /// The cluster's state does not allow it (a durability no configuration of this size
    /// meets, a member no longer in the cluster, ...).
    #[error("{0}")]
    Conflict(String),
    /// Not now, maybe soon: a member did not answer or confirm in time.
    #[error("{0}")]
    Unavailable(String),
    /// Another instance failed the call made to it.
    #[error("{0}")]
    Upstream(String),
    /// A removal notice this instance does not take.
    #[error(transparent)]
    RemovalRefused(#[from] RemovalRefused),
    /// Something that should not happen did (a worker task died, ...).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ClusterResult<T> = Result<T, ClusterError>;

/// Runs storage work (the writer lock, fsync, RocksDB) on a blocking thread, never on an
/// async worker.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ClusterResult<T> + Send + 'static,
) -> ClusterResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ClusterError::Internal(format!("worker task failed: {e}")))?
}
