//! The web UI, served by quadmesh itself: server-rendered pages with a little plain
//! JavaScript and CSS embedded in the binary. Sign-in gives a cookie (HttpOnly,
//! SameSite=Strict) that the REST API accepts too, so the pages' scripts use the API.

pub mod guard;
mod pages;

use crate::audit::{self, Caller};
use crate::error::ApiError;
use crate::params::Params;
use crate::routes::{repl, repositories};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "quadmesh_ui";
const LOGIN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Signed-in browsers: cookie token → expiry. In memory: a restart signs everyone out.
#[derive(Default)]
pub struct UiLogins(Mutex<HashMap<String, Instant>>);

impl UiLogins {
    fn open(&self) -> String {
        let token: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let mut logins = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        logins.retain(|_, expiry| *expiry > now);
        logins.insert(token.clone(), now + LOGIN_LIFETIME);
        token
    }

    /// Whether the request carries a live sign-in cookie.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        let Some(token) = cookie(headers) else {
            return false;
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&token);
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Paths of the UI that need no sign-in.
pub fn is_open_path(path: &str) -> bool {
    path == "/" || path == "/ui/login" || path.starts_with("/ui/assets/")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/assets/style.css", get(style))
        .route("/ui/assets/app.js", get(script))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui", get(home))
        .route("/ui/repositories", post(create_repository))
        .route("/ui/repositories/{repo}", get(repository_page))
        .route("/ui/repositories/{repo}/delete", post(delete_repository))
        .route("/ui/repositories/{repo}/replication", get(replication_page))
        .route("/ui/repositories/{repo}/grow", post(grow))
        .route("/ui/repositories/{repo}/remove", post(remove))
        .layer(axum::middleware::from_fn(guard::protect))
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
        .into_response()
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
    let token = state.ui_logins.open();
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

async fn home(State(state): State<AppState>, uri: Uri) -> Html<String> {
    let rows = crate::error::blocking(move || {
        Ok(state
            .catalog
            .list()
            .iter()
            .map(|r| {
                (
                    r.name().to_owned(),
                    r.size(None).unwrap_or(0),
                    r.cluster().config.is_some(),
                )
            })
            .collect::<Vec<_>>())
    })
    .await
    .unwrap_or_default();
    Html(pages::home(&rows, messages(&uri)))
}

async fn create_repository(State(state): State<AppState>, caller: Caller, body: Bytes) -> Response {
    let mut form = Params::default();
    form.extend_form(&body);
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    let uri: Uri = "/".parse().expect("a valid URI");
    let result = repositories::create(State(state), Path(name.clone()), caller, uri)
        .await
        .map(|_| ());
    back("/ui", result, &format!("Created repository {name}."))
}

async fn delete_repository(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Response {
    let result = repositories::delete(State(state), Path(name.clone()), caller)
        .await
        .map(|_| ());
    back("/ui", result, &format!("Deleted repository {name}."))
}

async fn repository_page(State(state): State<AppState>, Path(name): Path<String>) -> Response {
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
    Html(pages::repository(&name, size)).into_response()
}

async fn replication_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> Response {
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
    Html(pages::replication(&name, status.as_ref(), messages(&uri))).into_response()
}

fn query_uri(form: &Params, keys: &[&str]) -> Uri {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            keys.iter()
                .filter_map(|k| form.get(k).map(|v| (*k, v.trim()))),
        )
        .finish();
    format!("/?{query}")
        .parse()
        .expect("an encoded query is a valid URI")
}

async fn grow(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Response {
    let mut form = Params::default();
    form.extend_form(&body);
    let instance = form.get("instanceName").unwrap_or_default().to_owned();
    let uri = query_uri(&form, &["host", "port", "user", "password", "instanceName"]);
    let result = repl::grow_cluster(State(state), Path(name.clone()), caller, uri)
        .await
        .map(|_| ());
    back(
        &format!("/ui/repositories/{name}/replication"),
        result,
        &format!("Grew the cluster with {instance}."),
    )
}

async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Response {
    let mut form = Params::default();
    form.extend_form(&body);
    let instance = form.get("instanceName").unwrap_or_default().to_owned();
    let uri = query_uri(&form, &["instanceName", "force"]);
    let result = repl::remove(State(state), Path(name.clone()), caller, uri)
        .await
        .map(|_| ());
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
