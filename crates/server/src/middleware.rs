use crate::audit::{self, Caller};
use crate::error::ApiError;
use crate::http_metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;
use crate::target::CommitInfo;
use axum::extract::{Request, State};
use axum::http::header;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quadmesh_cluster::durability::{Durability, ReplSettings};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Paths that answer without credentials: probes use them.
const OPEN_PATHS: &[&str] = &["/version", "/hostname", "/ready"];

/// Instance-to-instance paths: authenticated by the cluster token, in their handlers.
fn is_peer_path(path: &str) -> bool {
    path.starts_with("/repositories/")
        && (path.ends_with("/repl/stream")
            || path.ends_with("/repl/removed")
            || path.ends_with("/repl/membership")
            || path.ends_with("/repl/clock")
            || path.ends_with("/repl/frames")
            || path.ends_with("/repl/hold")
            || path.ends_with("/repl/confirm")
            || path.ends_with("/repl/snapshot"))
}

/// HTTP Basic authentication of the superuser or a user (or the UI's cookie; or, when
/// the user `anonymous` exists, no credentials at all) on everything but the probe
/// paths; records the `Caller` for handlers and the audit log, and the caller's
/// `Rights` for `permissions::authorize` and handlers. A client
/// address with repeated failures waits before its credentials are even checked
/// (`SignInThrottle`), unless they were verified a moment ago. A request signed in by
/// cookie that may change something must come from our own pages (`same_origin`).
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) || is_peer_path(path) || crate::ui::is_open_path(path) {
        return next.run(request).await;
    }
    let from = audit::client_address(request.extensions());
    if let Some(user) = state.ui_logins.check(request.headers()) {
        if !request.method().is_safe() && !crate::ui::guard::same_origin(request.headers()) {
            return crate::ui::guard::foreign_origin();
        }
        // A user deleted since signing in is signed out.
        if !state.auth.is_superuser(&user) && !state.access.user_exists(&user) {
            if path.starts_with("/ui") {
                return crate::ui::sign_in_redirect();
            }
            return ApiError::Unauthorized.into_response();
        }
        insert_caller(&state, &mut request, user, from);
        return next.run(request).await;
    }
    if path.starts_with("/ui") {
        return crate::ui::sign_in_redirect();
    }
    let Some(credentials) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        if state.access.user_exists(crate::access::ANONYMOUS) {
            insert_caller(
                &state,
                &mut request,
                crate::access::ANONYMOUS.to_owned(),
                from,
            );
            return next.run(request).await;
        }
        return ApiError::Unauthorized.into_response();
    };
    let user = crate::auth::claimed_user(&credentials);
    if !state.auth.is_verified(&credentials) {
        if let Err(wait) = state.sign_in_throttle.check(from) {
            audit::sign_in_failed(user.as_deref(), from, "basic", "throttled");
            return ApiError::TooManySignIns(wait).into_response();
        }
        if state.auth.check_header(&credentials).await.is_none() {
            state.sign_in_throttle.failed(from);
            audit::sign_in_failed(user.as_deref(), from, "basic", "wrong credentials");
            return ApiError::Unauthorized.into_response();
        }
        state.sign_in_throttle.succeeded(from);
    }
    insert_caller(&state, &mut request, user.unwrap_or_default(), from);
    next.run(request).await
}

/// Records who a signed-in request comes from, and what it may do.
fn insert_caller(state: &AppState, request: &mut Request, user: String, from: std::net::IpAddr) {
    request.extensions_mut().insert(crate::access::Rights {
        superuser: state.auth.is_superuser(&user),
        user: user.clone(),
        access: state.access.clone(),
    });
    request.extensions_mut().insert(Caller { user, from });
}

/// One log line and the HTTP metrics per request: method, route, status, duration.
pub async fn log_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The route pattern, not the path: label values stay few.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    let millis = seconds * 1000.0;
    state
        .http_metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.to_string(),
            status,
        })
        .inc();
    state
        .http_metrics
        .latency
        .get_or_create(&RouteLabels {
            route,
            method: method.to_string(),
        })
        .observe(seconds);
    if status >= 500 {
        tracing::warn!(%method, %path, status, millis, "request");
    } else {
        tracing::debug!(%method, %path, status, millis, "request");
    }
    response
}

/// The repository a request acts on, from its path (a session's, for session paths).
pub(crate) fn repository_of(state: &AppState, path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some("repositories"), Some(name)) => Some(name.to_owned()),
        (Some("sessions"), Some(id)) => state
            .sessions
            .get(id)
            .map(|s| s.repository.name().to_owned()),
        _ => None,
    }
}

/// `x-repl-settings`: refuses what a cluster cannot meet (409), holds back commits while too
/// many wait for durability, and after a commit waits until enough members hold it,
/// answering `x-durability: missing=N` when the wait ran out.
pub async fn durability(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get("x-repl-settings")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = request.uri().path();
    let node = repository_of(&state, path).and_then(|name| state.replication.get(&name));
    // Outside a cluster this instance is every member there is: any durability is met
    // once the commit is (AllegroGraph accepts the settings there too).
    let Some(node) = node else {
        if let Some(Err(e)) = header.as_deref().map(ReplSettings::parse) {
            return ApiError::from(e).into_response();
        }
        return next.run(request).await;
    };
    let defaults = node.config().settings;
    let settings = match header.as_deref() {
        Some(header) => {
            match ReplSettings::parse_over(header, ReplSettings::from_defaults(&defaults)) {
                Ok(s) => s,
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
        // The cluster's defaults (`repl/settings`) hold for requests that may commit;
        // reads, and the replication calls themselves (which must stay usable to
        // change the settings back), are left alone.
        None if defaults.is_empty()
            || matches!(
                *request.method(),
                Method::GET | Method::HEAD | Method::OPTIONS
            )
            || path.contains("/repl/") =>
        {
            return next.run(request).await;
        }
        None => ReplSettings::from_defaults(&defaults),
    };
    let members = node.newest_config().await.members.len();
    let node = Some(node);
    let needed = settings.needed(members);
    if needed > members {
        return ApiError::Conflict(format!(
            "durability {needed} cannot be met: the cluster has {members} instance{}",
            if members == 1 { "" } else { "s" }
        ))
        .into_response();
    }
    if let (Some(node), Some(limit)) = (&node, settings.latency_count) {
        let deadline = Instant::now() + settings.latency_timeout;
        while node.outstanding.load(Ordering::SeqCst) >= limit {
            if Instant::now() >= deadline {
                return ApiError::Conflict(format!(
                    "{limit} commits are already waiting for durability (transactionLatencyCount); try again later"
                ))
                .into_response();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let mut response = next.run(request).await;
    tracing::debug!(
        needed,
        members,
        replicated = node.is_some(),
        committed = response.extensions().get::<CommitInfo>().map(|c| c.seq),
        "durability"
    );
    let (Some(node), Some(commit)) = (node, response.extensions().get::<CommitInfo>().copied())
    else {
        return response;
    };
    if settings.durability == Durability::Min {
        return response;
    }
    // Counted while waiting, and uncounted however the wait ends: a client that goes
    // away drops this future mid-wait.
    let waiting = OutstandingCommit::new(&node.outstanding);
    // Counted against the configuration the commit was made under (or a newer one),
    // not the one read before it.
    let missing = node
        .wait_durable(
            commit.seq,
            |members| settings.needed(members),
            settings.timeout,
        )
        .await;
    drop(waiting);
    if missing > 0 {
        let value =
            HeaderValue::from_str(&format!("missing={missing}")).expect("a valid header value");
        response.headers_mut().insert("x-durability", value);
    }
    response
}

/// One commit waiting for durability, counted in `transactionLatencyCount`'s gauge for
/// as long as it lives.
struct OutstandingCommit<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> OutstandingCommit<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        OutstandingCommit(counter)
    }
}

impl Drop for OutstandingCommit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
