//! Writing query results and statements in the negotiated format.

use crate::formats::{GraphFormat, SolutionsFormat};
use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::{vocab::xsd, GraphName, Quad, Term, TermRef, Triple};
use oxigraph::sparql::{QueryResults, QuerySolution, Variable};
use quadmesh_store::ntriples::{graph_text, quad_needs_escapes, QuadText, TermText};
use quadmesh_store::{evaluation_error, Result, StoreError};
use sparesults::{QueryResultsFormat, QueryResultsSerializer};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Evaluation(format!("cannot write results: {e}"))
}

/// Writes SELECT/ASK/CONSTRUCT/DESCRIBE results into `out` as they are produced;
/// `graph` is the format for triples; `spill` is where a table's rows wait for the
/// widths of its columns.
pub fn write_query_results(
    results: QueryResults<'_>,
    solutions: SolutionsFormat,
    graph: GraphFormat,
    spill: &Path,
    out: impl Write,
) -> Result<()> {
    match results {
        QueryResults::Boolean(value) => write_boolean(value, solutions, out),
        QueryResults::Solutions(iter) => {
            let variables = iter.variables().to_vec();
            let rows = iter.map(|s| s.map_err(evaluation_error));
            write_solutions(&variables, rows, solutions, spill, out)
        }
        QueryResults::Graph(iter) => {
            let quads = iter.map(|t| {
                t.map(|t| t.in_graph(GraphName::DefaultGraph))
                    .map_err(evaluation_error)
            });
            write_quads(quads, graph, spill, out)
        }
    }
}

fn write_boolean(value: bool, format: SolutionsFormat, mut out: impl Write) -> Result<()> {
    match format {
        SolutionsFormat::Sparql(f) => {
            QueryResultsSerializer::from_format(f)
                .serialize_boolean_to_writer(out, value)
                .map_err(io_error)?;
        }
        SolutionsFormat::AgJson | SolutionsFormat::Table => {
            write!(out, "{value}").map_err(io_error)?
        }
        SolutionsFormat::Count => out
            .write_all(if value { b"1" } else { b"0" })
            .map_err(io_error)?,
    }
    Ok(())
}

pub fn write_solutions(
    variables: &[Variable],
    rows: impl Iterator<Item = Result<QuerySolution>>,
    format: SolutionsFormat,
    spill: &Path,
    mut out: impl Write,
) -> Result<()> {
    match format {
        SolutionsFormat::Sparql(f @ (QueryResultsFormat::Csv | QueryResultsFormat::Tsv)) => {
            write_delimited(variables, rows, f == QueryResultsFormat::Tsv, out)?;
        }
        SolutionsFormat::Sparql(f) => {
            let mut serializer = QueryResultsSerializer::from_format(f)
                .serialize_solutions_to_writer(out, variables.to_vec())
                .map_err(io_error)?;
            for row in rows {
                serializer.serialize(&row?).map_err(io_error)?;
            }
            serializer.finish().map_err(io_error)?;
        }
        SolutionsFormat::AgJson => {
            let names: Vec<&str> = variables.iter().map(|v| v.as_str()).collect();
            out.write_all(b"{\"names\":").map_err(io_error)?;
            serde_json::to_writer(&mut out, &names).map_err(json_error)?;
            out.write_all(b",\"values\":[").map_err(io_error)?;
            for (i, row) in rows.enumerate() {
                let row = row?;
                if i > 0 {
                    out.write_all(b",").map_err(io_error)?;
                }
                let cells: Vec<Option<String>> = variables
                    .iter()
                    .map(|v| row.get(v).map(|t| TermText::of(t).to_string()))
                    .collect();
                serde_json::to_writer(&mut out, &cells).map_err(json_error)?;
            }
            out.write_all(b"]}").map_err(io_error)?;
        }
        SolutionsFormat::Count => {
            let mut count = 0u64;
            for row in rows {
                row?;
                count += 1;
            }
            write!(out, "{count}").map_err(io_error)?;
        }
        SolutionsFormat::Table => {
            let header: Vec<String> = variables.iter().map(|v| v.as_str().to_owned()).collect();
            let cells = rows.map(|row| {
                row.map(|row| {
                    variables
                        .iter()
                        .map(|v| row.get(v).map(readable).unwrap_or_default())
                        .collect()
                })
            });
            write_table(&header, cells, spill, out)?;
        }
    }
    Ok(())
}

fn json_error(e: serde_json::Error) -> StoreError {
    io_error(e.into())
}

/// Writes quads as they come; triples-only formats drop the graph name. `spill` is
/// where a table's rows wait for the widths of its columns.
pub fn write_quads(
    quads: impl Iterator<Item = Result<Quad>>,
    format: GraphFormat,
    spill: &Path,
    mut out: impl Write,
) -> Result<()> {
    match format {
        GraphFormat::ExtendedNQuads => {
            return write_quads(quads, GraphFormat::Rdf(RdfFormat::NQuads), spill, out)
        }
        GraphFormat::Rdf(f @ (RdfFormat::NTriples | RdfFormat::NQuads)) => {
            // Written here rather than by oxigraph, whose writers write IRIs raw: an
            // IRI as AllegroGraph keeps it (a space, a quote) needs N-Triples escapes.
            let mut out = BufWriter::with_capacity(64 << 10, out);
            for quad in quads {
                let quad = quad?;
                if f == RdfFormat::NQuads {
                    writeln!(out, "{} .", QuadText(quad.as_ref()))
                } else {
                    writeln!(
                        out,
                        "{} {} {} .",
                        TermText::node(quad.subject.as_ref()),
                        TermText::of(&quad.predicate),
                        TermText::of(&quad.object)
                    )
                }
                .map_err(io_error)?;
            }
            out.flush().map_err(io_error)?;
        }
        GraphFormat::Rdf(f @ (RdfFormat::Turtle | RdfFormat::TriG)) => {
            write_terse(quads, f, out)?;
        }
        GraphFormat::Rdf(f) => {
            let mut serializer = RdfSerializer::from_format(f).for_writer(out);
            for quad in quads {
                let quad = quad?;
                if f == RdfFormat::RdfXml && !rdf_xml_can_write(quad.predicate.as_str()) {
                    // oxigraph would write an element without a name: not XML.
                    return Err(StoreError::Unsupported(format!(
                        "the predicate {} cannot be written in RDF/XML: its IRI does not end \
                         in an XML name; ask for N-Quads, Turtle or JSON-LD",
                        TermText::of(&quad.predicate)
                    )));
                }
                if f.supports_datasets() {
                    serializer.serialize_quad(&quad).map_err(io_error)?;
                } else {
                    serializer
                        .serialize_triple(&Triple::from(quad))
                        .map_err(io_error)?;
                }
            }
            serializer.finish().map_err(io_error)?;
        }
        GraphFormat::AgJson => {
            out.write_all(b"[").map_err(io_error)?;
            for (i, quad) in quads.enumerate() {
                let quad = quad?;
                if i > 0 {
                    out.write_all(b",").map_err(io_error)?;
                }
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!([
                        TermText::node(quad.subject.as_ref()).to_string(),
                        TermText::of(&quad.predicate).to_string(),
                        TermText::of(&quad.object).to_string(),
                        crate::terms::graph_json(&quad.graph_name),
                    ]),
                )
                .map_err(json_error)?;
            }
            out.write_all(b"]").map_err(io_error)?;
        }
        GraphFormat::Quints => {
            out.write_all(b"[").map_err(io_error)?;
            for (i, quad) in quads.enumerate() {
                let quad = quad?;
                if i > 0 {
                    out.write_all(b",").map_err(io_error)?;
                }
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!([
                        quad_id(&quad).to_string(),
                        TermText::node(quad.subject.as_ref()).to_string(),
                        TermText::of(&quad.predicate).to_string(),
                        TermText::of(&quad.object).to_string(),
                        crate::terms::graph_json(&quad.graph_name),
                    ]),
                )
                .map_err(json_error)?;
            }
            out.write_all(b"]").map_err(io_error)?;
        }
        GraphFormat::Table => {
            let header = ["s", "p", "o", "g"].map(String::from);
            let rows = quads.map(|quad| {
                quad.map(|q| {
                    vec![
                        TermText::node(q.subject.as_ref()).to_string(),
                        TermText::of(&q.predicate).to_string(),
                        readable(&q.object),
                        graph_text(q.graph_name.as_ref()).unwrap_or_default(),
                    ]
                })
            });
            write_table(&header, rows, spill, out)?;
        }
        GraphFormat::Count => {
            let mut count = 0u64;
            for quad in quads {
                quad?;
                count += 1;
            }
            write!(out, "{count}").map_err(io_error)?;
        }
    }
    Ok(())
}

/// Whether RDF/XML can write a predicate: its IRI must end in an XML name (what
/// oxigraph's RDF/XML writer splits off as the element's local name; it writes an
/// element without a name, which is not XML, when there is none).
fn rdf_xml_can_write(iri: &str) -> bool {
    fn name_start(c: char) -> bool {
        matches!(c,
            'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
            | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
            | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
            | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
            | '\u{10000}'..='\u{EFFFF}')
    }
    fn name(c: char) -> bool {
        name_start(c)
            || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
    }
    // As oxigraph splits: after the last character that is no name character, from
    // the first one that may start a name.
    match iri.rfind(|c: char| !name(c)) {
        Some(at) => iri[at..].chars().any(name_start),
        None => false,
    }
}

/// A statement id for `x-quints+json`: FNV-1a of the quad's N-Quads text, the same on
/// every instance and across restarts. quadmesh keeps no statement ids, so it cannot
/// look a statement up by one.
fn quad_id(quad: &Quad) -> u64 {
    quad.to_string()
        .bytes()
        .fold(0xcbf29ce484222325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
        })
}

/// Writes a table of any length in constant memory: the widths of the columns are only
/// known at the end, so rows wait in an unnamed file in `spill` (one cell per line,
/// escaped) and are read back once they are known.
fn write_table(
    header: &[String],
    rows: impl Iterator<Item = Result<Vec<String>>>,
    spill: &Path,
    mut out: impl Write,
) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    let file = tempfile::tempfile_in(spill).map_err(io_error)?;
    let mut waiting = BufWriter::new(file);
    let mut count = 0usize;
    for row in rows {
        let row = row?;
        for (w, cell) in widths.iter_mut().zip(&row) {
            *w = (*w).max(cell.chars().count());
            serde_json::to_writer(&mut waiting, cell).map_err(json_error)?;
            waiting.write_all(b"\n").map_err(io_error)?;
        }
        count += 1;
    }
    let mut file = waiting.into_inner().map_err(|e| io_error(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let table = TableLayout { widths };
    out.write_all(table.rule().as_bytes()).map_err(io_error)?;
    out.write_all(table.line(header).as_bytes())
        .map_err(io_error)?;
    out.write_all(table.rule().as_bytes()).map_err(io_error)?;
    let mut lines = BufReader::new(file).lines();
    let columns = header.len();
    for _ in 0..count {
        let mut row = Vec::with_capacity(columns);
        for _ in 0..columns {
            let line = lines
                .next()
                .ok_or_else(|| io_error(std::io::ErrorKind::UnexpectedEof.into()))?
                .map_err(io_error)?;
            row.push(serde_json::from_str::<String>(&line).map_err(json_error)?);
        }
        out.write_all(table.line(&row).as_bytes())
            .map_err(io_error)?;
    }
    out.write_all(table.rule().as_bytes()).map_err(io_error)?;
    out.write_all(rows_line(count).as_bytes())
        .map_err(io_error)?;
    Ok(())
}

/// A term as a person reads it in a table: numbers and booleans bare, everything else
/// in N-Triples syntax.
fn readable(term: &Term) -> String {
    if let Term::Literal(literal) = term {
        let datatype = literal.datatype().as_str();
        let bare = [
            "integer", "decimal", "double", "float", "boolean", "long", "int",
        ]
        .iter()
        .any(|t| datatype.strip_prefix("http://www.w3.org/2001/XMLSchema#") == Some(t));
        if bare {
            return literal.value().to_owned();
        }
    }
    TermText::of(term).to_string()
}

/// Turtle and TriG as oxigraph writes them, except that a quad holding an IRI that
/// needs N-Triples escapes (oxigraph would write it raw) is written on its own line in
/// N-Triples syntax (valid Turtle; in TriG inside a graph block of its own), between
/// two serializers.
fn write_terse(
    quads: impl Iterator<Item = Result<Quad>>,
    format: RdfFormat,
    out: impl Write,
) -> Result<()> {
    let mut out = Some(out);
    let mut serializer = None;
    for quad in quads {
        let quad = quad?;
        if quad_needs_escapes(quad.as_ref()) {
            let mut w = match serializer.take() {
                Some(s) => oxigraph_finish(s)?,
                None => out.take().expect("the writer is here"),
            };
            let triple = format!(
                "{} {} {} .",
                TermText::node(quad.subject.as_ref()),
                TermText::of(&quad.predicate),
                TermText::of(&quad.object)
            );
            match graph_text(quad.graph_name.as_ref()) {
                Some(g) if format == RdfFormat::TriG => writeln!(w, "{g} {{ {triple} }}"),
                _ => writeln!(w, "{triple}"),
            }
            .map_err(io_error)?;
            out = Some(w);
            continue;
        }
        let s = serializer.get_or_insert_with(|| {
            RdfSerializer::from_format(format).for_writer(out.take().expect("the writer is here"))
        });
        if format.supports_datasets() {
            s.serialize_quad(&quad).map_err(io_error)?;
        } else {
            s.serialize_triple(&Triple::from(quad)).map_err(io_error)?;
        }
    }
    if let Some(s) = serializer {
        oxigraph_finish(s)?;
    }
    Ok(())
}

fn oxigraph_finish<W: Write>(serializer: oxigraph::io::WriterQuadSerializer<W>) -> Result<W> {
    serializer.finish().map_err(io_error)
}

/// SPARQL CSV and TSV results. CSV: W3C's (IRIs bare, literals by their value, a field
/// quoted when it holds a quote, a comma or a line break: IRIs too). TSV: W3C's terms
/// (`<iri>`, literals in Turtle syntax) with AllegroGraph's escapes of a tab, a line
/// feed, a carriage return and a backslash in an IRI (`\t`, `\n`, `\r`, `\\`; other
/// characters as they are), so that a row stays one line of its columns.
fn write_delimited(
    variables: &[Variable],
    rows: impl Iterator<Item = Result<QuerySolution>>,
    tsv: bool,
    out: impl Write,
) -> Result<()> {
    let mut out = BufWriter::with_capacity(64 << 10, out);
    let (separator, end) = if tsv { ("\t", "\n") } else { (",", "\r\n") };
    let header: Vec<String> = variables
        .iter()
        .map(|v| {
            if tsv {
                format!("?{}", v.as_str())
            } else {
                v.as_str().to_owned()
            }
        })
        .collect();
    write!(out, "{}{end}", header.join(separator)).map_err(io_error)?;
    let mut line = String::new();
    for row in rows {
        let row = row?;
        line.clear();
        for (i, variable) in variables.iter().enumerate() {
            if i > 0 {
                line.push_str(separator);
            }
            if let Some(term) = row.get(variable) {
                if tsv {
                    tsv_term(&mut line, term.as_ref());
                } else {
                    csv_term(&mut line, term.as_ref());
                }
            }
        }
        line.push_str(end);
        out.write_all(line.as_bytes()).map_err(io_error)?;
    }
    out.flush().map_err(io_error)?;
    Ok(())
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains(['"', ',', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn csv_term(out: &mut String, term: TermRef<'_>) {
    match term {
        TermRef::NamedNode(n) => csv_field(out, n.as_str()),
        TermRef::BlankNode(b) => {
            out.push_str("_:");
            out.push_str(b.as_str());
        }
        TermRef::Literal(l) => csv_field(out, l.value()),
        #[allow(unreachable_patterns)]
        other => csv_field(out, &TermText(other).to_string()),
    }
}

fn tsv_iri(out: &mut String, iri: &str) {
    out.push('<');
    for c in iri.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('>');
}

fn tsv_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn tsv_term(out: &mut String, term: TermRef<'_>) {
    match term {
        TermRef::NamedNode(n) => tsv_iri(out, n.as_str()),
        TermRef::BlankNode(b) => {
            out.push_str("_:");
            out.push_str(b.as_str());
        }
        TermRef::Literal(l) => {
            let value = l.value();
            if let Some(language) = l.language() {
                tsv_string(out, value);
                out.push('@');
                out.push_str(language);
                return;
            }
            let bare = match l.datatype() {
                xsd::BOOLEAN => matches!(value, "true" | "false"),
                xsd::INTEGER => turtle_number(value, false),
                xsd::DECIMAL => turtle_number(value, true),
                xsd::DOUBLE => turtle_double(value),
                _ => false,
            };
            if bare {
                out.push_str(value);
            } else {
                tsv_string(out, value);
                if l.datatype() != xsd::STRING {
                    out.push_str("^^");
                    tsv_iri(out, l.datatype().as_str());
                }
            }
        }
        #[allow(unreachable_patterns)]
        other => out.push_str(&TermText(other).to_string()),
    }
}

/// Turtle's INTEGER (`[+-]?[0-9]+`) or, with `decimal`, DECIMAL (`[+-]?[0-9]*.[0-9]+`).
fn turtle_number(value: &str, decimal: bool) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if decimal {
        let Some((int, frac)) = digits.split_once('.') else {
            return false;
        };
        int.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b.is_ascii_digit())
    } else {
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    }
}

/// Turtle's DOUBLE: a mantissa (digits with an optional point) and an exponent.
fn turtle_double(value: &str) -> bool {
    let Some((mantissa, exponent)) = value.split_once(['e', 'E']) else {
        return false;
    };
    let mantissa = mantissa.strip_prefix(['+', '-']).unwrap_or(mantissa);
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// A plain-text table with a header rule, columns as wide as their widest cell.
pub fn render_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let table = TableLayout { widths };
    let mut out = table.rule();
    out.push_str(&table.line(header));
    out.push_str(&table.rule());
    for row in rows {
        out.push_str(&table.line(row));
    }
    out.push_str(&table.rule());
    out.push_str(&rows_line(rows.len()));
    out
}

/// The widths of a table's columns, and its lines drawn at those widths.
struct TableLayout {
    widths: Vec<usize>,
}

impl TableLayout {
    fn line(&self, cells: &[String]) -> String {
        let mut out = String::from("|");
        for (cell, w) in cells.iter().zip(&self.widths) {
            out.push(' ');
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count()));
            out.push_str(" |");
        }
        out.push('\n');
        out
    }

    fn rule(&self) -> String {
        let mut out = String::from("+");
        for w in &self.widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('+');
        }
        out.push('\n');
        out
    }
}

fn rows_line(count: usize) -> String {
    format!("{count} row{}\n", if count == 1 { "" } else { "s" })
}

/// The default RDF format for dumping statements.
pub const DEFAULT_STATEMENTS_FORMAT: RdfFormat = RdfFormat::NQuads;
