//! Parsing uploaded RDF completely before anything is written, so that a document with
//! an error anywhere changes nothing.

use crate::error::{Result, StoreError};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{BlankNode, GraphName, NamedOrBlankNode, Quad, Term};
use std::collections::HashMap;

/// A new blank node. Labels are a letter and hex digits, a shape every client
/// (agraph-python's parser included) reads back as the same node.
pub fn fresh_blank_node() -> BlankNode {
    BlankNode::new_unchecked(format!("b{:032x}", rand::random::<u128>()))
}

/// Gives the blank nodes of one document or request new labels, one per label used:
/// blank nodes are local to the document that wrote them.
pub fn rename_blank_nodes(quad: Quad, labels: &mut HashMap<BlankNode, BlankNode>) -> Quad {
    let mut rename = |b: BlankNode| labels.entry(b).or_insert_with(fresh_blank_node).clone();
    Quad {
        subject: match quad.subject {
            NamedOrBlankNode::BlankNode(b) => rename(b).into(),
            other => other,
        },
        predicate: quad.predicate,
        object: match quad.object {
            Term::BlankNode(b) => rename(b).into(),
            other => other,
        },
        graph_name: match quad.graph_name {
            GraphName::BlankNode(b) => rename(b).into(),
            other => other,
        },
    }
}

/// How the blank node labels of a document are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlankNodes {
    /// New labels per document (the default: blank nodes are local to a document).
    Rename,
    /// Labels kept as written: for a client that already made them unique and sends
    /// one document in several requests.
    Keep,
}

/// Parses a whole document. `graph` puts the triples of a triples-only format (and the
/// default graph of a quads format) into that graph.
pub fn parse_rdf(
    format: RdfFormat,
    data: &[u8],
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
    blank_nodes: BlankNodes,
) -> Result<Vec<Quad>> {
    let mut parser = RdfParser::from_format(format);
    if let Some(base) = base_iri {
        parser = parser
            .with_base_iri(base)
            .map_err(|e| StoreError::InvalidRdf(format!("invalid base IRI <{base}>: {e}")))?;
    }
    if let Some(graph) = graph {
        parser = parser.with_default_graph(graph.clone());
    }
    let mut labels = HashMap::new();
    parser
        .for_slice(data)
        .map(|q| {
            q.map(|q| match blank_nodes {
                BlankNodes::Rename => rename_blank_nodes(q, &mut labels),
                BlankNodes::Keep => q,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::InvalidRdf(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_on_the_last_line_refuses_the_whole_document() {
        let mut doc = String::new();
        for i in 0..999 {
            doc.push_str(&format!("<http://e.com/s{i}> <http://e.com/p> \"{i}\" .\n"));
        }
        doc.push_str("<http://e.com/s> <http://e.com/p> \"unterminated .\n");
        let err = parse_rdf(
            RdfFormat::Turtle,
            doc.as_bytes(),
            None,
            None,
            BlankNodes::Rename,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("1000"),
            "error should name the line: {err}"
        );
    }
}
