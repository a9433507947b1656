//! A repository's settings and AllegroGraph's management calls around features quadmesh
//! lacks, answered truthfully: the default-dataset setting, attribute definitions
//! (stored and replicated in the repository's metadata book, while attributes on
//! statements stay unsupported), the static attribute filter (none is ever set) and the
//! duplicate-suppression policy (the store keeps each quad once: `spog`).

use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::state::AppState;
use crate::target::{Target, Written};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quadmesh_store::{BookKind, BookRecord, DatasetBehavior, Repository};
use std::collections::BTreeMap;

/// The metadata-book key of the repository's default-dataset setting.
const DATASET_KEY: &str = "setting/defaultDatasetBehavior";
/// The metadata-book keys of attribute definitions: this, then the name.
const ATTRIBUTE_PREFIX: &str = "attribute/";

/// What a query or update of `repository` without a dataset sees: the repository's
/// setting, else the server's.
pub fn dataset_behavior(state: &AppState, repository: &Repository) -> DatasetBehavior {
    repository
        .metadata_book()
        .get(DATASET_KEY)
        .and_then(|v| v.as_str().and_then(DatasetBehavior::parse))
        .unwrap_or(state.config.default_dataset)
}

/// `GET /repositories/NAME/defaultDatasetBehavior`: `all` or `rdf`, and whether it is
/// the repository's own setting or the server's.
pub async fn get_dataset(State(state): State<AppState>, target: Target) -> Json<serde_json::Value> {
    let repository = target.repository();
    let own = repository.metadata_book().get(DATASET_KEY).is_some();
    Json(serde_json::json!({
        "defaultDatasetBehavior": dataset_behavior(&state, repository).as_str(),
        "source": if own { "repository" } else { "server" },
    }))
}

/// `PUT /repositories/NAME/defaultDatasetBehavior?value=all|rdf` (or the value as the
/// body): the repository's own setting, replicated.
pub async fn put_dataset(target: Target, uri: Uri, body: Bytes) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    let text = match params.get("value") {
        Some(v) => v.to_owned(),
        None => String::from_utf8_lossy(&body).trim().to_owned(),
    };
    let behavior = DatasetBehavior::parse(&text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "defaultDatasetBehavior '{text}': use all (AllegroGraph: a query without a dataset sees every graph) or rdf (W3C: the default graph alone)"
        ))
    })?;
    commit(
        target,
        DATASET_KEY.to_owned(),
        Some(behavior.as_str().into()),
    )
    .await
}

/// `DELETE /repositories/NAME/defaultDatasetBehavior`: back to the server's setting.
pub async fn delete_dataset(target: Target) -> ApiResult<Response> {
    commit(target, DATASET_KEY.to_owned(), None).await
}

async fn commit(
    target: Target,
    key: String,
    value: Option<serde_json::Value>,
) -> ApiResult<Response> {
    let receipt = blocking(move || {
        Ok(target
            .repository()
            .commit_book(BookKind::Metadata, |_, stamp| {
                Ok(BTreeMap::from([(key, BookRecord::new(value, stamp))]))
            })?)
    })
    .await?;
    Ok(Written::Committed(receipt).tag(StatusCode::NO_CONTENT))
}

/// An attribute definition as AllegroGraph describes it.
fn definition(params: &Params) -> ApiResult<serde_json::Value> {
    let name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("parameter 'name' is required".into()))?;
    if name.chars().any(|c| c.is_control()) || name.len() > 256 {
        return Err(ApiError::BadRequest(format!(
            "invalid attribute name '{name}'"
        )));
    }
    let ordered = params.flag("ordered")?.unwrap_or(false);
    let minimum: Option<u64> = params.number("minimum-number")?;
    let maximum: Option<u64> = params.number("maximum-number")?;
    if let (Some(min), Some(max)) = (minimum, maximum) {
        if min > max {
            return Err(ApiError::BadRequest(format!(
                "minimum-number {min} is above maximum-number {max}"
            )));
        }
    }
    let allowed: Vec<&str> = params.all("allowed-values").collect();
    if ordered && allowed.is_empty() {
        return Err(ApiError::BadRequest(
            "an ordered attribute needs its allowed-values".into(),
        ));
    }
    Ok(serde_json::json!({
        "name": name,
        "ordered": ordered,
        "minimum-number": minimum.unwrap_or(0),
        "maximum-number": maximum,
        "allowed-values": allowed,
    }))
}

/// `GET /attributes/definitions` (every definition, or `?name=` one).
pub async fn list_definitions(target: Target, uri: Uri) -> ApiResult<Json<serde_json::Value>> {
    let params = Params::from_uri(&uri);
    let book = target.repository().metadata_book();
    let all = book.present(|key, value| {
        key.strip_prefix(ATTRIBUTE_PREFIX)
            .map(|name| (name.to_owned(), value.clone()))
    });
    let chosen: Vec<serde_json::Value> = all
        .into_iter()
        .filter(|(name, _)| params.get("name").is_none_or(|n| n == name))
        .map(|(_, v)| v)
        .collect();
    Ok(Json(serde_json::Value::Array(chosen)))
}

/// `POST /attributes/definitions?name=&allowed-values=...&ordered=&minimum-number=&maximum-number=`.
pub async fn define(target: Target, uri: Uri) -> ApiResult<Response> {
    let value = definition(&Params::from_uri(&uri))?;
    let name = value["name"].as_str().unwrap_or_default().to_owned();
    commit(target, format!("{ATTRIBUTE_PREFIX}{name}"), Some(value)).await
}

/// `DELETE /attributes/definitions?name=`.
pub async fn undefine(target: Target, uri: Uri) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    let name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("parameter 'name' is required".into()))?
        .to_owned();
    let key = format!("{ATTRIBUTE_PREFIX}{name}");
    if target.repository().metadata_book().get(&key).is_none() {
        return Err(ApiError::NotFound(format!(
            "attribute '{name}' is not defined"
        )));
    }
    commit(target, key, None).await
}

/// `GET /attributes/staticFilter`: quadmesh never holds one (setting one is refused),
/// so the answer is always none.
pub async fn get_static_filter() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /attributes/staticFilter`: there is none; nothing to remove.
pub async fn clear_static_filter() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /attributes/staticFilter`: refused, since statements carry no attributes here.
pub async fn set_static_filter() -> ApiError {
    ApiError::NotSupported(
        "attribute filters are not supported by quadmesh: statements carry no attributes (AllegroGraph's triple attributes; see docs/compatibility.md)".into(),
    )
}

/// The policy the store enforces: a quad (subject, predicate, object, graph) is held
/// at most once.
const POLICY: &str = "spog";

/// `GET /suppressDuplicates`.
pub async fn get_suppression() -> Json<&'static str> {
    Json(POLICY)
}

/// `PUT /suppressDuplicates?type=spog|spo|false`.
pub async fn put_suppression(uri: Uri) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    match params.get("type").unwrap_or("").to_ascii_lowercase().as_str() {
        "spog" => Ok(StatusCode::NO_CONTENT.into_response()),
        "false" | "none" | "" => Ok(no_disabling()),
        other => Err(ApiError::BadRequest(format!(
            "duplicate suppression '{other}' is not available: quadmesh keeps each statement once per graph (policy spog), and cannot keep only one of equal statements in different graphs"
        ))),
    }
}

/// `DELETE /suppressDuplicates`.
pub async fn delete_suppression() -> Response {
    no_disabling()
}

/// Disabling suppression (AllegroGraph's default, which keeps duplicates) cannot be
/// done: the store holds each quad once. Answered 200 with the policy in force, so that
/// clients that disable it before their work (agraph-python's test fixture) go on.
fn no_disabling() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("quadmesh stores each statement once per graph: duplicates are never kept, so suppression cannot be disabled; the policy in force stays {POLICY}\n"),
    )
        .into_response()
}

/// The `x-user-attributes` header (agraph-python's `setUserAttributes`): a JSON object
/// of attribute names to a string or a list of strings. Accepted (it filters nothing,
/// since no attribute filter can be set); malformed ones are refused.
pub fn check_user_attributes(headers: &HeaderMap) -> ApiResult<()> {
    let Some(value) = headers.get("x-user-attributes") else {
        return Ok(());
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("x-user-attributes is not text".into()))?;
    let parsed: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("x-user-attributes is not JSON: {e}")))?;
    let ok = parsed.as_object().is_some_and(|o| {
        o.values().all(|v| {
            v.is_string()
                || v.as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string))
        })
    });
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "x-user-attributes must be a JSON object of names to a string or a list of strings, got {text}"
        )));
    }
    Ok(())
}
