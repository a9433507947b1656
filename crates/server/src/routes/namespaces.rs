//! `/namespaces` and `/namespaces/PREFIX`. Changes are replicated transactions of the
//! repository (see `quadmesh_store::Namespaces`).

use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::target::{Target, Written};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use quadmesh_store::{check_namespace, BookKind, BookRecord, DEFAULT_NAMESPACES};
use std::collections::{BTreeMap, HashMap};

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
/// come back. One replicated transaction.
pub async fn clear(target: Target, uri: Uri) -> ApiResult<Response> {
    let reset = Params::from_uri(&uri).flag("reset")?.unwrap_or(false);
    let mut changes: BTreeMap<String, Option<String>> = target
        .repository()
        .namespaces()
        .list()
        .into_keys()
        .map(|prefix| (prefix, None))
        .collect();
    if reset {
        for (prefix, namespace) in DEFAULT_NAMESPACES {
            changes.insert(prefix.to_string(), Some(namespace.to_string()));
        }
    }
    change(target, changes).await
}

/// Commits `changes` (prefix → namespace, or none to delete) through the repository's
/// single writer, so that they replicate; the response carries the transaction.
async fn change(target: Target, changes: BTreeMap<String, Option<String>>) -> ApiResult<Response> {
    for (prefix, namespace) in &changes {
        check_namespace(prefix, namespace.as_deref())?;
    }
    let receipt = blocking(move || {
        Ok(target
            .repository()
            .commit_book(BookKind::Namespaces, |_, stamp| {
                Ok(changes
                    .into_iter()
                    .map(|(prefix, namespace)| {
                        (prefix, BookRecord::new(namespace.map(Into::into), stamp))
                    })
                    .collect())
            })?)
    })
    .await?;
    Ok(Written::Committed(receipt).tag(StatusCode::NO_CONTENT))
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
) -> ApiResult<Response> {
    let prefix = prefix_of(&params)?;
    let namespace = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the namespace must be UTF-8 text".into()))?;
    let namespace = namespace
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    change(target, BTreeMap::from([(prefix, Some(namespace))])).await
}

pub async fn delete_one(
    target: Target,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    let prefix = prefix_of(&params)?;
    if target.repository().namespaces().get(&prefix).is_none() {
        return Err(ApiError::NotFound(format!(
            "no namespace has the prefix '{prefix}'"
        )));
    }
    change(target, BTreeMap::from([(prefix, None)])).await
}
