//! Replication REST, spelled as AllegroGraph's: `createCluster`, `growCluster`,
//! `remove`, `stop`, `start`, `controllingInstance` (and quadmesh's `setControlling`),
//! `settings`, `status` — plus the instance-to-instance calls (`stream`, `install`,
//! `removed`). Every parameter a route does not know is refused (400), never ignored.

use super::refusal_response;
use crate::audit::Caller;
use crate::cluster_ops::{self, required};
use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::secrets::constant_time_eq;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quadmesh_cluster::clock_probe::ClockReading;
use quadmesh_cluster::removal::{confirm_removed, Membership};
use quadmesh_cluster::stream::pull_stream;
use quadmesh_cluster::{
    Node, PeerRefusal, RefusalCode, CLOCK_HEADER, ORIGIN_HEADER, TOKEN_HEADER,
    VERSION_VECTOR_HEADER,
};
use quadmesh_repl::wire::PeerState;
use quadmesh_repl::{admit_puller, MembershipError, OriginId, OwnStanding, VersionVector};
use quadmesh_store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// Refuses (400) a parameter not among `known`, naming it and what the call takes.
fn only_known(params: &Params, call: &str, known: &[&str]) -> ApiResult<()> {
    match params.iter().find(|(k, _)| !known.contains(k)) {
        Some((unknown, _)) => Err(ApiError::BadRequest(format!(
            "repl/{call} does not take parameter '{unknown}' (it takes {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A `scheme` parameter must be how instances are reached here: `https` with TLS,
/// `http` without.
fn check_scheme(params: &Params, state: &AppState) -> ApiResult<()> {
    let ours = state.replication.http().scheme();
    match params.get("scheme").filter(|s| !s.is_empty()) {
        None => Ok(()),
        Some(s) if s.eq_ignore_ascii_case(ours) => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            Err(ApiError::BadRequest(format!(
                "scheme '{s}' is not how instances are reached: they talk {ours} here (TLS is {})",
                if ours == "https" {
                    "configured"
                } else {
                    "not configured"
                }
            )))
        }
        Some(s) => Err(ApiError::BadRequest(format!(
            "parameter 'scheme' must be http or https, got '{s}'"
        ))),
    }
}

/// A `timeout` parameter in seconds (AllegroGraph's, for stop and remove).
fn timeout_param(params: &Params, default: Duration) -> ApiResult<Duration> {
    match params.get("timeout").filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "parameter 'timeout' must be a number of seconds (at most a day), got '{v}'"
                ))
            }),
    }
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

/// `PUT /repositories/NAME/repl/createCluster?host=&port=&instanceName=&user=&password=&
/// scheme=&ifExists=`: makes the repository (created if missing, data kept if not) the
/// first, controlling instance. `user` and `password` (AllegroGraph's credentials for
/// the other instances to use here) are not needed: instances authenticate one another
/// with the cluster token. `scheme` must be the one this server is reached with;
/// `ifExists=error` refuses an existing repository, `supersede` and `open` keep its data.
pub async fn create_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    only_known(
        &params,
        "createCluster",
        &[
            "host",
            "port",
            "instanceName",
            "user",
            "password",
            "scheme",
            "ifExists",
        ],
    )?;
    let instance = required(&params, "instanceName")?.to_owned();
    let address = address(&params, &state)?;
    check_scheme(&params, &state)?;
    match params.get("ifExists").filter(|s| !s.is_empty()) {
        None | Some("supersede") | Some("open") => {}
        Some("error") => {
            if state.catalog.get(&name).is_ok() {
                return Err(StoreError::RepositoryExists(name).into());
            }
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "parameter 'ifExists' must be supersede, open or error, got '{other}'"
            )))
        }
    }
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
    only_known(&params, "setControlling", &["instanceName"])?;
    let instance = required(&params, "instanceName")?;
    cluster_ops::set_controlling(&state, &name, instance).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /repositories/NAME/repl/controllingInstance?instanceName=&force=`
/// (AllegroGraph's name for `setControlling`): at the controlling instance, the role
/// moves to that member. With `force=true` it may be asked at another member, naming
/// that member itself: it then takes the role by a promotion (as `repl/promote`: a
/// majority of the members must grant it; Basic credentials valid on every member).
pub async fn controlling_instance(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    only_known(&params, "controllingInstance", &["instanceName", "force"])?;
    let instance = required(&params, "instanceName")?;
    let force = params.flag("force")?.unwrap_or(false);
    let node = state
        .replication
        .get(&name)
        .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name.clone())))?;
    let config = node.config();
    let here = config
        .member(node.repository().origin())
        .map(|m| m.name.clone());
    let controlling_here = config
        .controlling()
        .is_some_and(|c| c.origin == node.repository().origin());
    if controlling_here || !force {
        cluster_ops::set_controlling(&state, &name, instance).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    if here.as_deref() != Some(instance) {
        return Err(ApiError::Conflict(format!(
            "force=true away from the controlling instance makes the member it is asked at the controlling one: ask it at instance '{instance}' itself (this is '{}')",
            here.unwrap_or_default()
        )));
    }
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("Basic "))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "force=true takes the role by a promotion, which needs Basic credentials (valid on every member)".into(),
            )
        })?
        .to_owned();
    quadmesh_cluster::promotion::promote(&node, &authorization).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /repositories/NAME/repl/stop?instanceName=&timeout=&force=` (at the controlling
/// instance): replication to and from that member stops until `repl/start`; it stays
/// a member. `timeout` (seconds, 180) bounds how long it is given to hear of it; if
/// it does not, the stop is undone (503) unless `force=true`.
pub async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    only_known(
        &params,
        "stop",
        &["instanceName", "timeout", "force", "undo-repl"],
    )?;
    let instance = required(&params, "instanceName")?;
    let force = params.flag("force")?.unwrap_or(false);
    let timeout = timeout_param(&params, Duration::from_secs(180))?;
    if params.flag("undo-repl")?.unwrap_or(false) {
        return Err(ApiError::BadRequest(
            "undo-repl=true applies to repl/remove: a stopped instance stays a member".into(),
        ));
    }
    cluster_ops::stop_member(&state, &caller, &name, instance, force, timeout).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /repositories/NAME/repl/start?instanceName=` (at the controlling instance): a
/// stopped member replicates again and catches up.
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    only_known(&params, "start", &["instanceName"])?;
    let instance = required(&params, "instanceName")?;
    cluster_ops::start_member(&state, &caller, &name, instance).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /repositories/NAME/repl/settings?durability=&distributedTransactionTimeout=&
/// transactionLatencyCount=&transactionLatencyTimeout=` (at the controlling instance;
/// query or form body): the cluster's defaults for commits that send no
/// `x-repl-settings`, kept with its configuration. Values not given stay as they were.
pub async fn settings(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    uri: Uri,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let mut params = Params::from_uri(&uri);
    params.extend_form(&body);
    let mut defaults = quadmesh_repl::CommitDefaults::default();
    for (key, value) in params.iter() {
        quadmesh_cluster::durability::set_default(&mut defaults, key, value)?;
    }
    if defaults.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "repl/settings needs at least one of {}",
            quadmesh_cluster::durability::SETTING_NAMES.join(", ")
        )));
    }
    cluster_ops::set_commit_defaults(&state, &caller, &name, defaults).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /repositories/NAME/repl/growCluster?host=&port=&name=&catalog=&user=&password=&
/// instanceName=` (at the controlling instance): adds the instance, copies a snapshot
/// to the server at `host:port` as repository `name` (any name, this server included;
/// default: NAME), which then streams from the snapshot's cut. `catalog`: the root one
/// only (see `cluster_ops::grow_request`).
pub async fn grow_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    only_known(
        &params,
        "growCluster",
        &[
            "instanceName",
            "host",
            "port",
            "name",
            "user",
            "password",
            "scheme",
            "catalog",
        ],
    )?;
    check_scheme(&params, &state)?;
    let request = cluster_ops::grow_request(&params)?;
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
        // The members reach the new instance under the repository name its member
        // entry names: it must be installed under that one.
        if let Some(config) = snapshot_state.config.as_ref() {
            match config.member(origin) {
                Some(member) if member.repository != installed_name => {
                    return Err(ApiError::BadRequest(format!(
                        "the snapshot places instance '{}' as repository '{}', not '{installed_name}'",
                        member.name, member.repository
                    )));
                }
                Some(_) => {}
                None => {
                    return Err(ApiError::BadRequest(format!(
                        "the snapshot's configuration of cluster {} has no member of origin {origin}",
                        config.cluster_id
                    )));
                }
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
    only_known(
        &params,
        "remove",
        &["instanceName", "force", "timeout", "undo-repl", "hand-over"],
    )?;
    let instance = required(&params, "instanceName")?;
    let options = cluster_ops::RemoveOptions {
        force: params.flag("force")?.unwrap_or(false),
        timeout: timeout_param(&params, cluster_ops::RemoveOptions::default().timeout)?,
        undo_repl: params.flag("undo-repl")?.unwrap_or(false),
        hand_over: params.flag("hand-over")?.unwrap_or(true),
    };
    cluster_ops::remove_member(&state, &caller, &name, instance, options).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /repositories/NAME/repl/status?form=json|text&if-after=N&hide=true`: JSON
/// (without `form`, or `form=json`) or a table for people (`form=text`).
/// `if-after=N` answers 204 with nothing while the configuration version is N or
/// older (a caller polls for changes); `hide=true` leaves out the instances that need
/// no attention (connected or this one, nothing to catch up, not stopped).
pub async fn status(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    only_known(&params, "status", &["form", "if-after", "hide"])?;
    let text = match params.get("form") {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "parameter 'form' must be text or json, got '{other}'"
            )))
        }
    };
    let if_after: Option<u64> = params.number("if-after")?;
    let hide = params.flag("hide")?.unwrap_or(false);
    state.catalog.get(&name)?;
    let node = state
        .replication
        .get(&name)
        .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name.clone())))?;
    let mut status = blocking(move || {
        node.maintain();
        Ok(node.status())
    })
    .await?;
    if if_after.is_some_and(|after| status.config_version <= after) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if hide {
        status.instances.retain(|i| {
            let fine = matches!(i.state, PeerState::Myself | PeerState::Connected);
            !(fine && !i.stopped && i.lag_transactions == 0)
        });
    }
    if text {
        return Ok((
            [("content-type", "text/plain; charset=utf-8")],
            status_table(&status),
        )
            .into_response());
    }
    Ok(Json(status).into_response())
}

/// `repl/status` as a table for people (`form=text`).
fn status_table(status: &quadmesh_cluster::node::ClusterStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Repository {} in cluster {}, configuration {} (epoch {}), as instance {} sees it{}",
        status.repository,
        status.cluster,
        status.config_version,
        status.config_epoch,
        status.instance,
        if status.stopped { " (stopped)" } else { "" }
    );
    if let Some(s) = &status.settings {
        let _ = writeln!(
            out,
            "Commit defaults: durability={} distributedTransactionTimeout={} transactionLatencyCount={} transactionLatencyTimeout={}",
            s.durability,
            s.distributed_transaction_timeout,
            s.transaction_latency_count
                .map_or("none".to_owned(), |c| c.to_string()),
            s.transaction_latency_timeout,
        );
    }
    if let Some(refused) = &status.writes_refused {
        let _ = writeln!(out, "Writes refused here: {refused}");
    }
    let header: Vec<String> = [
        "instance",
        "repository",
        "address",
        "role",
        "state",
        "behind (transactions)",
        "last contact",
    ]
    .map(str::to_owned)
    .to_vec();
    let rows: Vec<Vec<String>> = status
        .instances
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.repository.clone(),
                i.address.clone(),
                i.role.to_string(),
                i.state.to_string(),
                i.lag_transactions.to_string(),
                i.last_contact_ms_ago.map_or("never".to_owned(), |ms| {
                    format!("{:.1} s ago", ms as f64 / 1000.0)
                }),
            ]
        })
        .collect();
    out.push_str(&crate::results::render_table(&header, &rows));
    out
}

/// The node, if the request carries its cluster's token.
pub(crate) fn authenticated_peer(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
) -> ApiResult<Arc<Node>> {
    let Some(node) = state.replication.get(name) else {
        // Said apart when this server holds no copy at all (a removed instance's
        // hand-over then knows nothing more can come from it), not when the
        // repository is here but standalone or could not be opened.
        return Err(match state.catalog.get(name) {
            Err(StoreError::RepositoryNotFound(_)) => {
                ApiError::NotReplicated(format!("repository '{name}' is not on this server"))
            }
            Err(e) => e.into(),
            Ok(_) => ApiError::NotFound(format!("repository '{name}' is not replicated here")),
        });
    };
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
    let cluster = node.repository().cluster();
    let own = if cluster.removed {
        OwnStanding::Removed
    } else if cluster.expired.is_some() {
        OwnStanding::Expired
    } else {
        OwnStanding::Member
    };
    if let Err(refusal) = admit_puller(&node.config(), origin, expired, own) {
        let status = match refusal.code {
            RefusalCode::Removed | RefusalCode::NotAMember => StatusCode::FORBIDDEN,
            RefusalCode::Expired | RefusalCode::LogTruncated => StatusCode::GONE,
            RefusalCode::Damaged => StatusCode::CONFLICT,
        };
        return Ok(refusal_response(refusal, status));
    }
    if let Some(refusal) = healing_refusal(&node) {
        return Ok(refusal);
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
    let clock = serde_json::to_string(&ClockReading::of(node.repository().clock()))
        .expect("a clock reading serialises");
    Ok((
        [
            ("content-type", "application/x-quadmesh-frames".to_owned()),
            (CLOCK_HEADER, clock),
        ],
        Body::from_stream(pull_stream(
            node.repository().clone(),
            origin,
            theirs,
            own == OwnStanding::Removed,
            state.shutdown.clone(),
        )),
    )
        .into_response())
}

/// While this instance's log has holes, no stream is served from it: what it would
/// send next may be in a hole, and its order may change when the holes are filled.
pub(crate) fn healing_refusal(node: &Node) -> Option<Response> {
    let healing = node.repository().log_healing()?;
    Some(refusal_response(
        PeerRefusal::new(
            RefusalCode::Damaged,
            format!(
                "this instance's replication log is healing ({}); pull from another member",
                healing.description
            ),
        ),
        StatusCode::CONFLICT,
    ))
}

/// `POST /repositories/NAME/repl/frames` (a member, with the cluster token; a JSON
/// `FramesRequest`): the transactions asked for, by origin and sequence number, that
/// this instance's log holds, as frames (a member healing its damaged log asks).
pub async fn frames(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    /// More than any hole of a 64 MiB segment can hold.
    const MOST_FRAMES: usize = 1_000_000;
    let node = authenticated_peer(&state, &name, &headers)?;
    let caller = headers
        .get(ORIGIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map(OriginId)
        .ok_or_else(|| ApiError::BadRequest(format!("missing or invalid {ORIGIN_HEADER}")))?;
    if !node.config().is_member(caller) {
        return Ok(refusal_response(
            PeerRefusal::new(
                RefusalCode::NotAMember,
                format!("instance {caller} is not a member of the cluster"),
            ),
            StatusCode::FORBIDDEN,
        ));
    }
    let request: quadmesh_cluster::log_heal::FramesRequest = serde_json::from_slice(&body)
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "repl/frames takes {{\"frames\": [{{\"origin\", \"seq\"}}]}}: {e}"
            ))
        })?;
    if request.frames.len() > MOST_FRAMES {
        return Err(ApiError::BadRequest(format!(
            "repl/frames takes at most {MOST_FRAMES} frames at once"
        )));
    }
    let wanted: Vec<(OriginId, u64)> = request.frames.iter().map(|f| (f.origin, f.seq)).collect();
    let repository = node.repository().clone();
    let entries = blocking(move || Ok(repository.frames_held(&wanted)?)).await?;
    let mut bytes = Vec::new();
    for entry in &entries {
        entry.encode_into(&mut bytes);
    }
    Ok(([("content-type", "application/x-quadmesh-frames")], bytes).into_response())
}

/// `GET /repositories/NAME/repl/clock` (a peer, with the cluster token): this
/// instance's clock now, for the caller's clock fence.
pub async fn clock(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<ClockReading>> {
    let node = authenticated_peer(&state, &name, &headers)?;
    Ok(Json(ClockReading::of(node.repository().clock())))
}

/// `PUT /repositories/NAME/repl/removed` (the controlling instance, with the token and
/// its origin id): this instance was removed; it stops replicating. Believed only once
/// the controlling instance confirms it (see `replication::removal`): the token alone
/// does not let a member change another's membership.
pub async fn removed(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let node = authenticated_peer(&state, &name, &headers)?;
    let undo_repl = Params::from_uri(&uri).flag("undo-repl")?.unwrap_or(false);
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
    if undo_repl {
        // Kept as an ordinary repository: no node, no cluster, writes taken again.
        blocking(move || Ok(repository.leave_cluster()?)).await?;
        state.replication.stop(&name);
    } else {
        blocking(move || Ok(repository.mark_removed()?)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /repositories/NAME/repl/hold?seconds=N` (the controlling instance, with the
/// token and its origin id, about to remove this instance): this instance acknowledges
/// no local write for `N` seconds (0 releases) and answers its version vector, taken
/// once it stopped: everything it acknowledged, for the controlling instance to wait
/// for before the removal takes effect.
pub async fn hold(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Json<quadmesh_repl::wire::RemovalHold>> {
    /// Longer than any removal's `timeout` plus its confirmations.
    const LONGEST_HOLD: u64 = 3_600;
    let node = authenticated_peer(&state, &name, &headers)?;
    let caller = headers
        .get(ORIGIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map(OriginId);
    // The role may have moved just before (the new holder removes at once): the
    // configuration that says so is on its way here; wait for it a little.
    let deadline = tokio::time::Instant::now() + quadmesh_cluster::promotion::AWAIT_CONFIG;
    let mut changes = node.repository().subscribe_cluster();
    loop {
        let controlling = node.newest_config().await.controlling().map(|m| m.origin);
        if caller.is_some() && caller == controlling {
            break;
        }
        let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
        if caller.is_none() || !matches!(changed, Ok(Ok(()))) {
            return Err(ApiError::Forbidden(
                "only the controlling instance holds a member's writes before removing it".into(),
            ));
        }
    }
    let seconds: u64 = Params::from_uri(&uri)
        .get("seconds")
        .ok_or_else(|| ApiError::BadRequest("repl/hold takes seconds".into()))?
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("repl/hold: seconds: {e}")))?;
    if seconds > LONGEST_HOLD {
        return Err(ApiError::BadRequest(format!(
            "repl/hold holds writes for at most {LONGEST_HOLD} seconds"
        )));
    }
    let repository = node.repository().clone();
    let version_vector = blocking(move || {
        Ok(repository.hold_local_writes_for_removal(Duration::from_secs(seconds))?)
    })
    .await?;
    Ok(Json(quadmesh_repl::wire::RemovalHold { version_vector }))
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
    // The committed configuration, which may be newer than the node's view. Asked of
    // itself once it knows it was removed, an instance says so, with its last own
    // transaction: all it will ever hand over.
    let (config, version_vector, own_last) = blocking(move || {
        let own_last = (origin == repository.origin())
            .then(|| repository.own_last_once_removed())
            .flatten();
        Ok((
            repository.cluster().config,
            repository.version_vector(),
            own_last,
        ))
    })
    .await?;
    let config = config.ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name)))?;
    let mut membership = Membership::of(&config, origin, version_vector.get(origin));
    if let Some(last) = own_last {
        membership.removed = true;
        membership.held = last;
    }
    // A stopped member pulls from nobody: it learns configurations from these answers.
    membership.config = Some(config);
    membership.version_vector = Some(version_vector);
    Ok(Json(membership))
}
