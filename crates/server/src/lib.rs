//! The HTTP server of quadmesh: AllegroGraph's REST protocol and the W3C SPARQL
//! protocols over the storage layer and the cluster runtime (`quadmesh_cluster`). This
//! is the only crate that serves HTTP.

mod access;
mod access_sync;
mod audit;
mod auth;
mod auth_error;
mod causal;
mod cluster_ops;
mod config;
mod error;
mod formats;
mod http_metrics;
mod listener;
mod memory_budget;
mod metrics;
mod middleware;
mod multipart;
mod params;
mod permissions;
mod point_in_time;
mod readiness;
mod request_url;
mod results;
mod roles;
mod routes;
mod secrets;
mod session_forward;
mod sessions;
mod signin_throttle;
mod state;
mod streaming;
mod target;
mod terms;
mod tls;
mod ui;
mod upload;

pub use audit::TARGET as AUDIT_TARGET;
pub use auth::{Auth, AuthError};
pub use config::Role;
pub use config::ServerConfig;
pub use error::ApiError;
pub use listener::ConnectionLimits;
pub use memory_budget::{container_limit_mib, LimitSource, MemoryBudget};
pub use results::render_table;
pub use routes::server::VERSION;
pub use tls::{TlsError, TlsSettings};

use quadmesh_repl::{HybridClock, SystemClock};
use quadmesh_store::{Catalog, LogOptions, RepositoryOptions};
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cannot open the data directory: {0}")]
    Store(#[from] quadmesh_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    PeerHttp(#[from] quadmesh_cluster::peer_http::PeerHttpError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Maximum clock offset tolerated from a peer, in milliseconds.
const MAX_CLOCK_OFFSET_MS: u64 = 500;

/// How long a member keeps taking local writes without measuring a majority's clocks
/// (the clock fence's sample lifetime): half the log retention, between 1 s and an hour.
/// Shorter than the retention, so that an instance cut off from a majority stops
/// acknowledging writes well before the others stop keeping what it lacks.
pub fn clock_lease(log_retention: std::time::Duration) -> std::time::Duration {
    (log_retention / 2).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(3600),
    )
}

/// Runs a server until `shutdown` resolves; then stops taking requests, finishes the
/// ones in flight and checkpoints every repository.
pub async fn serve(
    config: ServerConfig,
    credentials: Option<(String, String)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir)?;
    std::fs::create_dir_all(config.spill_dir())?;
    let clock = Arc::new(HybridClock::new(
        SystemClock::with_offset_ms(config.clock_offset_ms),
        MAX_CLOCK_OFFSET_MS,
    ));
    let (dir, given, fsync) = (config.data_dir.clone(), credentials.clone(), config.fsync);
    let access_clock = clock.clone();
    let (auth, access) = tokio::task::spawn_blocking(move || {
        let access = Arc::new(access::Access::open(&dir, access_clock, fsync)?);
        Ok::<_, ServeError>((Auth::init(&dir, given, access.clone())?, access))
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    let mut options = RepositoryOptions {
        log: LogOptions {
            fsync: config.fsync,
            ..LogOptions::default()
        },
        clock_fence: Some(clock_lease(config.log_retention)),
        ..RepositoryOptions::default()
    };
    if let Some(budget) = config.memory {
        let threads = quadmesh_store::parse_threads();
        // Never larger than without a limit.
        options.loader_batch_quads = budget
            .loader_batch_quads(threads)
            .min(options.loader_batch_quads);
        options.checkpoint_every_bytes = Some(budget.checkpoint_every_bytes());
        tracing::info!(
            limit_mib = budget.limit_mib,
            source = ?budget.source,
            max_body_mib = config.max_body_bytes >> 20,
            loader_batch_quads = options.loader_batch_quads,
            checkpoint_every_mib = budget.checkpoint_every_bytes() >> 20,
            "memory limit: what it bounds"
        );
    }
    let data_dir = config.data_dir.clone();
    let catalog = tokio::task::spawn_blocking(move || Catalog::open(&data_dir, clock, options))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let addr = SocketAddr::new(config.bind, config.port);
    let peer_http = quadmesh_cluster::peer_http::PeerHttp::new(
        tls::peer_client_config(&config.tls)?,
        config.tls.peers_use_tls(),
    )?;
    let state = AppState::new(config, catalog, auth, access, peer_http);
    let server_tls = tls::ServerTls::start(&state.config.tls, state.tls.clone())?;
    state.replication.start_existing();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    tracing::info!(
        %addr,
        tls = server_tls.is_some(),
        data_dir = %state.config.data_dir.display(),
        "quadmesh is listening"
    );

    let maintenance = tokio::spawn(maintain(state.clone()));
    let scrubbing = tokio::spawn(scrub(state.clone()));
    let repairing = state.config.auto_repair.then(|| {
        tokio::spawn(quadmesh_cluster::repair::repair_forever(
            state.replication.clone(),
        ))
    });
    let healing = tokio::spawn(quadmesh_cluster::log_heal::heal_forever(
        state.replication.clone(),
    ));
    let handing_over = tokio::spawn(quadmesh_cluster::hand_over::complete_forever(
        state.replication.clone(),
    ));
    let role = tokio::spawn(roles::run(state.clone(), credentials.clone()));
    let access_in_step = tokio::spawn(access_sync::keep_in_step(state.clone()));
    let sampling = tokio::spawn(ui::charts::keep_sampling(state.clone()));
    let stopping = state.clone();
    let shutdown = async move {
        shutdown.await;
        role.abort();
        roles::leave(&stopping, &credentials).await;
        // Pull streams never end by themselves: end them, and stop pulling.
        stopping.shutdown.cancel();
        stopping.replication.stop_all();
    };
    listener::serve(
        listener,
        routes::router(state.clone()),
        state.config.connections,
        server_tls.map(Arc::new),
        |stream| {
            if let Err(e) = quadmesh_cluster::configure_accepted(stream) {
                tracing::debug!(error = %e, "cannot set TCP keepalive on a connection");
            }
        },
        shutdown,
    )
    .await?;
    maintenance.abort();
    scrubbing.abort();
    access_in_step.abort();
    sampling.abort();
    healing.abort();
    handing_over.abort();
    if let Some(repairing) = repairing {
        repairing.abort();
    }
    tokio::task::spawn_blocking(move || state.catalog.close_all())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    tracing::info!("quadmesh stopped");
    Ok(())
}

/// Background upkeep: expire sessions every second, checkpoint (and so prune) every
/// `checkpoint_interval`, and a repository as soon as it logged enough entries for one
/// (checked every second; the checkpoint holds up no write, see
/// `Repository::checkpoint`).
async fn maintain(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        state.sessions.reap();
        for repository in state.catalog.list() {
            if repository.checkpoint_due() {
                let name = repository.name().to_owned();
                match tokio::task::spawn_blocking(move || repository.checkpoint()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(repository = %name, error = %e, "checkpoint failed; it is tried again later")
                    }
                    Err(e) => {
                        tracing::error!(repository = %name, error = %e, "checkpoint task failed")
                    }
                }
            }
        }
        if last_checkpoint.elapsed() >= state.config.checkpoint_interval {
            last_checkpoint = tokio::time::Instant::now();
            let state = state.clone();
            let result = tokio::task::spawn_blocking(move || state.catalog.checkpoint_all()).await;
            if let Ok(Err(e)) = result {
                tracing::error!(error = %e, "periodic checkpoint failed");
            }
        }
    }
}

/// How often every repository's store is scanned to check its content digest.
const SCRUB_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Anti-entropy's own check: soon after start and then daily, recompute each
/// repository's content digest from its store (see `Repository::scrub`), one
/// repository at a time on a blocking thread.
async fn scrub(state: AppState) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    loop {
        for repository in state.catalog.list() {
            let name = repository.name().to_owned();
            match tokio::task::spawn_blocking(move || repository.scrub()).await {
                Ok(Ok(true)) => {
                    tracing::debug!(repository = %name, "scrub: the store matches its digest")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(repository = %name, error = %e, "scrub failed"),
                Err(e) => tracing::error!(repository = %name, error = %e, "scrub task failed"),
            }
        }
        tokio::time::sleep(SCRUB_INTERVAL).await;
    }
}
