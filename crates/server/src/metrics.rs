//! `/metrics` in the Prometheus text format: what operators watch.

use crate::replication::now_ms;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepositoryLabels {
    repository: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    repository: String,
    peer: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// HTTP metrics, kept for the life of the server.
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Everything else is read at scrape time from the repositories and nodes (on a
/// blocking thread: it reads under their locks).
pub async fn metrics(State(state): State<AppState>) -> Response {
    tokio::task::spawn_blocking(move || render(state))
        .await
        .unwrap_or_else(|e| {
            crate::error::ApiError::Internal(format!("metrics failed: {e}")).into_response()
        })
}

fn render(state: AppState) -> Response {
    let mut registry = Registry::with_prefix("quadmesh");
    registry.register(
        "http_requests",
        "HTTP requests by route, method and status",
        state.http_metrics.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP request latency by route and method",
        state.http_metrics.latency.clone(),
    );

    let commits = Family::<RepositoryLabels, Counter>::default();
    let applied = Family::<RepositoryLabels, Counter>::default();
    let log_entries = Family::<RepositoryLabels, Gauge>::default();
    let register_entries = Family::<RepositoryLabels, Gauge>::default();
    for repository in state.catalog.list() {
        let labels = RepositoryLabels {
            repository: repository.name().to_owned(),
        };
        let (local, remote) = repository.transaction_counts();
        commits.get_or_create(&labels).inc_by(local);
        applied.get_or_create(&labels).inc_by(remote);
        log_entries
            .get_or_create(&labels)
            .set(repository.log_len().0 as i64);
        register_entries
            .get_or_create(&labels)
            .set(repository.register_len() as i64);
    }
    registry.register(
        "commits",
        "Transactions committed on this instance",
        commits,
    );
    registry.register(
        "remote_transactions_applied",
        "Transactions from peers applied here",
        applied,
    );
    registry.register(
        "log_entries",
        "Transactions kept in the replication log",
        log_entries,
    );
    registry.register(
        "register_entries",
        "Last-writer register entries kept",
        register_entries,
    );

    let lag_transactions = Family::<PeerLabels, Gauge>::default();
    let lag_seconds = Family::<PeerLabels, Gauge<f64, AtomicU64>>::default();
    let connected = Family::<PeerLabels, Gauge>::default();
    let frontier_age = Family::<RepositoryLabels, Gauge<f64, AtomicU64>>::default();
    let writes_refused = Family::<RepositoryLabels, Gauge>::default();
    let now = now_ms();
    for node in state.replication.nodes() {
        let status = node.status();
        for instance in status.instances.iter().filter(|i| i.state != "self") {
            let labels = PeerLabels {
                repository: status.repository.clone(),
                peer: instance.name.clone(),
            };
            lag_transactions
                .get_or_create(&labels)
                .set(instance.lag_transactions as i64);
            lag_seconds
                .get_or_create(&labels)
                .set(instance.lag_ms as f64 / 1000.0);
            connected
                .get_or_create(&labels)
                .set(i64::from(instance.state == "connected"));
        }
        writes_refused
            .get_or_create(&RepositoryLabels {
                repository: status.repository.clone(),
            })
            .set(i64::from(status.writes_refused.is_some()));
        let frontier = node.frontier_ms.load(Ordering::Relaxed);
        if frontier > 0 {
            frontier_age
                .get_or_create(&RepositoryLabels {
                    repository: status.repository.clone(),
                })
                .set(now.saturating_sub(frontier) as f64 / 1000.0);
        }
    }
    registry.register(
        "replication_lag_transactions",
        "Transactions a peer lacks that this instance has",
        lag_transactions,
    );
    registry.register(
        "replication_lag_seconds",
        "Age of the oldest transaction a peer lacks",
        lag_seconds,
    );
    registry.register(
        "replication_peer_connected",
        "Whether this instance's pull stream from the peer is open",
        connected,
    );
    registry.register(
        "replication_writes_refused",
        "Whether this instance refuses writes to the repository (away longer than the log is kept, or removed)",
        writes_refused,
    );
    registry.register(
        "frontier_age_seconds",
        "How far the frontier (register pruning point) trails now",
        frontier_age,
    );

    let sessions = Gauge::<i64>::default();
    sessions.set(state.sessions.open_count() as i64);
    registry.register("sessions_open", "Open sessions", sessions);

    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        return crate::error::ApiError::Internal(format!("cannot encode metrics: {e}"))
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
