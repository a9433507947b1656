//! Clock probes for the clock fence (issue 25): every member asks every other member of
//! each cluster, twice a second, what its clock says, and keeps the answer with the
//! probe's round trip as a sample in the repository (see `quadmesh_store::FenceKeeper`
//! and the engine's rule, `quadmesh_repl::ClockFence`). The probes only measure; the
//! store decides, under the writer lock, whether a local write may be stamped.

use super::node::Node;
use super::{ORIGIN_HEADER, TOKEN_HEADER};
use quadmesh_repl::Member;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// How often every other member is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// A probe unanswered for this long measures nothing (a round trip that long would be
/// too uncertain to count anyway).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `GET /repositories/NAME/repl/clock` answers (a peer, with the cluster token):
/// the answering instance's clock, read when it answered.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockReading {
    /// Its physical (wall) clock, ms since the epoch.
    pub physical_ms: u64,
    /// Its hybrid clock's reading (ms): the physical time, or the last time it issued
    /// when that is ahead.
    pub reading_ms: u64,
}

impl ClockReading {
    pub fn of(clock: &quadmesh_repl::HybridClock) -> Self {
        let physical_ms = clock.physical_ms();
        ClockReading {
            physical_ms,
            reading_ms: clock.last().millis().max(physical_ms),
        }
    }
}

/// Probes the other members of `node`'s configuration every [`PROBE_INTERVAL`], all at
/// once, until the node is gone.
pub async fn run(node: Weak<Node>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        let config = node.config();
        let local = node.repository().origin();
        let probes = config
            .members
            .iter()
            .filter(|m| m.origin != local)
            .map(|m| probe(&node, m))
            .collect::<Vec<_>>();
        futures::future::join_all(probes).await;
    }
}

/// One probe of `member` (at its address, under its own repository name); its
/// answer, if any, is kept as a sample.
async fn probe(node: &Node, member: &Member) {
    let peer = member.origin;
    let config = node.config();
    let url = node.http().repl_url(member, "clock");
    let sent = Instant::now();
    let response = node
        .http()
        .get(&url)
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, node.repository().origin().0.to_string())
        .timeout(PROBE_TIMEOUT)
        .send()
        .await;
    let reading = match response {
        Ok(response) if response.status().is_success() => {
            response.json::<ClockReading>().await.ok()
        }
        _ => None,
    };
    let received = Instant::now();
    if let Some(reading) = reading {
        node.repository().record_clock_sample(
            peer,
            reading.physical_ms,
            reading.reading_ms,
            sent,
            received,
        );
    }
}
