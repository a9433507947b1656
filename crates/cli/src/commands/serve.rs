use anyhow::{bail, Context, Result};
use clap::Args;
use quadmesh_server::{LimitSource, MemoryBudget, Role, ServerConfig, TlsSettings};
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
    /// Largest request body accepted, in MiB (default: a thirty-second of the memory
    /// limit, or 1024 without one).
    #[arg(long, env = "QUADMESH_MAX_BODY_MB")]
    pub max_body_mb: Option<usize>,
    /// The memory this instance may use, in MiB (default: its container's limit, read
    /// from its cgroup, if it has one). Bounds the largest request body, the bulk
    /// loader's batches and the store's write buffers; README, "Sizing memory".
    #[arg(long, env = "QUADMESH_MEMORY_LIMIT_MIB")]
    pub memory_limit_mib: Option<u64>,
    /// Timeout of queries that set none, in seconds (0: none).
    #[arg(long, env = "QUADMESH_QUERY_TIMEOUT", default_value_t = 0)]
    pub query_timeout: u64,
    /// What a query without FROM, FROM NAMED or a dataset parameter sees as its default
    /// graph: `all` (AllegroGraph: every graph's quads) or `rdf` (W3C: the default graph
    /// alone). A repository's own setting wins (`/repositories/NAME/defaultDatasetBehavior`).
    #[arg(long, env = "QUADMESH_DEFAULT_DATASET", default_value = "all", value_parser = parse_dataset_behavior)]
    pub default_dataset: quadmesh_store::DatasetBehavior,
    /// Do not fsync the replication log on each commit (faster; a power loss may lose
    /// acknowledged commits, a process crash does not).
    #[arg(long, env = "QUADMESH_NO_FSYNC")]
    pub no_fsync: bool,
    /// Report a replica whose contents diverged (status, metrics, readiness) but do not
    /// repair it from a peer's snapshot (to examine it first).
    #[arg(long, env = "QUADMESH_NO_AUTO_REPAIR")]
    pub no_auto_repair: bool,
    /// Connections (clients and peers) open at once; more are closed when accepted.
    #[arg(long, env = "QUADMESH_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections open at once from one client address (a load balancer or a proxy
    /// in front is one address: raise it to --max-connections there).
    #[arg(
        long,
        env = "QUADMESH_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 512
    )]
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a request's headers (also the longest wait for the
    /// next request on a kept-alive HTTP/1.1 connection, and for the first request on a
    /// new connection, whether or not it sent a byte).
    #[arg(long, env = "QUADMESH_HEADER_READ_TIMEOUT", default_value_t = 30)]
    pub header_read_timeout: u64,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, env = "QUADMESH_IDLE_TIMEOUT", default_value_t = 120)]
    pub idle_timeout: u64,
    /// Seconds between checkpoints (store flush, register and log pruning); one is also
    /// taken after every 10,000 log entries.
    #[arg(long, env = "QUADMESH_CHECKPOINT_INTERVAL", default_value_t = 60)]
    pub checkpoint_interval: u64,
    /// Seconds the log is kept for an absent member; one away longer must be grown again.
    #[arg(long, env = "QUADMESH_LOG_RETENTION", default_value_t = 86400)]
    pub log_retention: u64,
    /// standalone; controlling (creates the cluster of --repo on first start, recovers
    /// it after); copy (joins the cluster at --controlling, leaves it on SIGTERM).
    #[arg(long, env = "QUADMESH_ROLE", default_value = "standalone")]
    pub role: RoleName,
    /// The replicated repositories (controlling and copy roles), comma-separated: each
    /// is its own cluster.
    #[arg(
        long,
        env = "QUADMESH_REPO",
        default_value = "repo",
        value_delimiter = ','
    )]
    pub repo: Vec<String>,
    /// This instance's name in the cluster (default: the host name, e.g. the pod name).
    #[arg(long, env = "QUADMESH_INSTANCE_NAME")]
    pub instance_name: Option<String>,
    /// HOST:PORT at which the other instances reach this one (default: host name and
    /// --port).
    #[arg(long, env = "QUADMESH_ADVERTISE")]
    pub advertise: Option<String>,
    /// Where members of an existing cluster may be (controlling role), as HOST:PORT,
    /// comma-separated; every address a host resolves to is asked (a headless service
    /// of the copies, e.g. `copy:10035`, or `tasks.copy:10035` on Swarm). A controlling
    /// instance that starts without data re-grows itself from a member found there
    /// instead of creating a second cluster.
    #[arg(long, env = "QUADMESH_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// HOST:PORT of the controlling instance (copy role).
    #[arg(long, env = "QUADMESH_CONTROLLING")]
    pub controlling: Option<String>,
    /// PEM certificate chain to serve (turns TLS on, with --tls-key): plain HTTP on the
    /// port is then refused unless --tls-keep-plain-http. Re-read when the file
    /// changes (checked every second); a bad new pair is logged and the old one kept.
    #[arg(long, env = "QUADMESH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "QUADMESH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate(s) of the CA that issues the other instances' certificates: peers
    /// are reached over https and trusted only if their certificate chains to it
    /// (default: the system's trust store).
    #[arg(long, env = "QUADMESH_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// The name peers' certificates must be valid for, whatever address they are
    /// reached at (needed where instances advertise IP addresses, as on Swarm, and for
    /// --peers); default: the host of each address. Needs --tls-ca.
    #[arg(long, env = "QUADMESH_TLS_PEER_NAME")]
    pub tls_peer_name: Option<String>,
    /// Keep taking plain HTTP on the port while TLS is on (one port for both, told apart
    /// by a connection's first byte): for moving a running cluster to TLS.
    #[arg(long, env = "QUADMESH_TLS_KEEP_PLAIN_HTTP")]
    pub tls_keep_plain_http: bool,
    /// For testing only: shift this server's view of the wall clock by this many
    /// milliseconds (positive: ahead), as if the machine's clock were off.
    #[arg(
        long,
        env = "QUADMESH_CLOCK_OFFSET_MS",
        default_value_t = 0,
        hide = true,
        allow_hyphen_values = true
    )]
    pub clock_offset_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleName {
    Standalone,
    Controlling,
    Copy,
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

    fn host_name() -> String {
        hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    }

    pub fn role(&self) -> Result<Role> {
        let instance = self.instance_name.clone().unwrap_or_else(Self::host_name);
        let advertise = self
            .advertise
            .clone()
            .unwrap_or_else(|| default_advertise(self.port));
        if !advertise.contains(':') {
            bail!("--advertise must be HOST:PORT, got '{advertise}'");
        }
        Ok(match self.role {
            RoleName::Standalone => Role::Standalone,
            RoleName::Controlling => Role::Controlling {
                repositories: self.repositories()?,
                instance,
                advertise,
                peers: self.peers.clone(),
            },
            RoleName::Copy => Role::Copy {
                repositories: self.repositories()?,
                instance,
                advertise,
                controlling: self
                    .controlling
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("--role copy needs --controlling HOST:PORT"))?,
            },
        })
    }

    /// `--repo`: at least one name, each valid and given once.
    fn repositories(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for name in &self.repo {
            quadmesh_store::validate_repository_name(name)
                .map_err(|e| anyhow::anyhow!("--repo: {e}"))?;
            if names.contains(name) {
                anyhow::bail!("--repo names '{name}' twice");
            }
            names.push(name.clone());
        }
        if names.is_empty() {
            anyhow::bail!("--repo needs at least one repository name");
        }
        Ok(names)
    }

    /// `--tls-*`: a certificate and its key together, the rest only where it means
    /// something.
    fn tls(&self) -> Result<TlsSettings> {
        let cert_and_key = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => bail!("--tls-cert is given without --tls-key (QUADMESH_TLS_KEY)"),
            (None, Some(_)) => bail!("--tls-key is given without --tls-cert (QUADMESH_TLS_CERT)"),
        };
        if self.tls_keep_plain_http && cert_and_key.is_none() {
            bail!("--tls-keep-plain-http needs --tls-cert and --tls-key");
        }
        if self.tls_peer_name.is_some() && self.tls_ca.is_none() {
            bail!("--tls-peer-name needs --tls-ca (the CA that issues the peers' certificates)");
        }
        Ok(TlsSettings {
            cert_and_key,
            ca: self.tls_ca.clone(),
            peer_name: self.tls_peer_name.clone(),
            keep_plain_http: self.tls_keep_plain_http,
        })
    }

    pub fn config(&self) -> Result<ServerConfig> {
        let mut config = ServerConfig::new(&self.data_dir);
        config.bind = self.bind;
        config.port = self.port;
        config.memory = match self.memory_limit_mib {
            Some(0) => bail!("--memory-limit-mib must be above 0"),
            Some(limit_mib) => Some(MemoryBudget {
                limit_mib,
                source: LimitSource::Setting,
            }),
            None => quadmesh_server::container_limit_mib().map(|limit_mib| MemoryBudget {
                limit_mib,
                source: LimitSource::Container,
            }),
        };
        config.max_body_bytes = match (self.max_body_mb, config.memory) {
            (Some(mib), _) => mib.saturating_mul(1 << 20),
            (None, Some(budget)) => budget.max_body_bytes(),
            (None, None) => 1 << 30,
        };
        config.default_query_timeout =
            (self.query_timeout > 0).then(|| Duration::from_secs(self.query_timeout));
        config.default_dataset = self.default_dataset;
        config.fsync = !self.no_fsync;
        config.checkpoint_interval = Duration::from_secs(self.checkpoint_interval.max(1));
        config.log_retention = Duration::from_secs(self.log_retention);
        config.role = self.role()?;
        config.clock_offset_ms = self.clock_offset_ms;
        config.auto_repair = !self.no_auto_repair;
        config.tls = self.tls()?;
        config.connections = quadmesh_server::ConnectionLimits {
            max_connections: self.max_connections.max(1),
            max_connections_per_client: self.max_connections_per_client.max(1),
            header_read_timeout: Duration::from_secs(self.header_read_timeout.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
        };
        Ok(config)
    }
}

/// Where the others reach this instance when `--advertise` is not given: the address
/// the host name resolves to when that is not a loopback address (in a container: its
/// address on the network, which other containers reach even where they cannot resolve
/// its host name, as on Swarm), else the host name.
fn parse_dataset_behavior(
    value: &str,
) -> std::result::Result<quadmesh_store::DatasetBehavior, String> {
    quadmesh_store::DatasetBehavior::parse(value)
        .ok_or_else(|| format!("'{value}': use all (AllegroGraph) or rdf (W3C)"))
}

fn default_advertise(port: u16) -> String {
    use std::net::ToSocketAddrs;
    let host = ServeArgs::host_name();
    let address = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.is_ipv4() && !a.ip().is_loopback()));
    match address {
        Some(a) => a.to_string(),
        None => format!("{host}:{port}"),
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let credentials = args.credentials()?;
    quadmesh_server::serve(args.config()?, credentials, shutdown_signal()).await?;
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
