use oxigraph::store::StorageError;

/// Everything the storage layer can refuse or fail at. The server maps each variant to
/// an HTTP status in one place; callers can tell bad input (`Invalid*`, `Syntax`,
/// `NotFound`, ...) from faults of this instance (`Storage`, `Log`, `Corrupt`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("repository '{0}' does not exist")]
    RepositoryNotFound(String),
    #[error("repository '{0}' already exists")]
    RepositoryExists(String),
    #[error("invalid repository name '{0}': use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'")]
    InvalidRepositoryName(String),
    #[error("SPARQL syntax error: {0}")]
    Syntax(String),
    #[error("invalid RDF: {0}")]
    InvalidRdf(String),
    #[error("invalid term {0}")]
    InvalidTerm(String),
    #[error("{0}")]
    Unsupported(String),
    /// A SPARQL Update operation the spec says fails (e.g. `DROP` of a missing graph
    /// without `SILENT`); the whole request changes nothing.
    #[error("update refused: {0}")]
    UpdateRefused(String),
    #[error("query evaluation failed: {0}")]
    Evaluation(String),
    #[error("the query exceeded its timeout")]
    Timeout,
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    #[error("replication log error: {0}")]
    Log(#[from] std::io::Error),
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("transaction {got} of origin {origin} arrived before {expected}", expected = .have + 1)]
    Gap {
        origin: quadmesh_repl::OriginId,
        have: u64,
        got: u64,
    },
    #[error("repository '{0}' was removed from its replication cluster and takes no more writes")]
    Removed(String),
    #[error("repository '{repository}' takes no more writes at this instance: {reason}; remove this instance from the cluster and grow it again")]
    Expired { repository: String, reason: String },
    #[error("{0}")]
    Membership(#[from] quadmesh_repl::MembershipError),
    #[error("clock: {0}")]
    Clock(#[from] quadmesh_repl::ClockError),
}

impl StoreError {
    /// Whether the error is the client's doing (bad input), as opposed to a fault here.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StoreError::RepositoryNotFound(_)
                | StoreError::RepositoryExists(_)
                | StoreError::InvalidRepositoryName(_)
                | StoreError::Syntax(_)
                | StoreError::InvalidRdf(_)
                | StoreError::InvalidTerm(_)
                | StoreError::Unsupported(_)
                | StoreError::Evaluation(_)
                | StoreError::UpdateRefused(_)
                | StoreError::Timeout
                | StoreError::Membership(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
