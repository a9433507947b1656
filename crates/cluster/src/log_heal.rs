//! Healing a replication log found damaged inside (issue 25): every second, each
//! repository whose log has holes asks the other members for the transactions the
//! holes took (`POST /repositories/NAME/repl/frames`, by origin and sequence number),
//! checks each frame, and once it has them all hands them to the store, which puts them
//! back (`Repository::heal_log`). Which transactions, where they go, whom to ask and
//! when what nobody sent counts as held by no member, the store and
//! `quadmesh_repl::log_heal` decide (`plan`, `heal_sources`, `heal_now`); this only
//! fetches.

use super::node::Node;
use super::{ORIGIN_HEADER, TOKEN_HEADER};
use crate::Replication;
use quadmesh_repl::frame::{self, Decoded};
use quadmesh_repl::log_heal::heal_sources;
use quadmesh_repl::{Entry, Member, OriginId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How often healing repositories are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A member that does not answer within this is asked again on the next round.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// What a healing instance asks a member for: transactions by origin and sequence
/// number (the body of `POST /repositories/NAME/repl/frames`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FramesRequest {
    pub frames: Vec<WantedFrame>,
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct WantedFrame {
    pub origin: OriginId,
    pub seq: u64,
}

/// Runs for the server's life.
pub async fn heal_forever(replication: Arc<Replication>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Per repository, what no member held at the last round (said once, not every second).
    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        tick.tick().await;
        for node in replication.nodes() {
            let Some(healing) = node.repository().log_healing() else {
                continue;
            };
            let name = node.repository().name().to_owned();
            let missing = healing.missing.clone();
            let (fetched, everyone_answered) = fetch(&replication, &node, &missing).await;
            let still: Vec<(OriginId, u64)> = missing
                .iter()
                .filter(|id| !fetched.contains_key(id))
                .copied()
                .collect();
            if !quadmesh_repl::log_heal::heal_now(still.len(), everyone_answered) {
                if reported.insert(name.clone(), still.len()) != Some(still.len()) {
                    tracing::warn!(repository = %name, missing = still.len(), of = missing.len(),
                        "the members reached so far do not hold every transaction the log's damage took; asking again");
                }
                continue;
            }
            // Every other member answered: what none of them holds, the store weighs.
            let held_by_no_member = still;
            let repository = node.repository().clone();
            let entries: Vec<Entry> = fetched.into_values().collect();
            match tokio::task::spawn_blocking(move || {
                repository.heal_log(entries, &held_by_no_member)
            })
            .await
            {
                Ok(Ok(Some(healed))) => {
                    reported.remove(&name);
                    tracing::warn!(repository = %name, put_back = healed.put_back,
                        left_out = healed.left_out, replayed = healed.replayed,
                        "replication log healed from the peers");
                    node.touch();
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    let message = e.to_string();
                    if reported.insert(name.clone(), message.len()) != Some(message.len()) {
                        tracing::error!(repository = %name, error = %message, "the replication log cannot be healed yet");
                    }
                }
                Err(e) => {
                    tracing::error!(repository = %name, error = %e, "healing the replication log failed")
                }
            }
        }
    }
}

/// Asks each other member in turn for what is still missing (and each removed instance
/// still handing over); returns what came back, checked (a valid frame, one of those
/// asked for), and whether every other member answered (so that what none sent, none
/// holds).
async fn fetch(
    replication: &Replication,
    node: &Arc<Node>,
    missing: &[(OriginId, u64)],
) -> (BTreeMap<(OriginId, u64), Entry>, bool) {
    let config = node.config();
    let mut fetched = BTreeMap::new();
    let mut everyone_answered = true;
    for source in heal_sources(&config, node.repository().origin()) {
        let wanted: Vec<(OriginId, u64)> = missing
            .iter()
            .filter(|id| !fetched.contains_key(*id))
            .copied()
            .collect();
        if wanted.is_empty() {
            break;
        }
        let asked: Vec<WantedFrame> = wanted
            .iter()
            .map(|&(origin, seq)| WantedFrame { origin, seq })
            .collect();
        match ask(replication, node, &source.member, &asked).await {
            Ok(entries) => {
                for entry in entries {
                    let id = (entry.origin, entry.seq);
                    if wanted.contains(&id) {
                        fetched.insert(id, entry);
                    }
                }
            }
            Err(e) => {
                if source.silence_matters(&wanted) {
                    everyone_answered = false;
                }
                tracing::debug!(repository = %node.repository().name(), peer = %source.member.name,
                    error = %e, "asking a member for the transactions the log's damage took failed")
            }
        }
    }
    (fetched, everyone_answered)
}

async fn ask(
    replication: &Replication,
    node: &Node,
    member: &Member,
    wanted: &[WantedFrame],
) -> Result<Vec<Entry>, String> {
    let config = node.config();
    let url = replication.http().repl_url(member, "frames");
    let response = replication
        .http()
        .post(&url)
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, node.repository().origin().0.to_string())
        .json(&FramesRequest {
            frames: wanted.to_vec(),
        })
        .timeout(ANSWER_WITHIN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{status}: {}", body.trim()));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    decode_frames(&bytes)
}

/// The frames of an answer, each checked whole (magic, version, checksum).
fn decode_frames(mut bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        match frame::decode(bytes) {
            Ok(Decoded::Frame(entry, len)) => {
                entries.push(entry);
                bytes = &bytes[len..];
            }
            Ok(Decoded::Incomplete(needed)) => {
                return Err(format!(
                    "the answer ends inside a frame ({} of {needed} bytes)",
                    bytes.len()
                ))
            }
            Err(e) => return Err(format!("an invalid frame in the answer: {e}")),
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quadmesh_repl::{EntryKind, HlcTime};

    #[test]
    fn an_answer_is_read_frame_by_frame_and_a_damaged_one_is_refused() {
        let entry = |seq| Entry {
            kind: EntryKind::Data,
            origin: OriginId(3),
            seq,
            time: HlcTime::from_parts(seq, 0),
            payload: vec![seq as u8; 20],
        };
        let mut bytes = entry(1).encode();
        bytes.extend(entry(2).encode());
        assert_eq!(decode_frames(&bytes).unwrap(), vec![entry(1), entry(2)]);
        let mut damaged = bytes.clone();
        damaged[10] ^= 1;
        assert!(decode_frames(&damaged).is_err());
        assert!(decode_frames(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode_frames(&[]).unwrap().is_empty());
    }
}
