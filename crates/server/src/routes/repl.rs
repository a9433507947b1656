//! Replication REST, spelled as AllegroGraph's: `createCluster`, `growCluster`,
//! `remove`, `status` — plus the instance-to-instance calls (`stream`, `install`,
//! `removed`).

use crate::audit::{self, Caller};
use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::replication::removal::{confirm_removed, Membership};
use crate::replication::snapshot_transfer;
use crate::replication::stream::pull_stream;
use crate::replication::{
    refusal_response, Node, PeerRefusal, RefusalCode, ORIGIN_HEADER, TOKEN_HEADER,
    VERSION_VECTOR_HEADER,
};
use crate::secrets::constant_time_eq;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quadmesh_repl::{
    admit_puller, ClusterConfig, Member, MembershipError, OriginId, Unreplicated, VersionVector,
};
use quadmesh_store::StoreError;
use std::sync::Arc;

fn required<'a>(params: &'a Params, name: &str) -> ApiResult<&'a str> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("parameter '{name}' is required")))
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// `host:port` from the `host` and `port` parameters (defaults: this machine's name
/// and this server's port).
fn address(params: &Params, state: &AppState) -> ApiResult<String> {
    let host = match params.get("host").filter(|h| !h.is_empty()) {
        Some(h) => h.to_owned(),
        None => hostname::get()
            .map(|n| n.to_string_lossy().into_owned())
            .map_err(|e| ApiError::Internal(format!("cannot tell this host's name: {e}")))?,
    };
    let port: u16 = params.number("port")?.unwrap_or(state.config.port);
    Ok(format!("{host}:{port}"))
}

/// `PUT /repositories/NAME/repl/createCluster?host=&port=&instanceName=`: makes the
/// repository (created if missing, data kept if not) the first, controlling instance.
pub async fn create_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    let instance = required(&params, "instanceName")?.to_owned();
    let address = address(&params, &state)?;
    create_cluster_here(&state, &name, &instance, &address).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes repository `name` of this server the controlling instance of a new cluster.
pub async fn create_cluster_here(
    state: &AppState,
    name: &str,
    instance: &str,
    address: &str,
) -> ApiResult<()> {
    let (st, name, instance, address) = (
        state.clone(),
        name.to_owned(),
        instance.to_owned(),
        address.to_owned(),
    );
    let repository = blocking(move || {
        let repository = match st.catalog.get(&name) {
            Ok(r) => r,
            Err(StoreError::RepositoryNotFound(_)) => st.catalog.create(&name)?,
            Err(e) => return Err(e.into()),
        };
        let origin = repository.origin();
        repository.commit_config(|current, time| {
            if current.is_some() {
                return Err(MembershipError::AlreadyInCluster(name.clone()).into());
            }
            Ok(ClusterConfig::new(
                random_hex(8),
                name.clone(),
                random_hex(32),
                Member {
                    name: instance.clone(),
                    origin,
                    address: address.clone(),
                    controlling: true,
                    added_at: time,
                },
            ))
        })?;
        tracing::info!(repository = %name, instance = %instance, %address, "created a replication cluster");
        Ok(repository)
    })
    .await?;
    state.replication.ensure(repository);
    Ok(())
}

/// The node of a repository whose controlling instance this is.
fn controlling_node(state: &AppState, name: &str) -> ApiResult<Arc<Node>> {
    let node = state
        .replication
        .get(name)
        .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name.to_owned())))?;
    let config = node.config();
    let controlling = config.controlling().cloned();
    match controlling {
        Some(c) if c.origin == node.repository().origin() => Ok(node),
        Some(c) => Err(StoreError::from(MembershipError::NotControlling(format!(
            "{} at {}",
            c.name, c.address
        )))
        .into()),
        None => Err(ApiError::Internal(
            "the cluster has no controlling instance".into(),
        )),
    }
}

/// `PUT /repositories/NAME/repl/setControlling?instanceName=` (at the controlling
/// instance): the controlling role moves to that member; from then on only it grows
/// and removes.
pub async fn set_controlling(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    let instance = required(&params, "instanceName")?.to_owned();
    let node = controlling_node(&state, &name)?;
    let repository = node.repository().clone();
    let to = instance.clone();
    blocking(move || {
        repository.commit_config(|current, _| {
            let current = current
                .ok_or_else(|| MembershipError::NotInCluster(repository.name().to_owned()))?;
            Ok(current.with_controlling_moved(&to)?)
        })?;
        node.maintain();
        Ok(())
    })
    .await?;
    tracing::info!(target: "quadmesh::audit", repository = %name, %instance, "the controlling role moved");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /repositories/NAME/repl/growCluster?host=&port=&name=&user=&password=&instanceName=`
/// (at the controlling instance): adds the instance, copies a snapshot to the server
/// at `host:port` as repository `name`, which then streams from the snapshot's cut.
pub async fn grow_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let instance = Params::from_uri(&uri)
        .get("instanceName")
        .map(str::to_owned);
    let outcome = grow(state, name.clone(), uri).await;
    audit::change(
        &caller,
        "cluster-grow",
        &name,
        instance.as_deref(),
        &outcome,
    );
    outcome
}

async fn grow(state: AppState, name: String, uri: Uri) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    let instance = required(&params, "instanceName")?.to_owned();
    let address = format!(
        "{}:{}",
        required(&params, "host")?,
        params.number::<u16>("port")?.unwrap_or(10035)
    );
    let target_name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .unwrap_or(&name)
        .to_owned();
    if target_name != name {
        // Members reach one another's copy under the cluster's repository name.
        return Err(ApiError::BadRequest(format!(
            "cannot grow repository '{name}' into a repository named '{target_name}': every instance of a cluster holds it under the same name; grow it into '{name}' on that server"
        )));
    }
    let user = required(&params, "user")?.to_owned();
    let password = required(&params, "password")?.to_owned();
    let node = controlling_node(&state, &name)?;
    if node.config().member_named(&instance).is_some() {
        return Err(StoreError::from(MembershipError::NameTaken(instance)).into());
    }
    let repository = node.repository().clone();
    let origin = OriginId(rand::random::<u64>() >> 1);
    let scratch = state.catalog.scratch_dir()?;
    let (repo, member_name, member_address, dir) = (
        repository.clone(),
        instance.clone(),
        address.clone(),
        scratch.clone(),
    );
    let taken = blocking(move || {
        repo.commit_config(|current, time| {
            let current =
                current.ok_or_else(|| MembershipError::NotInCluster(repo.name().to_owned()))?;
            Ok(current.with_member(Member {
                name: member_name,
                origin,
                address: member_address,
                controlling: false,
                added_at: time,
            })?)
        })?;
        let started = std::time::Instant::now();
        let snapshot_state = repo.snapshot(&dir.join("store"))?;
        tracing::info!(
            millis = started.elapsed().as_millis() as u64,
            "snapshot taken for a new instance"
        );
        Ok(snapshot_state)
    })
    .await;
    let pushed = match taken {
        Ok(snapshot_state) => {
            // Packed as it is sent; the scratch directory goes when the packing ends.
            let body = snapshot_transfer::pack_stream(
                scratch.clone(),
                scratch.join("store"),
                snapshot_state,
            );
            push_snapshot(
                &state,
                &address,
                &target_name,
                &instance,
                origin,
                &user,
                &password,
                reqwest::Body::wrap_stream(body),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    if let Err(error) = pushed {
        // Undo the membership: an instance that never got its snapshot is not a member.
        let repo = repository.clone();
        let undo = instance.clone();
        let _ = blocking(move || {
            repo.commit_config(|current, _| {
                let current =
                    current.ok_or_else(|| MembershipError::NotInCluster(repo.name().to_owned()))?;
                Ok(current.without_member(&undo)?.0)
            })?;
            Ok(())
        })
        .await;
        return Err(error);
    }
    let maintained = node.clone();
    blocking(move || {
        maintained.maintain();
        Ok(())
    })
    .await?;
    tracing::info!(repository = %name, %instance, %address, "grew the cluster");
    Ok(StatusCode::NO_CONTENT)
}

#[allow(clippy::too_many_arguments)]
async fn push_snapshot(
    state: &AppState,
    address: &str,
    repository: &str,
    instance: &str,
    origin: OriginId,
    user: &str,
    password: &str,
    body: reqwest::Body,
) -> ApiResult<()> {
    let url = format!("http://{address}/repositories/{repository}/repl/install");
    let response = state
        .replication
        .http()
        .put(&url)
        .query(&[
            ("instanceName", instance),
            ("origin", &origin.0.to_string()),
        ])
        .basic_auth(user, Some(password))
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ApiError::Upstream(format!("cannot reach the new instance at {address}: {e}"))
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(ApiError::Upstream(format!(
            "the new instance at {address} refused the snapshot: {status}: {}",
            text.trim()
        )));
    }
    Ok(())
}

/// `PUT /repositories/NAME/repl/install?instanceName=&origin=` (from the controlling
/// instance, with this server's credentials): makes the repository from the snapshot
/// in the body and starts replicating.
pub async fn install(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    body: Body,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    let origin = OriginId(
        params
            .number::<u64>("origin")?
            .ok_or_else(|| ApiError::BadRequest("parameter 'origin' is required".into()))?,
    );
    quadmesh_store::validate_repository_name(&name)?;
    if state.catalog.get(&name).is_ok() {
        return Err(StoreError::RepositoryExists(name).into());
    }
    let (st, installed_name) = (state.clone(), name.clone());
    let result = super::backup::receive_archive(&state, body, move |store, snapshot_state| {
        if let Some(cluster) = snapshot_state.config.as_ref().map(|c| &c.repository) {
            if *cluster != installed_name {
                return Err(ApiError::BadRequest(format!(
                    "the snapshot is of a cluster of repository '{cluster}', which cannot be installed as '{installed_name}': every instance holds it under the same name"
                )));
            }
        }
        Ok(st.catalog.install(&installed_name, store, snapshot_state, origin)?)
    })
    .await;
    let repository = result?;
    tracing::info!(repository = %repository.name(), origin = %origin, "installed a snapshot; joining the cluster");
    state.replication.ensure(repository);
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /repositories/NAME/repl/remove?instanceName=&force=` (at the controlling
/// instance). Refused (409) when the instance may hold transactions no remaining member
/// has — it holds some by its last report, or it cannot be heard from now, so nobody
/// can tell — unless `force=true`: removing it discards them.
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let instance = Params::from_uri(&uri)
        .get("instanceName")
        .map(str::to_owned);
    let outcome = remove_instance(state, name.clone(), uri).await;
    audit::change(
        &caller,
        "cluster-remove",
        &name,
        instance.as_deref(),
        &outcome,
    );
    outcome
}

async fn remove_instance(state: AppState, name: String, uri: Uri) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    let instance = required(&params, "instanceName")?.to_owned();
    let force = params.flag("force")?.unwrap_or(false);
    let node = controlling_node(&state, &name)?;
    let repository = node.repository().clone();
    if let Some(leaving) = node.config().member_named(&instance).map(|m| m.origin) {
        let repo = repository.clone();
        let local = blocking(move || Ok(repo.version_vector())).await?;
        let fresh_ms = crate::replication::STALL_AFTER.as_millis() as u64;
        let verdict =
            node.view()
                .unreplicated(leaving, &local, crate::replication::now_ms(), fresh_ms);
        let detail = match verdict {
            Unreplicated::Nothing => None,
            Unreplicated::Transactions(n) => Some(format!(
                "holds {n} transaction{} no other member has yet",
                if n == 1 { "" } else { "s" }
            )),
            Unreplicated::Unknown(why) => Some(format!(
                "cannot be asked what it holds ({why}): it may hold acknowledged writes no other member has"
            )),
        };
        if let Some(detail) = detail {
            if !force {
                return Err(StoreError::from(MembershipError::Unreplicated {
                    name: instance,
                    detail,
                })
                .into());
            }
            tracing::warn!(repository = %name, %instance, %detail, "removing an instance by force");
        }
    }
    let (repo, leaving) = (repository.clone(), instance.clone());
    let (config, removed) = blocking(move || {
        let mut removed = None;
        let config = repo.commit_config(|current, _| {
            let current =
                current.ok_or_else(|| MembershipError::NotInCluster(repo.name().to_owned()))?;
            let (next, member) = current.without_member(&leaving)?;
            removed = Some(member);
            Ok(next)
        })?;
        Ok((config, removed.expect("set when the change succeeded")))
    })
    .await?;
    // Tell it at once (it would also learn on its next pull); it may be gone already.
    let url = format!(
        "http://{}/repositories/{}/repl/removed",
        removed.address, name
    );
    let told = state
        .replication
        .http()
        .put(&url)
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, repository.origin().0.to_string())
        // It asks us back before it believes it.
        .timeout(std::time::Duration::from_secs(8))
        .send()
        .await;
    let maintained = node.clone();
    blocking(move || {
        maintained.maintain();
        Ok(())
    })
    .await?;
    tracing::info!(repository = %name, %instance, told = told.is_ok(), "removed an instance from the cluster");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /repositories/NAME/repl/status`.
pub async fn status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    state.catalog.get(&name)?;
    let node = state
        .replication
        .get(&name)
        .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name.clone())))?;
    let status = blocking(move || {
        node.maintain();
        Ok(node.status())
    })
    .await?;
    Ok(Json(status).into_response())
}

/// The node, if the request carries its cluster's token.
pub(crate) fn authenticated_peer(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
) -> ApiResult<Arc<Node>> {
    let node = state
        .replication
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("repository '{name}' is not replicated here")))?;
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if token.is_empty() || !constant_time_eq(token.as_bytes(), node.config().token.as_bytes()) {
        // Said plainly: a member whose peer's data was replaced by another cluster's
        // shows this in its status instead of a bare refusal.
        return Err(ApiError::Forbidden(format!(
            "wrong or missing cluster token: this instance holds repository '{name}' in cluster {}, not the caller's",
            node.config().cluster_id
        )));
    }
    Ok(node)
}

/// `GET /repositories/NAME/repl/stream` (a peer, with the cluster token): the pull stream.
pub async fn stream(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let node = authenticated_peer(&state, &name, &headers)?;
    let origin: u64 = headers
        .get(ORIGIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("missing or invalid {ORIGIN_HEADER}")))?;
    let origin = OriginId(origin);
    let expired = node.view().is_expired(origin);
    if let Err(refusal) = admit_puller(&node.config(), origin, expired) {
        let status = match refusal.code {
            RefusalCode::Removed | RefusalCode::NotAMember => StatusCode::FORBIDDEN,
            RefusalCode::Expired | RefusalCode::LogTruncated => StatusCode::GONE,
            RefusalCode::Damaged => StatusCode::CONFLICT,
        };
        return Ok(refusal_response(refusal, status));
    }
    let theirs: VersionVector = headers
        .get(VERSION_VECTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!("missing or invalid {VERSION_VECTOR_HEADER}"))
        })?;
    let repository = node.repository().clone();
    let wanted = theirs.clone();
    if let Some(reason) = blocking(move || Ok(repository.cannot_serve(&wanted))).await? {
        return Ok(refusal_response(
            PeerRefusal::new(RefusalCode::LogTruncated, reason),
            StatusCode::GONE,
        ));
    }
    Ok((
        [("content-type", "application/x-quadmesh-frames")],
        pull_stream(
            node.repository().clone(),
            origin,
            theirs,
            state.shutdown.clone(),
        ),
    )
        .into_response())
}

/// `PUT /repositories/NAME/repl/removed` (the controlling instance, with the token and
/// its origin id): this instance was removed; it stops replicating. Believed only once
/// the controlling instance confirms it (see `replication::removal`): the token alone
/// does not let a member change another's membership.
pub async fn removed(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let node = authenticated_peer(&state, &name, &headers)?;
    let caller = headers
        .get(ORIGIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map(OriginId);
    if let Err(refused) = confirm_removed(&node, caller).await {
        tracing::warn!(repository = %name, error = %refused, "refused a removal notice");
        return Err(refused.into());
    }
    let repository = node.repository().clone();
    blocking(move || Ok(repository.mark_removed()?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /repositories/NAME/repl/membership?origin=N` (a member, with the token): what
/// this instance's committed configuration says of member `N` (to confirm a removal).
pub async fn membership(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Json<Membership>> {
    let node = authenticated_peer(&state, &name, &headers)?;
    let origin = OriginId(
        Params::from_uri(&uri)
            .number::<u64>("origin")?
            .ok_or_else(|| ApiError::BadRequest("parameter 'origin' is required".into()))?,
    );
    let repository = node.repository().clone();
    // The committed configuration, which may be newer than the node's view.
    let config = blocking(move || Ok(repository.cluster().config)).await?;
    let config = config.ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name)))?;
    Ok(Json(Membership::of(&config, origin)))
}
