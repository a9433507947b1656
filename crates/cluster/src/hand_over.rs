//! Ending the hand-over of members removed before they could hand over what only they
//! held (the configuration's `handing_over`: `remove --force` of a member that may hold
//! transactions no remaining member has). While one is listed, every member pulls its
//! own transactions from it whenever it can be reached (`Node::reconcile`, the removed
//! instance serving its own only) and keeps the frontier at its last known promise
//! (`ClusterView::frontier`). This module, at the controlling instance, takes it off the
//! list — a membership change like any other (`Change::EndHandOver`, through the
//! engine) — once it is over.
//!
//! When a hand-over is over is the engine's rule (`quadmesh_repl::decide_hand_over`:
//! the removed instance says it knows it was removed and this instance holds every own
//! transaction it names, or the log's retention of its removal passed; a removed
//! instance that does not know yet is told). This module asks and tells over HTTP, and
//! only at the controlling instance; a failed change is tried again.

use super::promotion::change_by_engine;
use super::removal::{membership_of, RemovalRefused};
use super::{Node, ORIGIN_HEADER, TOKEN_HEADER};
use crate::Replication;
use quadmesh_repl::{decide_hand_over, HandOver, HandOverEnd, RemovedAnswer};
use std::sync::Arc;
use std::time::Duration;

/// How often the hand-overs are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a removed instance is given to answer.
const ASK_WITHIN: Duration = Duration::from_secs(5);

/// Runs for the server's life.
pub async fn complete_forever(replication: Arc<Replication>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for node in replication.nodes() {
            let config = node.config();
            let own = node.repository().origin();
            if config.controlling().map(|m| m.origin) != Some(own) {
                continue;
            }
            for hand_over in &config.handing_over {
                if let Some(outcome) = look_at(&node, hand_over).await {
                    end(&node, hand_over, outcome).await;
                }
            }
        }
    }
}

/// Asks the removed instance about itself and hands the answer to the engine: how the
/// hand-over ended, or `None` while it is still to come.
async fn look_at(node: &Arc<Node>, hand_over: &HandOver) -> Option<HandOverEnd> {
    let removed = &hand_over.member;
    let config = node.config();
    let held = node.repository().version_vector().get(removed.origin);
    let answer = match membership_of(node, removed, removed.origin, ASK_WITHIN).await {
        Ok(said) => RemovedAnswer::Answered {
            same_cluster: said.cluster_id == config.cluster_id,
            removed: said.removed,
            held: said.held,
        },
        Err(RemovalRefused::NoCopyThere) => RemovedAnswer::HoldsNothing,
        Err(e) => {
            tracing::debug!(repository = %config.repository, instance = %removed.name,
                error = %e, "a removed instance cannot be asked yet what it holds");
            RemovedAnswer::Unreachable
        }
    };
    let decision = decide_hand_over(
        hand_over,
        held,
        answer,
        node.log_retention().as_millis() as u64,
        super::now_ms(),
    );
    if decision.tell_removed {
        tell_removed(node, removed).await;
    }
    if decision.is_waiting() {
        if let RemovedAnswer::Answered { held: of, .. } = answer {
            tracing::debug!(repository = %config.repository, instance = %removed.name,
                held, of, "taking over a removed instance's transactions");
        }
    }
    decision.end
}

/// Tells a removed instance that does not know it yet (it checks with us first).
async fn tell_removed(node: &Arc<Node>, removed: &quadmesh_repl::Member) {
    let config = node.config();
    let url = node.http().repl_url(removed, "removed");
    let told = node
        .http()
        .put(&url)
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, node.repository().origin().0.to_string())
        .timeout(ASK_WITHIN)
        .send()
        .await;
    if let Err(e) = told {
        tracing::debug!(instance = %removed.name, error = %e.without_url(), "cannot tell a removed instance yet");
    }
}

async fn end(node: &Arc<Node>, hand_over: &HandOver, outcome: HandOverEnd) {
    let removed = &hand_over.member;
    let repository = node.repository().name().to_owned();
    let change = HandOverEnd::change(removed.origin);
    match (change_by_engine(node, change).await, outcome) {
        (Ok(_), HandOverEnd::HandedOver { last }) => {
            tracing::info!(%repository, instance = %removed.name, transactions = last,
                "a removed instance handed over every transaction it acknowledged");
        }
        (Ok(_), HandOverEnd::GaveUp { held }) => {
            tracing::error!(%repository, instance = %removed.name, held,
                retention_s = node.log_retention().as_secs(),
                "ACKNOWLEDGED WRITES MAY BE LOST: a removed instance did not hand over what only it held within the log's retention of its removal; the cluster stops waiting for it (transactions of it held here: {held})");
        }
        (Ok(_), HandOverEnd::NothingThere { held }) => {
            tracing::warn!(%repository, instance = %removed.name, held,
                "a removed instance's server holds no copy of the repository (it never got one, or its data is gone): nothing more can come of it, the cluster stops waiting (transactions of it held here: {held})");
        }
        (Err(e), _) => {
            tracing::warn!(%repository, instance = %removed.name, error = %e,
                "cannot end a removed instance's hand-over yet; trying again");
        }
    }
}
