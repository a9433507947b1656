//! The replication runtime of a quadmesh server: one [`Node`] per replicated
//! repository, pulling from every other member over the main port and serving pull
//! streams to them, with the membership changes, repair, log healing, hand-overs and
//! the controlling instance's recovery. It runs the engines of `quadmesh_repl` over the
//! store and the peer client: the decisions are theirs, the I/O is here.
//!
//! Rules it keeps:
//! - no HTTP server here (no axum): the server's routes call in and turn what comes
//!   back — values, byte streams, [`ClusterError`] — into responses;
//! - storage work runs on blocking threads, never on async workers.

pub mod anti_entropy;
pub mod clock_probe;
pub mod controlling_recovery;
pub mod durability;
pub mod error;
pub mod hand_over;
pub mod log_heal;
pub mod membership;
pub mod node;
pub mod peer_http;
pub mod promotion;
mod puller;
pub mod removal;
pub mod repair;
pub mod resolver;
pub mod snapshot_transfer;
pub mod stream;

pub use error::{ClusterError, ClusterResult};
pub use node::Node;

/// A pull stream silent for this long is taken as dead (the pull machine's rule).
pub const STALL_AFTER: Duration = Duration::from_millis(quadmesh_repl::pull::STALL_AFTER_MS);

use peer_http::PeerHttp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use quadmesh_store::{Catalog, Repository};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Header carrying the cluster token on instance-to-instance calls.
pub const TOKEN_HEADER: &str = "x-quadmesh-cluster-token";
/// Header naming the calling instance's origin id.
pub const ORIGIN_HEADER: &str = "x-quadmesh-origin";
/// Header carrying the caller's version vector (JSON) on a pull request.
pub const VERSION_VECTOR_HEADER: &str = "x-quadmesh-version-vector";
/// Header of a pull stream's answer carrying the serving instance's clock
/// (`clock_probe::ClockReading` as JSON): opening a stream measures the peer's clock
/// for the clock fence, so a peer shown connected has been measured.
pub const CLOCK_HEADER: &str = "x-quadmesh-clock";

/// TCP keepalive on every connection, peer and client alike: first probe after this
/// much idleness, then every `TCP_KEEPALIVE_INTERVAL`, given up after
/// `TCP_KEEPALIVE_RETRIES` unanswered probes (a vanished peer is noticed in ~20 s).
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(3);
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// Sent data unacknowledged for this long ends the connection (Linux `TCP_USER_TIMEOUT`).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets TCP keepalive (and, on Linux, the unacknowledged-data bound) on an accepted
/// connection, as the peer client does on its own: a peer that vanished without
/// closing is then noticed and its pull stream ends. What a connected but silent or
/// hostile client may do is not bounded here.
pub fn configure_accepted(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    socket.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(TCP_KEEPALIVE_IDLE)
            .with_interval(TCP_KEEPALIVE_INTERVAL)
            .with_retries(TCP_KEEPALIVE_RETRIES),
    )?;
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    socket.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))?;
    Ok(())
}

pub use quadmesh_repl::{PeerRefusal, RefusalCode};

/// The replication nodes of a server, by repository name, and what they share: the
/// server's catalog, the peer client, the log retention and the metrics.
pub struct Replication {
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    catalog: Arc<Catalog>,
    http: PeerHttp,
    log_retention: Duration,
    /// Anti-entropy repairs made and failed since the start.
    pub repairs: RepairCounts,
    /// How long after its commit on the origin each transaction from a peer was
    /// applied here, by repository (`/metrics`).
    pub apply_delay: ApplyDelay,
}

/// Seconds from a transaction's stamp on its origin to its being applied here.
pub type ApplyDelay = Family<RepositoryLabel, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepositoryLabel {
    pub repository: String,
}

/// Buckets fine enough to tell a lag of 1 ms from 5 ms (stamps have ms precision).
fn apply_delay_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 60.0,
    ])
}

impl Replication {
    pub fn new(catalog: Arc<Catalog>, http: PeerHttp, log_retention: Duration) -> Self {
        Replication {
            nodes: Mutex::new(HashMap::new()),
            catalog,
            http,
            log_retention,
            repairs: RepairCounts::default(),
            apply_delay: ApplyDelay::new_with_constructor(apply_delay_histogram),
        }
    }

    /// Starts nodes for the repositories that are in a cluster (after a restart).
    pub fn start_existing(&self) {
        for repository in self.catalog.list() {
            if repository.cluster().config.is_some() {
                self.ensure(repository);
            }
        }
    }

    /// The node of a replicated repository, started if it is not running.
    pub fn ensure(&self, repository: Arc<Repository>) -> Arc<Node> {
        let mut nodes = self.lock();
        if let Some(node) = nodes.get(repository.name()) {
            if Arc::ptr_eq(node.repository(), &repository) {
                return node.clone();
            }
            node.stop();
        }
        let apply_delay = self
            .apply_delay
            .get_or_create(&RepositoryLabel {
                repository: repository.name().to_owned(),
            })
            .clone();
        let node = Node::start(
            repository.clone(),
            apply_delay,
            self.http.clone(),
            self.log_retention,
            |node, peer| tokio::spawn(puller::pull_forever(node, peer)),
        );
        node.keep_prober(tokio::spawn(clock_probe::run(Arc::downgrade(&node))));
        nodes.insert(repository.name().to_owned(), node.clone());
        node
    }

    pub fn get(&self, name: &str) -> Option<Arc<Node>> {
        self.lock().get(name).cloned()
    }

    /// Stops the node of a repository (it was deleted).
    pub fn stop(&self, name: &str) {
        if let Some(node) = self.lock().remove(name) {
            node.stop();
        }
        self.apply_delay.remove(&RepositoryLabel {
            repository: name.to_owned(),
        });
    }

    /// Stops every node (the server is stopping).
    pub fn stop_all(&self) {
        for (_, node) in self.lock().drain() {
            node.stop();
        }
    }

    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.lock().values().cloned().collect()
    }

    pub fn http(&self) -> &PeerHttp {
        &self.http
    }

    /// The server's repositories.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Node>>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Milliseconds since the epoch, for last-contact times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Repairs done and failed, for metrics.
#[derive(Debug, Default)]
pub struct RepairCounts {
    pub done: AtomicU64,
    pub failed: AtomicU64,
}
