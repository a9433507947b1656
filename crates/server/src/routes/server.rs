//! Server-level resources: `/version`, `/hostname`, `/catalogs`.

use crate::formats::accepted;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// quadmesh's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The AllegroGraph release whose HTTP protocol quadmesh speaks (as agraph-python 105.4
/// speaks it to AllegroGraph 8), less what docs/compatibility.md lists as missing.
pub const ALLEGROGRAPH_PROTOCOL: &str = "8.0.0";

/// What `/version` answers: the AllegroGraph protocol version, which AllegroGraph's
/// clients compare against to know which calls they may make (agraph-python's tests skip
/// replication below 8.0), with quadmesh's own version as a PEP 440 local label, e.g.
/// `8.0.0+quadmesh.0.1.0` (`packaging` reads it as 8.0.0; the Java client's digit
/// scan as 8.0.0.0.1.0).
pub fn reported_version() -> String {
    format!("{ALLEGROGRAPH_PROTOCOL}+quadmesh.{VERSION}")
}

/// The version; a JSON string for clients that ask for JSON (agraph-python does).
pub async fn version(headers: HeaderMap) -> Response {
    let version = reported_version();
    if accepted(&headers).iter().any(|m| m == "application/json") {
        return Json(version).into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{version}\n"),
    )
        .into_response()
}

pub async fn hostname() -> Response {
    let name = hostname::get()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{name}\n"),
    )
        .into_response()
}

/// Only the root catalog exists; agraph-python's `openCatalog` needs it listed as "/".
pub async fn catalogs() -> Json<serde_json::Value> {
    Json(serde_json::json!([{ "id": "/", "readable": true, "writable": true }]))
}

/// Readiness probe: 200 once the instance has taken its role and caught up.
pub async fn ready(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> Response {
    // Anti-entropy: an instance whose contents differ, at the same version vector,
    // from most of the peers it compared with must not be sent traffic as if healthy.
    for node in state.replication.nodes() {
        let config = node.config();
        let name = node.repository().name();
        let repair = if state.config.auto_repair {
            "it is being repaired from a peer"
        } else {
            "automatic repair is off (--no-auto-repair)"
        };
        let why = if node.repository().knows_damage() {
            Some(format!(
                "the store of repository '{name}' is damaged (a scrub found it); {repair}"
            ))
        } else if node.anti_entropy.in_minority(|o| config.is_member(o)) {
            Some(format!("the contents of repository '{name}' differ from most peers' at the same version vector (see repl status); {repair}"))
        } else {
            None
        };
        if let Some(why) = why {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            )
                .into_response();
        }
    }
    let readiness = state.readiness.borrow().clone();
    let readiness = match readiness {
        crate::readiness::Readiness::Ready => {
            let st = state.clone();
            match tokio::task::spawn_blocking(move || crate::roles::writes_refused(&st)).await {
                Ok(Some(reason)) => crate::readiness::Readiness::NotReady(reason),
                _ => crate::readiness::Readiness::Ready,
            }
        }
        not_ready => not_ready,
    };
    match &readiness {
        crate::readiness::Readiness::Ready => {
            (axum::http::StatusCode::OK, "ready\n").into_response()
        }
        crate::readiness::Readiness::NotReady(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}
