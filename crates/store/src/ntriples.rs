//! IRIs as AllegroGraph keeps them: any string. N-Triples term syntax, written and read
//! here so that an IRI holding characters an IRI may not hold (a space, a tab, `"`,
//! `<`, `{`, a backslash: what agraph-python's `test_escaping` stores) survives every
//! round trip: a client's parameters, the JSON rows of `/statements`, N-Triples and
//! N-Quads documents, the log's effects, checkpoints, range delete patterns, exports.
//!
//! Written: such characters (the ones N-Triples' `IRIREF` forbids raw:
//! `#x00-#x20 < > " { } | ^ ` \`) as `\uXXXX`, every other character as it is; an IRI
//! without them is written exactly as oxigraph writes it. Read: `\uXXXX` and
//! `\UXXXXXXXX` escapes stand for any character; a forbidden character written raw is a
//! syntax error (as N-Triples says); the IRI is not checked against RFC 3987 beyond
//! starting with a scheme. oxigraph's own parsers refuse such IRIs and its writers write
//! them raw (text its parsers refuse), so quadmesh never relies on either for them.

use oxigraph::model::{
    GraphName, GraphNameRef, Literal, LiteralRef, NamedNode, NamedOrBlankNodeRef, QuadRef, Term,
    TermRef,
};
use std::fmt::{self, Write};
use std::str::FromStr;

/// Whether N-Triples forbids `c` raw inside `<...>`.
pub fn forbidden_in_iriref(c: char) -> bool {
    c <= ' ' || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '^' | '`' | '\\')
}

/// Whether an IRI must be escaped to be written in N-Triples, Turtle and their kin.
pub fn needs_escapes(iri: &str) -> bool {
    iri.chars().any(forbidden_in_iriref)
}

/// Writes `<iri>` with the characters N-Triples forbids raw as `\uXXXX`.
pub fn write_iri(f: &mut impl Write, iri: &str) -> fmt::Result {
    f.write_char('<')?;
    if needs_escapes(iri) {
        for c in iri.chars() {
            if forbidden_in_iriref(c) {
                write!(f, "\\u{:04X}", u32::from(c))?;
            } else {
                f.write_char(c)?;
            }
        }
    } else {
        f.write_str(iri)?;
    }
    f.write_char('>')
}

/// A term in N-Triples syntax, IRIs escaped as N-Triples requires.
pub struct TermText<'a>(pub TermRef<'a>);

impl fmt::Display for TermText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TermRef::NamedNode(n) => write_iri(f, n.as_str()),
            TermRef::Literal(l) if needs_escapes(l.datatype().as_str()) => {
                write!(f, "{}^^", LiteralRef::new_simple_literal(l.value()))?;
                write_iri(f, l.datatype().as_str())
            }
            other => write!(f, "{other}"),
        }
    }
}

impl<'a> TermText<'a> {
    pub fn of(term: impl Into<TermRef<'a>>) -> Self {
        TermText(term.into())
    }

    pub fn node(node: NamedOrBlankNodeRef<'a>) -> Self {
        TermText(match node {
            NamedOrBlankNodeRef::NamedNode(n) => n.into(),
            NamedOrBlankNodeRef::BlankNode(b) => b.into(),
        })
    }
}

/// A graph name in N-Triples syntax (`None` for the default graph).
pub fn graph_text(graph: GraphNameRef<'_>) -> Option<String> {
    match graph {
        GraphNameRef::DefaultGraph => None,
        GraphNameRef::NamedNode(n) => Some(TermText::of(n).to_string()),
        GraphNameRef::BlankNode(b) => Some(b.to_string()),
    }
}

/// A quad as an N-Quads line without its final ` .`, IRIs escaped.
pub struct QuadText<'a>(pub QuadRef<'a>);

impl fmt::Display for QuadText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.0;
        write!(
            f,
            "{} {} {}",
            TermText::node(q.subject),
            TermText::of(q.predicate),
            TermText::of(q.object)
        )?;
        if let Some(g) = graph_text(q.graph_name) {
            write!(f, " {g}")?;
        }
        Ok(())
    }
}

/// Whether any IRI of the quad (datatypes included) must be escaped.
pub fn quad_needs_escapes(q: QuadRef<'_>) -> bool {
    let term = |t: TermRef<'_>| match t {
        TermRef::NamedNode(n) => needs_escapes(n.as_str()),
        TermRef::Literal(l) => needs_escapes(l.datatype().as_str()),
        _ => false,
    };
    let node = |n: NamedOrBlankNodeRef<'_>| match n {
        NamedOrBlankNodeRef::NamedNode(n) => needs_escapes(n.as_str()),
        NamedOrBlankNodeRef::BlankNode(_) => false,
    };
    node(q.subject)
        || needs_escapes(q.predicate.as_str())
        || term(q.object)
        || matches!(q.graph_name, GraphNameRef::NamedNode(n) if needs_escapes(n.as_str()))
}

/// Whether an IRI starts with a scheme (`[A-Za-z][A-Za-z0-9+.-]*:`): the one check an
/// IRI read here gets, so that a relative reference is never taken for an IRI.
pub fn has_scheme(iri: &str) -> bool {
    let mut chars = iri.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return false;
    }
    for c in chars {
        match c {
            ':' => return true,
            c if c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-') => {}
            _ => return false,
        }
    }
    false
}

/// Reads `<...>` at the start of `text`: the IRI (escapes decoded) and the rest.
fn read_iri(text: &str) -> Result<(String, &str), String> {
    let body = text
        .strip_prefix('<')
        .ok_or_else(|| "an IRI starts with <".to_owned())?;
    let mut iri = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '>' => {
                if iri.is_empty() {
                    return Err("an IRI cannot be empty".into());
                }
                if !has_scheme(&iri) {
                    return Err(format!(
                        "<{iri}> is not an absolute IRI (it must start with a scheme such as http:)"
                    ));
                }
                return Ok((iri, &body[at + 1..]));
            }
            '\\' => {
                let digits = match chars.next() {
                    Some((_, 'u')) => 4,
                    Some((_, 'U')) => 8,
                    _ => {
                        return Err(
                            "only \\uXXXX and \\UXXXXXXXX escapes may be written in an IRI".into(),
                        )
                    }
                };
                let mut value = 0u32;
                for _ in 0..digits {
                    let digit =
                        chars
                            .next()
                            .and_then(|(_, d)| d.to_digit(16))
                            .ok_or_else(|| {
                                format!("an IRI escape needs {digits} hexadecimal digits")
                            })?;
                    value = value * 16 + digit;
                }
                iri.push(
                    char::from_u32(value).ok_or_else(|| {
                        format!("\\u{value:X} in an IRI is not a Unicode character")
                    })?,
                );
            }
            c if forbidden_in_iriref(c) => {
                return Err(format!(
                    "{} cannot be written as it is in an IRI: write \\u{:04X}",
                    describe(c),
                    u32::from(c)
                ))
            }
            c => iri.push(c),
        }
    }
    Err("an IRI must end with >".into())
}

/// A character named for an error message.
pub fn describe(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        '\n' => "a line feed".into(),
        '\r' => "a carriage return".into(),
        c if c < ' ' => format!("the control character U+{:04X}", u32::from(c)),
        c => format!("'{c}'"),
    }
}

/// The index just after the closing quote of the string `text` starts with.
fn string_end(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// A term in N-Triples syntax, IRIs read as described above (AllegroGraph's reading);
/// literals, blank nodes and quoted triples as oxigraph reads them.
pub fn parse_term(text: &str) -> Result<Term, String> {
    let text = text.trim();
    if text.starts_with('<') && !text.starts_with("<<") {
        let (iri, rest) = read_iri(text)?;
        if !rest.trim().is_empty() {
            return Err(format!("unexpected '{}' after the IRI", rest.trim()));
        }
        return Ok(NamedNode::new_unchecked(iri).into());
    }
    if text.starts_with('"') {
        if let Some(end) = string_end(text) {
            if let Some(datatype) = text[end..].strip_prefix("^^") {
                let (iri, rest) = read_iri(datatype.trim_start())?;
                if !rest.trim().is_empty() {
                    return Err(format!("unexpected '{}' after the datatype", rest.trim()));
                }
                if !needs_escapes(&iri) {
                    // oxigraph's reading, which keeps typed literals as it stores them.
                    return Term::from_str(text).map_err(|e| e.to_string());
                }
                let Term::Literal(simple) =
                    Term::from_str(&text[..end]).map_err(|e| e.to_string())?
                else {
                    return Err("a literal was expected".into());
                };
                return Ok(Literal::new_typed_literal(
                    simple.value(),
                    NamedNode::new_unchecked(iri),
                )
                .into());
            }
        }
    }
    Term::from_str(text).map_err(|e| e.to_string())
}

/// A graph name in N-Triples syntax (IRI or blank node).
pub fn parse_graph_name(text: &str) -> Result<GraphName, String> {
    match parse_term(text)? {
        Term::NamedNode(n) => Ok(n.into()),
        Term::BlankNode(b) => Ok(b.into()),
        _ => Err(format!("{text} cannot name a graph")),
    }
}

/// What N-Triples and N-Quads require of the text itself that the lenient parser
/// (which reads escaped IRIs without checking them) does not check: no character of
/// [`forbidden_in_iriref`] raw in an IRI, no raw line break in a string. Fed the bytes
/// of a document in order, in pieces of any size.
#[derive(Debug)]
pub struct LineGrammar {
    state: LineState,
    line: u64,
    column: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineState {
    Between,
    Comment,
    AfterLt,
    Iri,
    IriEscape,
    Str,
    StrEscape,
}

impl Default for LineGrammar {
    fn default() -> Self {
        LineGrammar {
            state: LineState::Between,
            line: 1,
            column: 0,
        }
    }
}

impl LineGrammar {
    /// A grammar for text that starts at the beginning of line `line` (counted from 1)
    /// of its document: a piece of a document cut at line feeds names the document's
    /// lines in its errors.
    pub fn at_line(line: u64) -> Self {
        LineGrammar {
            line,
            ..LineGrammar::default()
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.check(bytes).map_err(|(_, e)| e)
    }

    /// As `feed`; an error also gives the offset in `bytes` of the byte refused.
    fn check(&mut self, bytes: &[u8]) -> Result<(), (usize, String)> {
        for (at, &b) in bytes.iter().enumerate() {
            if b & 0xC0 != 0x80 {
                self.column += 1;
            }
            let mut state = self.state;
            if state == LineState::AfterLt {
                // `<<` opens a quoted triple; anything else is the IRI's first byte.
                state = if b == b'<' {
                    LineState::Between
                } else {
                    LineState::Iri
                };
                if state == LineState::Between {
                    self.state = state;
                    continue;
                }
            }
            self.state = match (state, b) {
                (LineState::Between, b'#') => LineState::Comment,
                (LineState::Between, b'<') => LineState::AfterLt,
                (LineState::Between, b'"') => LineState::Str,
                (LineState::Comment, b'\n' | b'\r') => LineState::Between,
                (LineState::Iri, b'>') => LineState::Between,
                (LineState::Iri, b'\\') => LineState::IriEscape,
                (LineState::Iri, b) if b < 0x80 && forbidden_in_iriref(char::from(b)) => {
                    return Err((
                        at,
                        format!(
                            "line {}, column {}: {} cannot be written as it is in an IRI \
                         (N-Triples and N-Quads take it escaped: \\u{:04X})",
                            self.line,
                            self.column,
                            describe(char::from(b)),
                            b
                        ),
                    ))
                }
                (LineState::IriEscape, _) => LineState::Iri,
                (LineState::Str, b'"') => LineState::Between,
                (LineState::Str, b'\\') => LineState::StrEscape,
                (LineState::Str, b'\n' | b'\r') => {
                    return Err((
                        at,
                        format!(
                            "line {}, column {}: a line break inside a string (write \\n or \\r)",
                            self.line, self.column
                        ),
                    ))
                }
                (LineState::StrEscape, _) => LineState::Str,
                (state, _) => state,
            };
            if b == b'\n' {
                self.line += 1;
                self.column = 0;
            }
        }
        Ok(())
    }
}

/// A reader that checks [`LineGrammar`] as the bytes pass: it hands over the bytes
/// before a refused one (so the statements before it are parsed, as without the check),
/// then fails with an `InvalidData` I/O error carrying the message.
pub struct LineGrammarReader<R> {
    inner: R,
    grammar: LineGrammar,
    refused: Option<String>,
}

impl<R> LineGrammarReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_grammar(inner, LineGrammar::default())
    }

    /// Checks `inner` with `grammar` (one made by [`LineGrammar::at_line`] for a piece of
    /// a document).
    pub fn with_grammar(inner: R, grammar: LineGrammar) -> Self {
        LineGrammarReader {
            inner,
            grammar,
            refused: None,
        }
    }
}

impl<R: std::io::Read> std::io::Read for LineGrammarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        if let Some(e) = self.refused.take() {
            return Err(invalid(e));
        }
        let n = self.inner.read(buf)?;
        match self.grammar.check(&buf[..n]) {
            Ok(()) => Ok(n),
            Err((0, e)) => Err(invalid(e)),
            Err((at, e)) => {
                self.refused = Some(e);
                Ok(at)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::{BlankNode, Quad};

    const ESCAPING: &str =
        "http://franz.com/ex#<langle{lcurl|or^caret\"dblquote\\bslash}rcurl>rangle";

    #[test]
    fn an_iri_with_forbidden_characters_is_written_escaped_and_read_back() {
        for iri in [
            ESCAPING,
            "http://franz.com/ex#\"Zażółć gęślą jaźń\"",
            "http://franz.com/aa \t \n \r \\ bb",
            "http://e.com/plain",
        ] {
            let node = NamedNode::new_unchecked(iri);
            let text = TermText::of(&node).to_string();
            let inside = text[1..text.len() - 1].replace("\\u", "");
            assert!(!inside.chars().any(forbidden_in_iriref), "{text}");
            assert_eq!(parse_term(&text).unwrap(), Term::from(node.clone()));
            let literal = Literal::new_typed_literal("x \"y\"", node);
            let text = TermText::of(&literal).to_string();
            assert_eq!(parse_term(&text).unwrap(), Term::from(literal));
        }
        assert_eq!(
            TermText::of(NamedNode::new_unchecked("http://e.com/a b").as_ref()).to_string(),
            "<http://e.com/a\\u0020b>"
        );
    }

    #[test]
    fn ordinary_terms_are_written_as_oxigraph_writes_them() {
        let quad = Quad::new(
            BlankNode::new_unchecked("b1"),
            NamedNode::new_unchecked("http://e.com/p"),
            Literal::new_language_tagged_literal_unchecked("été \"x\"\n", "fr"),
            NamedNode::new_unchecked("http://e.com/g"),
        );
        assert_eq!(QuadText(quad.as_ref()).to_string(), quad.to_string());
        assert!(!quad_needs_escapes(quad.as_ref()));
    }

    #[test]
    fn raw_forbidden_characters_and_relative_iris_are_refused() {
        for bad in [
            "<http://e.com/a b>",
            "<http://e.com/a\"b>",
            "<http://e.com/a{b>",
            "<http://e.com/\\n>",
            "<http://e.com/\\u00ZZ>",
            "<relative>",
            "<>",
            "<http://e.com/a",
            "<http://e.com/a> x",
        ] {
            assert!(parse_term(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_term("\"5\"^^<http://www.w3.org/2001/XMLSchema#integer>").is_ok());
    }

    #[test]
    fn the_line_grammar_refuses_raw_characters_in_iris_only() {
        let check = |doc: &str| {
            let mut g = LineGrammar::default();
            // Fed in pieces of one byte: a piece may end anywhere.
            doc.as_bytes().iter().try_for_each(|b| g.feed(&[*b]))
        };
        check("<http://e.com/s> <http://e.com/p> \"a <b c> {d}\" . # <x y>\n").unwrap();
        check("<< <http://e.com/s> <http://e.com/p> <http://e.com/o> >> <http://e.com/p> \"x\\\"<y z>\" .\n")
            .unwrap();
        check("<http://e.com/s> <http://e.com/p> <http://e.com/a\\u0020b> .\n").unwrap();
        let err =
            check("<http://e.com/s> <http://e.com/p> .\n<http://e.com/a b> <p> <o> .").unwrap_err();
        assert!(
            err.contains("line 2, column 16") && err.contains("a space"),
            "{err}"
        );
        assert!(check("<http://e.com/s> <http://e.com/p> \"a\nb\" .").is_err());
    }
}
