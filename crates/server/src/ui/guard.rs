//! What protects the UI inside a browser: form posts only from our own pages (a page
//! elsewhere cannot make a signed-in browser act, whatever the cookie's SameSite), and
//! headers that forbid framing, sniffing and any script or style from elsewhere.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether a request comes from a page of this server: its `Origin` (or, without one,
/// its `Referer`) names the host the request was sent to. Neither header: not ours
/// (browsers send `Origin` with every form post).
///
/// The scheme is not compared: behind a proxy that ends TLS the page is `https` and
/// the request reaches us as `http` with the same `Host`.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(authority) = source.and_then(authority) else {
        return false;
    };
    authority.eq_ignore_ascii_case(host)
}

/// `scheme://authority[/...]` → `authority`.
fn authority(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// What a request from elsewhere gets.
pub fn foreign_origin() -> Response {
    (
        StatusCode::FORBIDDEN,
        "refused: this request does not come from a page of this server\n",
    )
        .into_response()
}

/// Middleware of the UI's routes: refuses posts from elsewhere (403) and adds the
/// browser protections to every answer.
pub async fn protect(request: Request, next: Next) -> Response {
    let mut response =
        if request.method() == axum::http::Method::POST && !same_origin(request.headers()) {
            foreign_origin()
        } else {
            next.run(request).await
        };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_our_own_pages_are_the_same_origin() {
        let ours = [("host", "db.example:10035")];
        assert!(same_origin(&headers(&[
            ours[0],
            ("origin", "http://db.example:10035")
        ])));
        assert!(same_origin(&headers(&[
            ours[0],
            ("origin", "https://DB.example:10035")
        ])));
        assert!(same_origin(&headers(&[
            ours[0],
            ("referer", "http://db.example:10035/ui?x=1")
        ])));
        assert!(!same_origin(&headers(&[
            ours[0],
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ours[0],
            ("origin", "http://db.example:10036")
        ])));
        assert!(!same_origin(&headers(&[ours[0], ("origin", "null")])));
        assert!(!same_origin(&headers(&[
            ours[0],
            ("origin", "http://evil.example"),
            ("referer", "http://db.example:10035/ui")
        ])));
        assert!(!same_origin(&headers(&[ours[0]])));
    }
}
