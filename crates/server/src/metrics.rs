//! `/metrics` in the Prometheus text format: what operators watch.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use quadmesh_cluster::now_ms;
use quadmesh_repl::wire::{PeerState, Role};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepositoryLabels {
    repository: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DigestCheckLabels {
    repository: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    repository: String,
    peer: String,
    /// The peer's own repository name (members may hold the cluster under another).
    peer_repository: String,
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

    let password_checks = Counter::<u64>::default();
    password_checks.inc_by(state.auth.password_checks());
    registry.register(
        "password_checks",
        "Password hashes checked since start (sign-ins not answered from the cache of verified credentials)",
        password_checks,
    );
    registry.register(
        "result_streams_running",
        "Streamed responses (query results, statements, exports) still being produced",
        state.http_metrics.streams.active.clone(),
    );
    registry.register(
        "result_streams_abandoned",
        "Streamed responses stopped because their client went away",
        state.http_metrics.streams.abandoned.clone(),
    );

    let commits = Family::<RepositoryLabels, Counter>::default();
    let applied = Family::<RepositoryLabels, Counter>::default();
    let log_entries = Family::<RepositoryLabels, Gauge>::default();
    let register_entries = Family::<RepositoryLabels, Gauge>::default();
    let register_tombstones = Family::<RepositoryLabels, Gauge>::default();
    let writes_refused = Family::<RepositoryLabels, Gauge>::default();
    let rollbacks = Family::<RepositoryLabels, Counter>::default();
    let log_syncs = Family::<RepositoryLabels, Counter>::default();
    let unavailable = Family::<RepositoryLabels, Gauge>::default();
    for repository in state.catalog.unavailable().into_keys() {
        unavailable
            .get_or_create(&RepositoryLabels { repository })
            .set(1);
    }
    for repository in state.catalog.list() {
        let labels = RepositoryLabels {
            repository: repository.name().to_owned(),
        };
        writes_refused
            .get_or_create(&labels)
            .set(i64::from(repository.write_refusal().is_some()));
        rollbacks
            .get_or_create(&labels)
            .inc_by(repository.rollbacks());
        log_syncs
            .get_or_create(&labels)
            .inc_by(repository.log_syncs());
        let (local, remote) = repository.transaction_counts();
        commits.get_or_create(&labels).inc_by(local);
        applied.get_or_create(&labels).inc_by(remote);
        log_entries
            .get_or_create(&labels)
            .set(repository.log_len().0 as i64);
        register_entries
            .get_or_create(&labels)
            .set(repository.register_len() as i64);
        register_tombstones
            .get_or_create(&labels)
            .set(repository.tombstones_len() as i64);
    }
    registry.register(
        "commits",
        "Transactions committed on this instance",
        commits,
    );
    registry.register(
        "repository_writes_refused",
        "1 while a repository refuses writes (a failure it could not undo, or waiting for its peers after a crash cut its log)",
        writes_refused,
    );
    registry.register(
        "repository_unavailable",
        "1 for a repository on this server that could not be opened (its log or files are damaged); the others are served",
        unavailable,
    );
    registry.register(
        "log_rollbacks",
        "Log entries rolled back because they could not be applied (e.g. a full disk)",
        rollbacks,
    );
    registry.register(
        "log_syncs",
        "Shared syncs of the replication log (group commit: each makes every transaction waiting for it durable; commits plus applied transactions over this is the group size)",
        log_syncs,
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
    registry.register(
        "register_tombstones",
        "Range tombstones (deletes by pattern) kept until every member sent everything older",
        register_tombstones,
    );

    registry.register(
        "replication_apply_delay_seconds",
        "Seconds from a transaction's commit on its origin to its being applied here",
        state.replication.apply_delay.clone(),
    );
    let lag_transactions = Family::<PeerLabels, Gauge>::default();
    let lag_seconds = Family::<PeerLabels, Gauge<f64, AtomicU64>>::default();
    let connected = Family::<PeerLabels, Gauge>::default();
    let behind = Family::<PeerLabels, Gauge>::default();
    let contents_differ = Family::<PeerLabels, Gauge>::default();
    let clock_offset = Family::<PeerLabels, Gauge<f64, AtomicU64>>::default();
    let clock_fenced = Family::<RepositoryLabels, Gauge>::default();
    let digest_checks = Family::<DigestCheckLabels, Counter>::default();
    let frontier_age = Family::<RepositoryLabels, Gauge<f64, AtomicU64>>::default();
    let writes_refused = Family::<RepositoryLabels, Gauge>::default();
    let store_damaged = Family::<RepositoryLabels, Gauge>::default();
    let log_holes = Family::<RepositoryLabels, Gauge>::default();
    let handing_over = Family::<RepositoryLabels, Gauge>::default();
    let log_frames_put_back = Family::<RepositoryLabels, Counter>::default();
    let repairs = Family::<ResultLabels, Counter>::default();
    let config_epoch = Family::<RepositoryLabels, Gauge>::default();
    let controlling = Family::<RepositoryLabels, Gauge>::default();
    let now = now_ms();
    for node in state.replication.nodes() {
        let status = node.status();
        for instance in status
            .instances
            .iter()
            .filter(|i| i.state != PeerState::Myself)
        {
            let labels = PeerLabels {
                repository: status.repository.clone(),
                peer: instance.name.clone(),
                peer_repository: instance.repository.clone(),
            };
            lag_transactions
                .get_or_create(&labels)
                .set(instance.lag_transactions as i64);
            lag_seconds
                .get_or_create(&labels)
                .set(instance.lag_ms as f64 / 1000.0);
            connected
                .get_or_create(&labels)
                .set(i64::from(instance.state == PeerState::Connected));
            behind
                .get_or_create(&labels)
                .set(i64::from(instance.behind.is_some()));
            if let Some(offset) = instance.clock_offset_ms {
                clock_offset
                    .get_or_create(&labels)
                    .set(offset as f64 / 1000.0);
            }
            contents_differ
                .get_or_create(&labels)
                .set(i64::from(matches!(
                    instance.contents,
                    Some(quadmesh_repl::wire::PeerComparison::Differs { .. })
                )));
        }
        let (agreeing, differing) = node.anti_entropy.checks();
        for (result, count) in [("agrees", agreeing), ("differs", differing)] {
            digest_checks
                .get_or_create(&DigestCheckLabels {
                    repository: status.repository.clone(),
                    result,
                })
                .inc_by(count);
        }
        writes_refused
            .get_or_create(&RepositoryLabels {
                repository: status.repository.clone(),
            })
            .set(i64::from(status.writes_refused.is_some()));
        store_damaged
            .get_or_create(&RepositoryLabels {
                repository: status.repository.clone(),
            })
            .set(i64::from(node.repository().knows_damage()));
        let labels = RepositoryLabels {
            repository: status.repository.clone(),
        };
        log_holes.get_or_create(&labels).set(
            status
                .log_healing
                .as_ref()
                .map_or(0, |healing| healing.holes.len() as i64),
        );
        log_frames_put_back
            .get_or_create(&labels)
            .inc_by(status.log_frames_put_back);
        handing_over
            .get_or_create(&labels)
            .set(status.handing_over.len() as i64);
        clock_fenced
            .get_or_create(&RepositoryLabels {
                repository: status.repository.clone(),
            })
            .set(i64::from(status.clock_fenced.is_some()));
        let labels = RepositoryLabels {
            repository: status.repository.clone(),
        };
        config_epoch
            .get_or_create(&labels)
            .set(status.config_epoch as i64);
        controlling.get_or_create(&labels).set(i64::from(
            status
                .instances
                .iter()
                .any(|i| i.state == PeerState::Myself && i.role == Role::Controlling),
        ));
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
        "replication_peer_behind",
        "1 while a peer does not keep up: the oldest transaction it lacks is older than replication's falling-behind bound (1 s); commits are not slowed for it (see ARCHITECTURE.md, back-pressure)",
        behind,
    );
    registry.register(
        "replication_peer_connected",
        "Whether this instance's pull stream from the peer is open",
        connected,
    );
    registry.register(
        "replication_contents_differ",
        "1 when this instance's contents differed from the peer's at the same version vector (anti-entropy)",
        contents_differ,
    );
    registry.register(
        "replication_clock_offset_seconds",
        "This instance's clock minus the peer's, by the last clock probe that still counts for the clock fence",
        clock_offset,
    );
    registry.register(
        "replication_clock_fenced",
        "1 while the clock fence refuses local writes: this instance's clock is not known to be within the maximum offset of a majority of the members",
        clock_fenced,
    );
    registry.register(
        "replication_digest_checks",
        "Content comparisons with peers at a common version vector since start, by result",
        digest_checks,
    );
    for (result, count) in [
        ("done", &state.replication.repairs.done),
        ("failed", &state.replication.repairs.failed),
    ] {
        repairs
            .get_or_create(&ResultLabels { result })
            .inc_by(count.load(Ordering::Relaxed));
    }
    registry.register(
        "replication_log_holes",
        "Damaged spans found inside this instance's replication log and not yet healed from the members (the repository takes no local writes meanwhile)",
        log_holes,
    );
    registry.register(
        "replication_handing_over",
        "Members removed by force that are still to hand over what only they held: the cluster pulls their transactions when they are heard again and holds its frontier for them until then (at most the log's retention)",
        handing_over,
    );
    registry.register(
        "replication_log_frames_put_back",
        "Transactions fetched back from the members and put back into this instance's damaged replication log since start",
        log_frames_put_back,
    );
    registry.register(
        "replication_store_damaged",
        "1 while a scrub's finding that this instance's store differs from what its write path put there is not repaired",
        store_damaged,
    );
    registry.register(
        "replication_repairs",
        "Anti-entropy repairs of this instance's store from a peer's snapshot since start, by result",
        repairs,
    );
    registry.register(
        "replication_writes_refused",
        "Whether this instance refuses writes to the repository (away longer than the log is kept, or removed)",
        writes_refused,
    );
    registry.register(
        "replication_config_epoch",
        "The epoch of the cluster configuration held here (raised by each promotion)",
        config_epoch,
    );
    registry.register(
        "replication_controlling",
        "1 when the configuration held here names this instance as the controlling one (only the one of the newest epoch can change the membership)",
        controlling,
    );
    registry.register(
        "frontier_age_seconds",
        "How far the frontier (register pruning point) trails now",
        frontier_age,
    );

    let clock = state.catalog.clock();
    let refusals = clock.refusals();
    let clock_refusals = Counter::<u64>::default();
    clock_refusals.inc_by(refusals.count);
    registry.register(
        "clock_peer_refusals",
        "Peer clock readings refused as further ahead than the maximum offset",
        clock_refusals,
    );
    let peer_ahead = Gauge::<f64, AtomicU64>::default();
    peer_ahead.set(refusals.recent_ahead_ms.unwrap_or(0) as f64 / 1000.0);
    registry.register(
        "clock_peer_ahead_seconds",
        "How far ahead of ours the last refused peer clock was (0 when none was refused in the last 5 s)",
        peer_ahead,
    );
    let ahead_of_physical = Gauge::<f64, AtomicU64>::default();
    ahead_of_physical.set(clock.ahead_of_physical_ms() as f64 / 1000.0);
    registry.register(
        "clock_ahead_of_physical_seconds",
        "How far this instance's hybrid clock is ahead of its physical clock (e.g. a clock stepped back across a restart)",
        ahead_of_physical,
    );

    if state.tls.serving.load(Ordering::Relaxed) {
        let tls = &state.tls;
        let expires_at = Gauge::<i64>::default();
        expires_at.set(tls.expires_at.load(Ordering::Relaxed));
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the certificate served now expires (Unix time)",
            expires_at,
        );
        for (name, help, value) in [
            (
                "tls_certificate_reloads",
                "Changed certificate files loaded without a restart",
                &tls.reloads,
            ),
            (
                "tls_certificate_reload_failures",
                "Changed certificate files that could not be used (the previous certificate kept)",
                &tls.reload_failures,
            ),
            (
                "tls_handshake_failures",
                "TLS handshakes that failed or did not end within the header-read timeout",
                &tls.handshake_failures,
            ),
        ] {
            let counter = Counter::<u64>::default();
            counter.inc_by(value.load(Ordering::Relaxed));
            registry.register(name, help, counter);
        }
    }

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
