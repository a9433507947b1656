use crate::error::{Result, StoreError};
use crate::ntriples::QuadText;
use crate::pattern::QuadPattern;
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::Quad;
use std::io::Write;

/// A change to a repository: range deletes (every quad matching a pattern), then quads
/// inserted and quads deleted.
///
/// Every write, whatever its origin (SPARQL Update, `/statements`, graph store, load,
/// session commit, a peer's transaction), reduces to an `Effect` before it is stamped,
/// logged and applied. An effect never lists one quad both as inserted and deleted, and
/// blank nodes keep their stored labels, so that every instance applies the same quads.
/// Its range deletes come first: its inserts and deletes are applied after them, with
/// the same stamp (a replace is a clear and then inserts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    pub inserts: Vec<Quad>,
    pub deletes: Vec<Quad>,
    /// Range deletes: on every instance, each matching quad whose last write is older
    /// goes, and older writes arriving later are refused (range tombstones).
    pub patterns: Vec<QuadPattern>,
}

impl Effect {
    pub fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.deletes.is_empty() && self.patterns.is_empty()
    }

    pub fn len(&self) -> usize {
        self.inserts.len() + self.deletes.len()
    }

    /// Serialises as two N-Quads sections, each preceded by its byte length (u64 LE),
    /// then, only when there are range deletes, a third section of them (JSON): an
    /// effect without them is encoded as before range deletes existed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.len() + 16);
        for quads in [&self.inserts, &self.deletes] {
            let len_at = out.len();
            out.extend_from_slice(&[0; 8]);
            for quad in quads {
                // N-Quads; IRIs escaped as N-Triples requires (AllegroGraph's IRIs may
                // hold any character), otherwise oxigraph's Display.
                writeln!(out, "{} .", QuadText(quad.as_ref()))
                    .expect("writing to a Vec cannot fail");
            }
            let len = (out.len() - len_at - 8) as u64;
            out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
        }
        if !self.patterns.is_empty() {
            let patterns = QuadPattern::encode_all(&self.patterns);
            out.extend_from_slice(&(patterns.len() as u64).to_le_bytes());
            out.extend_from_slice(&patterns);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_on(bytes, 1)
    }

    /// [`Effect::decode`], each N-Quads section of a large effect (a load) parsed on up
    /// to `threads` threads: a section is split at line feeds (a statement never spans
    /// one), the parts parsed at once and their quads put back in order. The same quads
    /// as [`Effect::decode`], or an error where it has one.
    pub fn decode_on(bytes: &[u8], threads: usize) -> Result<Self> {
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
            sections.push(parse_section(&rest[..len], threads).map_err(corrupt)?);
            rest = &rest[len..];
        }
        let mut patterns = Vec::new();
        if !rest.is_empty() {
            if rest.len() < 8 {
                return Err(corrupt("range delete section length missing".into()));
            }
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
            rest = &rest[8..];
            if rest.len() != len {
                return Err(corrupt("range delete section length does not match".into()));
            }
            patterns = QuadPattern::decode_all(rest)?;
            if patterns.is_empty() {
                return Err(corrupt("empty range delete section".into()));
            }
        }
        let deletes = sections.pop().expect("two sections");
        let inserts = sections.pop().expect("two sections");
        Ok(Effect {
            inserts,
            deletes,
            patterns,
        })
    }
}

/// The parts a section is parsed in at most: none smaller than this (a thread costs
/// more than parsing a small one).
const MIN_PART_BYTES: usize = 256 << 10;

/// One N-Quads section's quads, parsed on up to `threads` threads.
fn parse_section(text: &[u8], threads: usize) -> std::result::Result<Vec<Quad>, String> {
    // Lenient: escaped IRIs are read back as any string (written by `encode`).
    let parse = |part: &[u8]| {
        RdfParser::from_format(RdfFormat::NQuads)
            .lenient()
            .for_slice(part)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    };
    let parts = line_parts(text, threads.min(text.len() / MIN_PART_BYTES).max(1));
    if parts.len() == 1 {
        return parse(text);
    }
    let parsed = crate::threads::each_on_a_thread(&parts, |part| parse(part));
    let mut quads = Vec::new();
    for part in parsed {
        let part = part?;
        if quads.is_empty() {
            quads = part;
        } else {
            quads.extend(part);
        }
    }
    Ok(quads)
}

/// `text` cut into about `parts` consecutive pieces, each ending just after a line feed
/// (or at the end).
fn line_parts(text: &[u8], parts: usize) -> Vec<&[u8]> {
    let size = text.len().div_ceil(parts.max(1)).max(1);
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = text;
    while !rest.is_empty() {
        let cut = match rest
            .get(size..)
            .and_then(|after| after.iter().position(|&b| b == b'\n'))
        {
            Some(at) => size + at + 1,
            None => rest.len(),
        };
        let (piece, after) = rest.split_at(cut);
        pieces.push(piece);
        rest = after;
    }
    if pieces.is_empty() {
        pieces.push(text);
    }
    pieces
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
                ex.clone(),
                GraphName::DefaultGraph,
            )],
            patterns: vec![],
        };
        assert_eq!(Effect::decode(&effect.encode()).unwrap(), effect);
        // IRIs as AllegroGraph keeps them (agraph-python's test_escaping).
        let odd = NamedNode::new_unchecked(
            "http://franz.com/ex#<langle{lcurl|or^caret\"dblquote\\bslash}rcurl>rangle \t\n\r",
        );
        let escaped = Effect {
            inserts: vec![Quad::new(
                odd.clone(),
                odd.clone(),
                Literal::new_typed_literal("x", odd.clone()),
                odd.clone(),
            )],
            deletes: vec![Quad::new(
                odd.clone(),
                odd.clone(),
                odd,
                GraphName::DefaultGraph,
            )],
            patterns: vec![],
        };
        assert_eq!(Effect::decode(&escaped.encode()).unwrap(), escaped);
        let with_patterns = Effect {
            patterns: vec![
                QuadPattern::everything(),
                QuadPattern::graph(&GraphName::NamedNode(ex)),
            ],
            ..effect
        };
        assert_eq!(
            Effect::decode(&with_patterns.encode()).unwrap(),
            with_patterns
        );
    }

    #[test]
    fn a_large_effect_decodes_the_same_on_any_number_of_threads() {
        let p = NamedNode::new_unchecked("http://example.com/p");
        let quad = |i: usize| {
            Quad::new(
                BlankNode::new_unchecked(format!("b{}", i % 7)),
                p.clone(),
                Literal::new_simple_literal(format!("line {i}\nnext \"quoted\"")),
                NamedNode::new_unchecked(format!("http://example.com/g{}", i % 3)),
            )
        };
        let effect = Effect {
            inserts: (0..12_000).map(quad).collect(),
            deletes: (12_000..12_100).map(quad).collect(),
            patterns: vec![],
        };
        let bytes = effect.encode();
        assert!(
            bytes.len() > 2 * MIN_PART_BYTES,
            "the test must split the section"
        );
        for threads in [1, 2, 3, 8] {
            assert_eq!(Effect::decode_on(&bytes, threads).unwrap(), effect);
        }
        // A damaged statement in a later part is an error, whatever the threads.
        let mut damaged = bytes.clone();
        let at = bytes.len() * 3 / 4;
        let line_start = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(
            bytes[line_start], b'_',
            "a statement starts with its subject"
        );
        damaged[line_start] = b'!';
        for threads in [1, 2, 3] {
            assert!(Effect::decode_on(&damaged, threads).is_err());
        }
    }

    #[test]
    fn line_parts_end_at_line_feeds_and_cover_the_text() {
        let text = b"a\nbb\nccc\ndddd\n\nee";
        for parts in 1..10 {
            let pieces = line_parts(text, parts);
            assert_eq!(pieces.concat(), text.to_vec());
            for piece in &pieces[..pieces.len() - 1] {
                assert_eq!(piece.last(), Some(&b'\n'));
            }
        }
        assert_eq!(line_parts(b"", 3), vec![&b""[..]]);
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
            patterns: vec![QuadPattern::everything()],
        };
        let bytes = effect.encode();
        assert!(Effect::decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
