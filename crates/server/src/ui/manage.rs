//! The users, roles and namespaces pages. Server-rendered from the access model and the
//! repository's namespaces; their controls (forms and buttons that `manage.js` sends to
//! the REST API, which checks the rights again) are drawn only for a caller who may use
//! them: the superuser for users and roles, a writer of the repository for namespaces.
//! A caller who is not the superuser sees only their own account and roles.

use super::pages::{escape, layout_with, message_html};
use crate::access::{Need, Permission, Principal, Rights};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};

fn grants_html(state: &AppState, who: Principal<'_>, may_change: bool, url: &str) -> String {
    state
        .access
        .grants(who)
        .iter()
        .map(|g| {
            let bits = match (g.read, g.write) {
                (true, true) => "read, write",
                (true, false) => "read",
                (false, true) => "write",
                _ => "none",
            };
            let revoke = if may_change {
                format!(
                    r#" <button class="danger small" data-rest-method="DELETE" data-rest-url="{url}/access?read=true&amp;write=true&amp;catalog={}&amp;repository={}" data-confirm="Revoke this access?" data-done="Revoked access to {}">revoke</button>"#,
                    enc(&g.catalog),
                    enc(&g.repository),
                    escape(&g.repository)
                )
            } else {
                String::new()
            };
            format!(
                r#"<li><code>{}</code>: {bits}{revoke}</li>"#,
                escape(&g.repository)
            )
        })
        .collect()
}

fn enc(text: &str) -> String {
    escape(&form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>())
}

fn permissions_html(state: &AppState, who: Principal<'_>, may_change: bool, url: &str) -> String {
    let held = state.access.permissions(who);
    Permission::ALL
        .iter()
        .filter(|p| may_change || held.contains(p))
        .map(|p| {
            let name = p.as_str();
            if may_change {
                let (method, label, class) = if held.contains(p) {
                    ("DELETE", format!("✓ {name}"), "permission held")
                } else {
                    ("PUT", name.to_owned(), "permission")
                };
                format!(
                    r#"<button class="{class} small" data-rest-method="{method}" data-rest-url="{url}/permissions/{name}" data-done="Changed permission {name}" aria-pressed="{}">{label}</button> "#,
                    method == "DELETE"
                )
            } else {
                format!("<code>{name}</code> ")
            }
        })
        .collect()
}

const ACCESS_FORM: &str = r#"<form class="row inline" data-rest-method="PUT" data-rest-url="{url}/access" data-done="Granted access to {repository}"><input type="text" name="repository" placeholder="repository or *" aria-label="Repository" required><label><input type="checkbox" name="read" value="true" checked> read</label><label><input type="checkbox" name="write" value="true"> write</label><button class="secondary small">Grant</button></form>"#;

pub async fn users_page(State(state): State<AppState>, rights: Rights, uri: Uri) -> Response {
    let superuser = rights.is_super();
    let mut names = if superuser {
        state.access.users()
    } else {
        vec![rights.user.clone()]
    };
    names.sort();
    let rows: String = names
        .iter()
        .map(|name| {
            let n = escape(name);
            let url = format!("/users/{}", enc(name));
            let is_root = name == state.auth.user();
            let may_change = superuser && !is_root;
            let roles: String = state
                .access
                .user_roles(name)
                .iter()
                .map(|role| {
                    let remove = if may_change {
                        format!(
                            r#" <button class="danger small" data-rest-method="DELETE" data-rest-url="{url}/roles/{}" aria-label="Take role {r} away" data-done="Took role {r} away">×</button>"#,
                            enc(role),
                            r = escape(role)
                        )
                    } else {
                        String::new()
                    };
                    format!(r#"<li><code>{}</code>{remove}</li>"#, escape(role))
                })
                .collect();
            let controls = if may_change {
                format!(
                    r#"<form class="row inline" data-rest-method="PUT" data-rest-url="{url}/roles/{{role}}" data-done="Added role {{role}}"><input type="text" name="role" placeholder="role" aria-label="Role to add to {n}" required><button class="secondary small">Add role</button></form>{}
<p><button class="danger small delete-user" data-rest-method="DELETE" data-rest-url="{url}" data-confirm="Delete user {n}?" data-done="Deleted user {n}">Delete user</button></p>"#,
                    ACCESS_FORM.replace("{url}", &url)
                )
            } else {
                String::new()
            };
            let (permissions, grants) = if is_root {
                ("<code>super</code> (given at start)".to_owned(), "<li>everything</li>".to_owned())
            } else {
                (
                    permissions_html(&state, Principal::User(name), may_change, &url),
                    grants_html(&state, Principal::User(name), may_change, &url),
                )
            };
            format!(
                r#"<tr class="user"><td><strong>{n}</strong></td><td><ul class="plain">{roles}</ul></td><td>{permissions}</td><td><ul class="plain">{grants}</ul>{controls}</td></tr>"#
            )
        })
        .collect();
    let create = if superuser {
        r#"<h2>New user</h2>
<form class="row" id="new-user" data-rest-method="PUT" data-rest-url="/users/{name}" data-done="Created user {name}"><input type="text" name="name" id="new-user-name" placeholder="name" aria-label="User name" required><input type="password" name="password" id="new-user-password" placeholder="password" aria-label="Password" required autocomplete="new-password"><button id="create-user">Create user</button></form>"#
    } else {
        r#"<p class="muted" id="read-only">Only the superuser manages users; this is your own account.</p>"#
    };
    Html(layout_with(
        "Users",
        true,
        &format!(
            r#"<h1>Users</h1>{}<div id="message" role="status"></div>
<table id="users"><thead><tr><th>User</th><th>Roles</th><th>Permissions</th><th>Access</th></tr></thead><tbody>{rows}</tbody></table>
{create}"#,
            message_html(super::messages(&uri))
        ),
        &[],
        &["manage.js"],
    ))
    .into_response()
}

pub async fn roles_page(State(state): State<AppState>, rights: Rights, uri: Uri) -> Response {
    let superuser = rights.is_super();
    let mut names = if superuser {
        state.access.roles()
    } else {
        state.access.user_roles(&rights.user)
    };
    names.sort();
    let rows: String = names
        .iter()
        .map(|name| {
            let n = escape(name);
            let url = format!("/roles/{}", enc(name));
            let controls = if superuser {
                format!(
                    r#"{}<p><button class="danger small delete-role" data-rest-method="DELETE" data-rest-url="{url}" data-confirm="Delete role {n}?" data-done="Deleted role {n}">Delete role</button></p>"#,
                    ACCESS_FORM.replace("{url}", &url)
                )
            } else {
                String::new()
            };
            format!(
                r#"<tr class="role"><td><strong>{n}</strong></td><td>{}</td><td><ul class="plain">{}</ul>{controls}</td></tr>"#,
                permissions_html(&state, Principal::Role(name), superuser, &url),
                grants_html(&state, Principal::Role(name), superuser, &url),
            )
        })
        .collect();
    let create = if superuser {
        r#"<h2>New role</h2>
<form class="row" id="new-role" data-rest-method="PUT" data-rest-url="/roles/{name}" data-done="Created role {name}"><input type="text" name="name" id="new-role-name" placeholder="name" aria-label="Role name" required><button id="create-role">Create role</button></form>"#
    } else {
        r#"<p class="muted" id="read-only">Only the superuser manages roles; these are yours.</p>"#
    };
    Html(layout_with(
        "Roles",
        true,
        &format!(
            r#"<h1>Roles</h1>{}<div id="message" role="status"></div>
<table id="roles"><thead><tr><th>Role</th><th>Permissions</th><th>Access</th></tr></thead><tbody>{rows}</tbody></table>
{create}"#,
            message_html(super::messages(&uri))
        ),
        &[],
        &["manage.js"],
    ))
    .into_response()
}

pub async fn namespaces_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    rights: Rights,
    uri: Uri,
) -> Response {
    if let Err(e) = rights.require(&name, Need::Read) {
        return e.into_response();
    }
    let repository = match state.catalog.get(&name) {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let may_change = rights.can(&name, Need::Write);
    let n = escape(&name);
    let url = format!("/repositories/{}/namespaces", enc(&name));
    let rows: String = repository
        .namespaces()
        .list()
        .iter()
        .map(|(prefix, namespace)| {
            let delete = if may_change {
                format!(
                    r#"<button class="danger small delete-namespace" data-rest-method="DELETE" data-rest-url="{url}/{}" aria-label="Delete prefix {p}" data-done="Deleted prefix {p}">Delete</button>"#,
                    enc(prefix),
                    p = escape(prefix)
                )
            } else {
                String::new()
            };
            format!(
                r#"<tr class="namespace"><td><code>{}</code></td><td><code>{}</code></td><td>{delete}</td></tr>"#,
                escape(prefix),
                escape(namespace)
            )
        })
        .collect();
    let add = if may_change {
        format!(
            r#"<h2>Add or change a prefix</h2>
<form class="row" id="new-namespace" data-rest-method="PUT" data-rest-url="{url}/{{prefix}}" data-rest-body="namespace" data-done="Saved prefix {{prefix}}"><input type="text" name="prefix" id="new-prefix" placeholder="prefix" aria-label="Prefix" required><input type="text" name="namespace" id="new-namespace-iri" placeholder="http://example.org/" aria-label="Namespace IRI" size="40" required><button id="add-namespace">Save</button></form>"#
        )
    } else {
        r#"<p class="muted" id="read-only">You may read this repository's prefixes, not change them.</p>"#.to_owned()
    };
    Html(layout_with(
        &format!("{name} namespaces"),
        true,
        &format!(
            r#"<h1><a href="/ui/repositories/{n}">{n}</a> · namespaces</h1>{}<div id="message" role="status"></div>
<p class="muted">The prefixes queries of this repository may use without declaring them; they replicate with the repository.</p>
<table id="namespaces"><thead><tr><th>Prefix</th><th>Namespace</th><th></th></tr></thead><tbody>{rows}</tbody></table>
{add}"#,
            message_html(super::messages(&uri))
        ),
        &[],
        &["manage.js"],
    ))
    .into_response()
}
