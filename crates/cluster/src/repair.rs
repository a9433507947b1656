//! Anti-entropy's repair: an instance that knows its store is wrong makes it whole
//! again from a peer's snapshot, without an operator.
//!
//! An instance knows it is wrong when its own scrub found the store differing from what
//! its write path put there, or when most of the peers it compared contents with (at a
//! common version vector) differ from it. It then fetches a snapshot from a peer (one
//! that differs from it, first: the majority), waits until it has applied every
//! transaction the snapshot holds, and takes the snapshot's state for every quad that
//! no later transaction touched (`Repository::repair_from`). Two instances that differ
//! with no scrub finding cannot tell which is right: both report it, neither repairs.

use super::{Node, ORIGIN_HEADER, TOKEN_HEADER};
use crate::snapshot_transfer::{download, unpack};
use crate::Replication;
use quadmesh_repl::{repair_cause, repair_sources, Member, RepairCause};
use quadmesh_store::{PeerSnapshot, RepairDeferred, Repaired, StoreError};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often every node is looked at for a needed repair.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long a fetched snapshot waits for this instance to have applied all it holds.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);
/// A snapshot's first bytes must come within this (the peer takes and packs it first).
const ANSWER_WITHIN: Duration = Duration::from_secs(120);
/// After a failed attempt, the next one waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum RepairError {
    #[error("cannot reach {peer}: {detail}")]
    Unreachable { peer: String, detail: String },
    #[error("{peer} gave no snapshot: {status}: {body}")]
    Refused {
        peer: String,
        status: u16,
        body: String,
    },
    #[error("the snapshot from {peer} is unusable: {detail}")]
    BadSnapshot { peer: String, detail: String },
    #[error("this instance did not catch up with the snapshot from {peer} within {secs} s ({missing} transactions missing)")]
    Behind {
        peer: String,
        secs: u64,
        missing: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs for the server's life: looks at every replicated repository and repairs the
/// ones that need it, one at a time.
pub async fn repair_forever(replication: Arc<Replication>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tick.tick().await;
        let nodes = replication.nodes();
        // Blocking: a repository's cluster state is read under its writer lock.
        let Ok(needing) = tokio::task::spawn_blocking(move || {
            nodes
                .into_iter()
                .filter_map(|node| cause(&node).map(|cause| (node, cause)))
                .collect::<Vec<_>>()
        })
        .await
        else {
            continue;
        };
        for (node, cause) in needing {
            let name = node.repository().name().to_owned();
            tracing::warn!(repository = %name, ?cause, "this instance's contents are wrong; repairing from a peer");
            let mut repaired = false;
            for peer in sources(&node, cause) {
                match repair_from(&replication, &node, &peer).await {
                    Ok(done) => {
                        replication.repairs.done.fetch_add(1, Ordering::Relaxed);
                        node.anti_entropy.forget();
                        tracing::warn!(repository = %name, peer = %peer.name,
                            restored = done.restored, removed = done.removed,
                            "repaired from a peer's snapshot");
                        repaired = true;
                        break;
                    }
                    Err(e) => {
                        replication.repairs.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(repository = %name, peer = %peer.name, error = %e,
                            "a repair from this peer failed");
                    }
                }
            }
            if !repaired {
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Whether `node` must repair itself, and why (`quadmesh_repl::repair_cause` decides).
/// Blocking (reads under the writer lock).
fn cause(node: &Node) -> Option<RepairCause> {
    let repository = node.repository();
    let config = node.config();
    repair_cause(
        repository.cluster().removed,
        repository.knows_damage(),
        node.anti_entropy.in_minority(|o| config.is_member(o)),
    )
}

/// The members to repair from, in the order to try them
/// (`quadmesh_repl::repair_sources` decides).
fn sources(node: &Node, cause: RepairCause) -> Vec<Member> {
    repair_sources(
        &node.config().members,
        node.repository().origin(),
        &node.anti_entropy.divergent(),
        cause,
    )
}

async fn repair_from(
    replication: &Replication,
    node: &Arc<Node>,
    peer: &Member,
) -> Result<Repaired, RepairError> {
    let scratch = replication.catalog().scratch_dir()?;
    let result = fetch_and_repair(replication, node, peer, &scratch).await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    result
}

async fn fetch_and_repair(
    replication: &Replication,
    node: &Arc<Node>,
    peer: &Member,
    scratch: &Path,
) -> Result<Repaired, RepairError> {
    let repository = node.repository().clone();
    let config = node.config();
    let unreachable = |detail: String| RepairError::Unreachable {
        peer: peer.name.clone(),
        detail,
    };
    let url = replication.http().repl_url(peer, "snapshot");
    let request = replication
        .http()
        .get(&url)
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, repository.origin().0.to_string())
        .send();
    let response = tokio::time::timeout(ANSWER_WITHIN, request)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", ANSWER_WITHIN.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        return Err(RepairError::Refused {
            peer: peer.name.clone(),
            status,
            body: body.trim().to_owned(),
        });
    }
    let archive = scratch.join("snapshot.tar");
    download(response, &archive)
        .await
        .map_err(|e| unreachable(format!("the snapshot broke off: {e}")))?;

    let bad = |detail: String| RepairError::BadSnapshot {
        peer: peer.name.clone(),
        detail,
    };
    let dir = scratch.to_owned();
    let (snapshot, snapshot_state) = tokio::task::spawn_blocking(move || {
        let (store_dir, snapshot_state) = unpack(&archive, &dir.join("unpacked"))?;
        let store = PeerSnapshot::open(&store_dir).map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((store, snapshot_state))
    })
    .await
    .map_err(|e| bad(e.to_string()))?
    .map_err(|e| bad(e.to_string()))?;
    if snapshot_state.config.as_ref().map(|c| &c.cluster_id) != Some(&config.cluster_id) {
        return Err(bad("it is of another cluster".into()));
    }
    let at = snapshot_state.version_vector;

    // Wait (without the writer lock) until everything the snapshot holds is applied
    // here; a repair then loses nothing of ours and takes nothing twice.
    let mut applied = repository.watch_version_vector();
    let caught_up = tokio::time::timeout(CATCH_UP_WITHIN, async {
        loop {
            if applied.borrow_and_update().missing_from(&at) == 0 {
                return;
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    let missing = applied.borrow().missing_from(&at);
    if caught_up.is_err() && missing > 0 {
        return Err(RepairError::Behind {
            peer: peer.name.clone(),
            secs: CATCH_UP_WITHIN.as_secs(),
            missing,
        });
    }
    // The snapshot's books too: merging by stamp can only bring back what we lost.
    let (namespaces, access, metadata) = (
        snapshot_state.namespaces.unwrap_or_default(),
        snapshot_state.access.unwrap_or_default(),
        snapshot_state.metadata.unwrap_or_default(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        repository.merge_books(&namespaces, &access, &metadata)?;
        repository.repair_from(&snapshot, &at)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    match outcome {
        Ok(repaired) => Ok(repaired),
        Err(RepairDeferred::Behind { missing }) => Err(RepairError::Behind {
            peer: peer.name.clone(),
            secs: CATCH_UP_WITHIN.as_secs(),
            missing,
        }),
    }
}
