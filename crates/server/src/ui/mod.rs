//! The web UI, served by quadmesh itself: server-rendered pages with a little plain
//! JavaScript and CSS embedded in the binary. Sign-in gives a cookie (HttpOnly,
//! SameSite=Strict) that the REST API accepts too, so the pages' scripts use the API.

mod assets;
pub mod charts;
pub mod guard;
pub mod logins;
mod manage;
mod pages;
pub mod samples;
mod saved;

pub use logins::{COOKIE, LOGIN_LIFETIME};

use crate::access::{Need, Permission, Rights};
use crate::audit::{self, Caller};
use crate::cluster_ops;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

/// Paths of the UI that need no sign-in.
pub fn is_open_path(path: &str) -> bool {
    path == "/" || path == "/ui/login" || path.starts_with("/ui/assets/")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui", get(home))
        .route("/ui/repositories", post(create_repository))
        .route("/ui/repositories/{repo}", get(repository_page))
        .route("/ui/repositories/{repo}/delete", post(delete_repository))
        .route("/ui/repositories/{repo}/replication", get(replication_page))
        .route("/ui/repositories/{repo}/grow", post(grow))
        .route("/ui/repositories/{repo}/remove", post(remove))
        .route(
            "/ui/repositories/{repo}/replication/samples",
            get(charts::samples),
        )
        .route(
            "/ui/repositories/{repo}/queries",
            get(saved::list).post(saved::save),
        )
        .route(
            "/ui/repositories/{repo}/namespaces",
            get(manage::namespaces_page),
        )
        .route("/ui/users", get(manage::users_page))
        .route("/ui/roles", get(manage::roles_page))
        .layer(axum::middleware::from_fn(guard::protect))
}

async fn login_page(uri: Uri) -> Html<String> {
    let params = Params::from_uri(&uri);
    Html(pages::login(params.get("error")))
}

async fn login(State(state): State<AppState>, caller: Caller, body: Bytes) -> Response {
    let mut form = Params::default();
    form.extend_form(&body);
    let (user, password) = (
        form.get("user").unwrap_or_default(),
        form.get("password").unwrap_or_default(),
    );
    let from = caller.from;
    if let Err(wait) = state.sign_in_throttle.check(from) {
        audit::sign_in_failed(Some(user), from, "form", "throttled");
        let text = format!(
            "Too many failed sign-ins: try again in {} s.",
            wait.as_secs() + 1
        );
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        return Redirect::to(&format!("/ui/login?error={encoded}")).into_response();
    }
    if !state.auth.check_credentials(user, password).await {
        state.sign_in_throttle.failed(from);
        audit::sign_in_failed(Some(user), from, "form", "wrong credentials");
        return Redirect::to("/ui/login?error=Wrong+user+or+password.").into_response();
    }
    state.sign_in_throttle.succeeded(from);
    let token = state.ui_logins.open(user);
    // Over TLS only (unless plain HTTP is kept), the browser never sends it in clear.
    let tls = &state.config.tls;
    let secure = if tls.cert_and_key.is_some() && !tls.keep_plain_http {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        LOGIN_LIFETIME.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui")).into_response()
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    state.ui_logins.close(&headers);
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

/// Back to a page, with a message to show there.
fn back(to: &str, result: Result<(), ApiError>, success: &str) -> Response {
    let (key, text) = match result {
        Ok(()) => ("notice", success.to_owned()),
        Err(e) => ("error", e.to_string()),
    };
    let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    Redirect::to(&format!("{to}?{key}={encoded}")).into_response()
}

fn messages(uri: &Uri) -> (Option<String>, Option<String>) {
    let params = Params::from_uri(uri);
    (
        params.get("error").map(str::to_owned),
        params.get("notice").map(str::to_owned),
    )
}

/// The repositories the user may read, with whether it may write each.
async fn home(State(state): State<AppState>, rights: Rights, uri: Uri) -> Html<String> {
    let may_create = rights.can("*", Need::Write);
    let rows = crate::error::blocking(move || {
        Ok(state
            .catalog
            .list()
            .iter()
            .filter(|r| rights.can(r.name(), Need::Read))
            .map(|r| pages::RepositoryRow {
                name: r.name().to_owned(),
                size: r.size(None).unwrap_or(0),
                replicated: r.cluster().config.is_some(),
                writable: rights.can(r.name(), Need::Write),
            })
            .collect::<Vec<_>>())
    })
    .await
    .unwrap_or_default();
    Html(pages::home(&rows, may_create, messages(&uri)))
}

async fn create_repository(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    body: Bytes,
) -> Response {
    let mut form = Params::default();
    form.extend_form(&body);
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    if let Err(e) = rights.require(&name, Need::Write) {
        return e.into_response();
    }
    let result = cluster_ops::create_repository(&state, &caller, &name, false).await;
    back("/ui", result, &format!("Created repository {name}."))
}

async fn delete_repository(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
    caller: Caller,
) -> Response {
    if let Err(e) = rights.require(&name, Need::Write) {
        return e.into_response();
    }
    let result = cluster_ops::delete_repository(&state, &caller, &name).await;
    back("/ui", result, &format!("Deleted repository {name}."))
}

async fn repository_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
) -> Response {
    if let Err(e) = rights.require(&name, Need::Read) {
        return e.into_response();
    }
    let Ok(repository) = state.catalog.get(&name) else {
        return back(
            "/ui",
            Err(ApiError::NotFound(format!(
                "repository '{name}' does not exist"
            ))),
            "",
        );
    };
    let size = crate::error::blocking(move || Ok(repository.size(None)?))
        .await
        .unwrap_or(0);
    let writable = rights.can(&name, Need::Write);
    Html(pages::repository(&name, size, writable)).into_response()
}

async fn replication_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
    uri: Uri,
) -> Response {
    if let Err(e) = rights.require(&name, Need::Read) {
        return e.into_response();
    }
    if state.catalog.get(&name).is_err() {
        return back(
            "/ui",
            Err(ApiError::NotFound(format!(
                "repository '{name}' does not exist"
            ))),
            "",
        );
    }
    let status = match state.replication.get(&name) {
        Some(node) => tokio::task::spawn_blocking(move || {
            node.maintain();
            node.status()
        })
        .await
        .ok(),
        None => None,
    };
    let may_change = rights.has(Permission::Replication);
    Html(pages::replication(
        &name,
        status.as_ref(),
        may_change,
        messages(&uri),
    ))
    .into_response()
}

async fn grow(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
    caller: Caller,
    body: Bytes,
) -> Response {
    if let Err(e) = rights.require_permission(Permission::Replication) {
        return e.into_response();
    }
    let mut form = Params::default();
    form.extend_form(&body);
    let instance = form.get("instanceName").unwrap_or_default().to_owned();
    let result = match cluster_ops::grow_request(&form) {
        Ok(request) => cluster_ops::grow_cluster(&state, &caller, &name, request).await,
        Err(e) => Err(e),
    };
    back(
        &format!("/ui/repositories/{name}/replication"),
        result,
        &format!("Grew the cluster with {instance}."),
    )
}

async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
    caller: Caller,
    body: Bytes,
) -> Response {
    if let Err(e) = rights.require_permission(Permission::Replication) {
        return e.into_response();
    }
    let mut form = Params::default();
    form.extend_form(&body);
    let instance = form.get("instanceName").unwrap_or_default().to_owned();
    let result = match form.flag("force") {
        Ok(force) => {
            cluster_ops::remove_member(
                &state,
                &caller,
                &name,
                &instance,
                cluster_ops::RemoveOptions {
                    force: force.unwrap_or(false),
                    ..Default::default()
                },
            )
            .await
        }
        Err(e) => Err(e),
    };
    back(
        &format!("/ui/repositories/{name}/replication"),
        result,
        &format!("Removed {instance} from the cluster."),
    )
}

/// What an unauthenticated browser gets for a UI page: the sign-in page.
pub fn sign_in_redirect() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response()
}
