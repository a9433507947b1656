//! Reading a repository's store without the power to write it: every write goes
//! through the log (`Repository::commit`, the apply of a peer's transaction, a repair),
//! so nothing outside this crate is handed oxigraph's `Store` itself, whose `insert`
//! and `remove` would change the content behind the log, the register and the digest.
//!
//! Rules it keeps:
//! - a [`StoreReader`] reads the current store, each call on its own snapshot;
//! - a [`ReadTransaction`] is one snapshot for several reads (a query and the
//!   entailments it reads), lent out only as `&Transaction`, which reads but cannot
//!   write; it is never committed.

use crate::error::Result;
use crate::query::evaluation_error;
use crate::repository::Repository;
use oxigraph::model::{
    GraphNameRef, NamedNodeRef, NamedOrBlankNode, NamedOrBlankNodeRef, Quad, TermRef,
};
use oxigraph::sparql::{PreparedSparqlQuery, QueryResults};
use oxigraph::store::{Store, Transaction};

/// The repository's store, for reading (see the module's rules).
#[derive(Clone, Copy)]
pub struct StoreReader<'a> {
    store: &'a Store,
}

impl<'a> StoreReader<'a> {
    /// Runs a prepared query on the store as it is now.
    pub fn execute(&self, prepared: PreparedSparqlQuery) -> Result<QueryResults<'a>> {
        prepared
            .on_store(self.store)
            .execute()
            .map_err(evaluation_error)
    }

    /// The quads matching a pattern, read lazily.
    pub fn quads_for_pattern(
        &self,
        subject: Option<NamedOrBlankNodeRef<'_>>,
        predicate: Option<NamedNodeRef<'_>>,
        object: Option<TermRef<'_>>,
        graph: Option<GraphNameRef<'_>>,
    ) -> impl Iterator<Item = Result<Quad>> + 'a {
        self.store
            .quads_for_pattern(subject, predicate, object, graph)
            .map(|q| q.map_err(Into::into))
    }

    /// Every named graph the store knows of (some may be empty).
    pub fn named_graphs(&self) -> Result<Vec<NamedOrBlankNode>> {
        Ok(self.store.named_graphs().collect::<Result<Vec<_>, _>>()?)
    }

    pub fn len(&self) -> Result<usize> {
        Ok(self.store.len()?)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.store.is_empty()?)
    }
}

/// One snapshot of the store for several reads (see the module's rules).
pub struct ReadTransaction<'a> {
    transaction: Transaction<'a>,
}

impl<'a> ReadTransaction<'a> {
    /// The snapshot, to read (a shared reference cannot write).
    pub fn get(&self) -> &Transaction<'a> {
        &self.transaction
    }
}

impl Repository {
    /// The store, for reading only.
    pub fn reader(&self) -> StoreReader<'_> {
        StoreReader {
            store: self.store(),
        }
    }

    /// A snapshot of the store for several reads, never committed.
    pub fn read_transaction(&self) -> Result<ReadTransaction<'_>> {
        Ok(ReadTransaction {
            transaction: self.store().start_transaction()?,
        })
    }
}
