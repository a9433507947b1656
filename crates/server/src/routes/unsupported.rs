//! Every URL no route serves: AllegroGraph endpoints quadmesh does not implement are
//! named as such (501), anything else is a 404 that says what was asked for, so that a
//! script written for AllegroGraph fails with a reason rather than a bare 404.

use crate::error::ApiError;
use axum::extract::OriginalUri;
use axum::http::Method;

/// AllegroGraph's repository (or session) endpoints quadmesh lacks: the first path
/// segment after `/repositories/NAME/`, and what the feature is.
const REPOSITORY_FEATURES: &[(&str, &str)] = &[
    ("freetext", "free-text indices"),
    (
        "attributes",
        "triple attributes (attribute definitions are kept)",
    ),
    ("functor", "Prolog functors"),
    ("eval", "server-side Lisp/Prolog evaluation"),
    ("prolog", "Prolog queries"),
    ("geo", "geospatial indices"),
    ("mapping", "datatype and predicate mappings"),
    ("indices", "triple-index management"),
    ("tripleCache", "the triple cache"),
    ("bulkMode", "bulk mode"),
    ("noCommit", "no-commit mode"),
    ("materializeEntailed", "materialized reasoning"),
    ("spin", "SPIN functions and magic properties"),
    ("snaGenerators", "social network analysis generators"),
    (
        "neighborMatrices",
        "social network analysis neighbor matrices",
    ),
    ("encodedIds", "encoded ids"),
    ("custom", "custom services"),
    ("metadata", "repository metadata"),
    ("warmup", "warm-up"),
    ("solr", "Solr integration"),
    ("mongoParameters", "MongoDB integration"),
    ("nd", "nD geospatial indices"),
    ("dedup", "duplicate removal"),
    ("uploadFile", "server-side file loading"),
    ("graphql", "GraphQL queries"),
    ("query-options", "query options kept per repository"),
];

/// AllegroGraph's server-level endpoints quadmesh lacks.
const SERVER_FEATURES: &[(&str, &str)] = &[
    (
        "users",
        "security filters and per-user data (users, access, permissions and roles are supported)",
    ),
    ("roles", "security filters of roles"),
    ("initfile", "the initialization file"),
    ("scripts", "server-side scripts"),
    ("processes", "process management"),
    ("jobs", "job management"),
    ("systemStat", "system statistics (see /metrics)"),
    ("auditLog", "the audit log"),
    ("federated", "federated repositories"),
    ("reconfigure", "reconfiguration"),
];

pub async fn fallback(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    let path = uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let feature = match segments.as_slice() {
        ["repositories" | "sessions", _, "statements", "transform", ..] => {
            Some("document import with transformation rules (addDocumentData: JSON and CSV)")
        }
        ["repositories" | "sessions", _, first, ..] => feature(REPOSITORY_FEATURES, first),
        ["catalogs", _, ..] => Some("catalogs other than the root catalog"),
        [first, ..] => feature(SERVER_FEATURES, first),
        [] => None,
    };
    match feature {
        Some(what) => ApiError::NotSupported(format!(
            "{method} {path}: not supported by quadmesh: AllegroGraph's {what} (see docs/compatibility.md)"
        )),
        None => ApiError::NotFound(format!(
            "{method} {path}: quadmesh has no such endpoint (see docs/compatibility.md)"
        )),
    }
}

fn feature(table: &[(&str, &'static str)], segment: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(name, _)| *name == segment)
        .map(|(_, what)| *what)
}

/// A method a known URL does not take (e.g. a SPARQL query sent with PUT or PATCH).
pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{method} {}: this endpoint does not take {method}",
        uri.path()
    ))
}
