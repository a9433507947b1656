//! Terms as AllegroGraph's clients send them in parameters: N-Triples syntax, or bare
//! IRIs, and `null` for the default graph. In N-Triples syntax an IRI is read as
//! AllegroGraph keeps it (`quadmesh_store::ntriples`: `\u` escapes stand for any
//! character); a bare IRI must be a valid IRI as it is.

use crate::error::{ApiError, ApiResult};
use oxigraph::model::{GraphName, Literal, NamedNode, NamedOrBlankNode, Quad, Term};
use quadmesh_store::ntriples::{graph_text, parse_term};

fn bad(what: &str, value: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("invalid {what} '{value}': {detail}"))
}

/// A term in N-Triples syntax, or a bare IRI.
pub fn parse_resource(what: &str, value: &str) -> ApiResult<Term> {
    if value.starts_with('<') || value.starts_with('"') || value.starts_with("_:") {
        parse_term(value).map_err(|e| bad(what, value, e))
    } else {
        NamedNode::new(value)
            .map(Term::from)
            .map_err(|e| bad(what, value, e))
    }
}

pub fn parse_subject(value: &str) -> ApiResult<NamedOrBlankNode> {
    match parse_resource("subject", value)? {
        Term::NamedNode(n) => Ok(n.into()),
        Term::BlankNode(b) => Ok(b.into()),
        _ => Err(bad(
            "subject",
            value,
            "a subject must be an IRI or a blank node",
        )),
    }
}

pub fn parse_predicate(value: &str) -> ApiResult<NamedNode> {
    match parse_resource("predicate", value)? {
        Term::NamedNode(n) => Ok(n),
        _ => Err(bad("predicate", value, "a predicate must be an IRI")),
    }
}

/// An object: N-Triples syntax, or else the text of a plain literal.
pub fn parse_object(value: &str) -> ApiResult<Term> {
    if value.starts_with('<') || value.starts_with('"') || value.starts_with("_:") {
        parse_term(value).map_err(|e| bad("object", value, e))
    } else {
        Ok(Literal::new_simple_literal(value).into())
    }
}

/// A graph: `null` is the default graph.
pub fn parse_graph(value: &str) -> ApiResult<GraphName> {
    if value == "null" || value.is_empty() {
        return Ok(GraphName::DefaultGraph);
    }
    match parse_resource("context", value)? {
        Term::NamedNode(n) => Ok(n.into()),
        Term::BlankNode(b) => Ok(b.into()),
        _ => Err(bad(
            "context",
            value,
            "a graph must be an IRI, a blank node or null",
        )),
    }
}

/// One row of AllegroGraph's JSON quads: `[s, p, o]` or `[s, p, o, g]`, N-Triples
/// strings, with `null` (or the string "null") for the default graph.
pub fn parse_json_quad(row: &serde_json::Value, default_graph: &GraphName) -> ApiResult<Quad> {
    let items = row
        .as_array()
        .filter(|a| (3..=5).contains(&a.len()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "a JSON quad must be an array of 3 to 5 strings, got {row}"
            ))
        })?;
    let text = |i: usize| {
        items[i]
            .as_str()
            .ok_or_else(|| ApiError::BadRequest(format!("element {i} of {row} must be a string")))
    };
    let graph = match items.get(3) {
        None | Some(serde_json::Value::Null) => default_graph.clone(),
        Some(serde_json::Value::String(g)) => parse_graph(g)?,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid graph {other} in {row}"
            )))
        }
    };
    Ok(Quad::new(
        parse_subject(text(0)?)?,
        parse_predicate(text(1)?)?,
        parse_object(text(2)?)?,
        graph,
    ))
}

/// A graph name as AllegroGraph writes it in JSON: N-Triples, or null.
pub fn graph_json(graph: &GraphName) -> serde_json::Value {
    match graph {
        GraphName::DefaultGraph => serde_json::Value::Null,
        other => graph_text(other.as_ref()).map_or(serde_json::Value::Null, Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_iris_and_null_are_accepted() {
        assert_eq!(parse_graph("null").unwrap(), GraphName::DefaultGraph);
        assert_eq!(
            parse_graph("http://ex/g").unwrap(),
            GraphName::from(NamedNode::new_unchecked("http://ex/g"))
        );
        assert_eq!(
            parse_object("o").unwrap(),
            Term::from(Literal::new_simple_literal("o"))
        );
        assert_eq!(
            parse_object("\"5\"^^<http://www.w3.org/2001/XMLSchema#integer>").unwrap(),
            Term::from(Literal::from(5))
        );
    }

    #[test]
    fn escaped_iris_are_read_as_any_string_and_raw_ones_refused() {
        let subject =
            parse_subject("<http://franz.com/ex#\\u0022Za\\u017C\\u0020x\\u0022>").unwrap();
        assert_eq!(
            subject,
            NamedOrBlankNode::from(NamedNode::new_unchecked("http://franz.com/ex#\"Zaż x\""))
        );
        assert!(parse_object("<http://franz.com/a b>").is_err());
        assert!(parse_graph("<http://franz.com/a\\u0009b>").is_ok());
    }

    #[test]
    fn a_literal_subject_is_refused() {
        assert!(parse_subject("\"x\"").is_err());
        assert!(parse_predicate("_:b1").is_err());
    }

    #[test]
    fn json_quads_take_null_or_the_string_null_as_default_graph() {
        let row = serde_json::json!(["<http://ex/s>", "<http://ex/p>", "\"x\"", "null"]);
        assert_eq!(
            parse_json_quad(&row, &GraphName::DefaultGraph)
                .unwrap()
                .graph_name,
            GraphName::DefaultGraph
        );
        let row = serde_json::json!(["<http://ex/s>", "<http://ex/p>", "\"x\"", "<http://ex/g>"]);
        assert!(!parse_json_quad(&row, &GraphName::DefaultGraph)
            .unwrap()
            .graph_name
            .is_default_graph());
    }
}
