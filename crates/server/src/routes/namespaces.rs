//! `/namespaces` and `/namespaces/PREFIX`.

use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::target::Target;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, Uri};
use axum::Json;
use quadmesh_store::DEFAULT_NAMESPACES;
use std::collections::HashMap;

pub async fn list(target: Target) -> Json<Vec<serde_json::Value>> {
    Json(
        target
            .repository()
            .namespaces()
            .list()
            .into_iter()
            .map(|(prefix, namespace)| serde_json::json!({ "prefix": prefix, "namespace": namespace }))
            .collect(),
    )
}

/// `DELETE /namespaces`: removes the user's prefixes; with `reset=true`, the defaults
/// come back.
pub async fn clear(target: Target, uri: Uri) -> ApiResult<StatusCode> {
    let reset = Params::from_uri(&uri).flag("reset")?.unwrap_or(false);
    blocking(move || {
        let namespaces = target.repository().namespaces();
        for prefix in namespaces.list().keys() {
            namespaces.remove(prefix)?;
        }
        if reset {
            for (prefix, namespace) in DEFAULT_NAMESPACES {
                namespaces.set(prefix, namespace)?;
            }
        }
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

fn prefix_of(params: &HashMap<String, String>) -> ApiResult<String> {
    params
        .get("prefix")
        .cloned()
        .ok_or_else(|| ApiError::Internal("route without a prefix".into()))
}

/// One namespace, as a JSON string (agraph-python decodes it).
pub async fn get_one(
    target: Target,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Json<String>> {
    let prefix = prefix_of(&params)?;
    target
        .repository()
        .namespaces()
        .get(&prefix)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no namespace has the prefix '{prefix}'")))
}

/// `PUT /namespaces/PREFIX` with the namespace IRI as the body.
pub async fn put_one(
    target: Target,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let prefix = prefix_of(&params)?;
    let namespace = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the namespace must be UTF-8 text".into()))?;
    let namespace = namespace
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    blocking(move || {
        target.repository().namespaces().set(&prefix, &namespace)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

pub async fn delete_one(
    target: Target,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let prefix = prefix_of(&params)?;
    blocking(move || {
        if target.repository().namespaces().remove(&prefix)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound(format!(
                "no namespace has the prefix '{prefix}'"
            )))
        }
    })
    .await
}
