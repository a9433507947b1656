//! SPARQL queries as the protocol delivers them: dataset, bindings, paging, timeout.

use crate::error::{Result, StoreError};
use oxigraph::model::{NamedNode, Term};
use oxigraph::sparql::{
    CancellationToken, PreparedSparqlQuery, QueryEvaluationError, SparqlEvaluator, Variable,
};
use spargebra::algebra::GraphPattern;
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
    /// `default-graph-uri`: replaces the query's FROM.
    pub default_graphs: Vec<NamedNode>,
    /// `named-graph-uri`: replaces the query's FROM NAMED.
    pub named_graphs: Vec<NamedNode>,
    /// `$var=value`: variables bound before evaluation.
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
        let mut parser = SparqlParser::new();
        if let Some(base) = &self.base_iri {
            parser = parser
                .with_base_iri(base)
                .map_err(|e| StoreError::Syntax(format!("invalid base IRI: {e}")))?;
        }
        let mut query = parser
            .parse_query(&self.query)
            .map_err(|e| StoreError::Syntax(e.to_string()))?;
        let form = match &query {
            Query::Select { .. } => QueryForm::Select,
            Query::Ask { .. } => QueryForm::Ask,
            Query::Construct { .. } => QueryForm::Construct,
            Query::Describe { .. } => QueryForm::Describe,
        };
        if self.limit.is_some() || self.offset > 0 {
            let pattern = match &mut query {
                Query::Select { pattern, .. }
                | Query::Construct { pattern, .. }
                | Query::Describe { pattern, .. }
                | Query::Ask { pattern, .. } => pattern,
            };
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
            prepared.dataset_mut().set_default_graph(
                self.request
                    .default_graphs
                    .iter()
                    .cloned()
                    .map(Into::into)
                    .collect(),
            );
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
        for (variable, value) in &self.request.bindings {
            prepared = prepared.substitute_variable(variable.clone(), value.clone());
        }
        prepared
    }
}

/// Maps an evaluation failure: cancellation is the timeout firing.
pub fn evaluation_error(error: QueryEvaluationError) -> StoreError {
    match error {
        QueryEvaluationError::Cancelled => StoreError::Timeout,
        other => StoreError::Evaluation(other.to_string()),
    }
}
