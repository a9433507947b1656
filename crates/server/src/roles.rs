//! Deployment roles, built in (the seed's `repl.sh`, done by the server): a
//! controlling instance creates its cluster on first start and recovers it on restart;
//! a copy waits for the controlling instance, joins under a unique name, is ready once
//! caught up, and on SIGTERM removes itself before exiting.

use crate::cluster_ops::create_cluster_here;
use crate::config::Role;
use crate::error::ErrorCode;
use crate::readiness::Readiness;
use crate::state::AppState;
use quadmesh_cluster::controlling_recovery;
use quadmesh_repl::wire::ClusterStatus;
use quadmesh_store::StoreError;
use std::time::Duration;

fn set_ready(state: &AppState, readiness: Readiness) {
    state.readiness.send_replace(readiness);
}

async fn resolves(host_port: &str) -> bool {
    tokio::net::lookup_host(host_port)
        .await
        .map(|mut a| a.next().is_some())
        .unwrap_or(false)
}

/// Carries out the role; returns once the instance is set up (readiness then follows
/// replication).
pub async fn run(state: AppState, credentials: Option<(String, String)>) {
    let role = state.config.role.clone();
    // One repository after the other: each is its own cluster.
    let mut result = Ok(());
    for repository in role.repositories() {
        result = match &role {
            Role::Standalone => Ok(()),
            Role::Controlling {
                instance,
                advertise,
                peers,
                ..
            } => {
                controlling(
                    &state,
                    credentials.as_ref(),
                    repository,
                    instance,
                    advertise,
                    peers,
                )
                .await
            }
            Role::Copy {
                instance,
                advertise,
                controlling,
                ..
            } => {
                copy(
                    &state,
                    credentials.clone(),
                    repository,
                    instance,
                    advertise,
                    controlling,
                )
                .await
            }
        }
        .map_err(|e| format!("repository '{repository}': {e}"));
        if result.is_err() {
            break;
        }
    }
    match result {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %e, "the instance could not take its role");
            set_ready(&state, Readiness::NotReady(e));
            return;
        }
    }
    // Ready once caught up with the cluster (or at once, standalone or alone), and
    // while no replicated repository here refuses writes.
    loop {
        // Blocking: both read repositories under their writer locks.
        let (st, role) = (state.clone(), role.clone());
        let readiness = tokio::task::spawn_blocking(move || {
            // A repository that refuses writes (a failure it could not undo, or waiting
            // for its peers after a crash cut its log) makes the instance not ready.
            if let Some(reason) = st.catalog.list().iter().find_map(|r| {
                r.write_refusal()
                    .map(|w| format!("repository '{}' {w}", r.name()))
            }) {
                return Readiness::NotReady(reason);
            }
            if let Some(refusal) = writes_refused(&st) {
                return Readiness::NotReady(refusal);
            }
            for repository in role.repositories() {
                if let Some(node) = st.replication.get(repository) {
                    let lag = node.catch_up_lag();
                    if lag > 0 {
                        return Readiness::NotReady(format!(
                            "catching up: repository '{repository}' is {lag} transactions behind"
                        ));
                    }
                }
            }
            Readiness::Ready
        })
        .await
        .unwrap_or_else(|e| Readiness::NotReady(format!("readiness check failed: {e}")));
        set_ready(&state, readiness);
        if state.shutdown.is_cancelled() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The machine code of a refusal from another quadmesh server.
fn error_code(response: &reqwest::Response) -> Option<ErrorCode> {
    response
        .headers()
        .get(crate::error::ERROR_CODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorCode::parse)
}

/// Why some replicated repository here refuses writes, if one does (it was removed, or
/// away longer than the log is kept). Blocking (reads under the writer locks); `/ready`
/// asks it afresh, so it is not ready from the moment writes are refused.
pub fn writes_refused(state: &AppState) -> Option<String> {
    state.replication.nodes().into_iter().find_map(|node| {
        let repository = node.repository();
        repository
            .cluster()
            .check_writable(repository.name())
            .err()
            .map(|e| e.to_string())
            .or_else(|| {
                // The clock fence (issue 25): an instance whose clock is not known to
                // agree with a majority's is sent no traffic.
                repository.clock_fence_refusal().map(|reason| {
                    format!(
                        "repository '{}' takes no local writes: {reason}",
                        repository.name()
                    )
                })
            })
            .or_else(|| {
                // A log damaged inside (issue 25): no local writes until it is healed.
                repository.log_healing().map(|healing| {
                    format!(
                        "repository '{}' takes no local writes: {}",
                        repository.name(),
                        healing.description
                    )
                })
            })
    })
}

async fn controlling(
    state: &AppState,
    credentials: Option<&(String, String)>,
    repository: &str,
    instance: &str,
    advertise: &str,
    peers: &[String],
) -> Result<(), String> {
    if let Ok(repo) = state.catalog.get(repository) {
        if let Some(config) = repo.cluster().config {
            tracing::info!(repository, "recovered the cluster from the data directory");
            if let Some(other) = config.controlling().filter(|m| m.origin != repo.origin()) {
                tracing::warn!(repository, controlling = %other.name,
                    "the controlling role of this cluster was moved to another member: membership changes go there");
            }
            return Ok(());
        }
    }
    // As the seed's script: wait until our own name resolves, so that the address we
    // hand to others works.
    set_ready(
        state,
        Readiness::NotReady(format!("waiting for {advertise} to resolve")),
    );
    while !resolves(advertise).await {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // No data: first start, or the data is lost. Never fork a running cluster.
    set_ready(
        state,
        Readiness::NotReady("looking for members of an existing cluster".into()),
    );
    if let Some(member) = controlling_recovery::find_cluster(
        &state.replication,
        credentials,
        repository,
        instance,
        peers,
    )
    .await?
    {
        let credentials = credentials.ok_or(
            "the controlling role needs the superuser credentials to re-grow from a member",
        )?;
        set_ready(
            state,
            Readiness::NotReady(format!(
                "re-growing from member {} at {}",
                member.name, member.address
            )),
        );
        return controlling_recovery::regrow_from(
            &state.replication,
            credentials,
            repository,
            instance,
            advertise,
            &member,
        )
        .await;
    }
    tracing::warn!(
        repository,
        peers = ?peers,
        "no member of an existing cluster answered: creating a new cluster"
    );
    create_cluster_here(state, repository, instance, advertise)
        .await
        .map_err(|e| e.to_string())
}

/// How long an expired copy waits for the controlling instance to take over the
/// transactions only it holds before it drops its repository anyway.
const HAND_OVER_WAIT: Duration = Duration::from_secs(120);

/// An expired copy, or one removed while cut off, acknowledged writes before it knew
/// (up to its clock lease): the members pull them from it (it serves any member once it
/// knows it was expired or removed). Waits until the controlling instance — the one the
/// copy is grown again from — holds all of its own transactions, or it was removed and
/// the cluster does not wait for its hand-over, or [`HAND_OVER_WAIT`] passed (then
/// says how many are dropped with the repository).
async fn hand_over_before_dropping(state: &AppState, repository: &quadmesh_store::Repository) {
    let Some(node) = state.replication.get(repository.name()) else {
        return;
    };
    let own = repository.origin();
    let mine = repository.version_vector().get(own);
    let deadline = tokio::time::Instant::now() + HAND_OVER_WAIT;
    let mut held = 0;
    loop {
        let controlling = node.config().controlling().cloned();
        if let Some(controlling) = controlling {
            if let Ok(membership) = quadmesh_cluster::removal::membership_of(
                &node,
                &controlling,
                own,
                Duration::from_secs(5),
            )
            .await
            {
                held = membership.held;
                // Removed and not waited for: nobody takes it any more.
                let dropped = membership.removed && !membership.handing_over;
                if dropped || held >= mine {
                    if held >= mine {
                        tracing::info!(
                            repository = repository.name(),
                            transactions = mine,
                            "the controlling instance holds every transaction of this copy"
                        );
                    }
                    return;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(repository = repository.name(), dropped = mine.saturating_sub(held),
                "the controlling instance did not take over this copy's last transactions in time: they are dropped with it");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn copy(
    state: &AppState,
    credentials: Option<(String, String)>,
    repository: &str,
    instance: &str,
    advertise: &str,
    controlling: &str,
) -> Result<(), String> {
    if let Ok(repo) = state.catalog.get(repository) {
        let cluster = repo.cluster();
        if cluster.config.is_some() && !cluster.removed && cluster.expired.is_none() {
            tracing::info!(repository, "rejoined the cluster from the data directory");
            return Ok(());
        }
        if let Some(reason) = &cluster.expired {
            tracing::warn!(repository, %reason, "this copy was away longer than the log is kept; handing over what only it holds, then dropping it and joining afresh");
            hand_over_before_dropping(state, &repo).await;
        } else if cluster.removed {
            // Removed (by force, perhaps while cut off): what it acknowledged before it
            // knew is handed over too, if the cluster waits for it.
            hand_over_before_dropping(state, &repo).await;
        }
        // A copy that left or was away too long (or a leftover repository): copies are
        // disposable, so it is dropped and the instance joins afresh, under a new
        // identity.
        let (st, name) = (state.clone(), repository.to_owned());
        tokio::task::spawn_blocking(move || {
            st.replication.stop(&name);
            st.catalog.delete(&name)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e: StoreError| e.to_string())?;
    }
    let (user, password) =
        credentials.ok_or("the copy role needs the superuser credentials to join")?;
    let http = state.replication.http().clone();
    set_ready(
        state,
        Readiness::NotReady(format!(
            "waiting for the controlling instance at {controlling}"
        )),
    );
    loop {
        let up = http
            .get(http.url(controlling, "/version"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if up.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (host, port) = advertise
        .rsplit_once(':')
        .ok_or("--advertise must be HOST:PORT")?;
    // The controlling instance: its address, and its repository's name there (ours,
    // unless the instance it names holds the cluster under another).
    let grow = |http: quadmesh_cluster::peer_http::PeerHttp,
                (controlling, its_repository): (String, String)| {
        let url = http.url(
            &controlling,
            &format!("/repositories/{its_repository}/repl/growCluster"),
        );
        let (user, password) = (user.clone(), password.clone());
        async move {
            http.put(url)
                .basic_auth(&user, Some(&password))
                .query(&[
                    ("host", host),
                    ("port", port),
                    ("name", repository),
                    ("user", &user),
                    ("password", &password),
                    ("instanceName", instance),
                ])
                .send()
                .await
        }
    };
    set_ready(state, Readiness::NotReady("joining the cluster".into()));
    // The role may have moved (set-controlling, or a promotion): the instance at
    // `--controlling` then names the one that grows the cluster now.
    let mut controlling = controlling.to_owned();
    let mut its_repository = repository.to_owned();
    loop {
        match grow(http.clone(), (controlling.clone(), its_repository.clone())).await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(repository, instance, controlling, "joined the cluster");
                return Ok(());
            }
            Ok(r) if error_code(&r) == Some(ErrorCode::NotControlling) => {
                match controlling_named_by(&http, &controlling, &its_repository, &user, &password)
                    .await
                {
                    Some((named, named_repository))
                        if (&named, &named_repository) != (&controlling, &its_repository) =>
                    {
                        tracing::warn!(repository, asked = %controlling, %named, %named_repository,
                            "the controlling role moved; joining through the instance it names");
                        controlling = named;
                        its_repository = named_repository;
                    }
                    _ => {
                        tracing::warn!(repository, %controlling, "not the controlling instance, and it names no other; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                let name_taken = error_code(&r) == Some(ErrorCode::NameTaken);
                let text = r.text().await.unwrap_or_default();
                if name_taken {
                    // A previous copy of this name died without leaving: take its place.
                    // Its data is gone (this instance dropped or never had it), so
                    // whatever only it held is lost already: removed by force.
                    tracing::warn!(
                        instance,
                        "an instance of this name is still listed; removing it first"
                    );
                    let _ = http
                        .put(http.url(
                            &controlling,
                            &format!("/repositories/{its_repository}/repl/remove"),
                        ))
                        .basic_auth(&user, Some(&password))
                        .query(&[
                            ("instanceName", instance),
                            ("force", "true"),
                            // Its data is gone: the cluster need not wait for it.
                            ("hand-over", "false"),
                        ])
                        .send()
                        .await;
                } else {
                    tracing::warn!(reason = %text.trim(), "joining refused; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::warn!(%status, reason = %text.trim(), "joining failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                tracing::warn!(
                    error = %quadmesh_cluster::peer_http::describe(&e),
                    "cannot reach the controlling instance; retrying"
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The address and repository name of the controlling member in the configuration the
/// instance at `at` (holding `repository`) holds (from its `repl/status`).
async fn controlling_named_by(
    http: &quadmesh_cluster::peer_http::PeerHttp,
    at: &str,
    repository: &str,
    user: &str,
    password: &str,
) -> Option<(String, String)> {
    let status: ClusterStatus = http
        .get(http.url(at, &format!("/repositories/{repository}/repl/status")))
        .basic_auth(user, Some(password))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    status
        .controlling()
        .map(|i| (i.address.clone(), i.repository.clone()))
}

/// On SIGTERM, a copy leaves the cluster before the server stops (the seed's trap).
pub async fn leave(state: &AppState, credentials: &Option<(String, String)>) {
    if !matches!(state.config.role, Role::Copy { .. }) {
        return;
    }
    set_ready(
        state,
        Readiness::NotReady("this instance is leaving its cluster".into()),
    );
    // Then stop acknowledging local writes: one acknowledged after the members last
    // pulled from this copy would be lost with it. Remote transactions still apply and
    // peers still pull until the copy has left.
    for repository in state.config.role.repositories() {
        let Ok(handle) = state.catalog.get(repository) else {
            continue;
        };
        if let Err(e) =
            tokio::task::spawn_blocking(move || handle.stop_local_writes_for_leaving()).await
        {
            tracing::warn!(error = %e, repository, "could not stop local writes before leaving");
        }
    }
    for repository in state.config.role.repositories() {
        leave_one(state, credentials, repository).await;
    }
}

async fn leave_one(state: &AppState, credentials: &Option<(String, String)>, repository: &str) {
    let Role::Copy {
        instance,
        controlling,
        ..
    } = &state.config.role
    else {
        return;
    };
    let Some((user, password)) = credentials else {
        return;
    };
    // The controlling instance the configuration names (the role may have moved since
    // this copy joined through `--controlling`), under its own repository name.
    let url = match state
        .replication
        .get(repository)
        .and_then(|node| node.config().controlling().cloned())
    {
        Some(member) => state.replication.http().repl_url(&member, "remove"),
        None => state.replication.http().url(
            controlling,
            &format!("/repositories/{repository}/repl/remove"),
        ),
    };
    // Refused while the controlling instance cannot tell that the others hold all this
    // copy's writes: they are still being pulled (this server serves until it has
    // left), so ask again for a few seconds, then stay listed rather than lose them.
    for attempt in 0..10 {
        let result = state
            .replication
            .http()
            .put(&url)
            .basic_auth(user, Some(password))
            .query(&[("instanceName", instance)])
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(instance, repository, "left the cluster");
                return;
            }
            Ok(r)
                if matches!(
                    error_code(&r),
                    Some(ErrorCode::Unreplicated | ErrorCode::ChangedMeanwhile)
                ) && attempt < 9 =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::warn!(%status, reason = %text.trim(), "leaving the cluster was refused");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not reach the controlling instance to leave");
                return;
            }
        }
    }
}
