//! Serving a pull stream: the runtime of `repl`'s [`StreamServer`], which decides the
//! rounds (the backlog the caller lacks, then new transactions as they are appended,
//! each round closed by a heartbeat), the keep-alives and the send timeout. This module
//! reads the log, encodes and sends what it is told, and feeds back what happened.
//!
//! Rules it keeps (the machine's, see there, plus):
//! - storage work (the heartbeat point, log reads) runs on blocking threads, one
//!   operation at a time; keep-alives go out meanwhile, without waiting for it;
//! - the machine's time is monotonic (tokio's clock), never the wall clock.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;
use quadmesh_repl::{
    Entry, Heartbeat, OriginId, ServeCommand, ServeEvent, StreamServer, VersionVector,
};
use quadmesh_store::{LogPosition, Repository};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Entries read from the log per read.
const BATCH: usize = 512;

/// The body of a pull stream for `peer`, which has `theirs`, as a stream of chunks; with
/// `own_only`, only this instance's own transactions go out (it was removed, and hands
/// them over).
pub fn pull_stream(
    repository: Arc<Repository>,
    peer: OriginId,
    theirs: VersionVector,
    own_only: bool,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        tokio::select! {
            reason = serve(repository, peer, theirs, own_only, sender) => {
                tracing::debug!(peer = %peer, %reason, "pull stream closed");
            }
            _ = shutdown.cancelled() => {}
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), receiver))
    })
}

/// Runs the machine until it closes the stream or the peer goes away; returns why.
async fn serve(
    repository: Arc<Repository>,
    peer: OriginId,
    theirs: VersionVector,
    own_only: bool,
    sender: mpsc::Sender<Bytes>,
) -> String {
    let start = Instant::now();
    let now = move || start.elapsed().as_millis() as u64;
    let (mut machine, mut commands) = StreamServer::open(
        repository.origin(),
        peer,
        theirs,
        &repository.version_vector(),
        own_only,
        now(),
    );
    let mut appended = repository.subscribe();
    appended.borrow_and_update();
    let mut position = LogPosition::default();
    // The operation in flight (a read or a send), at most one.
    let mut operation: Option<BoxFuture<'static, Result<Done, String>>> = None;
    loop {
        let mut events = Vec::new();
        for command in std::mem::take(&mut commands) {
            match command {
                ServeCommand::Read { heartbeat } => {
                    let repository = repository.clone();
                    let origin = repository.origin();
                    let cursor = machine.cursor();
                    operation = Some(Box::pin(async move {
                        let read = tokio::task::spawn_blocking(move || {
                            let wanted = |origin, seq| cursor.wants(origin, seq);
                            if heartbeat {
                                repository
                                    .heartbeat_with_entries(position, BATCH, wanted)
                                    .map(|(point, entries, next)| (Some(point), entries, next))
                            } else {
                                repository
                                    .entries_since(position, BATCH, wanted)
                                    .map(|(entries, next)| (None, entries, next))
                            }
                        });
                        let (point, entries, next) = read
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?;
                        let heartbeat = point.map(|point| Heartbeat {
                            origin,
                            clock: point.clock,
                            version_vector: point.version_vector,
                            digest: Some(point.digest),
                            config: point.config,
                        });
                        Ok(Done::Read {
                            heartbeat,
                            full: entries.len() == BATCH,
                            entries,
                            next,
                        })
                    }));
                }
                ServeCommand::Send(entries) => {
                    let sender = sender.clone();
                    let bytes = encode(&entries);
                    operation = Some(Box::pin(async move {
                        sender
                            .send(bytes)
                            .await
                            .map(|()| Done::Sent)
                            .map_err(|_| "the peer went away".to_owned())
                    }));
                }
                ServeCommand::KeepAlive(heartbeat) => {
                    match sender.try_send(encode(std::slice::from_ref(&heartbeat))) {
                        // Full: the peer has plenty to read already.
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {
                            events.push(ServeEvent::KeptAlive)
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            return "the peer went away".into()
                        }
                    }
                }
                ServeCommand::Close(reason) => return reason,
            }
        }
        for event in events {
            commands.extend(machine.handle(now(), event));
        }
        if !commands.is_empty() {
            continue;
        }
        let Some(deadline) = machine.deadline() else {
            return "the machine stopped".into();
        };
        let deadline = start + Duration::from_millis(deadline);
        let event = tokio::select! {
            done = async { operation.as_mut().expect("checked").await }, if operation.is_some() => {
                operation = None;
                match done {
                    Ok(Done::Read { heartbeat, entries, full, next }) => {
                        position = next;
                        ServeEvent::Read { heartbeat, entries, full }
                    }
                    Ok(Done::Sent) => ServeEvent::Sent,
                    Err(reason) => return reason,
                }
            }
            changed = appended.changed() => match changed {
                Ok(()) => ServeEvent::Appended,
                Err(_) => return "the repository closed".into(),
            },
            _ = tokio::time::sleep_until(deadline) => ServeEvent::Tick,
        };
        commands = machine.handle(now(), event);
    }
}

/// An operation finished.
enum Done {
    Read {
        heartbeat: Option<Heartbeat>,
        entries: Vec<Entry>,
        full: bool,
        next: LogPosition,
    },
    Sent,
}

fn encode(entries: &[Entry]) -> Bytes {
    let mut bytes = Vec::new();
    for entry in entries {
        entry.encode_into(&mut bytes);
    }
    Bytes::from(bytes)
}
