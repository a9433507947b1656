//! The HTTP surface: one module per resource; this file only assembles the router.

pub mod backup;
pub mod graph_store;
pub mod info;
pub mod metadata;
pub mod namespaces;
pub mod peer_snapshot;
pub mod promotion;
pub mod repl;
pub mod repositories;
pub mod roles;
pub mod server;
pub mod sessions;
pub mod sparql;
pub mod statements;
pub mod unsupported;
pub mod users;

use crate::middleware::{authenticate, durability, log_requests};
use crate::permissions::authorize;
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};
use axum::Router;

/// Routes under a repository or a session URL.
fn repository_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/statements",
            get(statements::get)
                .post(statements::post)
                .put(statements::put)
                .delete(statements::delete),
        )
        .route("/statements/delete", post(statements::delete_quads))
        .route("/statement", put(statements::put_one))
        .route("/size", get(info::size))
        .route("/contexts", get(info::contexts))
        .route("/blankNodes", post(info::blank_nodes))
        .route(
            "/namespaces",
            get(namespaces::list).delete(namespaces::clear),
        )
        .route(
            "/namespaces/{prefix}",
            get(namespaces::get_one)
                .put(namespaces::put_one)
                .delete(namespaces::delete_one),
        )
        .route("/rdf-graphs/service", any(graph_store::handle))
        .route("/rdf-graphs/{*graph}", any(graph_store::direct))
        .route(
            "/defaultDatasetBehavior",
            get(metadata::get_dataset)
                .put(metadata::put_dataset)
                .delete(metadata::delete_dataset),
        )
        .route(
            "/attributes/definitions",
            get(metadata::list_definitions)
                .post(metadata::define)
                .delete(metadata::undefine),
        )
        .route(
            "/attributes/staticFilter",
            get(metadata::get_static_filter)
                .post(metadata::set_static_filter)
                .delete(metadata::clear_static_filter),
        )
        .route(
            "/suppressDuplicates",
            get(metadata::get_suppression)
                .put(metadata::put_suppression)
                .delete(metadata::delete_suppression),
        )
        .route("/commit", post(sessions::commit))
        .route("/rollback", post(sessions::rollback))
}

/// `/users` and `/roles` (AllegroGraph's user management).
fn access_routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(users::list))
        .route("/users/{name}", put(users::put).delete(users::delete))
        .route("/users/{name}/password", post(users::password))
        .route(
            "/users/{name}/access",
            get(users::access)
                .put(users::change_access)
                .delete(users::change_access),
        )
        .route(
            "/users/{name}/effectiveAccess",
            get(users::effective_access),
        )
        .route("/users/{name}/permissions", get(users::permissions))
        .route(
            "/users/{name}/effectivePermissions",
            get(users::effective_permissions),
        )
        .route(
            "/users/{name}/permissions/{permission}",
            put(users::change_permission).delete(users::change_permission),
        )
        .route("/users/{name}/roles", get(users::roles))
        .route(
            "/users/{name}/roles/{role}",
            put(users::change_role).delete(users::change_role),
        )
        .route("/roles", get(roles::list))
        .route("/roles/{name}", put(roles::change).delete(roles::change))
        .route(
            "/roles/{name}/access",
            get(roles::access)
                .put(roles::change_access)
                .delete(roles::change_access),
        )
        .route("/roles/{name}/permissions", get(roles::permissions))
        .route(
            "/roles/{name}/permissions/{permission}",
            put(roles::change_permission).delete(roles::change_permission),
        )
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/version", get(server::version))
        .route("/hostname", get(server::hostname))
        .route("/ready", get(server::ready))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/catalogs", get(server::catalogs))
        .route("/repositories", get(repositories::list))
        .merge(access_routes())
        .route(
            "/repositories/{repo}",
            put(repositories::create)
                .delete(repositories::delete)
                .get(sparql::handle)
                .post(sparql::handle),
        )
        .route("/repositories/{repo}/session", post(sessions::open))
        .route("/repositories/{repo}/backup", get(backup::backup))
        .route("/repositories/{repo}/restore", put(backup::restore))
        .route(
            "/repositories/{repo}/repl/createCluster",
            put(repl::create_cluster),
        )
        .route(
            "/repositories/{repo}/repl/growCluster",
            put(repl::grow_cluster),
        )
        .route("/repositories/{repo}/repl/remove", put(repl::remove))
        .route("/repositories/{repo}/repl/stop", put(repl::stop))
        .route("/repositories/{repo}/repl/start", put(repl::start))
        .route("/repositories/{repo}/repl/settings", post(repl::settings))
        .route(
            "/repositories/{repo}/repl/controllingInstance",
            put(repl::controlling_instance),
        )
        .route(
            "/repositories/{repo}/repl/setControlling",
            put(repl::set_controlling),
        )
        .route("/repositories/{repo}/repl/promote", put(promotion::promote))
        .route("/repositories/{repo}/repl/vote", put(promotion::vote))
        .route("/repositories/{repo}/repl/confirm", put(promotion::confirm))
        .route("/repositories/{repo}/repl/status", get(repl::status))
        .route("/repositories/{repo}/repl/install", put(repl::install))
        .route("/repositories/{repo}/repl/stream", get(repl::stream))
        .route("/repositories/{repo}/repl/clock", get(repl::clock))
        .route("/repositories/{repo}/repl/frames", post(repl::frames))
        .route(
            "/repositories/{repo}/repl/snapshot",
            get(peer_snapshot::snapshot),
        )
        .route("/repositories/{repo}/repl/removed", put(repl::removed))
        .route("/repositories/{repo}/repl/hold", put(repl::hold))
        .route(
            "/repositories/{repo}/repl/membership",
            get(repl::membership),
        )
        .nest("/repositories/{repo}", repository_routes())
        .route(
            "/sessions/{session}",
            get(sparql::handle).post(sparql::handle),
        )
        .route(
            "/sessions/{session}/session/ping",
            get(sessions::ping).post(sessions::ping),
        )
        .route(
            "/sessions/{session}/session/close",
            post(sessions::close).get(sessions::close),
        )
        .route(
            "/sessions/{session}/session/autoCommit",
            post(sessions::auto_commit),
        )
        .nest("/sessions/{session}", repository_routes())
        .merge(crate::ui::routes())
        .fallback(unsupported::fallback)
        .method_not_allowed_fallback(unsupported::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            durability,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::causal::causal_tokens,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::session_forward::forward_sessions,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log_requests,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A refusal of a peer's replication call as a response: its JSON, with `status`.
pub(crate) fn refusal_response(
    refusal: quadmesh_repl::PeerRefusal,
    status: axum::http::StatusCode,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(refusal)).into_response()
}
