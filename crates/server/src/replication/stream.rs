//! Serving a pull stream: the backlog the caller lacks, then new transactions as they
//! are appended, each round closed by a heartbeat.

use axum::body::{Body, Bytes};
use quadmesh_repl::{Heartbeat, OriginId, VersionVector};
use quadmesh_store::{LogPosition, Repository};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Heartbeats go out at least this often on an idle stream.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
/// Entries read from the log per round.
const BATCH: usize = 512;

/// The body of a pull stream for `peer`, which has `theirs`.
pub fn pull_stream(
    repository: Arc<Repository>,
    peer: OriginId,
    theirs: VersionVector,
    shutdown: CancellationToken,
) -> Body {
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        tokio::select! {
            result = feed(repository, peer, theirs, sender) => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, reason = %e, "pull stream closed");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
    Body::from_stream(futures::stream::unfold(
        receiver,
        |mut receiver| async move {
            receiver
                .recv()
                .await
                .map(|bytes| (Ok::<_, Infallible>(bytes), receiver))
        },
    ))
}

async fn feed(
    repository: Arc<Repository>,
    peer: OriginId,
    theirs: VersionVector,
    sender: mpsc::Sender<Bytes>,
) -> Result<(), String> {
    // The peer's own transactions are sent back only up to what we held when it asked:
    // those it lost in a crash (its log's torn tail), never an echo of its new ones.
    let lost_by_peer = repository.version_vector().get(peer);
    let mut sent = theirs;
    let mut position = LogPosition::default();
    let mut appended = repository.subscribe();
    loop {
        appended.borrow_and_update();
        // The promise first: everything stamped before it is in the log up to its end,
        // which the loop below sends before the heartbeat itself.
        let (clock, version_vector, _) = repository.heartbeat_point().map_err(|e| e.to_string())?;
        loop {
            let repo = repository.clone();
            let wanted = sent.clone();
            let (entries, next) = tokio::task::spawn_blocking(move || {
                repo.entries_since(position, BATCH, |origin, seq| {
                    (origin != peer || seq <= lost_by_peer) && !wanted.covers(origin, seq)
                })
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            position = next;
            let full = entries.len() == BATCH;
            if !entries.is_empty() {
                let mut bytes = Vec::new();
                for entry in &entries {
                    sent.advance(entry.origin, entry.seq);
                    entry.encode_into(&mut bytes);
                }
                sender
                    .send(Bytes::from(bytes))
                    .await
                    .map_err(|_| "the peer went away")?;
            }
            if !full {
                break;
            }
        }
        let config_version = repository.cluster().config.map_or(0, |c| c.version);
        let heartbeat = Heartbeat {
            origin: repository.origin(),
            clock,
            version_vector,
            config_version,
        };
        sender
            .send(Bytes::from(heartbeat.to_entry().encode()))
            .await
            .map_err(|_| "the peer went away")?;
        tokio::select! {
            changed = appended.changed() => changed.map_err(|_| "the repository closed")?,
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
        }
    }
}
