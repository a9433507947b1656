//! Causal tokens over HTTP: read-your-writes across instances behind a load balancer,
//! without sticky sessions (Neo4j's bookmarks are the model).
//!
//! Every response to a request that committed carries `X-Quadmesh-Token`, naming what
//! it committed joined with the token the request brought. A request may bring a token
//! back (the header, or the `token` query parameter); the instance then takes the
//! token's time into its clock before it stamps anything, and holds the request until
//! it has applied every transaction the token names, up to `X-Quadmesh-Token-Timeout`
//! seconds (`tokenTimeout`; default 5), answering 503 if it cannot. Acknowledgements of
//! commits wait out the millisecond of their stamp (see [`commit_wait`]).

use crate::error::ApiError;
use crate::middleware::repository_of;
use crate::params::Params;
use crate::state::AppState;
use crate::target::CommitInfo;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quadmesh_repl::CausalToken;
use std::time::Duration;

pub const TOKEN_HEADER: &str = "x-quadmesh-token";
pub const TIMEOUT_HEADER: &str = "x-quadmesh-token-timeout";
const TOKEN_PARAM: &str = "token";
const TIMEOUT_PARAM: &str = "tokenTimeout";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// No request waits longer than this for a token, whatever it asks.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// The token and how long to wait for it, from the request's header or parameters.
fn requested(request: &Request) -> Result<Option<(CausalToken, Duration)>, ApiError> {
    let params = Params::from_uri(request.uri());
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::BadRequest(format!("header {name} is not text")))
            })
            .transpose()
    };
    let token = match header(TOKEN_HEADER)?.or_else(|| params.get(TOKEN_PARAM).map(str::to_owned)) {
        Some(text) if !text.trim().is_empty() => {
            CausalToken::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))?
        }
        _ => return Ok(None),
    };
    let timeout = match header(TIMEOUT_HEADER)?.or_else(|| params.get(TIMEOUT_PARAM).map(str::to_owned))
    {
        None => DEFAULT_TIMEOUT,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s).min(MAX_TIMEOUT))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{TIMEOUT_HEADER} (or {TIMEOUT_PARAM}) must be a number of seconds, got '{text}'"
                ))
            })?,
    };
    Ok(Some((token, timeout)))
}

/// Honours a request's causal token, and gives the response the token of what it
/// committed.
pub async fn causal_tokens(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let requested = match requested(&request) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let repository =
        repository_of(&state, request.uri().path()).and_then(|name| state.catalog.get(&name).ok());
    let Some(repository) = repository else {
        return next.run(request).await;
    };
    let mut token = None;
    if let Some((requested, timeout)) = requested {
        // (a) Every later stamp here is newer than everything the client has seen.
        if let Err(e) = repository.clock().observe(requested.time) {
            return ApiError::Unavailable(format!(
                "cannot honour the causal token: {e}; the instance that issued it is ahead of this one"
            ))
            .into_response();
        }
        // (b) Hold the request until this instance holds what the token names.
        let mut applied = repository.watch_version_vector();
        let covered = |vv: &quadmesh_repl::VersionVector| {
            requested
                .seen
                .iter()
                .all(|(origin, seq)| vv.covers(origin, seq))
        };
        let waited = tokio::time::timeout(timeout, applied.wait_for(covered))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => {}
            Ok(false) => {
                return ApiError::Unavailable("the repository is closing".into()).into_response()
            }
            Err(_) => {
                let lacking = {
                    let vv = applied.borrow();
                    requested
                        .seen
                        .iter()
                        .map(|(origin, seq)| seq.saturating_sub(vv.get(origin)))
                        .sum::<u64>()
                };
                return ApiError::Unavailable(format!(
                    "this instance has not yet received {lacking} transaction(s) named by the causal token (waited {:.1} s); retry, or send the request to another instance",
                    timeout.as_secs_f64()
                ))
                .into_response();
            }
        }
        token = Some(requested);
    }
    let mut response = next.run(request).await;
    if let Some(commit) = response.extensions().get::<CommitInfo>().copied() {
        commit_wait(commit.time).await;
        token
            .get_or_insert_with(CausalToken::default)
            .join(&CausalToken::of_commit(
                repository.origin(),
                commit.seq,
                commit.time,
            ));
    }
    if let Some(token) = token {
        let value = HeaderValue::from_str(&token.to_string()).expect("a token is header-safe");
        response.headers_mut().insert(TOKEN_HEADER, value);
    }
    response
}

/// Longest commit-wait: a stamp further ahead of this machine's clock than this came
/// from a peer's clock, which no wait here can make up for.
const MAX_COMMIT_WAIT: Duration = Duration::from_millis(5);

/// Holds an acknowledgement until this machine's clock has left the millisecond the
/// commit was stamped in (at most [`MAX_COMMIT_WAIT`]). Stamps have millisecond
/// resolution: without the wait, a write that another client sends to another instance
/// right after this acknowledgement could be stamped in the same millisecond and lose
/// to this one by origin order. With it, real-time order holds for writes that did not
/// overlap, across instances whose clocks agree (and always with a causal token).
async fn commit_wait(stamp: quadmesh_repl::HlcTime) {
    let now = quadmesh_cluster::now_ms();
    if stamp.millis() >= now {
        let wait = Duration::from_millis(stamp.millis() + 1 - now).min(MAX_COMMIT_WAIT);
        tokio::time::sleep(wait).await;
    }
}
