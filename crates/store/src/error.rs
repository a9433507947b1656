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
    /// The repository is on this server but could not be opened (its log is damaged):
    /// it serves nothing until an operator acts; the server's other repositories are
    /// served meanwhile.
    #[error("repository '{name}' is not available on this instance: {reason}")]
    RepositoryUnavailable { name: String, reason: String },
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
    /// An `infer` value that names no kind of reasoning.
    #[error("{0}")]
    InvalidReasoning(String),
    /// An `infer` value naming an AllegroGraph reasoner quadmesh does not have.
    #[error("{0}")]
    ReasonerNotBuilt(String),
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
    /// Damage inside the replication log (not a torn tail) of a repository outside any
    /// cluster (a member's heals from its peers instead): the repository does not open
    /// rather than drop the valid transactions behind it.
    #[error(
        "the replication log is damaged: {file}, byte offset {offset}: {detail}. \
         quadmesh does not cut it, because transactions after it would be lost. \
         The repository is out of service on this instance; the server's others are \
         served. It is in no cluster, so no peer holds its transactions: restore it from \
         a backup, or, accepting the loss of every transaction after the damage, cut the \
         segment at that offset (truncate -s {offset} {file}) and remove later segments",
        file = .file.display()
    )]
    LogDamaged {
        file: std::path::PathBuf,
        offset: u64,
        detail: String,
    },
    /// The disk (or quota) is full: the write was not made, and can be retried once
    /// space is freed.
    #[error("insufficient storage: the disk of this instance is full; nothing was written, retry once space is freed ({0})")]
    DiskFull(String),
    /// A write failed after its log append and could not be undone: the repository takes
    /// no more writes until the server is restarted and replays its log.
    #[error(
        "repository '{repository}' takes no writes: {reason}; restart the server to replay its log"
    )]
    WritesStopped { repository: String, reason: String },
    /// The log lost its end in a crash: until every other member has said how far this
    /// instance's own transactions went, a local write could reuse a sequence number.
    #[error("repository '{repository}' takes no local writes yet: {reason}")]
    AwaitingPeers { repository: String, reason: String },
    /// The log was found damaged inside: until what the damage took is fetched back
    /// from the peers, no local write is taken (and, when the replay had to stop at the
    /// damage, no peer's transaction either).
    #[error("repository '{repository}' is healing its replication log: {reason}")]
    LogHealing { repository: String, reason: String },
    #[error("transaction {got} of origin {origin} arrived before {expected}", expected = .have + 1)]
    Gap {
        origin: quadmesh_repl::OriginId,
        have: u64,
        got: u64,
    },
    /// This instance is leaving its cluster (stopping): writes go to another instance.
    #[error("repository '{0}' takes no local writes: this instance is leaving its cluster; send the write to another instance")]
    Leaving(String),
    /// The clock fence: this instance's clock is not known to be within the maximum
    /// offset of a majority of its cluster's members (issue 25), so a write stamped
    /// now might be unbeatable by later writes elsewhere.
    #[error("repository '{repository}' takes no local writes at this instance: {reason}; fix this machine's clock (NTP) or send the write to another instance")]
    ClockFenced { repository: String, reason: String },
    #[error("repository '{0}' was removed from its replication cluster and takes no more writes")]
    Removed(String),
    /// A pull stream's sender was removed by the configuration this instance holds (and
    /// is not handing over): nothing more is taken from it.
    #[error("repository '{repository}' takes nothing more from instance {peer}: the configuration held here removed it")]
    SenderRemoved {
        repository: String,
        peer: quadmesh_repl::OriginId,
    },
    #[error("repository '{repository}' takes no more writes at this instance: {reason}; remove this instance from the cluster and grow it again")]
    Expired { repository: String, reason: String },
    #[error("{0}")]
    Membership(#[from] quadmesh_repl::MembershipError),
    #[error("clock: {0}")]
    Clock(#[from] quadmesh_repl::ClockError),
}

impl StoreError {
    /// Whether this is (or is caused by) a full disk or quota: ENOSPC or EDQUOT, from
    /// the log's own I/O or from RocksDB.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull(_) => true,
            StoreError::Log(e) => io_is_disk_full(e),
            StoreError::Storage(e) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
                while let Some(error) = source {
                    if let Some(io) = error.downcast_ref::<std::io::Error>() {
                        if io_is_disk_full(io) {
                            return true;
                        }
                    }
                    if error.to_string().contains("No space left on device") {
                        return true;
                    }
                    source = error.source();
                }
                false
            }
            _ => false,
        }
    }

    /// The same error, as [`StoreError::DiskFull`] when it is one.
    pub fn classify_disk_full(self) -> Self {
        if self.is_disk_full() && !matches!(self, StoreError::DiskFull(_)) {
            StoreError::DiskFull(self.to_string())
        } else {
            self
        }
    }
}

fn io_is_disk_full(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
