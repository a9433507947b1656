//! `/repositories`: list, create, delete.

use crate::audit::{self, Caller};
use crate::error::{blocking, ApiResult};
use crate::params::Params;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::Json;

/// The scheme and authority the client used, for URLs we hand back (the listener sets
/// `x-forwarded-proto: https` on TLS connections unless a proxy did).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:10035");
    let scheme = match headers.get("x-forwarded-proto").map(|v| v.as_bytes()) {
        Some(b"https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let base = base_url(&headers);
    let rows: Vec<_> = state
        .catalog
        .list()
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.name(),
                "uri": format!("{base}/repositories/{}", r.name()),
                "title": r.name(),
                "readable": true,
                "writable": true,
            })
        })
        .collect();
    Ok(Json(serde_json::Value::Array(rows)))
}

/// Creates a repository. Parameters AllegroGraph clients add (`vector-store-p`,
/// `embedder`, ...) are ignored. `override=false` makes an existing one a success.
pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(&uri);
    let tolerate_existing = params.flag("override")? == Some(false);
    let repository = name.clone();
    let outcome = blocking(move || match state.catalog.create(&name) {
        Ok(_) => {
            tracing::info!(repository = %name, "created repository");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(quadmesh_store::StoreError::RepositoryExists(_)) if tolerate_existing => {
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => Err(e.into()),
    })
    .await;
    audit::change(&caller, "repository-create", &repository, None, &outcome);
    outcome
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    let repository = name.clone();
    let outcome = blocking(move || {
        state.catalog.delete(&name)?;
        state.sessions.close_for_repository(&name);
        state.replication.stop(&name);
        tracing::info!(repository = %name, "deleted repository");
        Ok(StatusCode::NO_CONTENT)
    })
    .await;
    audit::change(&caller, "repository-delete", &repository, None, &outcome);
    outcome
}
