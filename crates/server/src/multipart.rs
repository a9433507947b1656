//! `multipart/form-data` bodies (RFC 7578), as HTML forms and the graph store
//! protocol's optional multi-file upload send them: each part with its own headers.

use crate::error::{ApiError, ApiResult};
use axum::http::{header, HeaderMap};

/// One part of a multipart body.
pub struct Part {
    /// The part's `Content-Type`, without parameters, lower-cased.
    pub content_type: Option<String>,
    /// The `filename` of its `Content-Disposition`.
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data` Content-Type.
pub fn boundary(headers: &HeaderMap) -> ApiResult<String> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    value
        .split(';')
        .skip(1)
        .find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"').to_owned())
        })
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::BadRequest("multipart/form-data without a boundary".into()))
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn malformed(why: &str) -> ApiError {
    ApiError::BadRequest(format!("malformed multipart/form-data body: {why}"))
}

/// The parts of `body`, in order.
pub fn parse(body: &[u8], boundary: &str) -> ApiResult<Vec<Part>> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut at =
        find(body, &delimiter, 0).ok_or_else(|| malformed("no boundary line"))? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts);
        }
        at = find(body, b"\r\n", at).ok_or_else(|| malformed("unterminated boundary line"))? + 2;
        let headers_end =
            find(body, b"\r\n\r\n", at).ok_or_else(|| malformed("a part without a blank line"))?;
        let headers = std::str::from_utf8(&body[at..headers_end])
            .map_err(|_| malformed("part headers are not UTF-8"))?;
        let data_start = headers_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(&delimiter);
        let data_end = find(body, &closing, data_start)
            .ok_or_else(|| malformed("a part without a closing boundary"))?;
        let mut part = Part {
            content_type: None,
            filename: None,
            data: body[data_start..data_end].to_vec(),
        };
        for line in headers.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("content-type") {
                let media = value.split(';').next().unwrap_or("").trim();
                part.content_type = Some(media.to_ascii_lowercase());
            } else if name.trim().eq_ignore_ascii_case("content-disposition") {
                part.filename = value.split(';').find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    (k.trim() == "filename").then(|| v.trim().trim_matches('"').to_owned())
                });
            }
        }
        parts.push(part);
        at = data_end + closing.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_with_their_types_and_names() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.ttl\"\r\nContent-Type: text/turtle\r\n\r\n<a> <b> <c> .\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n";
        let parts = parse(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type.as_deref(), Some("text/turtle"));
        assert_eq!(parts[0].filename.as_deref(), Some("a.ttl"));
        assert_eq!(parts[0].data, b"<a> <b> <c> .");
        assert_eq!(parts[1].content_type, None);
        assert_eq!(parts[1].data, b"line1\r\nline2");
    }

    #[test]
    fn a_truncated_body_is_refused() {
        assert!(parse(
            b"--XyZ\r\nContent-Type: text/turtle\r\n\r\n<a> <b> <c> .",
            "XyZ"
        )
        .is_err());
        assert!(parse(b"nothing here", "XyZ").is_err());
    }
}
