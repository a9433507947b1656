//! Sessions: open, commit, rollback, ping, close, auto-commit.

use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::routes::repositories::base_url;
use crate::state::AppState;
use crate::target::{Target, Written};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use std::collections::HashMap;
use std::time::Duration;

/// `POST /repositories/NAME/session?autoCommit=false&lifetime=S`: answers the session's
/// absolute URL as a JSON string (200, as agraph-python requires).
pub async fn open(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<String>> {
    let params = Params::from_uri(&uri);
    let repository = state.catalog.get(&name)?;
    let auto_commit = params.flag("autoCommit")?.unwrap_or(false);
    let lifetime = match params.number::<u64>("lifetime")? {
        Some(0) => {
            return Err(ApiError::BadRequest(
                "'lifetime' must be at least 1 second".into(),
            ))
        }
        Some(seconds) => Duration::from_secs(seconds).min(state.config.max_session_lifetime),
        None => state.config.default_session_lifetime,
    };
    let session = state.sessions.open(repository, auto_commit, lifetime);
    tracing::info!(session = %session.id, repository = %name, auto_commit, lifetime_s = lifetime.as_secs(), "session opened");
    Ok(Json(format!(
        "{}/sessions/{}",
        base_url(&headers),
        session.id
    )))
}

pub async fn commit(target: Target) -> ApiResult<axum::response::Response> {
    let Target::Session(session) = target else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let receipt = blocking(move || {
        let mut pending = session.pending.lock().unwrap_or_else(|e| e.into_inner());
        Ok(session.repository.commit_pending(&mut pending)?)
    })
    .await?;
    Ok(Written::Committed(receipt).tag(StatusCode::NO_CONTENT))
}

pub async fn rollback(target: Target) -> StatusCode {
    if let Target::Session(session) = target {
        session
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
    StatusCode::NO_CONTENT
}

/// Any request to the session restarts its lifetime; ping does only that.
pub async fn ping(_target: Target) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Closes the session; uncommitted work is dropped.
pub async fn close(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> StatusCode {
    if let Some(id) = params.get("session") {
        state.sessions.close(id);
    }
    StatusCode::NO_CONTENT
}

pub async fn auto_commit(target: Target, uri: Uri) -> ApiResult<StatusCode> {
    let on = Params::from_uri(&uri)
        .flag("on")?
        .ok_or_else(|| ApiError::BadRequest("parameter 'on' (true or false) is required".into()))?;
    match target {
        Target::Session(session) => {
            session.set_auto_commit(on);
            Ok(StatusCode::NO_CONTENT)
        }
        Target::Repository(_) => Err(ApiError::BadRequest(
            "autoCommit applies to sessions only".into(),
        )),
    }
}
