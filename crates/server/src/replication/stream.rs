//! Serving a pull stream: the backlog the caller lacks, then new transactions as they
//! are appended, each round closed by a heartbeat.
//!
//! Rules it keeps:
//! - something goes out at least every [`HEARTBEAT_INTERVAL`] while the peer reads:
//!   when the next heartbeat is late (its clock is read under the writer lock, which a
//!   long commit may hold), the last one is sent again — a promise already kept, so
//!   harmless — and before the first, a heartbeat promising nothing (clock zero, empty
//!   version vector); the puller can then tell a silent link from a busy peer;
//! - a peer that reads nothing for [`SEND_TIMEOUT`] (a half-open connection, a paused
//!   process, a black hole that acknowledges bytes) is dropped; it reconnects;
//! - storage work (the heartbeat point, log reads) runs on blocking threads.

use axum::body::{Body, Bytes};
use quadmesh_repl::{Heartbeat, HlcTime, OriginId, StreamCursor, VersionVector};
use quadmesh_store::{LogPosition, Repository};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Heartbeats go out at least this often on an idle stream.
pub const HEARTBEAT_INTERVAL: Duration =
    Duration::from_millis(quadmesh_repl::pull::HEARTBEAT_INTERVAL_MS);
/// A peer that takes nothing from its stream for this long is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Entries read from the log per round.
const BATCH: usize = 512;

/// The body of a pull stream for `peer`, which has `theirs`; with `own_only`, only this
/// instance's own transactions go out (it was removed, and hands them over).
pub fn pull_stream(
    repository: Arc<Repository>,
    peer: OriginId,
    theirs: VersionVector,
    own_only: bool,
    shutdown: CancellationToken,
) -> Body {
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    let outbox = Outbox::new(sender, repository.origin());
    tokio::spawn(async move {
        tokio::select! {
            result = feed(repository, peer, theirs, own_only, &outbox) => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, reason = %e, "pull stream closed");
                }
            }
            _ = outbox.keep_alive() => {
                tracing::debug!(peer = %peer, "pull stream closed: the peer went away");
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

/// The sending end of one stream: remembers when it last sent and the last heartbeat,
/// for keep-alives.
struct Outbox {
    sender: mpsc::Sender<Bytes>,
    last_sent: Mutex<Instant>,
    last_heartbeat: Mutex<Bytes>,
}

impl Outbox {
    fn new(sender: mpsc::Sender<Bytes>, origin: OriginId) -> Self {
        let nothing_promised = Heartbeat {
            origin,
            clock: HlcTime::ZERO,
            version_vector: VersionVector::new(),
            digest: None,
            config: None,
        };
        Outbox {
            sender,
            last_sent: Mutex::new(Instant::now()),
            last_heartbeat: Mutex::new(Bytes::from(nothing_promised.to_entry().encode())),
        }
    }

    async fn send(&self, bytes: Bytes) -> Result<(), &'static str> {
        match tokio::time::timeout(SEND_TIMEOUT, self.sender.send(bytes)).await {
            Ok(Ok(())) => {
                *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                Ok(())
            }
            Ok(Err(_)) => Err("the peer went away"),
            Err(_) => Err("the peer read nothing for a minute"),
        }
    }

    async fn send_heartbeat(&self, heartbeat: Bytes) -> Result<(), &'static str> {
        *self
            .last_heartbeat
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = heartbeat.clone();
        self.send(heartbeat).await
    }

    /// Sends the last heartbeat again whenever nothing went out for a heartbeat
    /// interval; returns when the peer went away.
    async fn keep_alive(&self) {
        loop {
            let last = *self.last_sent.lock().unwrap_or_else(|e| e.into_inner());
            tokio::time::sleep_until(last + HEARTBEAT_INTERVAL).await;
            if self.sender.is_closed() {
                return;
            }
            let last = *self.last_sent.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < HEARTBEAT_INTERVAL {
                continue;
            }
            let heartbeat = self
                .last_heartbeat
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match self.sender.try_send(heartbeat) {
                Ok(()) => {
                    *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now()
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                // The peer has plenty to read already.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now()
                }
            }
        }
    }
}

async fn feed(
    repository: Arc<Repository>,
    peer: OriginId,
    theirs: VersionVector,
    own_only: bool,
    outbox: &Outbox,
) -> Result<(), String> {
    // What goes out: each transaction the peer lacks, once; its own only up to what we
    // held when it asked (those it lost in a crash, never an echo of its new ones).
    let mut cursor = StreamCursor::new(peer, theirs, &repository.version_vector());
    if own_only {
        cursor = cursor.own_only(repository.origin());
    }
    let mut position = LogPosition::default();
    let mut appended = repository.subscribe();
    loop {
        appended.borrow_and_update();
        // The promise first: everything stamped before it is in the log up to its end,
        // which the loop below sends before the heartbeat itself. The first batch comes
        // with it (one blocking trip per round); a peer far behind gets the rest in
        // further batches.
        let repo = repository.clone();
        let wanted = cursor.clone();
        let (point, mut entries, mut next) = tokio::task::spawn_blocking(move || {
            repo.heartbeat_with_entries(position, BATCH, |origin, seq| wanted.wants(origin, seq))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        loop {
            position = next;
            let full = entries.len() == BATCH;
            if !entries.is_empty() {
                let mut bytes = Vec::new();
                for entry in &entries {
                    cursor.sent(entry.origin, entry.seq);
                    entry.encode_into(&mut bytes);
                }
                outbox.send(Bytes::from(bytes)).await?;
            }
            if !full {
                break;
            }
            let repo = repository.clone();
            let wanted = cursor.clone();
            (entries, next) = tokio::task::spawn_blocking(move || {
                repo.entries_since(position, BATCH, |origin, seq| wanted.wants(origin, seq))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        }
        let heartbeat = Heartbeat {
            origin: repository.origin(),
            clock: point.clock,
            version_vector: point.version_vector,
            digest: Some(point.digest),
            config: point.config,
        };
        outbox
            .send_heartbeat(Bytes::from(heartbeat.to_entry().encode()))
            .await?;
        tokio::select! {
            changed = appended.changed() => changed.map_err(|_| "the repository closed")?,
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
        }
    }
}
