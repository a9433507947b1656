//! Writing query results and statements in the negotiated format.

use crate::formats::{GraphFormat, SolutionsFormat};
use quadmesh_store::oxigraph::io::{RdfFormat, RdfSerializer};
use quadmesh_store::oxigraph::model::{GraphName, Quad, Term, Triple};
use quadmesh_store::oxigraph::sparql::{QueryResults, QuerySolution, Variable};
use quadmesh_store::{evaluation_error, Result, StoreError};
use sparesults::QueryResultsSerializer;
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
                    .map(|v| row.get(v).map(|t| t.to_string()))
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
        GraphFormat::Rdf(f) => {
            let mut serializer = RdfSerializer::from_format(f).for_writer(out);
            for quad in quads {
                let quad = quad?;
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
                        quad.subject.to_string(),
                        quad.predicate.to_string(),
                        quad.object.to_string(),
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
                        quad.subject.to_string(),
                        quad.predicate.to_string(),
                        quad.object.to_string(),
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
                        q.subject.to_string(),
                        q.predicate.to_string(),
                        readable(&q.object),
                        match &q.graph_name {
                            GraphName::DefaultGraph => String::new(),
                            g => g.to_string(),
                        },
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
    term.to_string()
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
