//! Saved queries: each user's, per repository, kept in the repository's metadata book
//! (key `query/USER/NAME`, value `{"query": TEXT, "saved": MS}`), so that they replicate
//! with the repository like its settings. Saving needs write access to the repository
//! (it is a replicated transaction); listing shows the caller's own.

use crate::access::{Need, Rights};
use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use quadmesh_store::{BookKind, BookRecord};
use std::collections::BTreeMap;

const PREFIX: &str = "query/";
/// Longest saved query (bytes): metadata books are small, read whole.
const MAX_QUERY: usize = 64 * 1024;

fn key_prefix(user: &str) -> String {
    format!("{PREFIX}{}/", user.replace('/', "%2F"))
}

/// `GET /ui/repositories/NAME/queries`: the caller's saved queries, by name.
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    rights.require(&name, Need::Read)?;
    let repository = state.catalog.get(&name)?;
    let prefix = key_prefix(&rights.user);
    let book = repository.metadata_book();
    Ok(Json(
        book.present_under(&prefix)
            .into_iter()
            .filter_map(|title| {
                let value = book.get(&format!("{prefix}{title}"))?;
                Some(serde_json::json!({
                    "name": title,
                    "query": value.get("query")?,
                    "saved": value.get("saved"),
                }))
            })
            .collect(),
    ))
}

/// `POST /ui/repositories/NAME/queries` with `name` and `query` (form): saves it,
/// replacing a saved query of the same name; an empty `query` deletes it.
pub async fn save(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
    body: Bytes,
) -> Response {
    match save_inner(state, name, rights, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn save_inner(state: AppState, name: String, rights: Rights, body: Bytes) -> ApiResult<()> {
    rights.require(&name, Need::Write)?;
    let mut form = Params::default();
    form.extend_form(&body);
    let title = form.get("name").unwrap_or_default().trim().to_owned();
    if title.is_empty() || title.len() > 200 || title.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a saved query needs a name of 1 to 200 characters, without control characters".into(),
        ));
    }
    let query = form.get("query").unwrap_or_default().to_owned();
    if query.len() > MAX_QUERY {
        return Err(ApiError::BadRequest(format!(
            "a saved query may have at most {MAX_QUERY} bytes"
        )));
    }
    let repository = state.catalog.get(&name)?;
    let key = format!("{}{title}", key_prefix(&rights.user));
    let value = (!query.trim().is_empty())
        .then(|| serde_json::json!({ "query": query, "saved": quadmesh_cluster::now_ms() }));
    blocking(move || {
        repository.commit_book(BookKind::Metadata, |_, stamp| {
            Ok(BTreeMap::from([(key, BookRecord::new(value, stamp))]))
        })?;
        Ok(())
    })
    .await
}
