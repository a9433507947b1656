//! `/roles` in AllegroGraph's spelling: roles, their access and permissions (a user has
//! them through `/users/NAME/roles/ROLE`). Reading and changing need `super`.

use crate::access::{check_name, Permission, Principal, Rights};
use crate::access_sync::publish;
use crate::audit::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::Json;
use serde_json::Value;

fn existing_role(state: &AppState, name: &str) -> ApiResult<()> {
    check_name("role", name)?;
    if state.access.role_exists(name) {
        return Ok(());
    }
    Err(ApiError::NotFound(format!("there is no role '{name}'")))
}

pub async fn list(State(state): State<AppState>, rights: Rights) -> ApiResult<Json<Vec<String>>> {
    rights.require_super()?;
    Ok(Json(state.access.roles()))
}

/// `PUT` or `DELETE /roles/NAME`.
pub async fn change(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    method: Method,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    check_name("role", &name)?;
    let records = if method == Method::PUT {
        state.access.put_role(&name)?
    } else {
        existing_role(&state, &name)?;
        state.access.delete_role(&name)?
    };
    let outcome = publish(&state, records).await;
    let action = if method == Method::PUT {
        "role-put"
    } else {
        "role-delete"
    };
    audit::access_change(&caller, action, &name, &outcome);
    outcome.map(|()| StatusCode::NO_CONTENT)
}

pub async fn access(
    State(state): State<AppState>,
    rights: Rights,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    rights.require_super()?;
    existing_role(&state, &name)?;
    Ok(Json(
        state
            .access
            .grants(Principal::Role(&name))
            .iter()
            .map(|g| g.to_json())
            .collect(),
    ))
}

pub async fn change_access(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    method: Method,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    existing_role(&state, &name)?;
    super::users::set_access(&state, &caller, Principal::Role(&name), &method, &uri).await
}

pub async fn permissions(
    State(state): State<AppState>,
    rights: Rights,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<&'static str>>> {
    rights.require_super()?;
    existing_role(&state, &name)?;
    Ok(Json(
        state
            .access
            .permissions(Principal::Role(&name))
            .into_iter()
            .map(Permission::as_str)
            .collect(),
    ))
}

pub async fn change_permission(
    State(state): State<AppState>,
    rights: Rights,
    caller: Caller,
    method: Method,
    Path((name, permission)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    rights.require_super()?;
    existing_role(&state, &name)?;
    let permission = Permission::parse(&permission)?;
    let on = method == Method::PUT;
    super::users::set_permission(&state, &caller, Principal::Role(&name), permission, on).await
}
