//! The UI's scripts and styles, embedded in the binary and served by quadmesh itself (the
//! Content-Security-Policy allows no other source). `vendor/codemirror/` holds the
//! CodeMirror 5 files Debian's `libjs-codemirror` ships, unchanged, with their licence.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Name in `/ui/assets/NAME` → (content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", CSS, include_str!("assets/style.css")),
    ("app.js", JS, include_str!("assets/app.js")),
    ("terms.js", JS, include_str!("assets/terms.js")),
    ("graph.js", JS, include_str!("assets/graph.js")),
    ("workbench.js", JS, include_str!("assets/workbench.js")),
    ("charts.js", JS, include_str!("assets/charts.js")),
    ("manage.js", JS, include_str!("assets/manage.js")),
    (
        "codemirror.js",
        JS,
        include_str!("assets/vendor/codemirror/codemirror.js"),
    ),
    (
        "codemirror.css",
        CSS,
        include_str!("assets/vendor/codemirror/codemirror.css"),
    ),
    (
        "sparql.js",
        JS,
        include_str!("assets/vendor/codemirror/sparql.js"),
    ),
    (
        "show-hint.js",
        JS,
        include_str!("assets/vendor/codemirror/show-hint.js"),
    ),
    (
        "show-hint.css",
        CSS,
        include_str!("assets/vendor/codemirror/show-hint.css"),
    ),
    (
        "matchbrackets.js",
        JS,
        include_str!("assets/vendor/codemirror/matchbrackets.js"),
    ),
    (
        "codemirror-LICENSE",
        TEXT,
        include_str!("assets/vendor/codemirror/LICENSE"),
    ),
];

/// The scripts of the repository page, in order.
pub const WORKBENCH_SCRIPTS: &[&str] = &[
    "codemirror.js",
    "sparql.js",
    "show-hint.js",
    "matchbrackets.js",
    "terms.js",
    "graph.js",
    "workbench.js",
];

/// The styles of the repository page besides `style.css`.
pub const WORKBENCH_STYLES: &[&str] = &["codemirror.css", "show-hint.css"];

pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, content)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *content,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_and_style_a_page_names_is_served() {
        for name in WORKBENCH_SCRIPTS.iter().chain(WORKBENCH_STYLES) {
            assert!(ASSETS.iter().any(|(n, _, _)| n == name), "{name}");
        }
    }
}
