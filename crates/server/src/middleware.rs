use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Paths that answer without credentials: probes use them.
const OPEN_PATHS: &[&str] = &["/version", "/hostname"];

/// HTTP Basic authentication of the superuser on everything but the probe paths.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| state.auth.check_header(v));
    if !authorized {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// One log line per request: method, path, status, duration.
pub async fn log_requests(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, millis, "request");
    } else {
        tracing::debug!(%method, %path, status, millis, "request");
    }
    response
}
