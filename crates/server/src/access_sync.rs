//! Users, roles and grants, cluster-wide: they ride in the log of every replicated
//! repository (as records of its access book, `EntryKind::Meta`), so they replicate,
//! survive restarts and travel in grow snapshots, backups and repairs with the data,
//! with no cluster of their own to manage.
//!
//! This instance's book (`Access`) is what requests are checked against. A change made
//! here is merged into it and committed into every replicated repository here
//! ([`publish`]). [`keep_in_step`] then, every `TICK`, takes into this instance's book
//! what the repositories' books received from peers, and commits into each repository
//! what this instance's book has newer than that repository's book: records of another
//! cluster this instance also belongs to, records made while the repository took no
//! writes, and everything this instance knew before a cluster was made or joined.
//!
//! Rules it keeps:
//! - records keep the stamp of the change that made them wherever they are copied, and
//!   every book takes only records newer than its own (last writer wins per key), so
//!   copying in any order, any number of times, ends with the same books everywhere;
//! - nothing is copied that the target already has as new or newer, so copies stop.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use quadmesh_store::{BookKind, BookRecord, Repository};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often repositories' books and this instance's are brought in step.
const TICK: Duration = Duration::from_millis(100);

/// The records of `records` newer than `kept`'s.
fn newer_than(
    records: &BTreeMap<String, BookRecord>,
    kept: &BTreeMap<String, BookRecord>,
) -> BTreeMap<String, BookRecord> {
    records
        .iter()
        .filter(|(key, record)| {
            kept.get(*key)
                .is_none_or(|mine| record.stamp() > mine.stamp())
        })
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect()
}

/// Whether a repository carries users to a cluster.
fn carries_access(repository: &Repository) -> bool {
    let cluster = repository.cluster();
    cluster.config.is_some() && !cluster.removed && cluster.expired.is_none()
}

/// Commits into `repository` the records of `records` newer than its book's. Blocking.
fn commit_newer(
    repository: &Repository,
    records: &BTreeMap<String, BookRecord>,
) -> quadmesh_store::Result<usize> {
    let mut count = 0;
    repository.commit_book(BookKind::Access, |book, _| {
        let newer = newer_than(records, &book.records());
        count = newer.len();
        Ok(newer)
    })?;
    Ok(count)
}

/// Makes a change of users, roles or grants: in force here at once, and committed into
/// every replicated repository here (a repository that refuses writes now gets it from
/// [`keep_in_step`] later).
pub async fn publish(state: &AppState, records: BTreeMap<String, BookRecord>) -> ApiResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let state = state.clone();
    crate::error::blocking(move || {
        state.access.merge(&records)?;
        for repository in state.catalog.list() {
            if !carries_access(&repository) {
                continue;
            }
            if let Err(e) = commit_newer(&repository, &records) {
                tracing::warn!(repository = %repository.name(), error = %e,
                    "a change of users or grants is not in this repository's log yet; it is tried again");
            }
        }
        Ok::<_, ApiError>(())
    })
    .await
}

/// One round of [`keep_in_step`]. Blocking.
fn step(state: &AppState) {
    for repository in state.catalog.list() {
        if !carries_access(&repository) {
            continue;
        }
        let theirs = repository.access_book().records();
        match state
            .access
            .merge(&newer_than(&theirs, &state.access.book().records()))
        {
            Ok(0) => {}
            Ok(taken) => {
                tracing::debug!(repository = %repository.name(), taken, "took users and grants from a cluster")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot record users and grants received from a cluster");
            }
        }
        let ours = state.access.book().records();
        if newer_than(&ours, &theirs).is_empty() {
            continue;
        }
        match commit_newer(&repository, &ours) {
            Ok(0) => {}
            Ok(count) => {
                tracing::debug!(repository = %repository.name(), count, "passed users and grants on to a cluster")
            }
            Err(e) => {
                tracing::debug!(repository = %repository.name(), error = %e,
                    "cannot pass users and grants on to this cluster now; tried again")
            }
        }
    }
}

/// Keeps this instance's book and every replicated repository's in step, for ever.
pub async fn keep_in_step(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let state = state.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || step(&state)).await {
            tracing::error!(error = %e, "keeping users and grants in step failed");
        }
    }
}
