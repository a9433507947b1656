use anyhow::{bail, Context, Result};
use clap::Args;
use quadmesh_server::ServerConfig;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where repositories, logs and the superuser record live.
    #[arg(long, env = "QUADMESH_DATA_DIR", default_value = "./quadmesh-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "QUADMESH_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// The one port for clients and for peers.
    #[arg(long, env = "QUADMESH_PORT", default_value_t = 10035)]
    pub port: u16,
    /// Superuser name; recorded on first start.
    #[arg(long, env = "QUADMESH_USER")]
    pub user: Option<String>,
    /// Superuser password (prefer QUADMESH_PASSWORD or --password-file).
    #[arg(long, env = "QUADMESH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// File holding the superuser password (a Kubernetes or Swarm secret).
    #[arg(long, env = "QUADMESH_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Largest request body accepted, in MiB.
    #[arg(long, env = "QUADMESH_MAX_BODY_MB", default_value_t = 1024)]
    pub max_body_mb: usize,
    /// Timeout of queries that set none, in seconds (0: none).
    #[arg(long, env = "QUADMESH_QUERY_TIMEOUT", default_value_t = 0)]
    pub query_timeout: u64,
    /// Do not fsync the replication log on each commit (faster; a power loss may lose
    /// acknowledged commits, a process crash does not).
    #[arg(long, env = "QUADMESH_NO_FSYNC")]
    pub no_fsync: bool,
    /// Seconds between checkpoints (store flush, register and log pruning).
    #[arg(long, env = "QUADMESH_CHECKPOINT_INTERVAL", default_value_t = 60)]
    pub checkpoint_interval: u64,
    /// Seconds the log is kept for an absent member; one away longer must be grown again.
    #[arg(long, env = "QUADMESH_LOG_RETENTION", default_value_t = 86400)]
    pub log_retention: u64,
}

impl ServeArgs {
    /// The superuser credentials given, if any.
    pub fn credentials(&self) -> Result<Option<(String, String)>> {
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the password file {}", path.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
            (None, None) => None,
        };
        match (&self.user, password) {
            (Some(user), Some(password)) => Ok(Some((user.clone(), password))),
            (None, None) => Ok(None),
            (Some(_), None) => bail!("--user is given but no password: add --password, QUADMESH_PASSWORD or QUADMESH_PASSWORD_FILE"),
            (None, Some(_)) => bail!("a password is given but no --user (or QUADMESH_USER)"),
        }
    }

    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(&self.data_dir);
        config.bind = self.bind;
        config.port = self.port;
        config.max_body_bytes = self.max_body_mb.saturating_mul(1 << 20);
        config.default_query_timeout =
            (self.query_timeout > 0).then(|| Duration::from_secs(self.query_timeout));
        config.fsync = !self.no_fsync;
        config.checkpoint_interval = Duration::from_secs(self.checkpoint_interval.max(1));
        config.log_retention = Duration::from_secs(self.log_retention);
        config
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let credentials = args.credentials()?;
    quadmesh_server::serve(args.config(), credentials, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
