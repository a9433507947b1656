//! `/users` in AllegroGraph's spelling: users, their passwords, access, permissions
//! and roles. Changes need the `super` permission; a user may read its own records and
//! change its own password. Every change is published to the whole deployment
//! (`access_sync.rs`) and written to the audit log.

use crate::access::{check_name, Permission, Principal, Rights, ANONYMOUS};
use crate::access_sync::publish;
use crate::audit::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde_json::Value;

/// The user named in a path, checked, and that it exists (the superuser given at start
/// counts, for reading).
fn existing_user(state: &AppState, name: &str) -> ApiResult<()> {
    check_name("user", name)?;
    if name == state.auth.user() || state.access.user_exists(name) {
        return Ok(());
    }
    Err(ApiError::NotFound(format!("there is no user '{name}'")))
}

/// Refuses changes of the superuser given at start: it is each instance's own (its
/// secret), not a record the cluster shares.
fn not_the_superuser(state: &AppState, name: &str) -> ApiResult<()> {
    if name == state.auth.user() {
        return Err(ApiError::Conflict(format!(
            "'{name}' is the superuser given at start (QUADMESH_USER and its password secret); \
             change it there"
        )));
    }
    Ok(())
}

/// Reading a user's records: the user itself, or a superuser.
fn self_or_super(rights: &Rights, name: &str) -> ApiResult<()> {
    if rights.user == name {
        return Ok(());
    }
    rights.require_super()
}

pub async fn list(State(state): State<AppState>, rights: Rights) -> ApiResult<Json<Vec<String>>> {
    rights.require_super()?;
    let mut users = state.access.users();
    users.push(state.auth.user().to_owned());
    users.sort();
    users.dedup();
    Ok(Json(users))
}

/// `PUT /users/NAME?password=P`: creates the user, or sets its password. `anonymous`
/// takes no password: once it exists, requests without credentials act as it.
pub async fn put(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    check_name("user", &name)?;
    not_the_superuser(&state, &name)?;
    let params = Params::from_uri(&uri);
    let hash = match (params.get("password"), name.as_str()) {
        (_, ANONYMOUS) => None,
        (Some(password), _) if !password.is_empty() => Some(state.auth.hash(password).await?),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "user '{name}' needs a password (parameter 'password')"
            )))
        }
    };
    let records = state.access.put_user(&name, hash)?;
    let outcome = publish(&state, records).await;
    audit::access_change(&caller, "user-put", &name, &outcome);
    outcome.map(|()| StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    not_the_superuser(&state, &name)?;
    existing_user(&state, &name)?;
    let records = state.access.delete_user(&name)?;
    let outcome = publish(&state, records).await;
    audit::access_change(&caller, "user-delete", &name, &outcome);
    outcome.map(|()| StatusCode::NO_CONTENT)
}

/// `POST /users/NAME/password` with the new password as the body.
pub async fn password(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    self_or_super(&rights, &name)?;
    not_the_superuser(&state, &name)?;
    existing_user(&state, &name)?;
    let password = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the password must be UTF-8 text".into()))?;
    if password.is_empty() {
        return Err(ApiError::BadRequest(
            "the password must not be empty".into(),
        ));
    }
    let hash = state.auth.hash(&password).await?;
    let records = state.access.put_user(&name, Some(hash))?;
    let outcome = publish(&state, records).await;
    audit::access_change(&caller, "user-password", &name, &outcome);
    outcome.map(|()| StatusCode::NO_CONTENT)
}

pub async fn access(
    State(state): State<AppState>,
    rights: Rights,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    self_or_super(&rights, &name)?;
    existing_user(&state, &name)?;
    Ok(Json(
        state
            .access
            .grants(Principal::User(&name))
            .iter()
            .map(|g| g.to_json())
            .collect(),
    ))
}

pub async fn effective_access(
    State(state): State<AppState>,
    rights: Rights,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    self_or_super(&rights, &name)?;
    existing_user(&state, &name)?;
    Ok(Json(
        state
            .access
            .effective_grants(&name)
            .iter()
            .map(|g| g.to_json())
            .collect(),
    ))
}

/// `PUT` or `DELETE /users/NAME/access?read=&write=&catalog=&repository=`.
pub async fn change_access(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    method: axum::http::Method,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    not_the_superuser(&state, &name)?;
    existing_user(&state, &name)?;
    set_access(&state, &caller, Principal::User(&name), &method, &uri).await
}

/// Grants or revokes access bits of a user or a role (shared with `/roles`).
pub(crate) async fn set_access(
    state: &AppState,
    caller: &Caller,
    who: Principal<'_>,
    method: &axum::http::Method,
    uri: &Uri,
) -> ApiResult<StatusCode> {
    let params = Params::from_uri(uri);
    let read = params.flag("read")?.unwrap_or(false);
    let write = params.flag("write")?.unwrap_or(false);
    let catalog = params
        .get("catalog")
        .filter(|c| !c.is_empty())
        .unwrap_or("*");
    let repository = params
        .get("repository")
        .filter(|r| !r.is_empty())
        .unwrap_or("*");
    if catalog != "*" && catalog != crate::access::ROOT_CATALOG {
        return Err(ApiError::BadRequest(format!(
            "catalog '{catalog}': quadmesh has only the root catalog ('/', or '*' for all)"
        )));
    }
    if repository != "*" {
        quadmesh_store::validate_repository_name(repository)?;
    }
    let on = *method == axum::http::Method::PUT;
    let records = state
        .access
        .set_access(who, catalog, repository, read, write, on)?;
    let outcome = publish(state, records).await;
    let action = if on { "access-grant" } else { "access-revoke" };
    let subject = format!("{who}: {catalog}/{repository} read={read} write={write}");
    audit::access_change(caller, action, &subject, &outcome);
    outcome.map(|()| StatusCode::NO_CONTENT)
}

pub async fn permissions(
    State(state): State<AppState>,
    rights: Rights,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<&'static str>>> {
    self_or_super(&rights, &name)?;
    existing_user(&state, &name)?;
    let permissions = if name == state.auth.user() {
        Permission::ALL.into_iter().collect()
    } else {
        state.access.permissions(Principal::User(&name))
    };
    Ok(Json(
        permissions.into_iter().map(Permission::as_str).collect(),
    ))
}

pub async fn effective_permissions(
    State(state): State<AppState>,
    rights: Rights,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<&'static str>>> {
    self_or_super(&rights, &name)?;
    existing_user(&state, &name)?;
    let permissions = if name == state.auth.user() {
        Permission::ALL.into_iter().collect()
    } else {
        state.access.effective_permissions(&name)
    };
    Ok(Json(
        permissions.into_iter().map(Permission::as_str).collect(),
    ))
}

/// `PUT` or `DELETE /users/NAME/permissions/PERMISSION`.
pub async fn change_permission(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    method: axum::http::Method,
    Path((name, permission)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    not_the_superuser(&state, &name)?;
    existing_user(&state, &name)?;
    let permission = Permission::parse(&permission)?;
    let on = method == axum::http::Method::PUT;
    set_permission(&state, &caller, Principal::User(&name), permission, on).await
}

pub async fn roles(
    State(state): State<AppState>,
    rights: Rights,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    self_or_super(&rights, &name)?;
    existing_user(&state, &name)?;
    Ok(Json(state.access.user_roles(&name)))
}

/// `PUT` or `DELETE /users/NAME/roles/ROLE`.
pub async fn change_role(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    method: axum::http::Method,
    Path((name, role)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    not_the_superuser(&state, &name)?;
    existing_user(&state, &name)?;
    check_name("role", &role)?;
    let on = method == axum::http::Method::PUT;
    if on && !state.access.role_exists(&role) {
        return Err(ApiError::NotFound(format!("there is no role '{role}'")));
    }
    let records = state.access.set_user_role(&name, &role, on)?;
    let outcome = publish(&state, records).await;
    let action = if on { "role-grant" } else { "role-revoke" };
    audit::access_change(&caller, action, &format!("user {name}: {role}"), &outcome);
    outcome.map(|()| StatusCode::NO_CONTENT)
}

/// Grants (`on`) or revokes `permission` of a user or role: published cluster-wide and
/// written to the audit log (`/users/NAME/permissions/P` and `/roles/NAME/permissions/P`).
pub(super) async fn set_permission(
    state: &AppState,
    caller: &Caller,
    principal: Principal<'_>,
    permission: Permission,
    on: bool,
) -> ApiResult<StatusCode> {
    let records = state.access.set_permission(principal, permission, on)?;
    let outcome = publish(state, records).await;
    let action = if on {
        "permission-grant"
    } else {
        "permission-revoke"
    };
    audit::access_change(
        caller,
        action,
        &format!(
            "{} {}: {}",
            principal.tag(),
            principal.name(),
            permission.as_str()
        ),
        &outcome,
    );
    outcome.map(|()| StatusCode::NO_CONTENT)
}
