//! What each route needs, checked for every request after authentication: read or
//! write access to the repository a path names (a session's repository, for session
//! paths), or a permission. Handlers check what a path cannot tell: a SPARQL request
//! that turns out to be an update needs write access (`routes/sparql.rs`); `/users` and
//! `/roles` allow a user its own records; `/repositories` lists what the caller may
//! read; the UI's forms check as the routes they stand for.

use crate::access::{Need, Permission, Rights};
use crate::error::{ApiError, ApiResult};
use crate::middleware::repository_of;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What a request must be allowed.
#[derive(Debug, PartialEq, Eq)]
enum Needed {
    /// Nothing beyond being signed in (or checked by the handler).
    Nothing,
    Permission(Permission),
    Repository(String, Need),
    /// Access to a repository and a permission (opening a session).
    Both(String, Need, Permission),
}

/// Sub-paths of a repository (or session) that change nothing whatever the method.
fn reads_only(rest: &str) -> bool {
    matches!(
        rest,
        "/blankNodes" | "/rollback" | "/session/ping" | "/session/close" | "/session/autoCommit"
    )
}

fn needed(state: &AppState, method: &Method, path: &str) -> Needed {
    if path == "/metrics" {
        return Needed::Permission(Permission::Super);
    }
    let reading = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (Some(kind @ ("repositories" | "sessions")), Some(_)) = (parts.next(), parts.next()) else {
        return Needed::Nothing;
    };
    let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
    // A session held by another member is checked there, when it is forwarded.
    let Some(repository) = repository_of(state, path) else {
        return Needed::Nothing;
    };
    let need = |writes: bool| {
        Needed::Repository(
            repository.clone(),
            if writes { Need::Write } else { Need::Read },
        )
    };
    match (kind, rest.as_str()) {
        // Create and delete; the SPARQL endpoint (an update is checked by its handler).
        ("repositories", "") => need(matches!(*method, Method::PUT | Method::DELETE)),
        ("sessions", "") => need(false),
        ("repositories", "/session") => Needed::Both(repository, Need::Read, Permission::Session),
        ("repositories", "/backup") => need(false),
        ("repositories", "/restore") => need(true),
        ("repositories", "/repl/status") => need(false),
        ("repositories", r) if r.starts_with("/repl/") => {
            Needed::Permission(Permission::Replication)
        }
        (_, r) if reads_only(r) => need(false),
        _ => need(!reading),
    }
}

/// Refuses a request its caller may not make: 403, naming what is missing.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Requests that need no sign-in (probes, peers with the cluster token) carry none.
    let Some(rights) = request.extensions().get::<Rights>().cloned() else {
        return next.run(request).await;
    };
    let checked = match needed(&state, request.method(), request.uri().path()) {
        Needed::Nothing => Ok(()),
        Needed::Permission(permission) => rights.require_permission(permission),
        Needed::Repository(repository, need) => rights.require(&repository, need),
        Needed::Both(repository, need, permission) => rights
            .require(&repository, need)
            .and_then(|()| rights.require_permission(permission)),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Rights {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        parts
            .extensions
            .get::<Rights>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}
