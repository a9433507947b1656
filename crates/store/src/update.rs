//! SPARQL 1.1 Update, reduced to concrete quad inserts and deletes on a
//! [`ChangeTracker`], so that an update replicates as its effect and not as text.

use crate::error::{Result, StoreError};
use crate::franz_options::{read_options, DatasetBehavior};
use crate::pattern::{GraphSelector, QuadPattern as RangeDelete};
use crate::rdf_input::{fresh_blank_node, rename_blank_nodes};
use crate::tracker::ChangeTracker;
use oxigraph::model::{BlankNode, GraphName, NamedNode, NamedOrBlankNode, Quad, Term};
use oxigraph::sparql::{QueryResults, QuerySolution, SparqlEvaluator};
use spargebra::algebra::{GraphPattern, GraphTarget, QueryDataset};
use spargebra::term::{
    GraphNamePattern, GroundQuadPattern, GroundTerm, GroundTermPattern, NamedNodePattern,
    QuadPattern, TermPattern,
};
use spargebra::{GraphUpdateOperation, Update};
use std::collections::HashMap;

/// An update as the SPARQL protocol delivers it.
#[derive(Clone, Debug, Default)]
pub struct UpdateRequest {
    pub update: String,
    pub base_iri: Option<String>,
    /// Prefixes known without a PREFIX line; the update's own declarations win.
    pub prefixes: Vec<(String, String)>,
    /// `using-graph-uri`: the default graph of every WHERE without its own USING.
    pub using_graphs: Vec<NamedNode>,
    /// `using-named-graph-uri`.
    pub using_named_graphs: Vec<NamedNode>,
    /// What a WHERE without USING, WITH or protocol dataset sees as its default graph
    /// (the repository's setting); the update's `franzOption_defaultDatasetBehavior`
    /// wins. Templates without GRAPH always write to and delete from the null graph.
    pub default_dataset: DatasetBehavior,
}

impl UpdateRequest {
    pub fn new(update: impl Into<String>) -> Self {
        UpdateRequest {
            update: update.into(),
            ..Default::default()
        }
    }

    /// Parses the update text; errors name the problem.
    pub fn parse(&self) -> Result<Update> {
        Ok(self.parse_with_behavior()?.0)
    }

    /// The update, and what its WHERE clauses without a dataset see.
    fn parse_with_behavior(&self) -> Result<(Update, DatasetBehavior)> {
        let (options, text) = read_options(&self.update, false)?;
        let update = crate::query::sparql_parser(self.base_iri.as_deref(), &self.prefixes)?
            .parse_update(&text)
            .map_err(|e| StoreError::Syntax(e.to_string()))?;
        // SPARQL 1.1 Protocol 2.2.3: a protocol dataset and USING/WITH in the update
        // contradict each other.
        let names_dataset = update.operations.iter().any(|op| {
            matches!(
                op,
                GraphUpdateOperation::DeleteInsert { using: Some(_), .. }
            )
        });
        if names_dataset && self.protocol_dataset().is_some() {
            return Err(StoreError::UpdateRefused(
                "using-graph-uri/using-named-graph-uri cannot be combined with an update that has USING or WITH".into(),
            ));
        }
        Ok((
            update,
            options.dataset_behavior.unwrap_or(self.default_dataset),
        ))
    }

    fn protocol_dataset(&self) -> Option<QueryDataset> {
        if self.using_graphs.is_empty() && self.using_named_graphs.is_empty() {
            return None;
        }
        Some(QueryDataset {
            default: self.using_graphs.clone(),
            named: (!self.using_named_graphs.is_empty()).then(|| self.using_named_graphs.clone()),
        })
    }
}

/// Applies every operation of `update`, in order, through `tracker`: later operations
/// see the effect of earlier ones, and the tracker ends up holding the net effect.
pub fn apply_update(tracker: &mut ChangeTracker<'_, '_>, request: &UpdateRequest) -> Result<()> {
    let (update, behavior) = request.parse_with_behavior()?;
    for operation in &update.operations {
        apply_operation(tracker, operation, &update, request, behavior)?;
    }
    Ok(())
}

fn apply_operation(
    tracker: &mut ChangeTracker<'_, '_>,
    operation: &GraphUpdateOperation,
    update: &Update,
    request: &UpdateRequest,
    behavior: DatasetBehavior,
) -> Result<()> {
    match operation {
        GraphUpdateOperation::InsertData { data } => {
            // Blank nodes of INSERT DATA are new nodes: fresh labels, one per label used.
            let mut bnodes = HashMap::new();
            for quad in data {
                let quad = Quad::new(
                    quad.subject.clone(),
                    quad.predicate.clone(),
                    quad.object.clone(),
                    graph_name(&quad.graph_name),
                );
                let quad = rename_blank_nodes(quad, &mut bnodes);
                tracker.insert(quad)?;
            }
            Ok(())
        }
        GraphUpdateOperation::DeleteData { data } => {
            for quad in data {
                let object = match &quad.object {
                    GroundTerm::NamedNode(n) => Term::NamedNode(n.clone()),
                    GroundTerm::Literal(l) => Term::Literal(l.clone()),
                };
                tracker.remove(Quad::new(
                    quad.subject.clone(),
                    quad.predicate.clone(),
                    object,
                    graph_name(&quad.graph_name),
                ))?;
            }
            Ok(())
        }
        GraphUpdateOperation::DeleteInsert {
            delete,
            insert,
            using,
            pattern,
        } => {
            let dataset = using.clone().or_else(|| request.protocol_dataset());
            // DELETE WHERE of one quad pattern removes everything matching it: a range
            // tombstone, which holds on every instance (see `single_pattern_delete`).
            // Whether the WHERE sees every graph or the null graph alone, the template
            // deletes from the graph it names, so the range is the same.
            if dataset.is_none() && insert.is_empty() {
                if let Some(quad_pattern) = single_pattern_delete(delete, pattern) {
                    tracker.remove_pattern(quad_pattern)?;
                    return Ok(());
                }
            }
            let union = dataset.is_none() && behavior == DatasetBehavior::All;
            let query = spargebra::Query::Select {
                dataset,
                pattern: (**pattern).clone(),
                base_iri: update.base_iri.clone(),
            };
            let solutions = {
                let mut prepared = SparqlEvaluator::new().for_query(query);
                if union {
                    // AllegroGraph: a WHERE without a dataset sees every graph.
                    prepared.dataset_mut().set_default_graph_as_union();
                }
                let results = prepared
                    .on_transaction(tracker.transaction())
                    .execute()
                    .map_err(|e| StoreError::Evaluation(e.to_string()))?;
                let QueryResults::Solutions(solutions) = results else {
                    unreachable!("a SELECT gives solutions")
                };
                solutions
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| StoreError::Evaluation(e.to_string()))?
            };
            let mut deletes = Vec::new();
            let mut inserts = Vec::new();
            for solution in &solutions {
                deletes.extend(delete.iter().filter_map(|p| fill_ground_quad(p, solution)));
                let mut bnodes = HashMap::new();
                inserts.extend(
                    insert
                        .iter()
                        .filter_map(|p| fill_quad(p, solution, &mut bnodes)),
                );
            }
            for quad in deletes {
                tracker.remove(quad)?;
            }
            for quad in inserts {
                tracker.insert(quad)?;
            }
            Ok(())
        }
        GraphUpdateOperation::Load { silent, source, .. } => {
            if *silent {
                return Ok(());
            }
            Err(StoreError::Unsupported(format!(
                "LOAD <{}> is not supported: quadmesh does not fetch remote data; upload it to /statements instead",
                source.as_str()
            )))
        }
        GraphUpdateOperation::Clear { graph, silent }
        | GraphUpdateOperation::Drop { graph, silent } => {
            // Graphs exist while they hold a quad; SPARQL 1.1 Update §3.2.2/3.2.3: a
            // missing graph is an error unless SILENT.
            if let GraphTarget::NamedNode(name) = graph {
                let exists = tracker
                    .transaction()
                    .quads_for_pattern(None, None, None, Some(name.as_ref().into()))
                    .next()
                    .is_some();
                if !exists && !silent {
                    let verb = if matches!(operation, GraphUpdateOperation::Drop { .. }) {
                        "DROP"
                    } else {
                        "CLEAR"
                    };
                    return Err(StoreError::UpdateRefused(format!(
                        "{verb} GRAPH {name}: the graph does not exist (add SILENT to ignore this)"
                    )));
                }
            }
            // A range tombstone: writes to the target older than this update, wherever
            // they were made, stay cleared when they arrive here later.
            let selector = match graph {
                GraphTarget::NamedNode(name) => GraphSelector::Named(name.clone().into()),
                GraphTarget::DefaultGraph => GraphSelector::Default,
                GraphTarget::NamedGraphs => GraphSelector::AllNamed,
                GraphTarget::AllGraphs => GraphSelector::Any,
            };
            tracker.remove_pattern(RangeDelete::new(None, None, None, selector))?;
            Ok(())
        }
        // Graphs exist through their quads here: an empty graph needs nothing stored,
        // and one that holds quads already exists (SPARQL 1.1 Update §3.2.1).
        GraphUpdateOperation::Create { graph, silent } => {
            let exists = tracker
                .transaction()
                .quads_for_pattern(None, None, None, Some(graph.as_ref().into()))
                .next()
                .is_some();
            if exists && !silent {
                return Err(StoreError::UpdateRefused(format!(
                    "CREATE GRAPH {graph}: the graph already exists (add SILENT to ignore this)"
                )));
            }
            Ok(())
        }
    }
}

/// The range delete a `DELETE { T } WHERE { P }` is, when `P` is one triple pattern
/// (in the default graph, or in `GRAPH <g>` or `GRAPH ?g`) with distinct variables and
/// the template `T` is that same pattern in the same graph: it removes exactly the quads
/// matching the pattern's fixed terms. Anything else (joins, filters, a template that
/// differs, blank nodes, repeated variables) acts on the quads this instance holds.
fn single_pattern_delete(
    template: &[GroundQuadPattern],
    pattern: &GraphPattern,
) -> Option<RangeDelete> {
    let [deleted] = template else { return None };
    let (graph, inner) = match pattern {
        GraphPattern::Graph { name, inner } => (Some(name), &**inner),
        other => (None, other),
    };
    let GraphPattern::Bgp { patterns } = inner else {
        return None;
    };
    let [triple] = patterns.as_slice() else {
        return None;
    };
    let selector = match (graph, &deleted.graph_name) {
        (None, GraphNamePattern::DefaultGraph) => GraphSelector::Default,
        (Some(NamedNodePattern::NamedNode(g)), GraphNamePattern::NamedNode(t)) if g == t => {
            GraphSelector::Named(g.clone().into())
        }
        (Some(NamedNodePattern::Variable(g)), GraphNamePattern::Variable(t)) if g == t => {
            GraphSelector::AllNamed
        }
        _ => return None,
    };
    let mut variables = Vec::new();
    if let GraphNamePattern::Variable(v) = &deleted.graph_name {
        variables.push(v.clone());
    }
    let mut fixed =
        |where_term: &TermPattern, template_term: &GroundTermPattern| -> Option<Option<Term>> {
            match (where_term, template_term) {
                (TermPattern::Variable(a), GroundTermPattern::Variable(b)) if a == b => {
                    if variables.contains(a) {
                        return None;
                    }
                    variables.push(a.clone());
                    Some(None)
                }
                (TermPattern::NamedNode(a), GroundTermPattern::NamedNode(b)) if a == b => {
                    Some(Some(a.clone().into()))
                }
                (TermPattern::Literal(a), GroundTermPattern::Literal(b)) if a == b => {
                    Some(Some(a.clone().into()))
                }
                _ => None,
            }
        };
    let subject = match fixed(&triple.subject, &deleted.subject)? {
        None => None,
        Some(Term::NamedNode(n)) => Some(n.into()),
        Some(_) => return None,
    };
    let predicate_term = match (&triple.predicate, &deleted.predicate) {
        (NamedNodePattern::Variable(a), NamedNodePattern::Variable(b)) if a == b => fixed(
            &TermPattern::Variable(a.clone()),
            &GroundTermPattern::Variable(b.clone()),
        )?,
        (NamedNodePattern::NamedNode(a), NamedNodePattern::NamedNode(b)) if a == b => {
            Some(Term::NamedNode(a.clone()))
        }
        _ => return None,
    };
    let predicate = match predicate_term {
        None => None,
        Some(Term::NamedNode(n)) => Some(n),
        Some(_) => return None,
    };
    let object = fixed(&triple.object, &deleted.object)?;
    Some(RangeDelete::new(subject, predicate, object, selector))
}

fn graph_name(graph: &spargebra::term::GraphName) -> GraphName {
    match graph {
        spargebra::term::GraphName::NamedNode(n) => n.clone().into(),
        spargebra::term::GraphName::DefaultGraph => GraphName::DefaultGraph,
    }
}

fn subject_of(term: Term) -> Option<NamedOrBlankNode> {
    match term {
        Term::NamedNode(n) => Some(n.into()),
        Term::BlankNode(b) => Some(b.into()),
        _ => None,
    }
}

fn named_node_of(pattern: &NamedNodePattern, solution: &QuerySolution) -> Option<NamedNode> {
    match pattern {
        NamedNodePattern::NamedNode(n) => Some(n.clone()),
        NamedNodePattern::Variable(v) => match solution.get(v)? {
            Term::NamedNode(n) => Some(n.clone()),
            _ => None,
        },
    }
}

fn graph_of(pattern: &GraphNamePattern, solution: &QuerySolution) -> Option<GraphName> {
    match pattern {
        GraphNamePattern::NamedNode(n) => Some(n.clone().into()),
        GraphNamePattern::DefaultGraph => Some(GraphName::DefaultGraph),
        GraphNamePattern::Variable(v) => match solution.get(v)? {
            Term::NamedNode(n) => Some(n.clone().into()),
            Term::BlankNode(b) => Some(b.clone().into()),
            _ => None,
        },
    }
}

fn ground_term_of(pattern: &GroundTermPattern, solution: &QuerySolution) -> Option<Term> {
    match pattern {
        GroundTermPattern::NamedNode(n) => Some(n.clone().into()),
        GroundTermPattern::Literal(l) => Some(l.clone().into()),
        GroundTermPattern::Variable(v) => solution.get(v).cloned(),
    }
}

fn term_of(
    pattern: &TermPattern,
    solution: &QuerySolution,
    bnodes: &mut HashMap<BlankNode, BlankNode>,
) -> Option<Term> {
    match pattern {
        TermPattern::NamedNode(n) => Some(n.clone().into()),
        TermPattern::BlankNode(b) => Some(
            bnodes
                .entry(b.clone())
                .or_insert_with(fresh_blank_node)
                .clone()
                .into(),
        ),
        TermPattern::Literal(l) => Some(l.clone().into()),
        TermPattern::Variable(v) => solution.get(v).cloned(),
    }
}

/// A DELETE template instantiated with one solution; `None` where a variable is
/// unbound or a term lands where RDF does not allow it (such quads are skipped, as
/// the SPARQL spec says).
fn fill_ground_quad(pattern: &GroundQuadPattern, solution: &QuerySolution) -> Option<Quad> {
    Some(Quad::new(
        subject_of(ground_term_of(&pattern.subject, solution)?)?,
        named_node_of(&pattern.predicate, solution)?,
        ground_term_of(&pattern.object, solution)?,
        graph_of(&pattern.graph_name, solution)?,
    ))
}

fn fill_quad(
    pattern: &QuadPattern,
    solution: &QuerySolution,
    bnodes: &mut HashMap<BlankNode, BlankNode>,
) -> Option<Quad> {
    Some(Quad::new(
        subject_of(term_of(&pattern.subject, solution, bnodes)?)?,
        named_node_of(&pattern.predicate, solution)?,
        term_of(&pattern.object, solution, bnodes)?,
        graph_of(&pattern.graph_name, solution)?,
    ))
}
