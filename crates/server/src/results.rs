//! Writing query results and statements in the negotiated format.

use crate::formats::{GraphFormat, SolutionsFormat};
use quadmesh_store::oxigraph::io::{RdfFormat, RdfSerializer};
use quadmesh_store::oxigraph::model::{GraphName, Quad, Term, Triple};
use quadmesh_store::oxigraph::sparql::{QueryResults, QuerySolution, Variable};
use quadmesh_store::{evaluation_error, Result, StoreError};
use sparesults::QueryResultsSerializer;

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Evaluation(format!("cannot write results: {e}"))
}

/// Writes SELECT/ASK/CONSTRUCT/DESCRIBE results; `graph` is the format for triples.
pub fn write_query_results(
    results: QueryResults<'_>,
    solutions: SolutionsFormat,
    graph: GraphFormat,
) -> Result<Vec<u8>> {
    match results {
        QueryResults::Boolean(value) => write_boolean(value, solutions),
        QueryResults::Solutions(iter) => {
            let variables = iter.variables().to_vec();
            let rows = iter.map(|s| s.map_err(evaluation_error));
            write_solutions(&variables, rows, solutions)
        }
        QueryResults::Graph(iter) => {
            let quads = iter.map(|t| {
                t.map(|t| t.in_graph(GraphName::DefaultGraph))
                    .map_err(evaluation_error)
            });
            write_quads(quads, graph)
        }
    }
}

fn write_boolean(value: bool, format: SolutionsFormat) -> Result<Vec<u8>> {
    match format {
        SolutionsFormat::Sparql(f) => QueryResultsSerializer::from_format(f)
            .serialize_boolean_to_writer(Vec::new(), value)
            .map_err(io_error),
        SolutionsFormat::AgJson | SolutionsFormat::Table => Ok(value.to_string().into_bytes()),
        SolutionsFormat::Count => Ok(if value { b"1".to_vec() } else { b"0".to_vec() }),
    }
}

pub fn write_solutions(
    variables: &[Variable],
    rows: impl Iterator<Item = Result<QuerySolution>>,
    format: SolutionsFormat,
) -> Result<Vec<u8>> {
    match format {
        SolutionsFormat::Sparql(f) => {
            let mut serializer = QueryResultsSerializer::from_format(f)
                .serialize_solutions_to_writer(Vec::new(), variables.to_vec())
                .map_err(io_error)?;
            for row in rows {
                serializer.serialize(&row?).map_err(io_error)?;
            }
            serializer.finish().map_err(io_error)
        }
        SolutionsFormat::AgJson => {
            let mut values = Vec::new();
            for row in rows {
                let row = row?;
                values.push(
                    variables
                        .iter()
                        .map(|v| {
                            row.get(v)
                                .map_or(serde_json::Value::Null, |t| t.to_string().into())
                        })
                        .collect::<Vec<_>>(),
                );
            }
            let names: Vec<&str> = variables.iter().map(|v| v.as_str()).collect();
            Ok(
                serde_json::to_vec(&serde_json::json!({ "names": names, "values": values }))
                    .expect("serialises"),
            )
        }
        SolutionsFormat::Count => {
            let mut count = 0u64;
            for row in rows {
                row?;
                count += 1;
            }
            Ok(count.to_string().into_bytes())
        }
        SolutionsFormat::Table => {
            let header: Vec<String> = variables.iter().map(|v| v.as_str().to_owned()).collect();
            let mut cells = Vec::new();
            for row in rows {
                let row = row?;
                cells.push(
                    variables
                        .iter()
                        .map(|v| row.get(v).map(readable).unwrap_or_default())
                        .collect(),
                );
            }
            Ok(render_table(&header, &cells).into_bytes())
        }
    }
}

/// Writes quads; triples-only formats drop the graph name.
pub fn write_quads(
    quads: impl Iterator<Item = Result<Quad>>,
    format: GraphFormat,
) -> Result<Vec<u8>> {
    match format {
        GraphFormat::Rdf(f) => {
            let mut serializer = RdfSerializer::from_format(f).for_writer(Vec::new());
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
            serializer.finish().map_err(io_error)
        }
        GraphFormat::AgJson => {
            let mut rows = Vec::new();
            for quad in quads {
                let quad = quad?;
                rows.push(serde_json::json!([
                    quad.subject.to_string(),
                    quad.predicate.to_string(),
                    quad.object.to_string(),
                    crate::terms::graph_json(&quad.graph_name),
                ]));
            }
            Ok(serde_json::to_vec(&rows).expect("serialises"))
        }
        GraphFormat::Count => {
            let mut count = 0u64;
            for quad in quads {
                quad?;
                count += 1;
            }
            Ok(count.to_string().into_bytes())
        }
    }
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
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            out.push(' ');
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count()));
            out.push_str(" |");
        }
        out.push('\n');
        out
    };
    let rule = {
        let mut out = String::from("+");
        for w in &widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('+');
        }
        out.push('\n');
        out
    };
    let mut out = rule.clone();
    out.push_str(&line(header));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line(row));
    }
    out.push_str(&rule);
    out.push_str(&format!(
        "{} row{}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    out
}

/// The default RDF format for dumping statements.
pub const DEFAULT_STATEMENTS_FORMAT: RdfFormat = RdfFormat::NQuads;
