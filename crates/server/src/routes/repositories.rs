//! `/repositories`: list, create, delete.

use crate::audit::Caller;
use crate::error::ApiResult;
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

/// The repositories the caller may read.
pub async fn list(
    State(state): State<AppState>,
    rights: crate::access::Rights,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    use crate::access::Need;
    let base = base_url(&headers);
    let rows: Vec<_> = state
        .catalog
        .list()
        .iter()
        .filter(|r| rights.can(r.name(), Need::Read))
        .map(|r| {
            serde_json::json!({
                "id": r.name(),
                "uri": format!("{base}/repositories/{}", r.name()),
                "title": r.name(),
                "readable": true,
                "writable": rights.can(r.name(), Need::Write),
            })
        })
        .collect();
    // Damaged ones are listed too, neither readable nor writable, with the reason.
    let mut rows = rows;
    for (name, reason) in state.catalog.unavailable() {
        if rights.can(&name, Need::Read) {
            rows.push(serde_json::json!({
                "id": name,
                "uri": format!("{base}/repositories/{name}"),
                "title": name,
                "readable": false,
                "writable": false,
                "unavailable": reason,
            }));
        }
    }
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
    crate::cluster_ops::create_repository(&state, &caller, &name, tolerate_existing).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    crate::cluster_ops::delete_repository(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
