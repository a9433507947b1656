//! The absolute URL a request was sent to: the base IRI of relative IRIs in queries,
//! updates and uploads that give no `baseURI` (SPARQL 1.1 Protocol: "which MAY be the
//! service endpoint"), and the prefix of graph IRIs the graph store makes up.

use axum::http::{header, HeaderMap, Uri};
use oxigraph::model::NamedNode;

/// `scheme://host/path` of the request (`uri` must be the `OriginalUri`), as the client addressed it (through a proxy's
/// `X-Forwarded-Proto`/`X-Forwarded-Host` when it sets them); without the query string.
pub fn request_url(headers: &HeaderMap, uri: &Uri) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = header("x-forwarded-host")
        .or_else(|| header(header::HOST.as_str()))
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let url = format!("{scheme}://{host}{}", uri.path());
    // A Host header that makes no IRI must not make the request fail.
    if NamedNode::new(&url).is_ok() {
        url
    } else {
        format!("http://localhost{}", uri.path())
    }
}
