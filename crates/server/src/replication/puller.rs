//! Pulling from one peer: ask with our version vector, apply what streams back.
//!
//! Rules it keeps:
//! - a stream that delivers nothing for [`STALL_AFTER`] (heartbeats are due every
//!   [`HEARTBEAT_INTERVAL`]) is dropped and reconnected, and the peer shows as
//!   disconnected with the reason; so does a peer that does not answer the request
//!   within [`ANSWER_WITHIN`];
//! - refusals from the peer are read from their JSON code, never from their text;
//! - told that it cannot be brought up to date (it was away longer than the log is
//!   kept), a member that is not the controlling instance stops taking writes at once.

use super::node::Node;
use super::stream::HEARTBEAT_INTERVAL;
use super::{PeerRefusal, RefusalCode, ORIGIN_HEADER, TOKEN_HEADER, VERSION_VECTOR_HEADER};
use futures::StreamExt;
use quadmesh_repl::frame::{self, Decoded};
use quadmesh_repl::{Entry, EntryKind, Heartbeat, OriginId};
use quadmesh_store::{Applied, StoreError};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A pull stream silent for this long (8 heartbeat intervals) is taken as dead.
pub const STALL_AFTER: Duration = Duration::from_millis(HEARTBEAT_INTERVAL.as_millis() as u64 * 8);
/// How long a peer may take to answer a pull request (its head, not the stream).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Why a pull stream ended.
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error("cannot reach the peer: {0}")]
    Unreachable(String),
    #[error("no frame for {:.1} s", .0.as_secs_f64())]
    Silent(Duration),
    #[error("the peer refused: {0}")]
    Refused(String),
    #[error("the peer cannot bring this instance up to date: {0}")]
    NeedsRegrow(String),
    #[error("the peer says this instance was removed from the cluster")]
    Removed,
    #[error("corrupt frame from the peer: {0}")]
    Corrupt(String),
    #[error("held: {0}")]
    Held(String),
    #[error("the stream ended")]
    Ended,
    #[error("member left the configuration")]
    NotAMember,
}

/// Pulls from `peer` until the node goes away, reconnecting with backoff (and resolving
/// the peer's name again) after every failure.
pub async fn pull_forever(node: Weak<Node>, peer: OriginId) {
    const FIRST_RETRY: Duration = Duration::from_millis(100);
    let mut backoff = FIRST_RETRY;
    loop {
        let Some(strong) = node.upgrade() else { return };
        if strong.view().is_expired(peer) {
            // Nothing more is taken from an expired member: its old transactions could
            // undo newer ones once the register has forgotten them.
            drop(strong);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let result = pull_once(&strong, peer).await;
        let was_connected = strong.view().peer(peer).is_some_and(|p| p.connected);
        strong.view().set_connected(peer, false, super::now_ms());
        strong.touch();
        if was_connected {
            backoff = FIRST_RETRY;
        }
        let pause = match result {
            Err(PullError::Removed) => {
                if let Err(e) = strong.repository().mark_removed() {
                    tracing::error!(error = %e, "cannot record the removal");
                }
                return;
            }
            Err(PullError::NotAMember) => return,
            Err(PullError::NeedsRegrow(reason)) => {
                tracing::warn!(repository = strong.repository().name(), %reason, "instance needs to be grown again");
                // Writes are refused before status shows why.
                let (node, told) = (strong.clone(), format!("a member says: {reason}"));
                let _ = tokio::task::spawn_blocking(move || node.refuse_writes(&told)).await;
                strong
                    .view()
                    .set_problem(peer, Some(format!("needs re-grow: {reason}")));
                Duration::from_secs(5)
            }
            Err(e) => {
                tracing::debug!(repository = strong.repository().name(), peer = %peer, error = %e, "pull stream ended");
                // A refusal is usually a peer that has not yet seen the newest
                // configuration: transient, so not shown as a problem.
                match e {
                    PullError::Held(_) => strong.view().set_problem(peer, Some(e.to_string())),
                    PullError::Silent(_) | PullError::Unreachable(_) => {
                        if was_connected {
                            tracing::warn!(repository = strong.repository().name(), peer = %peer, error = %e, "lost the pull stream; reconnecting");
                        }
                        strong
                            .view()
                            .set_problem(peer, Some(format!("disconnected: {e}")))
                    }
                    _ => {}
                }
                let pause = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                pause
            }
            Ok(()) => FIRST_RETRY,
        };
        drop(strong);
        tokio::time::sleep(pause).await;
    }
}

async fn pull_once(node: &Arc<Node>, peer: OriginId) -> Result<(), PullError> {
    let repository = node.repository().clone();
    let config = node.config();
    let member = config.member(peer).ok_or(PullError::NotAMember)?.clone();
    let repo = repository.clone();
    // Blocking: read under the writer lock, which a long commit may hold.
    let version_vector = tokio::task::spawn_blocking(move || repo.version_vector())
        .await
        .map_err(|e| PullError::Corrupt(e.to_string()))?;
    let url = format!(
        "http://{}/repositories/{}/repl/stream",
        member.address,
        repository.name()
    );
    let request = node
        .http()
        .get(&url)
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, repository.origin().0.to_string())
        .header(
            VERSION_VECTOR_HEADER,
            serde_json::to_string(&version_vector).expect("serialises"),
        )
        .send();
    let response = tokio::time::timeout(ANSWER_WITHIN, request)
        .await
        .map_err(|_| {
            PullError::Unreachable(format!("no answer within {} s", ANSWER_WITHIN.as_secs()))
        })?
        .map_err(|e| PullError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        let text = tokio::time::timeout(ANSWER_WITHIN, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return Err(refusal(status, &text));
    }
    node.view().set_connected(peer, true, super::now_ms());
    node.view().set_problem(peer, None);
    node.touch();
    let mut stream = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(STALL_AFTER, stream.next()).await {
            Err(_) => return Err(PullError::Silent(STALL_AFTER)),
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|e| PullError::Unreachable(e.to_string()))?,
        };
        node.view().on_contact(peer, super::now_ms());
        buffer.extend_from_slice(&chunk);
        let mut consumed = 0;
        let mut batch = Vec::new();
        loop {
            match frame::decode(&buffer[consumed..]) {
                Ok(Decoded::Frame(entry, len)) => {
                    consumed += len;
                    batch.push(entry);
                }
                Ok(Decoded::Incomplete(_)) => break,
                Err(e) => return Err(PullError::Corrupt(e.to_string())),
            }
        }
        buffer.drain(..consumed);
        handle(node, batch).await?;
    }
    Err(PullError::Ended)
}

/// What a refused pull request means, from the refusal's code (JSON).
fn refusal(status: u16, text: &str) -> PullError {
    match serde_json::from_str::<PeerRefusal>(text) {
        Ok(PeerRefusal {
            code: RefusalCode::Removed,
            ..
        }) => PullError::Removed,
        Ok(PeerRefusal {
            code: RefusalCode::Expired | RefusalCode::LogTruncated,
            message,
        }) => PullError::NeedsRegrow(message),
        Ok(PeerRefusal {
            code: RefusalCode::NotAMember | RefusalCode::Damaged,
            message,
        }) => PullError::Refused(format!("{status}: {message}")),
        Err(_) => PullError::Refused(format!("{status}: {}", text.trim())),
    }
}

/// Applies transactions in order and takes in heartbeats.
async fn handle(node: &Arc<Node>, entries: Vec<Entry>) -> Result<(), PullError> {
    let mut transactions = Vec::new();
    for entry in entries {
        if entry.kind == EntryKind::Heartbeat {
            apply_transactions(node, std::mem::take(&mut transactions)).await?;
            let heartbeat = Heartbeat::from_entry(&entry)
                .ok_or_else(|| PullError::Corrupt("bad heartbeat".into()))?;
            node.repository()
                .clock()
                .observe(heartbeat.clock)
                .map_err(|e| PullError::Held(e.to_string()))?;
            // After a crash that cut our log, local writes wait for every member's word.
            node.repository()
                .on_peer_heartbeat(heartbeat.origin, &heartbeat.version_vector);
            if let Some(theirs) = heartbeat.digest {
                let repository = node.repository().clone();
                let version_vector = heartbeat.version_vector.clone();
                let check = tokio::task::spawn_blocking(move || {
                    repository.check_digest(&version_vector, &theirs)
                })
                .await
                .map_err(|e| PullError::Held(e.to_string()))?;
                node.anti_entropy.record(
                    heartbeat.origin,
                    &heartbeat.version_vector,
                    check,
                    theirs,
                    super::now_ms(),
                );
            }
            node.view().on_heartbeat(
                heartbeat.origin,
                heartbeat.clock,
                heartbeat.version_vector,
                super::now_ms(),
            );
            node.touch();
        } else {
            transactions.push(entry);
        }
    }
    apply_transactions(node, transactions).await
}

async fn apply_transactions(node: &Arc<Node>, entries: Vec<Entry>) -> Result<(), PullError> {
    if entries.is_empty() {
        return Ok(());
    }
    let repository = node.repository().clone();
    let results = tokio::task::spawn_blocking(move || {
        let mut applied = Vec::new();
        for entry in entries {
            match repository.apply_remote(&entry) {
                Ok(Applied::New) => applied.push((entry.origin, entry.time)),
                Ok(Applied::Duplicate) => {}
                Err(e) => return (applied, Some(e)),
            }
        }
        (applied, None)
    })
    .await
    .map_err(|e| PullError::Corrupt(e.to_string()))?;
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
        Some(StoreError::Clock(e)) => Err(PullError::Held(e.to_string())),
        // Resume from our version vector: the next stream starts where we are.
        Some(StoreError::Gap { .. }) => Err(PullError::Ended),
        Some(StoreError::Removed(_)) => Err(PullError::Removed),
        // Not applied and rolled back: taken again on the next stream, once space is back.
        Some(e @ (StoreError::DiskFull(_) | StoreError::WritesStopped { .. })) => {
            Err(PullError::Held(e.to_string()))
        }
        Some(e) => Err(PullError::Corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_from_their_code_never_their_text() {
        let json = |code: RefusalCode, message: &str| {
            serde_json::to_string(&PeerRefusal::new(code, message)).unwrap()
        };
        assert!(matches!(
            refusal(403, &json(RefusalCode::Removed, "gone")),
            PullError::Removed
        ));
        assert!(matches!(
            refusal(410, &json(RefusalCode::Expired, "away too long")),
            PullError::NeedsRegrow(m) if m == "away too long"
        ));
        assert!(matches!(
            refusal(
                410,
                &json(RefusalCode::LogTruncated, "no longer in the log")
            ),
            PullError::NeedsRegrow(_)
        ));
        // A message that merely mentions removal is no removal.
        assert!(matches!(
            refusal(
                403,
                &json(RefusalCode::NotAMember, "not removed, just unknown")
            ),
            PullError::Refused(_)
        ));
        assert!(matches!(
            refusal(403, "instance 7 was removed from the cluster"),
            PullError::Refused(_)
        ));
    }

    #[test]
    fn a_stream_is_taken_as_dead_after_a_few_heartbeat_intervals() {
        assert!(STALL_AFTER >= HEARTBEAT_INTERVAL * 4);
        assert!(STALL_AFTER <= Duration::from_secs(3));
        assert_eq!(
            PullError::Silent(STALL_AFTER).to_string(),
            "no frame for 2.0 s"
        );
    }
}
