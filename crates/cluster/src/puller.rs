//! Pulling from one peer: the runtime of the pull state machine
//! ([`quadmesh_repl::Puller`]). The machine decides — when to connect, when a stream is
//! dead, what a refusal means, how long to wait — and this module does the I/O it asks
//! for: the HTTP request, reading and decoding the stream, applying transactions and
//! heartbeats to the repository, and showing the peer's state in the view.
//!
//! Rules it keeps (the machine's, see there, plus):
//! - refusals from the peer are read from their JSON code, never from their text;
//! - the machine's time is monotonic (tokio's clock), never the wall clock, so a
//!   stepped clock neither drops a healthy stream nor keeps a dead one;
//! - storage work (the version vector, applying, digests) runs on blocking threads.

use super::node::Node;
use super::{PeerRefusal, CLOCK_HEADER, ORIGIN_HEADER, TOKEN_HEADER, VERSION_VECTOR_HEADER};
use futures::StreamExt;
use quadmesh_repl::frame::{self, Decoded};
use quadmesh_repl::{Entry, Heartbeat, OriginId, PullCommand, PullEvent, PullFailure, Puller};
use quadmesh_store::{Applied, StoreError};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

type Body = Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open pull stream: its body and the bytes of a frame not yet complete.
struct Open {
    body: Body,
    buffer: Vec<u8>,
}

/// Pulls from `peer` until the node goes away or the machine stops.
pub async fn pull_forever(node: Weak<Node>, peer: OriginId) {
    let start = Instant::now();
    let now = move || start.elapsed().as_millis() as u64;
    let mut machine = Puller::new(peer, now());
    let mut open: Option<Open> = None;
    let mut event = PullEvent::Tick;
    let mut last_digest_check: Option<Instant> = None;
    loop {
        let Some(strong) = node.upgrade() else { return };
        let membership = quadmesh_repl::pull_membership(&strong.view(), peer);
        let took_frames = matches!(event, PullEvent::Frames(_));
        let mut commands = machine.handle(now(), membership);
        commands.extend(machine.handle(now(), event));
        let mut next = None;
        for command in commands {
            let outcome = match command {
                PullCommand::Connect => {
                    let deadline = machine.deadline().map(|d| start + Duration::from_millis(d));
                    let request = connect(&strong, peer);
                    match deadline {
                        Some(at) => match tokio::time::timeout_at(at, request).await {
                            // The machine says what an unanswered request means.
                            Err(_) => Ok(Some(PullEvent::Tick)),
                            Ok(result) => result.map(|body| {
                                open = Some(Open {
                                    body,
                                    buffer: Vec::new(),
                                });
                                Some(PullEvent::Opened)
                            }),
                        },
                        None => Ok(None),
                    }
                }
                PullCommand::Apply(entries) => apply_transactions(&strong, peer, entries)
                    .await
                    .map(|()| None),
                PullCommand::TakeHeartbeat(heartbeat) => {
                    take_heartbeat(&strong, heartbeat, &mut last_digest_check)
                        .await
                        .map(|()| None)
                }
                PullCommand::Contact => {
                    strong.view().on_contact(peer, super::now_ms());
                    Ok(None)
                }
                PullCommand::Close => {
                    open = None;
                    Ok(None)
                }
                PullCommand::ShowConnected => {
                    strong.view().set_connected(peer, true, super::now_ms());
                    strong.view().set_problem(peer, None);
                    strong.touch();
                    Ok(None)
                }
                PullCommand::ShowDisconnected {
                    failure,
                    was_streaming,
                } => {
                    strong.view().set_connected(peer, false, super::now_ms());
                    strong.touch();
                    let lost = matches!(
                        failure,
                        PullFailure::Silent(_) | PullFailure::Unreachable(_)
                    );
                    if was_streaming && lost {
                        tracing::warn!(repository = strong.repository().name(), peer = %peer, error = %failure, "lost the pull stream; reconnecting");
                    } else {
                        tracing::debug!(repository = strong.repository().name(), peer = %peer, error = %failure, "pull stream ended");
                    }
                    Ok(None)
                }
                PullCommand::ShowProblem(problem) => {
                    strong.view().set_problem(peer, Some(problem));
                    Ok(None)
                }
                PullCommand::ConfirmRemoval => Ok(Some(PullEvent::RemovalWords(
                    super::removal::removal_words(&strong).await,
                ))),
                PullCommand::DoubtRemoval(why) => {
                    tracing::warn!(repository = strong.repository().name(), peer = %peer,
                        %why, "a peer says this instance was removed; not believed: pulling again later");
                    strong.view().set_problem(peer, Some(why));
                    Ok(None)
                }
                PullCommand::MarkRemoved => {
                    let repository = strong.repository().clone();
                    // Blocking: the writer lock and a file write.
                    let marked =
                        tokio::task::spawn_blocking(move || repository.mark_removed()).await;
                    if let Ok(Err(e)) = marked {
                        tracing::error!(error = %e, "cannot record the removal");
                    }
                    Ok(None)
                }
                PullCommand::RefuseWrites(reason) => {
                    tracing::warn!(repository = strong.repository().name(), %reason, "instance needs to be grown again");
                    let node = strong.clone();
                    let _ = tokio::task::spawn_blocking(move || node.refuse_writes(&reason)).await;
                    Ok(None)
                }
                PullCommand::Stop => return,
            };
            match outcome {
                Ok(Some(event)) => next = Some(event),
                Ok(None) => {}
                Err(failure) => {
                    // The rest of this batch is void: the stream is given up.
                    next = Some(PullEvent::Failed(failure));
                    break;
                }
            }
        }
        if machine.is_stopped() {
            return;
        }
        event = match next {
            Some(event) => event,
            None if took_frames => PullEvent::Taken,
            None => {
                drop(strong);
                let Some(deadline) = machine.deadline() else {
                    return;
                };
                wait(&mut open, start + Duration::from_millis(deadline)).await
            }
        };
    }
}

/// The next thing that happens: frames from the stream, its end, or the deadline.
async fn wait(open: &mut Option<Open>, deadline: Instant) -> PullEvent {
    let Some(stream) = open.as_mut() else {
        tokio::time::sleep_until(deadline).await;
        return PullEvent::Tick;
    };
    let chunk = match tokio::time::timeout_at(deadline, stream.body.next()).await {
        Err(_) => return PullEvent::Tick,
        Ok(None) => return PullEvent::Failed(PullFailure::Ended),
        Ok(Some(Err(e))) => return PullEvent::Failed(PullFailure::Unreachable(e.to_string())),
        Ok(Some(Ok(chunk))) => chunk,
    };
    stream.buffer.extend_from_slice(&chunk);
    let mut consumed = 0;
    let mut entries = Vec::new();
    loop {
        match frame::decode(&stream.buffer[consumed..]) {
            Ok(Decoded::Frame(entry, len)) => {
                consumed += len;
                entries.push(entry);
            }
            Ok(Decoded::Incomplete(_)) => break,
            Err(e) => return PullEvent::Failed(PullFailure::Corrupt(e.to_string())),
        }
    }
    stream.buffer.drain(..consumed);
    PullEvent::Frames(entries)
}

/// Asks `peer` for a pull stream with our version vector.
async fn connect(node: &Arc<Node>, peer: OriginId) -> Result<Body, PullFailure> {
    let repository = node.repository().clone();
    let config = node.config();
    let member = config
        .member(peer)
        .or_else(|| config.handing_over_member(peer))
        .ok_or(PullFailure::NotAMember)?
        .clone();
    let repo = repository.clone();
    // Blocking: read under the writer lock, which a long commit may hold.
    let version_vector = tokio::task::spawn_blocking(move || repo.version_vector())
        .await
        .map_err(|e| PullFailure::Corrupt(e.to_string()))?;
    let url = node.http().repl_url(&member, "stream");
    let sent = std::time::Instant::now();
    let response = node
        .http()
        .get(&url)
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, repository.origin().0.to_string())
        .header(
            VERSION_VECTOR_HEADER,
            serde_json::to_string(&version_vector).expect("serialises"),
        )
        .send()
        .await
        .map_err(|e| PullFailure::Unreachable(crate::peer_http::describe(&e)))?;
    let received = std::time::Instant::now();
    let status = response.status().as_u16();
    if status != 200 {
        let text = response.text().await.unwrap_or_default();
        return Err(refusal(status, &text));
    }
    // The answer's clock, measured by this request's round trip (for the clock fence).
    if let Some(reading) = response
        .headers()
        .get(CLOCK_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<super::clock_probe::ClockReading>(v).ok())
    {
        repository.record_clock_sample(
            peer,
            reading.physical_ms,
            reading.reading_ms,
            sent,
            received,
        );
    }
    Ok(Box::pin(response.bytes_stream()))
}

/// What a refused pull request means, from the refusal's code (JSON).
fn refusal(status: u16, text: &str) -> PullFailure {
    PullFailure::refused(status, serde_json::from_str::<PeerRefusal>(text).ok(), text)
}

/// How often a peer's digest is compared with ours (under the writer lock). Every
/// round of a stream closes with a heartbeat, hundreds a second at a high commit rate;
/// anti-entropy needs a comparison now and then, not one per round.
const DIGEST_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Takes in a heartbeat: the clock first (a refusal holds the stream), then what it
/// says of the peer. Its digest is compared at most every [`DIGEST_CHECK_EVERY`]
/// (`last_digest_check`, this peer's).
async fn take_heartbeat(
    node: &Arc<Node>,
    heartbeat: Heartbeat,
    last_digest_check: &mut Option<Instant>,
) -> Result<(), PullFailure> {
    node.repository().clock().observe(heartbeat.clock)?;
    let digest = heartbeat
        .digest
        .filter(|_| last_digest_check.is_none_or(|at| at.elapsed() >= DIGEST_CHECK_EVERY));
    if digest.is_some() {
        *last_digest_check = Some(Instant::now());
    }
    let (holds_own_lost, ours, check) = if digest.is_some() || node.repository().is_awaiting_peers()
    {
        // Blocking: after a lost tail the report is taken under the writer lock, and
        // a digest is compared with the store's.
        let repository = node.repository().clone();
        let report = heartbeat.clone();
        tokio::task::spawn_blocking(move || {
            // After a crash that cut our log, local writes wait for the members' word.
            let ahead =
                repository.on_peer_heartbeat(report.origin, &report.version_vector, report.config);
            let ours = repository.version_vector().get(repository.origin());
            let check = digest.map(|theirs| {
                (
                    repository.check_digest(&report.version_vector, &theirs),
                    theirs,
                )
            });
            (ahead, ours, check)
        })
        .await
        .map_err(|e| PullFailure::Held(e.to_string()))?
    } else {
        (false, 0, None)
    };
    if let Some((check, theirs)) = check {
        node.anti_entropy.record(
            heartbeat.origin,
            &heartbeat.version_vector,
            check,
            theirs,
            super::now_ms(),
        );
    }
    let theirs = heartbeat.version_vector.get(node.repository().origin());
    // Under the configuration it was sent under: a member removed by one stops holding
    // the frontier only once every member was heard under it (or a newer one).
    node.view().on_heartbeat_under(
        heartbeat.origin,
        heartbeat.clock,
        heartbeat.version_vector,
        heartbeat.config,
        super::now_ms(),
    );
    node.touch();
    if holds_own_lost {
        // This stream will not send them (it sends our own only up to what the peer
        // held when we asked): a new one does.
        return Err(PullFailure::HoldsOwnLost { theirs, ours });
    }
    Ok(())
}

/// Applies a stream's transactions in order: the whole batch under one writer lock,
/// made durable by one log sync (`Repository::apply_remote_batch`).
async fn apply_transactions(
    node: &Arc<Node>,
    peer: OriginId,
    entries: Vec<Entry>,
) -> Result<(), PullFailure> {
    // What this instance already holds durably needs no blocking thread: streams relay
    // what other members sent too (in a full mesh every transaction comes twice). The
    // published version vector only grows, so these are duplicates under the writer
    // lock as well; a removed sender's batch still goes there, to be refused.
    let repository = node.repository().clone();
    let held = repository.version_vector();
    if !repository.cluster().removed_for_good(peer)
        && entries.iter().all(|e| e.seq <= held.get(e.origin))
    {
        return Ok(());
    }
    let apply_delay = node.apply_delay.clone();
    let results = tokio::task::spawn_blocking(move || {
        let (outcomes, error) = repository.apply_remote_batch(peer, &entries);
        // Measured once durable: that is when a reader here can see them.
        let now_ms = super::now_ms();
        let mut applied = Vec::new();
        for (entry, outcome) in entries.iter().zip(outcomes) {
            if outcome == Applied::New {
                let delay_ms = now_ms.saturating_sub(entry.time.millis());
                apply_delay.observe(delay_ms as f64 / 1000.0);
                applied.push((entry.origin, entry.time));
            }
        }
        (applied, error)
    })
    .await
    .map_err(|e| PullFailure::Corrupt(e.to_string()))?;
    let (applied, error) = results;
    {
        let mut view = node.view();
        for (origin, time) in &applied {
            view.on_transaction(*origin, *time);
        }
    }
    if !applied.is_empty() {
        node.touch();
    }
    match error {
        None => Ok(()),
        Some(StoreError::Clock(e)) => Err(e.into()),
        // Resume from our version vector: the next stream starts where we are.
        Some(StoreError::Gap { .. }) => Err(PullFailure::Ended),
        Some(StoreError::Removed(_)) => Err(PullFailure::Removed),
        // The configuration held here removed the peer: the machine stops on it.
        Some(StoreError::SenderRemoved { .. }) => Err(PullFailure::NotAMember),
        // Not applied and rolled back: taken again on the next stream, once space is back
        // (or, after a log found damaged, once it is healed).
        Some(
            e @ (StoreError::DiskFull(_)
            | StoreError::WritesStopped { .. }
            | StoreError::LogHealing { .. }),
        ) => Err(PullFailure::Held(e.to_string())),
        Some(e) => Err(PullFailure::Corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RefusalCode;

    #[test]
    fn a_refusal_body_is_read_as_json_by_its_code() {
        let json = |code: RefusalCode, message: &str| {
            serde_json::to_string(&PeerRefusal::new(code, message)).unwrap()
        };
        assert_eq!(
            refusal(403, &json(RefusalCode::Removed, "gone")),
            PullFailure::Removed
        );
        assert_eq!(
            refusal(410, &json(RefusalCode::Expired, "away too long")),
            PullFailure::NeedsRegrow("away too long".into())
        );
        // Text that merely mentions removal is no removal.
        assert_eq!(
            refusal(403, "instance 7 was removed from the cluster"),
            PullFailure::Refused("403: instance 7 was removed from the cluster".into())
        );
    }

    #[test]
    fn a_stream_is_taken_as_dead_after_a_few_heartbeat_intervals() {
        use crate::STALL_AFTER;
        assert!(
            STALL_AFTER >= Duration::from_millis(quadmesh_repl::pull::HEARTBEAT_INTERVAL_MS) * 4
        );
        assert!(STALL_AFTER <= Duration::from_secs(3));
    }
}
