//! The audit log: who did what, when and from where — failed sign-ins, repositories
//! created and deleted, clusters grown and shrunk — as events of the tracing target
//! `quadmesh::audit`, which the `quadmesh` binary writes as JSON lines (one object per
//! line: `timestamp`, `fields.action`, `fields.who`, `fields.from`, …) whatever the
//! log format, so that operators can route them apart. Never a password or a token.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The tracing target of audit events.
pub const TARGET: &str = "quadmesh::audit";

/// Who sent a request, as `authenticate` found it: the user name (the superuser's for
/// a UI cookie) and the client's address.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: String,
    pub from: IpAddr,
}

/// The client's address of a request (the connection's).
pub fn client_address(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or(Caller {
            user: String::new(),
            from: client_address(&parts.extensions),
        }))
    }
}

/// A sign-in that failed (`how`: `basic` or `form`; `reason`: `wrong credentials` or
/// `throttled`). `user` is the name the client gave, cut to 64 characters.
pub fn sign_in_failed(user: Option<&str>, from: IpAddr, how: &str, reason: &str) {
    let user: String = user.unwrap_or_default().chars().take(64).collect();
    tracing::info!(target: TARGET, action = "sign-in", outcome = "refused", who = %user, from = %from, how, reason);
}

/// A change of users, roles or grants (`action`: e.g. `user-put`, `access-grant`;
/// `subject`: whose, and what). Never a password.
pub fn access_change<E: std::fmt::Display>(
    caller: &Caller,
    action: &str,
    subject: &str,
    outcome: &Result<(), E>,
) {
    match outcome {
        Ok(()) => {
            tracing::info!(target: TARGET, action, outcome = "done", who = %caller.user, from = %caller.from, subject)
        }
        Err(e) => {
            tracing::info!(target: TARGET, action, outcome = "failed", who = %caller.user, from = %caller.from, subject, error = %e)
        }
    }
}

/// A change an operator asked for (`action`: e.g. `repository-create`, `cluster-grow`),
/// with its outcome (`Err`'s text says why it failed).
pub fn change<E: std::fmt::Display>(
    caller: &Caller,
    action: &str,
    repository: &str,
    instance: Option<&str>,
    outcome: &Result<impl Sized, E>,
) {
    let instance = instance.unwrap_or_default();
    match outcome {
        Ok(_) => {
            tracing::info!(target: TARGET, action, outcome = "done", who = %caller.user, from = %caller.from, repository, instance)
        }
        Err(e) => {
            tracing::info!(target: TARGET, action, outcome = "failed", who = %caller.user, from = %caller.from, repository, instance, error = %e)
        }
    }
}
