use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How one quadmesh server runs. Built by the CLI from flags and environment.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub bind: IpAddr,
    pub port: u16,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// The memory this instance may use, and the bounds derived from it (`None`: no
    /// limit known; loads are bounded by `max_body_bytes` alone).
    pub memory: Option<crate::memory_budget::MemoryBudget>,
    /// Timeout of a query that names none.
    pub default_query_timeout: Option<Duration>,
    /// What a query or update without a dataset sees as its default graph, for
    /// repositories without a setting of their own: every graph (AllegroGraph's
    /// default) or the null graph alone (W3C).
    pub default_dataset: quadmesh_store::DatasetBehavior,
    /// Lifetime of a session that names none (agraph-python pings every 250 s).
    pub default_session_lifetime: Duration,
    pub max_session_lifetime: Duration,
    /// Sync the replication log on every commit.
    pub fsync: bool,
    /// How often the store is flushed and the register and log pruned.
    pub checkpoint_interval: Duration,
    /// How long the log is kept for a member that is away; one away longer must be
    /// grown again.
    pub log_retention: Duration,
    /// What the server does about its cluster by itself.
    pub role: Role,
    /// For testing only: how far this server's wall clock is shifted (ms, positive:
    /// ahead), to play an instance whose clock is off.
    pub clock_offset_ms: i64,
    /// Whether a replica that knows its contents are wrong repairs itself from a peer.
    pub auto_repair: bool,
    /// Bounds on client and peer connections.
    pub connections: crate::listener::ConnectionLimits,
    /// TLS on the port and towards peers (off by default).
    pub tls: crate::tls::TlsSettings,
}

impl ServerConfig {
    /// Where requests and results wait on disk when they are too large for memory (the
    /// data directory's file system, so that a spilled upload costs no memory on tmpfs).
    pub fn spill_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 10035,
            max_body_bytes: 1 << 30,
            memory: None,
            default_query_timeout: None,
            default_dataset: quadmesh_store::DatasetBehavior::All,
            default_session_lifetime: Duration::from_secs(300),
            max_session_lifetime: Duration::from_secs(24 * 3600),
            fsync: true,
            checkpoint_interval: Duration::from_secs(60),
            log_retention: Duration::from_secs(24 * 3600),
            role: Role::Standalone,
            clock_offset_ms: 0,
            auto_repair: true,
            connections: crate::listener::ConnectionLimits {
                max_connections: 1024,
                max_connections_per_client: 512,
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(120),
            },
            tls: Default::default(),
        }
    }
}

/// What the server does about its cluster by itself (`roles.rs` carries it out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// No cluster is made or joined by the server itself.
    Standalone,
    Controlling {
        /// Each its own cluster, controlled here.
        repositories: Vec<String>,
        instance: String,
        /// `host:port` the others reach this instance at.
        advertise: String,
        /// `host:port`s where members of an existing cluster may answer (each host
        /// resolved to all its addresses), asked before a new cluster is made.
        peers: Vec<String>,
    },
    Copy {
        /// Each its own cluster, joined here.
        repositories: Vec<String>,
        instance: String,
        advertise: String,
        /// `host:port` of the controlling instance.
        controlling: String,
    },
}

impl Role {
    /// The replicated repositories the role keeps (none standalone).
    pub fn repositories(&self) -> &[String] {
        match self {
            Role::Standalone => &[],
            Role::Controlling { repositories, .. } | Role::Copy { repositories, .. } => {
                repositories
            }
        }
    }
}
