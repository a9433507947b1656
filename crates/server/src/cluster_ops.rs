//! Cluster and catalog operations as one typed service: what the REST routes, the web
//! UI and the built-in roles do to repositories and their clusters goes through here,
//! with typed arguments (never a handler called with a made-up request), audited
//! alike whatever door it came in by. The membership changes themselves are the
//! cluster runtime's (`quadmesh_cluster::membership`, which keeps their rules).
//!
//! Rules it keeps:
//! - every change is written to the audit log with its caller and outcome;
//! - AllegroGraph's parameters are read here, once, into the runtime's typed requests.

use crate::audit::{self, Caller};
use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::state::AppState;
use quadmesh_cluster::membership;
pub use quadmesh_cluster::membership::{GrowRequest, RemoveOptions};
use quadmesh_repl::CommitDefaults;
use quadmesh_store::StoreError;
use std::time::Duration;

/// From AllegroGraph's `growCluster` parameters (query or form): `instanceName`,
/// `host`, `port` (10035), `name`, `catalog`, `user`, `password`. quadmesh has the
/// root catalog only: `catalog` may be absent, empty, `root` or `/`; any other is
/// refused (400), since the instance could not be placed there.
pub fn grow_request(params: &Params) -> ApiResult<GrowRequest> {
    if let Some(catalog) = params
        .get("catalog")
        .filter(|c| !c.is_empty() && !matches!(*c, "root" | "/"))
    {
        return Err(ApiError::BadRequest(format!(
            "catalog '{catalog}': quadmesh has only the root catalog, where every repository lives; omit catalog (or give root) and choose the new instance's repository with name"
        )));
    }
    if let Some(name) = params.get("name").filter(|n| !n.is_empty()) {
        quadmesh_store::validate_repository_name(name)?;
    }
    Ok(GrowRequest {
        instance: required(params, "instanceName")?.to_owned(),
        address: format!(
            "{}:{}",
            required(params, "host")?,
            params.number::<u16>("port")?.unwrap_or(10035)
        ),
        target_name: params
            .get("name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        user: required(params, "user")?.to_owned(),
        password: required(params, "password")?.to_owned(),
    })
}

/// A parameter that must be present and non-empty.
pub fn required<'a>(params: &'a Params, name: &str) -> ApiResult<&'a str> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("parameter '{name}' is required")))
}

/// Creates repository `name`; an existing one is an error unless `tolerate_existing`.
pub async fn create_repository(
    state: &AppState,
    caller: &Caller,
    name: &str,
    tolerate_existing: bool,
) -> ApiResult<()> {
    let (st, repository) = (state.clone(), name.to_owned());
    let outcome = blocking(move || match st.catalog.create(&repository) {
        Ok(_) => {
            tracing::info!(repository = %repository, "created repository");
            Ok(())
        }
        Err(StoreError::RepositoryExists(_)) if tolerate_existing => Ok(()),
        Err(e) => Err(e.into()),
    })
    .await;
    audit::change(caller, "repository-create", name, None, &outcome);
    outcome
}

/// Deletes repository `name`, its sessions and its replication.
pub async fn delete_repository(state: &AppState, caller: &Caller, name: &str) -> ApiResult<()> {
    let (st, repository) = (state.clone(), name.to_owned());
    let outcome = blocking(move || {
        st.catalog.delete(&repository)?;
        st.sessions.close_for_repository(&repository);
        st.replication.stop(&repository);
        tracing::info!(repository = %repository, "deleted repository");
        Ok(())
    })
    .await;
    audit::change(caller, "repository-delete", name, None, &outcome);
    outcome
}

/// Grows the cluster of repository `name` by one instance (see `membership::grow`).
pub async fn grow_cluster(
    state: &AppState,
    caller: &Caller,
    name: &str,
    request: GrowRequest,
) -> ApiResult<()> {
    let instance = request.instance.clone();
    let outcome = membership::grow(&state.replication, name, request)
        .await
        .map_err(ApiError::from);
    audit::change(caller, "cluster-grow", name, Some(&instance), &outcome);
    outcome
}

/// Removes `instance` from the cluster of repository `name` (at its controlling
/// instance; see `membership::remove`).
pub async fn remove_member(
    state: &AppState,
    caller: &Caller,
    name: &str,
    instance: &str,
    options: RemoveOptions,
) -> ApiResult<()> {
    let outcome = membership::remove(&state.replication, name, instance, options)
        .await
        .map_err(ApiError::from);
    audit::change(caller, "cluster-remove", name, Some(instance), &outcome);
    outcome
}

/// Stops replication to and from `instance` (see `membership::stop`).
pub async fn stop_member(
    state: &AppState,
    caller: &Caller,
    name: &str,
    instance: &str,
    force: bool,
    timeout: Duration,
) -> ApiResult<()> {
    let outcome = membership::stop(&state.replication, name, instance, force, timeout)
        .await
        .map_err(ApiError::from);
    audit::change(caller, "cluster-stop", name, Some(instance), &outcome);
    outcome
}

/// Starts replication to and from a stopped `instance` again (see `membership::start`).
pub async fn start_member(
    state: &AppState,
    caller: &Caller,
    name: &str,
    instance: &str,
) -> ApiResult<()> {
    let outcome = membership::start(&state.replication, name, instance)
        .await
        .map_err(ApiError::from);
    audit::change(caller, "cluster-start", name, Some(instance), &outcome);
    outcome
}

/// Sets the cluster's defaults for commits without `x-repl-settings` (see
/// `membership::set_commit_defaults`).
pub async fn set_commit_defaults(
    state: &AppState,
    caller: &Caller,
    name: &str,
    settings: CommitDefaults,
) -> ApiResult<()> {
    let outcome = membership::set_commit_defaults(&state.replication, name, settings)
        .await
        .map_err(ApiError::from);
    audit::change(caller, "cluster-settings", name, None, &outcome);
    outcome
}

/// Moves the controlling role of repository `name`'s cluster to `instance`.
pub async fn set_controlling(state: &AppState, name: &str, instance: &str) -> ApiResult<()> {
    Ok(membership::set_controlling(&state.replication, name, instance).await?)
}

/// Makes repository `name` of this server the controlling instance of a new cluster.
pub async fn create_cluster_here(
    state: &AppState,
    name: &str,
    instance: &str,
    address: &str,
) -> ApiResult<()> {
    Ok(membership::create_cluster_here(&state.replication, name, instance, address).await?)
}
