//! Parsing uploaded RDF completely before anything is written, so that a document with
//! an error anywhere changes nothing: whole documents in memory ([`parse_rdf`]) or as a
//! stream of quads read from anywhere ([`parse_rdf_stream`]).

use crate::error::{Result, StoreError};
use crate::ntriples::{has_scheme, LineGrammar, LineGrammarReader};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{
    vocab, BlankNode, GraphName, Literal, NamedNodeRef, NamedOrBlankNode, Quad, Term,
};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;

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

/// Gives the blank nodes of one document new labels without remembering them: a label's
/// new name is a keyed 128-bit hash of it, the keys drawn anew per document. The same
/// label gets the same node throughout the document, different documents get different
/// nodes, and memory stays constant however many blank nodes a document has.
pub struct BlankNodeRenamer {
    keys: (RandomState, RandomState),
}

impl Default for BlankNodeRenamer {
    fn default() -> Self {
        BlankNodeRenamer {
            keys: (RandomState::new(), RandomState::new()),
        }
    }
}

impl BlankNodeRenamer {
    pub fn rename(&self, quad: Quad) -> Quad {
        let rename = |b: BlankNode| {
            let high = u128::from(self.keys.0.hash_one(b.as_str()));
            let low = u128::from(self.keys.1.hash_one(b.as_str()));
            BlankNode::new_unchecked(format!("b{:032x}", high << 64 | low))
        };
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
}

/// Whether a format reads IRIs as AllegroGraph keeps them (any string, written with
/// `\u` escapes for the characters N-Triples forbids raw): N-Triples and N-Quads, the
/// formats of AllegroGraph's exports and of quadmesh's. The others read IRIs as
/// oxigraph does (RFC 3987).
pub fn keeps_any_iri(format: RdfFormat) -> bool {
    matches!(format, RdfFormat::NTriples | RdfFormat::NQuads)
}

/// What the lenient parser leaves unchecked in N-Triples and N-Quads, besides what
/// [`LineGrammar`] checks on the text: language tags, `rdf:langString` without a
/// language, IRIs that are not absolute (no base to resolve them against).
pub fn check_lenient_quad(quad: &Quad) -> std::result::Result<(), String> {
    let iri = |n: NamedNodeRef<'_>| {
        if has_scheme(n.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "<{}> is not an absolute IRI, and there is no base IRI to resolve it against",
                n.as_str()
            ))
        }
    };
    if let NamedOrBlankNode::NamedNode(n) = &quad.subject {
        iri(n.as_ref())?;
    }
    iri(quad.predicate.as_ref())?;
    if let GraphName::NamedNode(n) = &quad.graph_name {
        iri(n.as_ref())?;
    }
    match &quad.object {
        Term::NamedNode(n) => iri(n.as_ref())?,
        Term::Literal(l) => {
            if let Some(language) = l.language() {
                Literal::new_language_tagged_literal(l.value(), language)
                    .map_err(|e| format!("invalid language tag '{language}': {e}"))?;
            } else if l.datatype() == vocab::rdf::LANG_STRING {
                return Err("a literal typed rdf:langString needs a language tag".into());
            } else {
                iri(l.datatype())?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn parser(
    format: RdfFormat,
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
) -> Result<RdfParser> {
    let mut parser = RdfParser::from_format(format);
    if keeps_any_iri(format) {
        // Reads escaped IRIs without checking them; `LineGrammar` and
        // `check_lenient_quad` check the rest.
        parser = parser.lenient();
    }
    if let Some(base) = base_iri {
        parser = parser
            .with_base_iri(base)
            .map_err(|e| StoreError::InvalidRdf(format!("invalid base IRI <{base}>: {e}")))?;
    }
    if let Some(graph) = graph {
        parser = parser.with_default_graph(graph.clone());
    }
    Ok(parser)
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
    let renamer = BlankNodeRenamer::default();
    if keeps_any_iri(format) {
        LineGrammar::default()
            .feed(data)
            .map_err(StoreError::InvalidRdf)?;
    }
    let mut quads = Vec::new();
    for quad in parser(format, base_iri, graph)?.for_slice(data) {
        let quad = quad.map_err(|e| StoreError::InvalidRdf(e.to_string()))?;
        if keeps_any_iri(format) {
            check_lenient_quad(&quad).map_err(StoreError::InvalidRdf)?;
        }
        quads.push(match blank_nodes {
            BlankNodes::Rename => renamer.rename(quad),
            BlankNodes::Keep => quad,
        });
    }
    Ok(quads)
}

/// The quads of a document read from anywhere, as quadmesh reads every upload (IRIs
/// as [`keeps_any_iri`] says); errors as text. For a reader outside the store (the
/// command-line loader).
pub fn read_quads<'a>(
    format: RdfFormat,
    data: impl Read + 'a,
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
) -> Result<impl Iterator<Item = std::result::Result<Quad, String>> + 'a> {
    let lenient = keeps_any_iri(format);
    let data: Box<dyn Read + 'a> = if lenient {
        Box::new(LineGrammarReader::new(data))
    } else {
        Box::new(data)
    };
    Ok(parser(format, base_iri, graph)?
        .for_reader(data)
        .map(move |quad| {
            let quad = quad.map_err(|e| e.to_string())?;
            if lenient {
                check_lenient_quad(&quad)?;
            }
            Ok(quad)
        }))
}

/// Parses a document as it is read, handing each quad to `each` (which may stop the
/// parse with an error); answers the number of quads. Memory stays bounded whatever
/// the document's size. A syntax error stops it with [`StoreError::InvalidRdf`] naming
/// the position; `each` has then seen the quads before it, so a caller that must change
/// nothing on an error either checks the whole document first (a pass with a `each`
/// that does nothing) or works on something it can drop (a transaction).
pub fn parse_rdf_stream(
    format: RdfFormat,
    data: impl Read,
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
    blank_nodes: BlankNodes,
    mut each: impl FnMut(Quad) -> Result<()>,
) -> Result<usize> {
    let renamer = BlankNodeRenamer::default();
    let mut count = 0;
    for quad in read_quads(format, data, base_iri, graph)? {
        let quad = quad.map_err(StoreError::InvalidRdf)?;
        each(match blank_nodes {
            BlankNodes::Rename => renamer.rename(quad),
            BlankNodes::Keep => quad,
        })?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_refuses_an_error_on_its_last_line_after_handing_over_the_rest() {
        let mut doc = String::new();
        for i in 0..999 {
            doc.push_str(&format!(
                "<http://e.com/s{i}> <http://e.com/p> _:b{} .\n",
                i % 7
            ));
        }
        doc.push_str("<http://e.com/s> <http://e.com/p> \"unterminated .\n");
        let mut seen = Vec::new();
        let err = parse_rdf_stream(
            RdfFormat::NTriples,
            doc.as_bytes(),
            None,
            None,
            BlankNodes::Rename,
            |q| {
                seen.push(q);
                Ok(())
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("1000"), "names the line: {err}");
        assert_eq!(seen.len(), 999);
        // One label, one node, within the document; renamed.
        assert_eq!(seen[0].object, seen[7].object);
        assert_ne!(seen[0].object, seen[1].object);
        assert!(!seen[0].object.to_string().ends_with(":b0"));
    }

    #[test]
    fn ntriples_and_nquads_read_escaped_iris_as_any_string_and_check_the_rest() {
        let doc = "<http://e.com/a\\u0020b> <http://e.com/p\\u007B1\\u007d> \"x\"^^<http://e.com/\\u0022t\\u0022> <http://e.com/g\\u0009> .\n";
        for format in [RdfFormat::NQuads, RdfFormat::NTriples] {
            let doc = if format == RdfFormat::NTriples {
                doc.replace(" <http://e.com/g\\u0009>", "")
            } else {
                doc.to_owned()
            };
            let whole = parse_rdf(format, doc.as_bytes(), None, None, BlankNodes::Keep).unwrap();
            let mut streamed = Vec::new();
            parse_rdf_stream(format, doc.as_bytes(), None, None, BlankNodes::Keep, |q| {
                streamed.push(q);
                Ok(())
            })
            .unwrap();
            assert_eq!(whole, streamed);
            assert_eq!(whole[0].subject.to_string(), "<http://e.com/a b>");
            assert_eq!(whole[0].predicate.as_str(), "http://e.com/p{1}");
        }
        // What the lenient parser would let through stays refused.
        for bad in [
            "<http://e.com/a b> <http://e.com/p> <http://e.com/o> .",
            "<http://e.com/s> <http://e.com/p> \"x\"@1bad-tag! .",
            "<http://e.com/s> <http://e.com/p> \"x\"^^<http://www.w3.org/1999/02/22-rdf-syntax-ns#langString> .",
            "<relative> <http://e.com/p> <http://e.com/o> .",
            "<http://e.com/s> <http://e.com/p> \"a\nb\" .",
        ] {
            assert!(
                parse_rdf(RdfFormat::NTriples, bad.as_bytes(), None, None, BlankNodes::Keep).is_err(),
                "{bad}"
            );
            assert!(
                parse_rdf_stream(RdfFormat::NTriples, bad.as_bytes(), None, None, BlankNodes::Keep, |_| Ok(()))
                    .is_err(),
                "{bad}"
            );
        }
        // Turtle keeps oxigraph's checks.
        assert!(parse_rdf(
            RdfFormat::Turtle,
            doc.as_bytes(),
            None,
            None,
            BlankNodes::Keep
        )
        .is_err());
    }

    #[test]
    fn documents_get_different_blank_nodes_for_the_same_label() {
        let doc = "<http://e.com/s> <http://e.com/p> _:x .";
        let parse = || {
            parse_rdf(
                RdfFormat::NTriples,
                doc.as_bytes(),
                None,
                None,
                BlankNodes::Rename,
            )
            .unwrap()
        };
        assert_ne!(parse()[0].object, parse()[0].object);
    }

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
