use crate::error::{Result, StoreError};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::Quad;
use std::io::Write;

/// A concrete change to a repository: quads inserted and quads deleted.
///
/// Every write, whatever its origin (SPARQL Update, `/statements`, graph store, load,
/// session commit, a peer's transaction), reduces to an `Effect` before it is stamped,
/// logged and applied. An effect never lists one quad both as inserted and deleted, and
/// blank nodes keep their stored labels, so that every instance applies the same quads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    pub inserts: Vec<Quad>,
    pub deletes: Vec<Quad>,
}

impl Effect {
    pub fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.deletes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.inserts.len() + self.deletes.len()
    }

    /// Serialises as two N-Quads sections, each preceded by its byte length (u64 LE).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.len() + 16);
        for quads in [&self.inserts, &self.deletes] {
            let len_at = out.len();
            out.extend_from_slice(&[0; 8]);
            for quad in quads {
                // Quad's Display is its N-Quads form without the final dot.
                writeln!(out, "{quad} .").expect("writing to a Vec cannot fail");
            }
            let len = (out.len() - len_at - 8) as u64;
            out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "effect".into(),
            detail,
        };
        let mut rest = bytes;
        let mut sections = Vec::with_capacity(2);
        for _ in 0..2 {
            if rest.len() < 8 {
                return Err(corrupt("section length missing".into()));
            }
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
            rest = &rest[8..];
            if rest.len() < len {
                return Err(corrupt("section shorter than its length".into()));
            }
            let quads = RdfParser::from_format(RdfFormat::NQuads)
                .for_slice(&rest[..len])
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| corrupt(e.to_string()))?;
            sections.push(quads);
            rest = &rest[len..];
        }
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes".into()));
        }
        let deletes = sections.pop().expect("two sections");
        let inserts = sections.pop().expect("two sections");
        Ok(Effect { inserts, deletes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::{BlankNode, GraphName, Literal, NamedNode};

    #[test]
    fn an_effect_round_trips_with_blank_node_labels_kept() {
        let ex = NamedNode::new_unchecked("http://example.com/p");
        let effect = Effect {
            inserts: vec![Quad::new(
                BlankNode::new_unchecked("b42"),
                ex.clone(),
                Literal::new_language_tagged_literal_unchecked("été \"x\"\n", "fr"),
                NamedNode::new_unchecked("http://example.com/g"),
            )],
            deletes: vec![Quad::new(
                ex.clone(),
                ex.clone(),
                ex,
                GraphName::DefaultGraph,
            )],
        };
        assert_eq!(Effect::decode(&effect.encode()).unwrap(), effect);
    }

    #[test]
    fn a_truncated_effect_is_refused() {
        let ex = NamedNode::new_unchecked("http://example.com/p");
        let effect = Effect {
            inserts: vec![Quad::new(
                ex.clone(),
                ex.clone(),
                ex,
                GraphName::DefaultGraph,
            )],
            deletes: vec![],
        };
        let bytes = effect.encode();
        assert!(Effect::decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
