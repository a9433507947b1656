//! The HTML of the UI pages. Every value from outside goes through `escape`.

use quadmesh_cluster::node::ClusterStatus;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, signed_in: bool, body: &str) -> String {
    layout_with(title, signed_in, body, &[], &[])
}

/// A page with more styles and scripts (names under `/ui/assets/`) than every page has.
pub(super) fn layout_with(
    title: &str,
    signed_in: bool,
    body: &str,
    styles: &[&str],
    scripts: &[&str],
) -> String {
    let nav = if signed_in {
        r#"<a href="/ui/users">Users</a><a href="/ui/roles">Roles</a><form method="post" action="/ui/logout"><button class="secondary" id="logout">Sign out</button></form>"#
    } else {
        ""
    };
    let styles: String = styles
        .iter()
        .map(|s| format!(r#"<link rel="stylesheet" href="/ui/assets/{s}">"#))
        .collect();
    let scripts: String = scripts
        .iter()
        .map(|s| format!(r#"<script src="/ui/assets/{s}"></script>"#))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · quadmesh</title><link rel="icon" href="data:,">{styles}<link rel="stylesheet" href="/ui/assets/style.css"></head>
<body><header><a class="brand" href="/ui">quadmesh</a><a href="/ui">Repositories</a>{nav}</header>
<main>{body}</main><script src="/ui/assets/app.js"></script>{scripts}</body></html>"#,
        title = escape(title)
    )
}

pub(super) fn message_html(messages: (Option<String>, Option<String>)) -> String {
    let mut out = String::new();
    if let Some(error) = messages.0 {
        out.push_str(&format!(
            r#"<div class="message error" id="error">{}</div>"#,
            escape(&error)
        ));
    }
    if let Some(notice) = messages.1 {
        out.push_str(&format!(
            r#"<div class="message notice" id="notice">{}</div>"#,
            escape(&notice)
        ));
    }
    out
}

pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                r#"<div class="message error" id="error">{}</div>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    layout(
        "Sign in",
        false,
        &format!(
            r#"<form class="login" method="post" action="/ui/login"><h1>Sign in</h1>{error}
<label for="user">User</label><input type="text" id="user" name="user" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button id="sign-in">Sign in</button></p></form>"#
        ),
    )
}

/// One repository on the home page, as the signed-in user may see it.
pub struct RepositoryRow {
    pub name: String,
    pub size: usize,
    pub replicated: bool,
    /// Whether the user may write it (and so delete it): the delete button shows.
    pub writable: bool,
}

pub fn home(
    repositories: &[RepositoryRow],
    may_create: bool,
    messages: (Option<String>, Option<String>),
) -> String {
    let rows: String = repositories
        .iter()
        .map(|row| {
            let n = escape(&row.name);
            let delete = if row.writable {
                format!(
                    r#"<form method="post" action="/ui/repositories/{n}/delete" data-confirm="Delete repository {n} and all its data?"><button class="danger">Delete</button></form>"#
                )
            } else {
                String::new()
            };
            format!(
                r#"<tr><td><a href="/ui/repositories/{n}">{n}</a></td><td class="num size">{}</td>
<td><a href="/ui/repositories/{n}/replication">{}</a></td>
<td>{delete}</td></tr>"#,
                row.size,
                if row.replicated { "replication" } else { "standalone" }
            )
        })
        .collect();
    let create = if may_create {
        r#"<h2>New repository</h2>
<form class="row" method="post" action="/ui/repositories"><input type="text" name="name" id="new-name" placeholder="name" required><button id="create">Create</button></form>"#
    } else {
        ""
    };
    layout(
        "Repositories",
        true,
        &format!(
            r#"<h1>Repositories</h1>{}
<table id="repositories"><thead><tr><th>Repository</th><th>Statements</th><th>Cluster</th><th></th></tr></thead><tbody>{rows}</tbody></table>
{create}"#,
            message_html(messages)
        ),
    )
}

pub fn repository(name: &str, size: usize, writable: bool) -> String {
    let n = escape(name);
    let (upload, save) = if writable {
        (
            r#"<h2>Upload RDF</h2>
<form class="row" id="upload-form"><input type="file" id="file" accept=".ttl,.nt,.nq,.trig,.rdf,.owl,.xml,.jsonld,.n3"><button id="upload">Upload</button></form>
<div class="row"><progress id="upload-progress" hidden></progress><span id="upload-progress-text" class="muted" role="status"></span></div>
<p class="muted">Turtle, N-Triples, N-Quads, TriG, RDF/XML or JSON-LD; a file with an error anywhere changes nothing.</p>"#,
            r#"<form class="row inline" id="save-form"><input type="text" id="save-name" placeholder="name" aria-label="Name of the saved query"><button class="secondary" id="save">Save query</button><button type="button" class="danger" id="forget" title="Delete the saved query of this name">Delete saved</button></form>"#,
        )
    } else {
        (
            r#"<p class="muted" id="read-only">You may read this repository, not change it.</p>"#,
            "",
        )
    };
    layout_with(
        name,
        true,
        &format!(
            r#"<div id="repository" data-repository="{n}">
<h1>{n} <span class="muted">· <span id="size">{size}</span> statements · <a href="/ui/repositories/{n}/replication">replication</a> · <a href="/ui/repositories/{n}/namespaces">namespaces</a></span></h1>
<div id="message" role="status"></div>
<h2>SPARQL</h2>
<textarea id="query" spellcheck="false" aria-label="SPARQL query">SELECT ?s ?p ?o WHERE {{ ?s ?p ?o }} LIMIT 100</textarea>
<div class="row"><button id="run" title="Ctrl-Enter">Run</button>
<select id="history" aria-label="History of this browser"></select><select id="saved" aria-label="Saved queries"></select>{save}
<span class="muted keys">Ctrl-Enter runs · Ctrl-Space completes · Tab leaves the editor</span></div>
<div class="row" id="downloads"></div>
<div id="results"></div>
{upload}
</div>"#
        ),
        super::assets::WORKBENCH_STYLES,
        super::assets::WORKBENCH_SCRIPTS,
    )
}

pub fn replication(
    name: &str,
    status: Option<&ClusterStatus>,
    may_change: bool,
    messages: (Option<String>, Option<String>),
) -> String {
    let n = escape(name);
    let Some(status) = status else {
        return layout(
            name,
            true,
            &format!(
                r#"<h1>{n} · replication</h1>{}<p>This repository is not in a replication cluster. Create one with
<code>quadmesh repl create-cluster USER:PASSWORD@HOST:PORT/{n} INSTANCE-NAME</code>, or run the server with <code>--role controlling</code>.</p>"#,
                message_html(messages)
            ),
        );
    };
    let rows: String = status
        .instances
        .iter()
        .map(|i| {
            let state_class = i.state.class();
            let remove = if i.role == quadmesh_repl::wire::Role::Copy && may_change {
                format!(
                    r#"<form method="post" action="/ui/repositories/{n}/remove" data-confirm="Remove {name} from the cluster?"><input type="hidden" name="instanceName" value="{name}"><label class="muted" title="Remove it even if it may hold writes the others lack (they are discarded)"><input type="checkbox" name="force" value="true"> force</label> <button class="danger remove">Remove</button></form>"#,
                    name = escape(&i.name)
                )
            } else {
                String::new()
            };
            format!(
                r#"<tr class="instance"><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class="state-{}">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{remove}</td></tr>"#,
                escape(&i.name),
                escape(&i.repository),
                escape(&i.address),
                i.role,
                escape(&state_class),
                escape(&i.state.to_string()),
                i.lag_transactions,
                i.lag_ms,
                i.last_contact_ms_ago.map_or("never".to_owned(), |ms| format!("{:.1} s ago", ms as f64 / 1000.0)),
            )
        })
        .collect();
    layout_with(
        name,
        true,
        &format!(
            r#"<h1>{n} · replication</h1>{}{}
<p class="muted">Cluster <code>{}</code>, configuration {}, seen from <strong>{}</strong>. Register entries: {}; log entries: {}.</p>
<table id="instances"><thead><tr><th>Instance</th><th>Repository</th><th>Address</th><th>Role</th><th>State</th><th>Lag (transactions)</th><th>Lag (ms)</th><th>Last contact</th><th></th></tr></thead><tbody>{rows}</tbody></table>
<h2>The last 15 minutes</h2>
<div id="charts" class="charts" data-samples="/ui/repositories/{n}/replication/samples"><p class="muted">Loading the samples…</p></div>
{}"#,
            message_html(messages),
            status
                .writes_refused
                .as_ref()
                .map_or(String::new(), |reason| format!(
                    r#"<p class="error" id="writes-refused">This instance takes no writes: {}</p>"#,
                    escape(reason)
                )),
            escape(&status.cluster),
            status.config_version,
            escape(&status.instance),
            status.register_entries,
            status.log_entries,
            if may_change {
                GROW_FORM.replace("{n}", &n)
            } else {
                String::new()
            },
        ),
        &[],
        &["charts.js"],
    )
}

const GROW_FORM: &str = r#"<h2>Grow the cluster</h2>
<p class="muted">Copies the repository to another quadmesh server (at the controlling instance only).</p>
<form class="row" method="post" action="/ui/repositories/{n}/grow">
<input type="text" name="instanceName" placeholder="instance name" required>
<input type="text" name="host" placeholder="host" required><input type="number" name="port" value="10035" required>
<input type="text" name="name" placeholder="repository ({n})" title="the repository name on that server (default: {n}; any name, that server included)">
<input type="text" name="user" placeholder="its user" required><input type="password" name="password" placeholder="its password" required>
<button>Grow</button></form>"#;
