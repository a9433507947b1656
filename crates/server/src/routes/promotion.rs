//! Promotion of a member when the controlling instance is gone for good, and the
//! members' side of consent (see `replication::promotion`):
//! `PUT …/repl/promote` (the operator, at the member to promote), `PUT …/repl/vote`
//! (the candidate, with the cluster token and the operator's credentials) and
//! `PUT …/repl/confirm` (the controlling instance, with the cluster token: a question,
//! it changes nothing).

use super::repl::authenticated_peer;
use crate::audit::{self, Caller};
use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Uri};
use axum::Json;
use quadmesh_cluster::promotion::{confirm_here, promote as promote_here, vote_request, Consent};
use quadmesh_repl::{ConfigPosition, MembershipError};
use quadmesh_store::StoreError;

/// `PUT /repositories/NAME/repl/promote`: makes this member the controlling instance of
/// a new epoch if a majority of the members grant it (409/503 with each member's
/// answer otherwise, and nothing changed). Needs Basic credentials valid on every
/// member: they are shown to the members asked.
pub async fn promote(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<quadmesh_repl::wire::Promoted>> {
    let outcome = async {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with("Basic "))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "a promotion needs Basic credentials (valid on every member), not a UI sign-in"
                        .into(),
                )
            })?
            .to_owned();
        let node = state
            .replication
            .get(&name)
            .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name.clone())))?;
        Ok::<_, ApiError>(promote_here(&node, &authorization).await?)
    }
    .await;
    audit::change(&caller, "cluster-promote", &name, None, &outcome);
    let config = outcome?;
    Ok(Json(quadmesh_repl::wire::Promoted {
        epoch: config.epoch,
        config_version: config.version,
        controlling: config.controlling().map(|m| m.name.clone()),
    }))
}

/// `PUT /repositories/NAME/repl/vote?epoch=&candidate=&configEpoch=&configVersion=`
/// (a candidate, with the token and the superuser's credentials): this member's vote,
/// recorded before it is answered.
pub async fn vote(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Json<Consent>> {
    let node = authenticated_peer(&state, &name, &headers)?;
    let params = Params::from_uri(&uri);
    let request = vote_request(
        params.number("epoch")?,
        params.number("candidate")?,
        params.number("configEpoch")?,
        params.number("configVersion")?,
    )?;
    let repository = node.repository().clone();
    let decided = blocking(move || Ok(repository.grant_vote(&request)?)).await?;
    match &decided {
        Ok(promise) => {
            tracing::warn!(target: "quadmesh::audit", repository = %name, epoch = promise.epoch,
                candidate = %promise.candidate, "granted a promotion: changes of older epochs are no longer confirmed here")
        }
        Err(refusal) => {
            tracing::info!(repository = %name, epoch = request.epoch, candidate = %request.candidate, %refusal, "refused a promotion")
        }
    }
    Ok(Json(Consent::of(decided.map(|_| ()))))
}

/// `PUT /repositories/NAME/repl/confirm?epoch=&version=` (the controlling instance, with
/// the token): whether this member holds that configuration and promised no newer epoch.
pub async fn confirm(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Json<Consent>> {
    let node = authenticated_peer(&state, &name, &headers)?;
    let params = Params::from_uri(&uri);
    let missing = |name: &str| ApiError::BadRequest(format!("parameter '{name}' is required"));
    let wanted = ConfigPosition {
        epoch: params.number("epoch")?.ok_or_else(|| missing("epoch"))?,
        version: params
            .number("version")?
            .ok_or_else(|| missing("version"))?,
    };
    Ok(Json(confirm_here(&node, wanted).await?))
}
