//! Sessions through any load balancer: a request for a session this instance does not
//! hold is forwarded to the cluster member that does (the session id names it), over
//! the main port with the caller's own credentials, and the answer is relayed.
//!
//! Rules it keeps:
//! - only members of a cluster this instance belongs to are ever contacted (the id
//!   names an origin id, looked up in the cluster configurations; never an address);
//! - a forwarded request is never forwarded again (`x-quadmesh-forwarded`), so a
//!   session that is gone ends in a 404, not a loop;
//! - when the holder cannot be reached, the answer says the session may be lost and
//!   that nothing of its uncommitted work was committed.

use crate::error::ApiError;
use crate::sessions::owner_of;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quadmesh_repl::Member;

const FORWARDED_HEADER: &str = "x-quadmesh-forwarded";

/// Headers that belong to one connection, not to the request or response.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The member holding session `id`, when it is another member of one of our clusters.
fn holder(state: &AppState, id: &str) -> Option<Member> {
    let origin = owner_of(id)?;
    state.replication.nodes().into_iter().find_map(|node| {
        if node.repository().origin() == origin {
            return None;
        }
        node.config()
            .members
            .into_iter()
            .find(|m| m.origin == origin)
    })
}

pub async fn forward_sessions(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(rest) = request.uri().path().strip_prefix("/sessions/") else {
        return next.run(request).await;
    };
    let id = rest.split('/').next().unwrap_or_default().to_owned();
    if state.sessions.get(&id).is_some() {
        return next.run(request).await;
    }
    let Some(member) = holder(&state, &id) else {
        return next.run(request).await;
    };
    if request.headers().contains_key(FORWARDED_HEADER) {
        return ApiError::NotFound(format!(
            "session {id} does not exist on instance {} that held it (closed, expired, or lost in a restart); nothing of its uncommitted work was committed",
            member.name
        ))
        .into_response();
    }
    match forward(&state, &member, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn forward(
    state: &AppState,
    member: &Member,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = state.replication.http().url(&member.address, path);
    let mut outgoing = state
        .replication
        .http()
        .request(parts.method.clone(), url)
        .header(FORWARDED_HEADER, "1")
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    tracing::debug!(instance = %member.name, %path, "forwarding a session request");
    let answer = outgoing.send().await.map_err(|e| {
        ApiError::Unavailable(format!(
            "the session is held by instance {} ({}), which cannot be reached: {e}. If that instance is gone, the session is lost and nothing of its uncommitted work was committed",
            member.name, member.address
        ))
    })?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    response
        .header(header::VIA, format!("1.1 {}", member.name))
        .body(Body::from_stream(answer.bytes_stream()))
        .map_err(|e| ApiError::Internal(format!("cannot relay the session's answer: {e}")))
}
