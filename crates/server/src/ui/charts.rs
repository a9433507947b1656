//! The replication page's charts: the task that samples every replicated repository
//! (on a blocking thread: a node's status reads the log and the register), and the
//! samples as JSON for the page's script.

use super::samples::{Sample, INTERVAL, WINDOW};
use crate::access::{Need, Rights};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Samples every replicated repository of this instance each [`INTERVAL`], for ever.
pub async fn keep_sampling(state: AppState) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || sample_all(&state)).await;
    }
}

fn sample_all(state: &AppState) {
    let mut names = Vec::new();
    for repository in state.catalog.list() {
        let name = repository.name().to_owned();
        let Some(node) = state.replication.get(&name) else {
            continue;
        };
        let status = node.status();
        let (committed, applied) = repository.transaction_counts();
        let peers = status
            .instances
            .iter()
            .filter(|i| i.name != status.instance);
        let sample = Sample {
            at: quadmesh_cluster::now_ms(),
            committed,
            applied,
            lag_ms: peers.clone().map(|i| (i.name.clone(), i.lag_ms)).collect(),
            lag_transactions: peers
                .map(|i| (i.name.clone(), i.lag_transactions))
                .collect(),
        };
        state.ui_samples.push(&name, sample);
        names.push(name);
    }
    state.ui_samples.retain(&names);
}

/// `GET /ui/repositories/NAME/replication/samples`: the last 15 minutes.
pub async fn samples(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
) -> Response {
    if let Err(e) = rights.require(&name, Need::Read) {
        return e.into_response();
    }
    if let Err(e) = state.catalog.get(&name) {
        return ApiError::from(e).into_response();
    }
    let now = quadmesh_cluster::now_ms();
    Json(serde_json::json!({
        "now": now,
        "intervalMs": INTERVAL.as_millis() as u64,
        "windowMs": WINDOW.as_millis() as u64,
        "samples": state.ui_samples.window(&name, now),
    }))
    .into_response()
}
