//! What a repository-level request acts on: the repository itself, or a session on it.
//! The same routes serve `/repositories/NAME/...` and `/sessions/ID/...`.

use crate::error::{ApiError, ApiResult};
use crate::sessions::Session;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use oxigraph::model::{GraphNameRef, NamedOrBlankNodeRef, Quad, TermRef};
use oxigraph::sparql::{CancellationToken, PreparedSparqlQuery, QueryResults};
use oxigraph::store::Transaction;
use quadmesh_store::{
    evaluation_error, ChangeTracker, CommitReceipt, EntailedDataset, Entailments, Repository,
    Result, StoreReader,
};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub enum Target {
    Repository(Arc<Repository>),
    Session(Arc<Session>),
}

impl FromRequestParts<AppState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if let Some(id) = params.get("session") {
            return state.sessions.get(id).map(Target::Session).ok_or_else(|| {
                ApiError::NotFound(format!("session {id} does not exist (closed, or expired)"))
            });
        }
        let name = params
            .get("repo")
            .ok_or_else(|| ApiError::Internal("route without a repository".into()))?;
        Ok(Target::Repository(state.catalog.get(name)?))
    }
}

/// A consistent read view: the store (read only), or a session's transaction with its
/// pending work.
pub enum View<'a, 's> {
    Store(StoreReader<'a>),
    Transaction(&'a Transaction<'s>),
}

impl View<'_, '_> {
    pub fn execute(&self, prepared: PreparedSparqlQuery) -> Result<QueryResults<'_>> {
        match self {
            View::Store(store) => store.execute(prepared),
            View::Transaction(transaction) => prepared
                .on_transaction(transaction)
                .execute()
                .map_err(evaluation_error),
        }
    }

    /// Runs a query on a snapshot and its RDFS++ entailments (see `Target::read_entailed`).
    pub fn execute_entailed<'d>(
        prepared: PreparedSparqlQuery,
        dataset: EntailedDataset<'d, '_>,
    ) -> Result<QueryResults<'d>> {
        prepared
            .on_queryable_dataset(dataset)
            .execute()
            .map_err(evaluation_error)
    }

    /// The quads matching a pattern, as the store reads them (nothing collected).
    pub fn quads_iter<'v>(
        &'v self,
        subject: Option<NamedOrBlankNodeRef<'_>>,
        predicate: Option<oxigraph::model::NamedNodeRef<'_>>,
        object: Option<TermRef<'_>>,
        graph: Option<GraphNameRef<'_>>,
    ) -> Box<dyn Iterator<Item = Result<Quad>> + 'v> {
        match self {
            View::Store(store) => {
                Box::new(store.quads_for_pattern(subject, predicate, object, graph))
            }
            View::Transaction(transaction) => Box::new(
                transaction
                    .quads_for_pattern(subject, predicate, object, graph)
                    .map(|q| q.map_err(Into::into)),
            ),
        }
    }

    /// Named graphs holding at least one quad.
    pub fn named_graphs(&self) -> Result<Vec<oxigraph::model::NamedOrBlankNode>> {
        let graphs = match self {
            View::Store(store) => store.named_graphs()?,
            View::Transaction(transaction) => {
                transaction.named_graphs().collect::<Result<Vec<_>, _>>()?
            }
        };
        let mut nonempty = Vec::with_capacity(graphs.len());
        for graph in graphs {
            let name = GraphNameRef::from(graph.as_ref());
            let has_quads = match self {
                View::Store(store) => store
                    .quads_for_pattern(None, None, None, Some(name))
                    .next()
                    .is_some(),
                View::Transaction(transaction) => transaction
                    .quads_for_pattern(None, None, None, Some(name))
                    .next()
                    .is_some(),
            };
            if has_quads {
                nonempty.push(graph);
            }
        }
        Ok(nonempty)
    }

    pub fn len(&self) -> Result<usize> {
        Ok(match self {
            View::Store(store) => store.len()?,
            View::Transaction(transaction) => transaction.len()?,
        })
    }
}

/// What a write did: committed, or added to a session's pending work.
#[derive(Debug)]
pub enum Written {
    Committed(CommitReceipt),
    Pending,
}

/// Attached to the response of a request that committed a transaction, so that the
/// durability layer can wait for the cluster to hold it.
#[derive(Clone, Copy, Debug)]
pub struct CommitInfo {
    pub seq: u64,
    pub time: quadmesh_repl::HlcTime,
}

impl Written {
    /// Marks `response` with the committed transaction, if there is one.
    pub fn tag(&self, response: impl axum::response::IntoResponse) -> axum::response::Response {
        let mut response = response.into_response();
        if let Written::Committed(CommitReceipt {
            transaction: Some((seq, stamp)),
            ..
        }) = self
        {
            response.extensions_mut().insert(CommitInfo {
                seq: *seq,
                time: stamp.time,
            });
        }
        response
    }
}

impl Target {
    pub fn repository(&self) -> &Arc<Repository> {
        match self {
            Target::Repository(r) => r,
            Target::Session(s) => &s.repository,
        }
    }

    /// Reads through the right view. Blocking: call from a blocking task.
    pub fn read<R>(&self, work: impl FnOnce(&View<'_, '_>) -> Result<R>) -> Result<R> {
        match self {
            Target::Repository(repository) => work(&View::Store(repository.reader())),
            Target::Session(session) => {
                let mut pending = session.pending.lock().unwrap_or_else(|e| e.into_inner());
                let stable = !session.auto_commit();
                session
                    .repository
                    .in_session(&mut pending, stable, |tracker| {
                        work(&View::Transaction(tracker.transaction()))
                    })
            }
        }
    }

    /// Reads with RDFS++ reasoning: the entailments are computed from the snapshot the
    /// work then reads (a fresh snapshot of the repository, or the session's view), so
    /// that what is entailed and what is stated are of the same moment. Blocking.
    /// A query's timeout (`cancellation`) covers computing the entailments too.
    pub fn read_entailed<R>(
        &self,
        cancellation: &CancellationToken,
        work: impl FnOnce(&View<'_, '_>, EntailedDataset<'_, '_>) -> Result<R>,
    ) -> Result<R> {
        fn on<R>(
            transaction: &Transaction<'_>,
            cancellation: &CancellationToken,
            work: impl FnOnce(&View<'_, '_>, EntailedDataset<'_, '_>) -> Result<R>,
        ) -> Result<R> {
            let entailments = Entailments::compute(transaction, cancellation)?;
            work(
                &View::Transaction(transaction),
                EntailedDataset::new(transaction, &entailments),
            )
        }
        match self {
            Target::Repository(repository) => {
                on(repository.read_transaction()?.get(), cancellation, work)
            }
            Target::Session(session) => {
                let mut pending = session.pending.lock().unwrap_or_else(|e| e.into_inner());
                let stable = !session.auto_commit();
                session
                    .repository
                    .in_session(&mut pending, stable, |tracker| {
                        on(tracker.transaction(), cancellation, work)
                    })
            }
        }
    }

    /// Writes: a commit through the single writer, or pending work of the session
    /// (committed at once when the session auto-commits). Blocking.
    pub fn write(
        &self,
        build: impl FnOnce(&mut ChangeTracker<'_, '_>) -> Result<()>,
    ) -> Result<Written> {
        match self {
            Target::Repository(repository) => repository.commit(build).map(Written::Committed),
            Target::Session(session) => {
                let mut pending = session.pending.lock().unwrap_or_else(|e| e.into_inner());
                let stable = !session.auto_commit();
                session.repository.in_session(&mut pending, stable, build)?;
                if session.auto_commit() {
                    return session
                        .repository
                        .commit_pending(&mut pending)
                        .map(Written::Committed);
                }
                Ok(Written::Pending)
            }
        }
    }
}
