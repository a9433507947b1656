//! Content negotiation: which representation a client asked for or sent.

use crate::error::{ApiError, ApiResult};
use axum::http::{header, HeaderMap};
use oxigraph::io::RdfFormat;
use sparesults::QueryResultsFormat;

/// How SELECT and ASK results can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolutionsFormat {
    /// W3C SPARQL results (JSON, XML, CSV, TSV).
    Sparql(QueryResultsFormat),
    /// AllegroGraph's `{"names": [...], "values": [[...]]}` with N-Triples cells, which
    /// its clients ask for with a bare `application/json`.
    AgJson,
    /// `text/integer`: the number of solutions.
    Count,
    /// `text/table`: a readable table.
    Table,
}

impl SolutionsFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            SolutionsFormat::Sparql(f) => f.media_type(),
            SolutionsFormat::AgJson => "application/json",
            SolutionsFormat::Count => "text/integer",
            SolutionsFormat::Table => "text/table",
        }
    }
}

/// How CONSTRUCT/DESCRIBE results and statements can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Rdf(RdfFormat),
    /// AllegroGraph's JSON rows `[s, p, o, g]` of N-Triples strings.
    AgJson,
    /// AllegroGraph's `[id, s, p, o, g]` rows (agraph-python's triple-id calls); the id
    /// is a hash of the quad, stable but not usable to look a statement up.
    Quints,
    Count,
    /// `text/table`: columns s, p, o, g.
    Table,
    /// AllegroGraph's extended N-Quads (`application/x-extended-nquads`): N-Quads with
    /// each statement's attributes after its graph; statements carry none here, so the
    /// lines are plain N-Quads.
    ExtendedNQuads,
}

impl GraphFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            GraphFormat::Rdf(f) => f.media_type(),
            GraphFormat::AgJson => "application/json",
            GraphFormat::Quints => "application/x-quints+json",
            GraphFormat::Count => "text/integer",
            GraphFormat::Table => "text/table",
            GraphFormat::ExtendedNQuads => "application/x-extended-nquads",
        }
    }
}

/// The media types of an `Accept` header, best first (by q, then by order).
pub fn accepted(headers: &HeaderMap) -> Vec<String> {
    let Some(value) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    let mut items: Vec<(f32, usize, String)> = value
        .split(',')
        .enumerate()
        .filter_map(|(i, item)| {
            let mut parts = item.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q > 0.0).then_some((q, i, media))
        })
        .collect();
    items.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    items.into_iter().map(|(_, _, m)| m).collect()
}

fn is_wildcard(media: &str) -> bool {
    media == "*/*" || media == "application/*" || media == "text/*"
}

/// The types to choose from: a `format` parameter first (SPARQLWrapper sends its
/// return format there as `json`, `xml`, `turtle`, ...), then the `Accept` header; a
/// `format` no format answers to is left to the `Accept` header.
fn wanted(headers: &HeaderMap, override_format: Option<&str>) -> Vec<String> {
    let mut wanted: Vec<String> = override_format
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
        .into_iter()
        .collect();
    wanted.extend(accepted(headers));
    wanted
}

fn solutions_by_name(media: &str) -> Option<SolutionsFormat> {
    match media {
        "application/json" => Some(SolutionsFormat::AgJson),
        "text/integer" => Some(SolutionsFormat::Count),
        "text/table" | "table" => Some(SolutionsFormat::Table),
        m if is_wildcard(m) => Some(SolutionsFormat::Sparql(QueryResultsFormat::Json)),
        m @ ("json" | "xml" | "csv" | "tsv") => {
            QueryResultsFormat::from_extension(m).map(SolutionsFormat::Sparql)
        }
        "srj" | "sparql-results+json" => Some(SolutionsFormat::Sparql(QueryResultsFormat::Json)),
        "srx" | "sparql-results+xml" => Some(SolutionsFormat::Sparql(QueryResultsFormat::Xml)),
        m => QueryResultsFormat::from_media_type(m).map(SolutionsFormat::Sparql),
    }
}

pub fn solutions_format(
    headers: &HeaderMap,
    override_format: Option<&str>,
) -> ApiResult<SolutionsFormat> {
    let wanted = wanted(headers, override_format);
    if wanted.is_empty() {
        return Ok(SolutionsFormat::Sparql(QueryResultsFormat::Json));
    }
    if let Some(found) = wanted.iter().find_map(|m| solutions_by_name(m)) {
        return Ok(found);
    }
    Err(ApiError::NotAcceptable(format!(
        "none of the accepted types ({}) can carry query solutions; use application/sparql-results+json, application/sparql-results+xml, text/csv, text/tab-separated-values, application/json or text/table",
        wanted.join(", ")
    )))
}

fn graph_by_name(media: &str, default: RdfFormat) -> Option<GraphFormat> {
    match media {
        "application/json" => Some(GraphFormat::AgJson),
        "application/x-quints+json" => Some(GraphFormat::Quints),
        "application/x-extended-nquads" | "nqx" => Some(GraphFormat::ExtendedNQuads),
        "text/integer" => Some(GraphFormat::Count),
        "text/table" | "table" => Some(GraphFormat::Table),
        m if is_wildcard(m) => Some(GraphFormat::Rdf(default)),
        "turtle" => Some(GraphFormat::Rdf(RdfFormat::Turtle)),
        "ntriples" | "n-triples" => Some(GraphFormat::Rdf(RdfFormat::NTriples)),
        "nquads" | "n-quads" => Some(GraphFormat::Rdf(RdfFormat::NQuads)),
        "rdf+xml" | "rdfxml" => Some(GraphFormat::Rdf(RdfFormat::RdfXml)),
        "json-ld" => RdfFormat::from_extension("jsonld").map(GraphFormat::Rdf),
        m if !m.contains('/') => RdfFormat::from_extension(m).map(GraphFormat::Rdf),
        m => RdfFormat::from_media_type(m).map(GraphFormat::Rdf),
    }
}

pub fn graph_format(
    headers: &HeaderMap,
    override_format: Option<&str>,
    default: RdfFormat,
) -> ApiResult<GraphFormat> {
    let wanted = wanted(headers, override_format);
    if wanted.is_empty() {
        return Ok(GraphFormat::Rdf(default));
    }
    if let Some(found) = wanted.iter().find_map(|m| graph_by_name(m, default)) {
        return Ok(found);
    }
    Err(ApiError::NotAcceptable(format!(
        "none of the accepted types ({}) is an RDF format quadmesh writes; use text/turtle, application/n-triples, application/n-quads, application/trig, application/rdf+xml, application/ld+json, application/json, application/x-quints+json, application/x-extended-nquads or text/table",
        wanted.join(", ")
    )))
}

/// The RDF format of a request body, from its `Content-Type`.
pub fn rdf_content_type(headers: &HeaderMap) -> ApiResult<RdfFormat> {
    let content_type = content_type(headers).ok_or_else(|| {
        ApiError::UnsupportedMediaType(
            "missing Content-Type: say which RDF format the body is in".into(),
        )
    })?;
    RdfFormat::from_media_type(&content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Type '{content_type}': use text/turtle, application/n-triples, application/n-quads, application/trig, application/rdf+xml or application/ld+json"
        ))
    })
}

/// The `charset` parameter of the body's `Content-Type`, if any.
pub fn charset(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    value.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The media type of the body, without parameters, lower-cased.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        h
    }

    #[test]
    fn sparqlwrapper_gets_w3c_json_and_agraph_gets_its_own() {
        let wrapper = headers("application/sparql-results+json,application/json,text/javascript,application/javascript");
        assert_eq!(
            solutions_format(&wrapper, None).unwrap(),
            SolutionsFormat::Sparql(QueryResultsFormat::Json)
        );
        assert_eq!(
            solutions_format(&headers("application/json"), None).unwrap(),
            SolutionsFormat::AgJson
        );
    }

    #[test]
    fn q_values_order_the_choice() {
        let h = headers("application/sparql-results+json;q=0.5, application/sparql-results+xml");
        assert_eq!(
            solutions_format(&h, None).unwrap(),
            SolutionsFormat::Sparql(QueryResultsFormat::Xml)
        );
    }

    #[test]
    fn an_unknown_type_before_a_known_one_is_skipped() {
        let h = headers("application/x-unknown, text/turtle;q=0.9, application/rdf+xml;q=0.5");
        assert_eq!(
            graph_format(&h, None, RdfFormat::NQuads).unwrap(),
            GraphFormat::Rdf(RdfFormat::Turtle)
        );
        // SPARQLWrapper's `format=turtle` with its Accept header.
        let h = headers("application/turtle,text/turtle");
        assert_eq!(
            graph_format(&h, Some("turtle"), RdfFormat::NQuads).unwrap(),
            GraphFormat::Rdf(RdfFormat::Turtle)
        );
        // An unknown `format` is left to the Accept header.
        assert_eq!(
            graph_format(
                &headers("application/n-triples"),
                Some("bogus"),
                RdfFormat::NQuads
            )
            .unwrap(),
            GraphFormat::Rdf(RdfFormat::NTriples)
        );
    }

    #[test]
    fn an_unknown_type_is_not_acceptable() {
        assert!(solutions_format(&headers("image/png"), None).is_err());
        assert!(graph_format(&headers("image/png"), None, RdfFormat::NQuads).is_err());
    }
}
