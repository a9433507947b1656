//! SPARQL queries as the protocol delivers them: dataset, bindings, paging, timeout.

use crate::error::{Result, StoreError};
use oxigraph::model::{GraphName, NamedNode, Term};
use oxigraph::sparql::{
    CancellationToken, PreparedSparqlQuery, QueryEvaluationError, SparqlEvaluator, Variable,
};
use spargebra::algebra::GraphPattern;
use spargebra::term::GroundTerm;
use spargebra::{Query, SparqlParser};

/// The four SPARQL query forms; they decide which result formats apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryForm {
    Select,
    Ask,
    Construct,
    Describe,
}

/// A query with the protocol's options.
#[derive(Clone, Debug, Default)]
pub struct QueryRequest {
    pub query: String,
    pub base_iri: Option<String>,
    /// Prefixes known without a PREFIX line (the repository's namespaces); the
    /// query's own PREFIX declarations win.
    pub prefixes: Vec<(String, String)>,
    /// `default-graph-uri` (or AllegroGraph's `context`, where `null` is the default
    /// graph): replaces the query's FROM.
    pub default_graphs: Vec<GraphName>,
    /// `named-graph-uri`: replaces the query's FROM NAMED.
    pub named_graphs: Vec<NamedNode>,
    /// `$var=value`: variables bound in the WHERE clause (as RDF4J and AllegroGraph
    /// do), whether or not the SELECT projects them.
    pub bindings: Vec<(Variable, Term)>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// A parsed query, ready to run on the store or on a session's view.
pub struct ParsedQuery {
    pub form: QueryForm,
    query: Query,
    request: QueryRequest,
}

impl QueryRequest {
    pub fn new(query: impl Into<String>) -> Self {
        QueryRequest {
            query: query.into(),
            ..Default::default()
        }
    }

    pub fn parse(&self) -> Result<ParsedQuery> {
        let parser = sparql_parser(self.base_iri.as_deref(), &self.prefixes)?;
        let mut query = parser
            .parse_query(&self.query)
            .map_err(|e| StoreError::Syntax(e.to_string()))?;
        let form = match &query {
            Query::Select { .. } => QueryForm::Select,
            Query::Ask { .. } => QueryForm::Ask,
            Query::Construct { .. } => QueryForm::Construct,
            Query::Describe { .. } => QueryForm::Describe,
        };
        let pattern = match &mut query {
            Query::Select { pattern, .. }
            | Query::Construct { pattern, .. }
            | Query::Describe { pattern, .. }
            | Query::Ask { pattern, .. } => pattern,
        };
        if !self.bindings.is_empty() {
            bind_in_where(pattern, &self.bindings)?;
        }
        if self.limit.is_some() || self.offset > 0 {
            *pattern = GraphPattern::Slice {
                inner: Box::new(std::mem::replace(
                    pattern,
                    GraphPattern::Bgp { patterns: vec![] },
                )),
                start: self.offset,
                length: self.limit,
            };
        }
        Ok(ParsedQuery {
            form,
            query,
            request: self.clone(),
        })
    }
}

impl ParsedQuery {
    /// The query with its dataset and bindings applied, to be bound to a store or a
    /// transaction.
    pub fn prepare(&self, cancellation: CancellationToken) -> PreparedSparqlQuery {
        let mut prepared = SparqlEvaluator::new()
            .with_cancellation_token(cancellation)
            .for_query(self.query.clone());
        if !self.request.default_graphs.is_empty() {
            prepared
                .dataset_mut()
                .set_default_graph(self.request.default_graphs.clone());
        }
        if !self.request.named_graphs.is_empty() {
            prepared.dataset_mut().set_available_named_graphs(
                self.request
                    .named_graphs
                    .iter()
                    .cloned()
                    .map(Into::into)
                    .collect(),
            );
        }
        prepared
    }
}

/// A parser with the base IRI and the prefixes known beforehand.
pub(crate) fn sparql_parser(
    base_iri: Option<&str>,
    prefixes: &[(String, String)],
) -> Result<SparqlParser> {
    let mut parser = SparqlParser::new();
    if let Some(base) = base_iri {
        parser = parser
            .with_base_iri(base)
            .map_err(|e| StoreError::Syntax(format!("invalid base IRI <{base}>: {e}")))?;
    }
    for (prefix, namespace) in prefixes {
        parser = parser.with_prefix(prefix, namespace).map_err(|e| {
            StoreError::Syntax(format!(
                "invalid namespace <{namespace}> for '{prefix}:': {e}"
            ))
        })?;
    }
    Ok(parser)
}

/// Binds variables in the WHERE clause: a one-row VALUES joined with the pattern under
/// the solution modifiers (projection, DISTINCT, ORDER BY, slices, grouping, filters and
/// BINDs at its top), so that every part of the WHERE clause sees the value and the
/// variable need not be projected.
fn bind_in_where(pattern: &mut GraphPattern, bindings: &[(Variable, Term)]) -> Result<()> {
    let mut row = Vec::with_capacity(bindings.len());
    for (variable, value) in bindings {
        row.push(Some(match value {
            Term::NamedNode(n) => GroundTerm::NamedNode(n.clone()),
            Term::Literal(l) => GroundTerm::Literal(l.clone()),
            Term::BlankNode(_) => {
                return Err(StoreError::InvalidTerm(format!(
                    "{value} for ?{}: a blank node cannot be bound from outside the query",
                    variable.as_str()
                )))
            }
        }));
    }
    let values = GraphPattern::Values {
        variables: bindings.iter().map(|(v, _)| v.clone()).collect(),
        bindings: vec![row],
    };
    let mut target = pattern;
    loop {
        target = match target {
            GraphPattern::Slice { inner, .. }
            | GraphPattern::Distinct { inner }
            | GraphPattern::Reduced { inner }
            | GraphPattern::Project { inner, .. }
            | GraphPattern::OrderBy { inner, .. }
            | GraphPattern::Group { inner, .. }
            | GraphPattern::Filter { inner, .. }
            | GraphPattern::Extend { inner, .. } => inner,
            _ => break,
        };
    }
    let inner = std::mem::replace(target, GraphPattern::Bgp { patterns: vec![] });
    *target = GraphPattern::Join {
        left: Box::new(values),
        right: Box::new(inner),
    };
    Ok(())
}

/// Maps an evaluation failure: cancellation is the timeout firing.
pub fn evaluation_error(error: QueryEvaluationError) -> StoreError {
    match error {
        QueryEvaluationError::Cancelled => StoreError::Timeout,
        other => StoreError::Evaluation(other.to_string()),
    }
}
