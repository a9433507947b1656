//! What AllegroGraph reads in a query's text beyond SPARQL 1.1: its query options
//! (`PREFIX franzOption_NAME: <franz:VALUE>` in the prologue) and `FROM DEFAULT` (the
//! store's default graph, the "null graph", as part of the dataset).
//!
//! Rules it keeps:
//! - only the prologue (PREFIX and BASE declarations before anything else) is read for
//!   options; an option quadmesh does not implement is refused, never ignored;
//! - `FROM DEFAULT` is recognised only in the dataset clauses, before the first `{`
//!   outside strings, IRIs and comments; it is blanked out (same length, so that a
//!   syntax error's position still points into the text as sent) before the SPARQL
//!   parser sees the text.

use crate::error::{Result, StoreError};
use serde::{Deserialize, Serialize};

/// What a query or update without a dataset of its own (no `FROM`, `FROM NAMED`,
/// `FROM DEFAULT`, `USING`, `WITH` or protocol dataset) runs against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetBehavior {
    /// AllegroGraph's default (`franz:all`): the default graph is every graph's quads,
    /// the null graph's and every named graph's.
    #[default]
    All,
    /// The W3C reading (`franz:rdf`, `franz:default`): the default graph is the store's
    /// default graph (the null graph) alone.
    Rdf,
}

impl DatasetBehavior {
    /// From a setting's or an option's value: `all`, `rdf` or `default`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "all" => Some(DatasetBehavior::All),
            "rdf" | "default" | "w3c" => Some(DatasetBehavior::Rdf),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetBehavior::All => "all",
            DatasetBehavior::Rdf => "rdf",
        }
    }
}

/// The query options of one query or update text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FranzOptions {
    /// `franzOption_defaultDatasetBehavior`, when given.
    pub dataset_behavior: Option<DatasetBehavior>,
    /// The text contained `FROM DEFAULT`.
    pub from_default: bool,
}

const OPTION_PREFIX: &str = "franzOption_";

/// Reads the options of `text`; returns them with the text the SPARQL parser is to
/// see (`FROM DEFAULT` blanked out when `dataset_clauses`, i.e. for queries).
pub fn read_options(text: &str, dataset_clauses: bool) -> Result<(FranzOptions, String)> {
    let bytes = text.as_bytes();
    let mut options = FranzOptions::default();
    let mut at = 0;
    // The prologue.
    loop {
        at = skip_blank(bytes, at);
        let word_end = word_end(bytes, at);
        let word = &text[at..word_end];
        if word.eq_ignore_ascii_case("BASE") {
            at = skip_blank(bytes, word_end);
            at = iri_end(bytes, at).unwrap_or(at);
        } else if word.eq_ignore_ascii_case("PREFIX") {
            at = skip_blank(bytes, word_end);
            let name_end = text[at..].find(':').map_or(text.len(), |i| at + i);
            let name = text[at..name_end].trim();
            at = skip_blank(bytes, (name_end + 1).min(text.len()));
            let Some(end) = iri_end(bytes, at) else {
                break;
            };
            if let Some(option) = name.strip_prefix(OPTION_PREFIX) {
                let value = &text[at + 1..end - 1];
                apply_option(&mut options, option, value)?;
            }
            at = end;
        } else {
            break;
        }
    }
    let mut sent = text.to_owned();
    if dataset_clauses {
        if let Some((start, end)) = from_default(bytes, at) {
            options.from_default = true;
            sent.replace_range(start..end, &" ".repeat(end - start));
        }
    }
    Ok((options, sent))
}

fn apply_option(options: &mut FranzOptions, option: &str, value: &str) -> Result<()> {
    match option {
        "defaultDatasetBehavior" => {
            let behavior = value
                .strip_prefix("franz:")
                .and_then(DatasetBehavior::parse)
                .ok_or_else(|| {
                    StoreError::Unsupported(format!(
                        "franzOption_defaultDatasetBehavior: <{value}> is not a value quadmesh knows: use <franz:all>, <franz:default> or <franz:rdf>"
                    ))
                })?;
            options.dataset_behavior = Some(behavior);
            Ok(())
        }
        other => Err(StoreError::Unsupported(format!(
            "the AllegroGraph query option franzOption_{other} is not supported by quadmesh (only franzOption_defaultDatasetBehavior is; see docs/compatibility.md)"
        ))),
    }
}

/// Past whitespace and `#` comments.
fn skip_blank(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() {
        match bytes[at] {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            _ => break,
        }
    }
    at
}

fn word_end(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
        at += 1;
    }
    at
}

/// The end (past `>`) of an IRI reference starting at `at`, if one does: `<` then
/// no whitespace, `<`, `"`, `{`, `}` before the `>` (else the `<` is an operator).
fn iri_end(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'<') {
        return None;
    }
    let mut i = at + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'>' => return Some(i + 1),
            b' ' | b'\t' | b'\r' | b'\n' | b'<' | b'"' | b'{' | b'}' => return None,
            _ => i += 1,
        }
    }
    None
}

/// The end of a string literal starting at `at` (a quote), escapes and long strings
/// included; the text's end if it never closes.
fn string_end(bytes: &[u8], at: usize) -> usize {
    let quote = bytes[at];
    let long = bytes.get(at + 1) == Some(&quote) && bytes.get(at + 2) == Some(&quote);
    let mut i = if long { at + 3 } else { at + 1 };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            q if q == quote => {
                if !long {
                    return i + 1;
                }
                if bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote) {
                    return i + 3;
                }
                i += 1;
            }
            b'\n' if !long => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The byte range of `FROM DEFAULT` (the two keywords, any case, blanks between)
/// before the first `{` outside strings, IRIs and comments.
fn from_default(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
    while at < bytes.len() {
        match bytes[at] {
            b'{' => return None,
            b'#' => at = skip_blank(bytes, at),
            b'"' | b'\'' => at = string_end(bytes, at),
            b'<' => at = iri_end(bytes, at).unwrap_or(at + 1),
            b if b.is_ascii_alphabetic() || b == b'?' || b == b'$' || b == b'_' => {
                let start = at;
                let end = word_end(bytes, at + 1);
                let preceded = start == 0 || !is_name_byte(bytes[start - 1]);
                if preceded && bytes[start..end].eq_ignore_ascii_case(b"FROM") {
                    let next = skip_blank(bytes, end);
                    let next_end = word_end(bytes, next);
                    if bytes[next..next_end].eq_ignore_ascii_case(b"DEFAULT") {
                        return Some((start, next_end));
                    }
                }
                at = end;
            }
            _ => at += 1,
        }
    }
    None
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'?' || b == b'$'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataset_option_is_read_from_the_prologue() {
        let (options, text) = read_options(
            "# comment\nPREFIX ex: <http://ex/>\nprefix franzOption_defaultDatasetBehavior: <franz:rdf>\nSELECT * { ?s ?p ?o }",
            true,
        )
        .unwrap();
        assert_eq!(options.dataset_behavior, Some(DatasetBehavior::Rdf));
        assert!(!options.from_default);
        assert!(text.contains("SELECT * { ?s ?p ?o }"));
        let (options, _) = read_options(
            "PREFIX franzOption_defaultDatasetBehavior: <franz:all> ASK {}",
            true,
        )
        .unwrap();
        assert_eq!(options.dataset_behavior, Some(DatasetBehavior::All));
        let (options, _) = read_options(
            "PREFIX franzOption_defaultDatasetBehavior: <franz:default> ASK {}",
            true,
        )
        .unwrap();
        assert_eq!(options.dataset_behavior, Some(DatasetBehavior::Rdf));
    }

    #[test]
    fn unknown_options_and_values_are_refused() {
        assert!(read_options(
            "PREFIX franzOption_defaultDatasetBehavior: <franz:none> ASK {}",
            true
        )
        .is_err());
        assert!(read_options("PREFIX franzOption_logQuery: <franz:yes> ASK {}", true).is_err());
    }

    #[test]
    fn from_default_is_blanked_out_of_the_dataset_clauses_only() {
        let query = "SELECT ?s FROM DEFAULT FROM <http://ex/g> WHERE { ?s ?p \"FROM DEFAULT\" }";
        let (options, text) = read_options(query, true).unwrap();
        assert!(options.from_default);
        assert_eq!(text.len(), query.len());
        assert!(text.starts_with("SELECT ?s              FROM <http://ex/g>"));
        assert!(text.contains("\"FROM DEFAULT\""));
        let (options, _) = read_options(
            "SELECT (\"FROM DEFAULT\" AS ?x) FROM <http://ex/from_default> { }",
            true,
        )
        .unwrap();
        assert!(!options.from_default);
        let (options, _) =
            read_options("SELECT * # FROM DEFAULT\nWHERE { ?s ?p ?o }", true).unwrap();
        assert!(!options.from_default);
        let (options, _) = read_options("select * from  default {}", true).unwrap();
        assert!(options.from_default);
    }
}
