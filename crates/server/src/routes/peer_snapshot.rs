//! `GET /repositories/NAME/repl/snapshot` (a member, with the cluster token): a snapshot
//! of this instance's copy — store checkpoint and replication state at one cut, as the
//! tar a grow sends — from which a member whose store was damaged repairs itself, or a
//! controlling instance that lost its data re-grows itself.

use super::refusal_response;
use super::repl::authenticated_peer;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use quadmesh_cluster::{PeerRefusal, RefusalCode, ORIGIN_HEADER};
use quadmesh_repl::OriginId;

pub async fn snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // The superuser may take one too: a controlling instance that lost its data has no
    // cluster token left, and re-grows from a member with the superuser's credentials.
    let superuser = match headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(credentials) => state
            .auth
            .check_header(credentials)
            .await
            .is_some_and(|user| {
                crate::access::Rights {
                    superuser: state.auth.is_superuser(&user),
                    user,
                    access: state.access.clone(),
                }
                .is_super()
            }),
        None => false,
    };
    let (node, origin) = if superuser {
        let node = state.replication.get(&name).ok_or_else(|| {
            ApiError::NotFound(format!("repository '{name}' is not replicated here"))
        })?;
        (node, None)
    } else {
        let node = authenticated_peer(&state, &name, &headers)?;
        let origin = headers
            .get(ORIGIN_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(OriginId)
            .ok_or_else(|| ApiError::BadRequest(format!("missing or invalid {ORIGIN_HEADER}")))?;
        (node, Some(origin))
    };
    if let Some(origin) = origin.filter(|o| !node.config().is_member(*o)) {
        return Ok(refusal_response(
            PeerRefusal::new(
                RefusalCode::NotAMember,
                format!("instance {origin} is not a member of the cluster"),
            ),
            StatusCode::FORBIDDEN,
        ));
    }
    let repository = node.repository().clone();
    // A damaged store must not spread its damage.
    if repository.knows_damage() {
        return Ok(refusal_response(
            PeerRefusal::new(
                RefusalCode::Damaged,
                "this instance's own store is damaged (a scrub found it); repair from another member",
            ),
            StatusCode::CONFLICT,
        ));
    }
    if let Some(refusal) = super::repl::healing_refusal(&node) {
        return Ok(refusal);
    }
    tracing::info!(repository = %name, peer = ?origin, "sending a snapshot");
    super::backup::archive_response(&state, repository, false).await
}
