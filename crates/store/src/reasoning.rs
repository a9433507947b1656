//! AllegroGraph's RDFS++ reasoning (`infer=true` / `infer=rdfs++`), at query time.
//!
//! For each read that asks for it, [`Entailments::compute`] reads the schema (every
//! `rdfs:subClassOf`, `rdfs:subPropertyOf`, `rdfs:domain`, `rdfs:range`,
//! `owl:inverseOf`, `owl:sameAs` statement and every `rdf:type owl:TransitiveProperty`
//! / `owl:SymmetricProperty`, from every graph) and then only the instance statements a
//! rule can use: those whose predicate has a schema statement, the `rdf:type`
//! statements of classes with a superclass, and the statements about individuals with
//! an `owl:sameAs`. It closes them under the rules (forward chaining over that set, in
//! memory) and keeps what is not already stated. [`EntailedDataset`] is the snapshot the
//! entailments were computed from plus the entailed triples, as a dataset the SPARQL
//! evaluator runs on.
//!
//! The rules (AllegroGraph's reasoner document, "RDFS++"):
//! - `A rdfs:subClassOf B`, `B rdfs:subClassOf C` ⊢ `A rdfs:subClassOf C`; likewise for
//!   `rdfs:subPropertyOf` and for every `owl:TransitiveProperty`;
//! - `x rdf:type A`, `A rdfs:subClassOf B` ⊢ `x rdf:type B`;
//! - `x p y`, `p rdfs:subPropertyOf q` ⊢ `x q y`;
//! - `x p y`, `p rdfs:domain D` ⊢ `x rdf:type D`; `p rdfs:range R` ⊢ `y rdf:type R`
//!   (for `y` not a literal);
//! - `x p y`, `p owl:inverseOf q` (or `q owl:inverseOf p`) ⊢ `y q x`;
//! - `x p y`, `p rdf:type owl:SymmetricProperty` ⊢ `y p x`;
//! - `owl:sameAs` is symmetric and transitive, and a statement about `x` holds of every
//!   individual the same as `x`, as subject and as object (`x owl:sameAs x` is not
//!   listed).
//!
//! Rules it keeps:
//! - the entailments are those of the data the query reads: computed from the same
//!   snapshot the query is then evaluated on (a session's snapshot with its pending
//!   changes, or a fresh snapshot of the repository), never cached, so that any commit,
//!   local or from another instance, is seen by the next query whole;
//! - entailed triples are in the default graph; one already stated in the default graph
//!   is not added again, one stated only in named graphs is added to the default graph
//!   but not to a union of every graph (which already holds it);
//! - premises are read from every graph (AllegroGraph's reasoner ignores graphs);
//! - nothing is written: the store is never changed by reasoning.

use crate::error::{Result, StoreError};
use oxigraph::model::vocab::{rdf, rdfs};
use oxigraph::model::{
    GraphName, GraphNameRef, NamedNode, NamedNodeRef, NamedOrBlankNode, NamedOrBlankNodeRef, Quad,
    QuadRef, Term, TermRef, Triple,
};
use oxigraph::store::{StorageError, Transaction};
use spareval::{CancellationToken, InternalQuad, QueryableDataset};
use std::collections::{HashMap, HashSet, VecDeque};
use std::iter::empty;

const OWL_SAME_AS: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/2002/07/owl#sameAs");
const OWL_INVERSE_OF: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/2002/07/owl#inverseOf");
const OWL_TRANSITIVE_PROPERTY: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/2002/07/owl#TransitiveProperty");
const OWL_SYMMETRIC_PROPERTY: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/2002/07/owl#SymmetricProperty");

/// What AllegroGraph's `infer` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reasoning {
    /// `false` or none: the stated quads only.
    #[default]
    Off,
    /// `true` or `rdfs++`: the RDFS++ reasoner.
    RdfsPlusPlus,
}

impl Reasoning {
    /// Reads one `infer` value: `false` (also `no`, `0`, `none`, empty) is off; `true`
    /// and `rdfs++` are RDFS++; AllegroGraph's `restriction` and `hasvalue` reasoners
    /// are refused as not built ([`StoreError::ReasonerNotBuilt`]); anything else is bad
    /// input ([`StoreError::InvalidReasoning`]).
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "no" | "0" | "none" => Ok(Reasoning::Off),
            "true" | "rdfs++" => Ok(Reasoning::RdfsPlusPlus),
            "restriction" | "hasvalue" => Err(StoreError::ReasonerNotBuilt(format!(
                "infer={value}: AllegroGraph's restriction reasoner (owl:hasValue, owl:someValuesFrom, owl:allValuesFrom) is not built in quadmesh; infer=true or infer=rdfs++ gives RDFS++ reasoning, see docs/compatibility.md"
            ))),
            _ => Err(StoreError::InvalidReasoning(format!(
                "infer={value}: not a kind of reasoning; use false, true or rdfs++"
            ))),
        }
    }
}

/// The RDFS++ entailments of one snapshot that are not stated in it.
#[derive(Debug, Default)]
pub struct Entailments {
    /// Entailed and stated in no graph.
    fresh: TripleIndex,
    /// Entailed and stated only in named graphs: part of the default graph, but not of
    /// the union of every graph, which holds them already.
    named_only: TripleIndex,
}

/// Triples indexed by subject, predicate and object.
#[derive(Debug, Default)]
struct TripleIndex {
    triples: Vec<Triple>,
    by_subject: HashMap<NamedOrBlankNode, Vec<usize>>,
    by_predicate: HashMap<NamedNode, Vec<usize>>,
    by_object: HashMap<Term, Vec<usize>>,
}

impl TripleIndex {
    fn insert(&mut self, triple: Triple) {
        let at = self.triples.len();
        self.by_subject
            .entry(triple.subject.clone())
            .or_default()
            .push(at);
        self.by_predicate
            .entry(triple.predicate.clone())
            .or_default()
            .push(at);
        self.by_object
            .entry(triple.object.clone())
            .or_default()
            .push(at);
        self.triples.push(triple);
    }

    /// The triples matching a pattern, found through its most selective position.
    fn matching(
        &self,
        subject: Option<&NamedOrBlankNode>,
        predicate: Option<&NamedNode>,
        object: Option<&Term>,
    ) -> Vec<&Triple> {
        let mut lists: Vec<&[usize]> = Vec::new();
        let none: &[usize] = &[];
        if let Some(s) = subject {
            lists.push(self.by_subject.get(s).map_or(none, Vec::as_slice));
        }
        if let Some(p) = predicate {
            lists.push(self.by_predicate.get(p).map_or(none, Vec::as_slice));
        }
        if let Some(o) = object {
            lists.push(self.by_object.get(o).map_or(none, Vec::as_slice));
        }
        let matches = |t: &&Triple| {
            subject.is_none_or(|s| *s == t.subject)
                && predicate.is_none_or(|p| *p == t.predicate)
                && object.is_none_or(|o| *o == t.object)
        };
        match lists.into_iter().min_by_key(|l| l.len()) {
            Some(list) => list
                .iter()
                .map(|i| &self.triples[*i])
                .filter(matches)
                .collect(),
            None => self.triples.iter().collect(),
        }
    }
}

/// The schema statements the rules use, by property or class.
#[derive(Default)]
struct Schema {
    super_classes: HashMap<Term, Vec<Term>>,
    super_properties: HashMap<NamedNode, Vec<NamedNode>>,
    domains: HashMap<NamedNode, Vec<Term>>,
    ranges: HashMap<NamedNode, Vec<Term>>,
    inverses: HashMap<NamedNode, Vec<NamedNode>>,
    transitive: HashSet<NamedNode>,
    symmetric: HashSet<NamedNode>,
    /// Per individual with an `owl:sameAs`, every individual the same as it (itself
    /// included).
    same: HashMap<Term, std::rc::Rc<Vec<Term>>>,
}

impl Schema {
    /// Properties whose statements a rule uses.
    fn rule_properties(&self) -> HashSet<NamedNode> {
        let mut properties: HashSet<NamedNode> = HashSet::new();
        properties.extend(self.super_properties.keys().cloned());
        properties.extend(self.domains.keys().cloned());
        properties.extend(self.ranges.keys().cloned());
        properties.extend(self.inverses.keys().cloned());
        properties.extend(self.transitive.iter().cloned());
        properties.extend(self.symmetric.iter().cloned());
        properties
    }

    fn is_transitive(&self, p: NamedNodeRef<'_>) -> bool {
        p == rdfs::SUB_CLASS_OF
            || p == rdfs::SUB_PROPERTY_OF
            || p == OWL_SAME_AS
            || self.transitive.contains(&p.into_owned())
    }
}

fn resource(term: &Term) -> Option<NamedOrBlankNode> {
    match term {
        Term::NamedNode(n) => Some(n.clone().into()),
        Term::BlankNode(b) => Some(b.clone().into()),
        _ => None,
    }
}

fn named(term: &Term) -> Option<NamedNode> {
    match term {
        Term::NamedNode(n) => Some(n.clone()),
        _ => None,
    }
}

/// Forward chaining over the statements the rules can use.
struct Closure<'s> {
    schema: &'s Schema,
    known: HashSet<Triple>,
    /// Every triple a rule gave, whether or not it is also stated.
    derived: HashSet<Triple>,
    queue: VecDeque<Triple>,
    /// For transitive properties: (p, x) → every y with `x p y` known, and the reverse.
    forward: HashMap<(NamedNode, Term), Vec<Term>>,
    backward: HashMap<(NamedNode, Term), Vec<NamedOrBlankNode>>,
}

impl<'s> Closure<'s> {
    fn new(schema: &'s Schema) -> Self {
        Closure {
            schema,
            known: HashSet::new(),
            derived: HashSet::new(),
            queue: VecDeque::new(),
            forward: HashMap::new(),
            backward: HashMap::new(),
        }
    }

    fn add(&mut self, triple: Triple) {
        if self.known.contains(&triple) {
            return;
        }
        if self.schema.is_transitive(triple.predicate.as_ref()) {
            self.forward
                .entry((triple.predicate.clone(), triple.subject.clone().into()))
                .or_default()
                .push(triple.object.clone());
            self.backward
                .entry((triple.predicate.clone(), triple.object.clone()))
                .or_default()
                .push(triple.subject.clone());
        }
        self.known.insert(triple.clone());
        self.queue.push_back(triple);
    }

    fn derive(&mut self, subject: NamedOrBlankNode, predicate: NamedNode, object: Term) {
        // `x owl:sameAs x` holds of everything; it is not listed.
        if predicate.as_ref() == OWL_SAME_AS && object == Term::from(subject.clone()) {
            return;
        }
        let triple = Triple::new(subject, predicate, object);
        if !self.derived.contains(&triple) {
            self.derived.insert(triple.clone());
            self.add(triple);
        }
    }

    /// Closes the known triples under the rules; stops with [`StoreError::Timeout`]
    /// once `cancellation` fires.
    fn run(&mut self, cancellation: &CancellationToken) -> Result<()> {
        let schema = self.schema;
        let mut until_check: u32 = 0;
        while let Some(triple) = self.queue.pop_front() {
            if until_check == 0 {
                if cancellation.is_cancelled() {
                    return Err(StoreError::Timeout);
                }
                until_check = 1024;
            }
            until_check -= 1;
            let Triple {
                subject: x,
                predicate: p,
                object: y,
            } = triple;
            let y_resource = resource(&y);
            for q in schema.super_properties.get(&p).into_iter().flatten() {
                self.derive(x.clone(), q.clone(), y.clone());
            }
            for class in schema.domains.get(&p).into_iter().flatten() {
                self.derive(x.clone(), rdf::TYPE.into_owned(), class.clone());
            }
            if let Some(y_resource) = &y_resource {
                for class in schema.ranges.get(&p).into_iter().flatten() {
                    self.derive(y_resource.clone(), rdf::TYPE.into_owned(), class.clone());
                }
                for q in schema.inverses.get(&p).into_iter().flatten() {
                    self.derive(y_resource.clone(), q.clone(), x.clone().into());
                }
                if schema.symmetric.contains(&p) || p.as_ref() == OWL_SAME_AS {
                    self.derive(y_resource.clone(), p.clone(), x.clone().into());
                }
            }
            if p.as_ref() == rdf::TYPE {
                for class in schema.super_classes.get(&y).into_iter().flatten() {
                    self.derive(x.clone(), p.clone(), class.clone());
                }
            }
            if schema.is_transitive(p.as_ref()) {
                let onward = self
                    .forward
                    .get(&(p.clone(), y.clone()))
                    .cloned()
                    .unwrap_or_default();
                for z in onward {
                    self.derive(x.clone(), p.clone(), z);
                }
                let before = self
                    .backward
                    .get(&(p.clone(), x.clone().into()))
                    .cloned()
                    .unwrap_or_default();
                for w in before {
                    self.derive(w, p.clone(), y.clone());
                }
            }
            let x_term: Term = x.clone().into();
            if let Some(group) = schema.same.get(&x_term) {
                for other in group.iter().filter(|o| **o != x_term) {
                    if let Some(other) = resource(other) {
                        self.derive(other, p.clone(), y.clone());
                    }
                }
            }
            if let Some(group) = schema.same.get(&y) {
                for other in group.iter().filter(|o| **o != y) {
                    self.derive(x.clone(), p.clone(), other.clone());
                }
            }
        }
        Ok(())
    }
}

/// Reads every quad of a pattern from the snapshot, as triples.
fn read_triples(
    transaction: &Transaction<'_>,
    subject: Option<NamedOrBlankNodeRef<'_>>,
    predicate: Option<NamedNodeRef<'_>>,
    object: Option<TermRef<'_>>,
    each: &mut dyn FnMut(Triple),
) -> Result<()> {
    for quad in transaction.quads_for_pattern(subject, predicate, object, None) {
        let quad = quad?;
        each(Triple::new(quad.subject, quad.predicate, quad.object));
    }
    Ok(())
}

impl Entailments {
    /// The entailments of a snapshot (see the module's rules). Blocking: reads the
    /// schema, then the statements the rules can use; gives up with
    /// [`StoreError::Timeout`] once `cancellation` fires (a query's timeout).
    pub fn compute(
        transaction: &Transaction<'_>,
        cancellation: &CancellationToken,
    ) -> Result<Self> {
        let mut schema = Schema::default();
        let mut schema_triples = Vec::new();
        let mut same_pairs = Vec::new();
        for predicate in [
            rdfs::SUB_CLASS_OF,
            rdfs::SUB_PROPERTY_OF,
            rdfs::DOMAIN,
            rdfs::RANGE,
            OWL_INVERSE_OF,
            OWL_SAME_AS,
        ] {
            read_triples(transaction, None, Some(predicate), None, &mut |triple| {
                let s: Term = triple.subject.clone().into();
                let o = triple.object.clone();
                let p = triple.predicate.as_ref();
                if p == rdfs::SUB_CLASS_OF {
                    schema.super_classes.entry(s).or_default().push(o);
                } else if p == rdfs::SUB_PROPERTY_OF {
                    if let (Some(s), Some(o)) = (named(&s), named(&o)) {
                        schema.super_properties.entry(s).or_default().push(o);
                    }
                } else if p == rdfs::DOMAIN {
                    if let Some(s) = named(&s) {
                        schema.domains.entry(s).or_default().push(o);
                    }
                } else if p == rdfs::RANGE {
                    if let Some(s) = named(&s) {
                        schema.ranges.entry(s).or_default().push(o);
                    }
                } else if p == OWL_INVERSE_OF {
                    if let (Some(s), Some(o)) = (named(&s), named(&o)) {
                        schema
                            .inverses
                            .entry(s.clone())
                            .or_default()
                            .push(o.clone());
                        schema.inverses.entry(o).or_default().push(s);
                    }
                } else if p == OWL_SAME_AS && !o.is_literal() {
                    same_pairs.push((s, o));
                }
                schema_triples.push(triple);
            })?;
        }
        for (class, set) in [
            (OWL_TRANSITIVE_PROPERTY, &mut schema.transitive),
            (OWL_SYMMETRIC_PROPERTY, &mut schema.symmetric),
        ] {
            read_triples(
                transaction,
                None,
                Some(rdf::TYPE),
                Some(class.into()),
                &mut |triple| {
                    if let NamedOrBlankNode::NamedNode(p) = &triple.subject {
                        set.insert(p.clone());
                    }
                },
            )?;
        }
        schema.same = same_as_groups(same_pairs);

        let mut closure = Closure::new(&schema);
        for triple in schema_triples {
            closure.add(triple);
        }
        let mut stated = Vec::new();
        for property in schema.rule_properties() {
            read_triples(transaction, None, Some(property.as_ref()), None, &mut |t| {
                stated.push(t)
            })?;
        }
        for class in schema.super_classes.keys() {
            read_triples(
                transaction,
                None,
                Some(rdf::TYPE),
                Some(class.as_ref()),
                &mut |t| stated.push(t),
            )?;
        }
        for individual in schema.same.keys() {
            if let Some(subject) = resource(individual) {
                read_triples(transaction, Some(subject.as_ref()), None, None, &mut |t| {
                    stated.push(t)
                })?;
            }
            read_triples(
                transaction,
                None,
                None,
                Some(individual.as_ref()),
                &mut |t| stated.push(t),
            )?;
        }
        for triple in stated {
            closure.add(triple);
        }
        closure.run(cancellation)?;

        let mut entailments = Entailments::default();
        for triple in &closure.derived {
            let t = triple.as_ref();
            if transaction.contains(QuadRef::new(
                t.subject,
                t.predicate,
                t.object,
                GraphNameRef::DefaultGraph,
            ))? {
                continue;
            }
            let in_named = transaction
                .quads_for_pattern(Some(t.subject), Some(t.predicate), Some(t.object), None)
                .next()
                .transpose()?
                .is_some();
            if in_named {
                entailments.named_only.insert(triple.clone());
            } else {
                entailments.fresh.insert(triple.clone());
            }
        }
        Ok(entailments)
    }

    /// How many entailed triples are not stated in any graph.
    pub fn len(&self) -> usize {
        self.fresh.triples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fresh.triples.is_empty()
    }

    /// The entailed triples matching a pattern, as quads of the default graph: when
    /// `default_graph_only`, the default graph's view (every entailed triple not stated
    /// there); otherwise the view of a union of every graph (those stated nowhere).
    pub fn matching(
        &self,
        subject: Option<&NamedOrBlankNode>,
        predicate: Option<&NamedNode>,
        object: Option<&Term>,
        default_graph_only: bool,
    ) -> Vec<Quad> {
        let mut found: Vec<Quad> = self
            .fresh
            .matching(subject, predicate, object)
            .into_iter()
            .map(|t| t.clone().in_graph(GraphName::DefaultGraph))
            .collect();
        if default_graph_only {
            found.extend(
                self.named_only
                    .matching(subject, predicate, object)
                    .into_iter()
                    .map(|t| t.clone().in_graph(GraphName::DefaultGraph)),
            );
        }
        found
    }
}

/// Groups individuals by `owl:sameAs` (symmetric, transitive): each member maps to its
/// whole group.
fn same_as_groups(pairs: Vec<(Term, Term)>) -> HashMap<Term, std::rc::Rc<Vec<Term>>> {
    let mut parent: HashMap<Term, Term> = HashMap::new();
    fn root(parent: &mut HashMap<Term, Term>, term: &Term) -> Term {
        let mut at = term.clone();
        while let Some(next) = parent.get(&at) {
            if *next == at {
                break;
            }
            at = next.clone();
        }
        parent.insert(term.clone(), at.clone());
        at
    }
    for (a, b) in &pairs {
        parent.entry(a.clone()).or_insert_with(|| a.clone());
        parent.entry(b.clone()).or_insert_with(|| b.clone());
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        if ra != rb {
            parent.insert(ra, rb);
        }
    }
    let members: Vec<Term> = parent.keys().cloned().collect();
    let mut groups: HashMap<Term, Vec<Term>> = HashMap::new();
    for member in members {
        let r = root(&mut parent, &member);
        groups.entry(r).or_default().push(member);
    }
    let mut by_member = HashMap::new();
    for (_, group) in groups {
        let group = std::rc::Rc::new(group);
        for member in group.iter() {
            by_member.insert(member.clone(), group.clone());
        }
    }
    by_member
}

/// A snapshot plus its entailments, as the dataset a query is evaluated on.
///
/// Rules it keeps:
/// - every pattern reads the one snapshot the entailments were computed from;
/// - graphs as oxigraph's own view: a pattern over no particular graph reads every
///   graph (the default one included), a named graph its own quads only; entailed
///   triples are in the default graph (see [`Entailments::matching`]).
#[derive(Clone, Copy)]
pub struct EntailedDataset<'a, 's> {
    transaction: &'a Transaction<'s>,
    entailments: &'a Entailments,
}

impl<'a, 's> EntailedDataset<'a, 's> {
    pub fn new(transaction: &'a Transaction<'s>, entailments: &'a Entailments) -> Self {
        EntailedDataset {
            transaction,
            entailments,
        }
    }

    pub fn entailments(&self) -> &'a Entailments {
        self.entailments
    }
}

fn internal_quad(quad: Quad) -> InternalQuad<Term> {
    InternalQuad {
        subject: quad.subject.into(),
        predicate: quad.predicate.into(),
        object: quad.object,
        graph_name: match quad.graph_name {
            GraphName::DefaultGraph => None,
            GraphName::NamedNode(n) => Some(n.into()),
            GraphName::BlankNode(b) => Some(b.into()),
        },
    }
}

type QuadResults<'a> =
    Box<dyn Iterator<Item = std::result::Result<InternalQuad<Term>, StorageError>> + 'a>;

impl<'a, 's: 'a> QueryableDataset<'a> for EntailedDataset<'a, 's> {
    type InternalTerm = Term;
    type Error = StorageError;

    fn internal_quads_for_pattern(
        &self,
        subject: Option<&Term>,
        predicate: Option<&Term>,
        object: Option<&Term>,
        graph_name: Option<Option<&Term>>,
    ) -> impl Iterator<Item = std::result::Result<InternalQuad<Term>, StorageError>> + use<'a, 's>
    {
        let nothing = || -> QuadResults<'a> { Box::new(empty()) };
        let subject = match subject {
            None => None,
            Some(term) => match resource(term) {
                Some(s) => Some(s),
                None => return nothing(),
            },
        };
        let predicate = match predicate {
            None => None,
            Some(Term::NamedNode(p)) => Some(p.clone()),
            Some(_) => return nothing(),
        };
        let object = object.cloned();
        let (graph, entailed, default_only) = match graph_name {
            None => (None, true, false),
            Some(None) => (Some(GraphName::DefaultGraph), true, true),
            Some(Some(term)) => match resource(term) {
                Some(g) => (Some(g.into()), false, false),
                None => return nothing(),
            },
        };
        let transaction: &'a Transaction<'s> = self.transaction;
        let stated = transaction.quads_for_pattern(
            subject.as_ref().map(|s| s.as_ref()),
            predicate.as_ref().map(|p| p.as_ref()),
            object.as_ref().map(|o| o.as_ref()),
            graph.as_ref().map(|g| g.as_ref()),
        );
        let mut results: QuadResults<'a> = Box::new(stated.map(|q| q.map(internal_quad)));
        if entailed {
            let extra = self.entailments.matching(
                subject.as_ref(),
                predicate.as_ref(),
                object.as_ref(),
                default_only,
            );
            results = Box::new(results.chain(extra.into_iter().map(|q| Ok(internal_quad(q)))));
        }
        results
    }

    fn internal_named_graphs(
        &self,
    ) -> impl Iterator<Item = std::result::Result<Term, StorageError>> + use<'a, 's> {
        self.transaction.named_graphs().map(|g| g.map(Term::from))
    }

    fn contains_internal_graph_name(
        &self,
        graph_name: &Term,
    ) -> std::result::Result<bool, StorageError> {
        match resource(graph_name) {
            Some(g) => self.transaction.contains_named_graph(g.as_ref()),
            None => Ok(false),
        }
    }

    fn internalize_term(&self, term: Term) -> std::result::Result<Term, StorageError> {
        Ok(term)
    }

    fn externalize_term(&self, term: Term) -> std::result::Result<Term, StorageError> {
        Ok(term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::io::RdfFormat;
    use oxigraph::sparql::{QueryResults, SparqlEvaluator};
    use oxigraph::store::Store;

    fn store(nquads: &str) -> Store {
        let store = Store::new().unwrap();
        store
            .load_from_slice(RdfFormat::NQuads, nquads.as_bytes())
            .unwrap();
        store
    }

    fn entailed(store: &Store) -> Vec<String> {
        let transaction = store.start_transaction().unwrap();
        let entailments = Entailments::compute(&transaction, &CancellationToken::new()).unwrap();
        let mut found: Vec<String> = entailments
            .matching(None, None, None, true)
            .into_iter()
            .map(|q| Triple::from(q).to_string())
            .collect();
        found.sort();
        found
    }

    const EX: &str = "http://ex.org/";

    fn t(s: &str, p: &str, o: &str) -> String {
        let term = |x: &str| {
            if x.starts_with('"') {
                x.to_owned()
            } else if let Some(rest) = x.strip_prefix("rdf:") {
                format!("<http://www.w3.org/1999/02/22-rdf-syntax-ns#{rest}>")
            } else if let Some(rest) = x.strip_prefix("rdfs:") {
                format!("<http://www.w3.org/2000/01/rdf-schema#{rest}>")
            } else if let Some(rest) = x.strip_prefix("owl:") {
                format!("<http://www.w3.org/2002/07/owl#{rest}>")
            } else {
                format!("<{EX}{x}>")
            }
        };
        format!("{} {} {}", term(s), term(p), term(o))
    }

    fn doc(triples: &[(&str, &str, &str)]) -> String {
        triples
            .iter()
            .map(|(s, p, o)| format!("{} .\n", t(s, p, o)))
            .collect()
    }

    fn sorted(triples: &[(&str, &str, &str)]) -> Vec<String> {
        let mut v: Vec<String> = triples.iter().map(|(s, p, o)| t(s, p, o)).collect();
        v.sort();
        v
    }

    #[test]
    fn subclass_and_subproperty_are_transitive_and_inherited() {
        let s = store(&doc(&[
            ("A", "rdfs:subClassOf", "B"),
            ("B", "rdfs:subClassOf", "C"),
            ("x", "rdf:type", "A"),
            ("p", "rdfs:subPropertyOf", "q"),
            ("q", "rdfs:subPropertyOf", "r"),
            ("x", "p", "y"),
        ]));
        assert_eq!(
            entailed(&s),
            sorted(&[
                ("A", "rdfs:subClassOf", "C"),
                ("x", "rdf:type", "B"),
                ("x", "rdf:type", "C"),
                ("p", "rdfs:subPropertyOf", "r"),
                ("x", "q", "y"),
                ("x", "r", "y"),
            ])
        );
    }

    #[test]
    fn domain_range_inverse_symmetric_and_transitive() {
        let s = store(&doc(&[
            ("p", "rdfs:domain", "D"),
            ("p", "rdfs:range", "R"),
            ("x", "p", "y"),
            ("x", "p", "\"lit\""),
            ("i", "owl:inverseOf", "p"),
            ("t", "rdf:type", "owl:TransitiveProperty"),
            ("a", "t", "b"),
            ("b", "t", "c"),
            ("m", "rdf:type", "owl:SymmetricProperty"),
            ("a", "m", "b"),
        ]));
        assert_eq!(
            entailed(&s),
            sorted(&[
                ("x", "rdf:type", "D"),
                ("y", "rdf:type", "R"),
                ("y", "i", "x"),
                ("a", "t", "c"),
                ("b", "m", "a"),
            ])
        );
    }

    #[test]
    fn same_as_is_symmetric_transitive_and_substitutes() {
        let s = store(&doc(&[
            ("bob", "owl:sameAs", "robert"),
            ("robert", "owl:sameAs", "rob"),
            ("bob", "age", "\"40\""),
            ("kid", "childOf", "rob"),
        ]));
        let found = entailed(&s);
        for expected in [
            t("robert", "owl:sameAs", "bob"),
            t("bob", "owl:sameAs", "rob"),
            t("rob", "owl:sameAs", "bob"),
            t("rob", "age", "\"40\""),
            t("robert", "age", "\"40\""),
            t("kid", "childOf", "bob"),
            t("kid", "childOf", "robert"),
        ] {
            assert!(
                found.contains(&expected),
                "{expected} missing from {found:?}"
            );
        }
        assert!(
            !found.contains(&t("bob", "age", "\"40\"")),
            "stated, not entailed"
        );
    }

    #[test]
    fn stated_in_a_named_graph_is_in_the_default_graph_only_when_entailed() {
        let s = store(&format!(
            "{}<{EX}x> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{EX}B> <{EX}g> .\n",
            doc(&[("A", "rdfs:subClassOf", "B"), ("x", "rdf:type", "A")])
        ));
        let transaction = s.start_transaction().unwrap();
        let entailments = Entailments::compute(&transaction, &CancellationToken::new()).unwrap();
        assert_eq!(entailments.matching(None, None, None, false), vec![]);
        assert_eq!(entailments.matching(None, None, None, true).len(), 1);
        // A query of the union sees `x a A` and `x a B` once each; a named graph's,
        // only what it states.
        for (query, rows) in [
            ("SELECT ?c { <http://ex.org/x> a ?c }", 2),
            ("SELECT ?c { GRAPH ?g { <http://ex.org/x> a ?c } }", 1),
        ] {
            let mut prepared = SparqlEvaluator::new().parse_query(query).unwrap();
            prepared.dataset_mut().set_default_graph_as_union();
            let QueryResults::Solutions(solutions) = prepared
                .on_queryable_dataset(EntailedDataset::new(&transaction, &entailments))
                .execute()
                .unwrap()
            else {
                panic!("not solutions")
            };
            let all: Vec<_> = solutions.collect::<std::result::Result<_, _>>().unwrap();
            assert_eq!(all.len(), rows, "{query}");
        }
    }

    #[test]
    fn a_cancelled_computation_stops() {
        let chain: Vec<String> = (0..200)
            .map(|i| format!("<{EX}n{i}> <{EX}t> <{EX}n{}> .\n", i + 1))
            .collect();
        let s = store(&format!(
            "{}{}",
            doc(&[("t", "rdf:type", "owl:TransitiveProperty")]),
            chain.concat()
        ));
        let transaction = s.start_transaction().unwrap();
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        assert!(matches!(
            Entailments::compute(&transaction, &cancelled),
            Err(StoreError::Timeout)
        ));
        let all = Entailments::compute(&transaction, &CancellationToken::new()).unwrap();
        assert_eq!(all.len(), 201 * 200 / 2 - 200);
    }

    #[test]
    fn infer_values() {
        assert_eq!(Reasoning::parse("false").unwrap(), Reasoning::Off);
        assert_eq!(Reasoning::parse("").unwrap(), Reasoning::Off);
        assert_eq!(Reasoning::parse("true").unwrap(), Reasoning::RdfsPlusPlus);
        assert_eq!(Reasoning::parse("RDFS++").unwrap(), Reasoning::RdfsPlusPlus);
        assert!(matches!(
            Reasoning::parse("restriction"),
            Err(StoreError::ReasonerNotBuilt(_))
        ));
        assert!(matches!(
            Reasoning::parse("owl2rl"),
            Err(StoreError::InvalidReasoning(_))
        ));
    }
}
