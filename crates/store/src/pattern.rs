//! Quad patterns that writes delete by: `/statements` DELETE, CLEAR and DROP, the graph
//! store's DELETE and PUT, `DELETE WHERE` of one quad pattern. A pattern with its
//! transaction's stamp is a *range tombstone* (see [`quadmesh_repl::Register`]).

use crate::digest_book::canonical_term;
use crate::error::{Result, StoreError};
use crate::ntriples::{parse_term, TermText};
use oxigraph::model::{GraphName, GraphNameRef, NamedNode, NamedOrBlankNode, Quad, Term};
use quadmesh_repl::RangePattern;
use serde::{Deserialize, Serialize};

/// Which graphs a pattern covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GraphSelector {
    /// Every graph, the default one included (no `context`; `CLEAR ALL`).
    Any,
    /// The default graph (`context=null`; `CLEAR DEFAULT`).
    Default,
    /// Every named graph (`CLEAR NAMED`).
    AllNamed,
    /// One named graph.
    Named(NamedOrBlankNode),
}

impl GraphSelector {
    /// The selector naming exactly `graph`.
    pub fn of(graph: &GraphName) -> Self {
        match graph {
            GraphName::DefaultGraph => GraphSelector::Default,
            GraphName::NamedNode(n) => GraphSelector::Named(n.clone().into()),
            GraphName::BlankNode(b) => GraphSelector::Named(b.clone().into()),
        }
    }

    fn kind(&self) -> u8 {
        match self {
            GraphSelector::Any => 0,
            GraphSelector::Default => 1,
            GraphSelector::AllNamed => 2,
            GraphSelector::Named(_) => 3,
        }
    }
}

/// Every quad with these terms in the positions given (`None`: any term there).
///
/// Rules it keeps: object literals are held in the canonical form the store keeps
/// them in (as the content digest does), so a pattern matches the quads the store
/// matches for it whatever lexical form each side was written in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuadPattern {
    pub subject: Option<NamedOrBlankNode>,
    pub predicate: Option<NamedNode>,
    pub object: Option<Term>,
    pub graph: GraphSelector,
}

/// The positions a pattern fixes: bits 0–2 subject, predicate, object; bits 3–4 the
/// graph selector's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PatternShape(u8);

impl QuadPattern {
    pub fn new(
        subject: Option<NamedOrBlankNode>,
        predicate: Option<NamedNode>,
        object: Option<Term>,
        graph: GraphSelector,
    ) -> Self {
        QuadPattern {
            subject,
            predicate,
            object: object.map(canonical_term),
            graph,
        }
    }

    /// Everything: `DELETE /statements` without parameters, `CLEAR ALL`.
    pub fn everything() -> Self {
        Self::new(None, None, None, GraphSelector::Any)
    }

    /// Every quad of one graph.
    pub fn graph(graph: &GraphName) -> Self {
        Self::new(None, None, None, GraphSelector::of(graph))
    }

    /// The quads of `transaction` this pattern matches.
    pub fn matches_in(&self, transaction: &oxigraph::store::Transaction<'_>) -> Result<Vec<Quad>> {
        let graph: Option<GraphNameRef<'_>> = match &self.graph {
            GraphSelector::Any | GraphSelector::AllNamed => None,
            GraphSelector::Default => Some(GraphNameRef::DefaultGraph),
            GraphSelector::Named(g) => Some(g.as_ref().into()),
        };
        let named_only = self.graph == GraphSelector::AllNamed;
        let mut out = Vec::new();
        for quad in transaction.quads_for_pattern(
            self.subject.as_ref().map(|s| s.as_ref()),
            self.predicate.as_ref().map(|p| p.as_ref()),
            self.object.as_ref().map(|o| o.as_ref()),
            graph,
        ) {
            let quad = quad?;
            if !named_only || !quad.graph_name.is_default_graph() {
                out.push(quad);
            }
        }
        Ok(out)
    }

    /// Whether the pattern fixes every position (it then names at most one quad per
    /// graph and is written as explicit deletes where that is cheaper).
    pub fn names_one_quad(&self) -> Option<Quad> {
        let graph = match &self.graph {
            GraphSelector::Default => GraphName::DefaultGraph,
            GraphSelector::Named(NamedOrBlankNode::NamedNode(n)) => n.clone().into(),
            GraphSelector::Named(NamedOrBlankNode::BlankNode(b)) => b.clone().into(),
            _ => return None,
        };
        Some(Quad::new(
            self.subject.clone()?,
            self.predicate.clone()?,
            self.object.clone()?,
            graph,
        ))
    }

    fn to_wire(&self) -> WirePattern {
        WirePattern {
            s: self
                .subject
                .as_ref()
                .map(|t| TermText::node(t.as_ref()).to_string()),
            p: self.predicate.as_ref().map(|t| TermText::of(t).to_string()),
            o: self.object.as_ref().map(|t| TermText::of(t).to_string()),
            g: match &self.graph {
                GraphSelector::Any => "*".into(),
                GraphSelector::Default => "DEFAULT".into(),
                GraphSelector::AllNamed => "NAMED".into(),
                GraphSelector::Named(g) => TermText::node(g.as_ref()).to_string(),
            },
        }
    }

    fn from_wire(wire: WirePattern) -> Result<Self> {
        let term = |text: &str| {
            parse_term(text).map_err(|e| StoreError::Corrupt {
                what: "quad pattern".into(),
                detail: format!("{text}: {e}"),
            })
        };
        let node = |text: &str| -> Result<NamedOrBlankNode> {
            match term(text)? {
                Term::NamedNode(n) => Ok(n.into()),
                Term::BlankNode(b) => Ok(b.into()),
                other => Err(StoreError::Corrupt {
                    what: "quad pattern".into(),
                    detail: format!("{other} cannot be a subject or a graph"),
                }),
            }
        };
        let subject = wire.s.as_deref().map(node).transpose()?;
        let predicate = match wire.p.as_deref().map(term).transpose()? {
            None => None,
            Some(Term::NamedNode(n)) => Some(n),
            Some(other) => {
                return Err(StoreError::Corrupt {
                    what: "quad pattern".into(),
                    detail: format!("{other} cannot be a predicate"),
                })
            }
        };
        let object = wire.o.as_deref().map(term).transpose()?;
        let graph = match wire.g.as_str() {
            "*" => GraphSelector::Any,
            "DEFAULT" => GraphSelector::Default,
            "NAMED" => GraphSelector::AllNamed,
            g => GraphSelector::Named(node(g)?),
        };
        Ok(QuadPattern::new(subject, predicate, object, graph))
    }

    /// The patterns of a log entry, as JSON (terms in N-Triples syntax).
    pub fn encode_all(patterns: &[QuadPattern]) -> Vec<u8> {
        let wire: Vec<WirePattern> = patterns.iter().map(QuadPattern::to_wire).collect();
        serde_json::to_vec(&wire).expect("patterns serialise")
    }

    pub fn decode_all(bytes: &[u8]) -> Result<Vec<QuadPattern>> {
        let wire: Vec<WirePattern> =
            serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
                what: "quad patterns".into(),
                detail: e.to_string(),
            })?;
        wire.into_iter().map(QuadPattern::from_wire).collect()
    }

    /// One line of text for a checkpoint.
    pub(crate) fn to_text(&self) -> String {
        serde_json::to_string(&self.to_wire()).expect("a pattern serialises")
    }

    pub(crate) fn from_text(text: &str) -> Result<Self> {
        let wire: WirePattern = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            what: "quad pattern".into(),
            detail: e.to_string(),
        })?;
        Self::from_wire(wire)
    }
}

impl std::fmt::Display for QuadPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |t: Option<String>| t.unwrap_or_else(|| "*".into());
        let wire = self.to_wire();
        write!(
            f,
            "{} {} {} {}",
            show(wire.s),
            show(wire.p),
            show(wire.o),
            wire.g
        )
    }
}

#[derive(Serialize, Deserialize)]
struct WirePattern {
    s: Option<String>,
    p: Option<String>,
    o: Option<String>,
    g: String,
}

impl RangePattern for QuadPattern {
    type Item = Quad;
    type Shape = PatternShape;

    fn shape(&self) -> PatternShape {
        PatternShape(
            u8::from(self.subject.is_some())
                | u8::from(self.predicate.is_some()) << 1
                | u8::from(self.object.is_some()) << 2
                | self.graph.kind() << 3,
        )
    }

    fn project(shape: PatternShape, quad: &Quad) -> Option<QuadPattern> {
        let fixed = |bit: u8| shape.0 & (1 << bit) != 0;
        let graph = match shape.0 >> 3 {
            0 => GraphSelector::Any,
            1 if quad.graph_name.is_default_graph() => GraphSelector::Default,
            2 if !quad.graph_name.is_default_graph() => GraphSelector::AllNamed,
            3 if !quad.graph_name.is_default_graph() => GraphSelector::of(&quad.graph_name),
            _ => return None,
        };
        Some(QuadPattern {
            subject: fixed(0).then(|| quad.subject.clone()),
            predicate: fixed(1).then(|| quad.predicate.clone()),
            object: fixed(2).then(|| canonical_term(quad.object.clone())),
            graph,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::Literal;

    fn iri(s: &str) -> NamedNode {
        NamedNode::new_unchecked(format!("http://example.com/{s}"))
    }

    #[test]
    fn patterns_round_trip_through_their_encoding() {
        let patterns = vec![
            QuadPattern::everything(),
            QuadPattern::new(
                Some(iri("s").into()),
                None,
                Some(Literal::new_language_tagged_literal_unchecked("a \"b\"\n", "en").into()),
                GraphSelector::Default,
            ),
            QuadPattern::new(None, Some(iri("p")), None, GraphSelector::AllNamed),
            QuadPattern::graph(&iri("g").into()),
        ];
        let back = QuadPattern::decode_all(&QuadPattern::encode_all(&patterns)).unwrap();
        assert_eq!(back, patterns);
        for p in &patterns {
            assert_eq!(&QuadPattern::from_text(&p.to_text()).unwrap(), p);
        }
    }

    #[test]
    fn a_quad_matches_the_patterns_it_projects_to_and_literals_compare_canonically() {
        let quad = Quad::new(
            iri("s"),
            iri("p"),
            Literal::new_typed_literal("5.40", oxigraph::model::vocab::xsd::DECIMAL),
            iri("g"),
        );
        let pattern = QuadPattern::new(
            None,
            Some(iri("p")),
            Some(Literal::new_typed_literal("5.4", oxigraph::model::vocab::xsd::DECIMAL).into()),
            GraphSelector::AllNamed,
        );
        assert!(pattern.matches(&quad));
        assert!(QuadPattern::graph(&iri("g").into()).matches(&quad));
        assert!(!QuadPattern::graph(&GraphName::DefaultGraph).matches(&quad));
        assert!(QuadPattern::everything().matches(&quad));
        assert!(
            !QuadPattern::new(Some(iri("x").into()), None, None, GraphSelector::Any).matches(&quad)
        );
    }
}
