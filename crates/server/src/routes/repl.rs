//! Replication REST, spelled as AllegroGraph's: `createCluster`, `growCluster`,
//! `remove`, `status` — plus the instance-to-instance calls (`stream`, `install`,
//! `removed`).

use crate::audit::Caller;
use crate::cluster_ops::{self, required, GrowRequest};
use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::replication::removal::{confirm_removed, Membership};
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
use quadmesh_repl::{admit_puller, MembershipError, OriginId, VersionVector};
use quadmesh_store::StoreError;
use std::sync::Arc;

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
    cluster_ops::create_cluster_here(&state, &name, &instance, &address).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let instance = required(&params, "instanceName")?;
    cluster_ops::set_controlling(&state, &name, instance).await?;
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
    let request = GrowRequest::from_params(&Params::from_uri(&uri))?;
    cluster_ops::grow_cluster(&state, &caller, &name, request).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let params = Params::from_uri(&uri);
    let instance = required(&params, "instanceName")?;
    let force = params.flag("force")?.unwrap_or(false);
    cluster_ops::remove_member(&state, &caller, &name, instance, force).await?;
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
