//! SPARQL queries as the protocol delivers them: dataset, bindings, paging, timeout.

use crate::error::{Result, StoreError};
use crate::franz_options::{read_options, DatasetBehavior};
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
    /// The default graph of a query without a dataset (the repository's setting); the
    /// query's own `franzOption_defaultDatasetBehavior` wins.
    pub default_dataset: DatasetBehavior,
}

/// A parsed query, ready to run on the store or on a session's view.
pub struct ParsedQuery {
    pub form: QueryForm,
    query: Query,
    request: QueryRequest,
    /// The query said `FROM DEFAULT`: the null graph is part of its default graph.
    from_default: bool,
    /// What the default graph is when nothing names a dataset.
    behavior: DatasetBehavior,
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
        let (options, text) = read_options(&self.query, true)?;
        let mut query = parser
            .parse_query(&text)
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
        let projected = projected_variables(pattern);
        let in_where: Vec<(Variable, Term)> = self
            .bindings
            .iter()
            .filter(|(_, value)| !value.is_blank_node())
            .cloned()
            .collect();
        for (variable, value) in &self.bindings {
            // A blank node cannot be written in a query: it is substituted by the
            // evaluator, which needs the variable in the result.
            if value.is_blank_node() && !projected.as_ref().is_none_or(|p| p.contains(variable)) {
                return Err(StoreError::InvalidTerm(format!(
                    "{value} for ?{}: a blank node can be bound only to a variable the query returns (add ?{} to its SELECT)",
                    variable.as_str(),
                    variable.as_str()
                )));
            }
        }
        if !in_where.is_empty() {
            bind_in_where(pattern, &in_where)?;
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
            from_default: options.from_default,
            behavior: options.dataset_behavior.unwrap_or(self.default_dataset),
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
        for (variable, value) in &self.request.bindings {
            if value.is_blank_node() {
                prepared = prepared.substitute_variable(variable.clone(), value.clone());
            }
        }
        let query_dataset = match &self.query {
            Query::Select { dataset, .. }
            | Query::Construct { dataset, .. }
            | Query::Describe { dataset, .. }
            | Query::Ask { dataset, .. } => dataset,
        };
        if !self.request.default_graphs.is_empty() {
            // The protocol's dataset replaces the query's.
            prepared
                .dataset_mut()
                .set_default_graph(self.request.default_graphs.clone());
        } else if self.from_default {
            // `FROM DEFAULT`: the null graph, merged with the query's FROM graphs.
            let mut graphs = vec![GraphName::DefaultGraph];
            if let Some(dataset) = query_dataset {
                graphs.extend(dataset.default.iter().cloned().map(GraphName::from));
            }
            prepared.dataset_mut().set_default_graph(graphs);
        } else if query_dataset.is_none()
            && self.request.named_graphs.is_empty()
            && self.behavior == DatasetBehavior::All
        {
            // AllegroGraph: without a dataset, the default graph is every graph.
            prepared.dataset_mut().set_default_graph_as_union();
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

/// The variables a query's results carry, or `None` for all of them (`SELECT *`,
/// CONSTRUCT, ASK, DESCRIBE: no projection at the top).
fn projected_variables(pattern: &GraphPattern) -> Option<Vec<Variable>> {
    let mut at = pattern;
    loop {
        at = match at {
            GraphPattern::Project { variables, .. } => return Some(variables.clone()),
            GraphPattern::Slice { inner, .. }
            | GraphPattern::Distinct { inner }
            | GraphPattern::Reduced { inner }
            | GraphPattern::OrderBy { inner, .. } => inner,
            _ => return None,
        };
    }
}

/// Maps an evaluation failure: cancellation is the timeout firing.
pub fn evaluation_error(error: QueryEvaluationError) -> StoreError {
    match error {
        QueryEvaluationError::Cancelled => StoreError::Timeout,
        other => StoreError::Evaluation(other.to_string()),
    }
}
