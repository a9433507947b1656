//! The `quadmesh` command: the server, and client commands that speak its REST API
//! (repositories, loading, queries, export) with agtool's REPO-SPEC.

mod client;
mod commands;
mod spec;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "quadmesh",
    version,
    about = "Multi-master replicated RDF/SPARQL database server"
)]
struct Cli {
    /// Log format: text for people, json for log collectors.
    #[arg(
        long,
        global = true,
        env = "QUADMESH_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log filter, e.g. info or quadmesh_server=debug (RUST_LOG works too).
    #[arg(long, global = true, env = "QUADMESH_LOG", default_value = "info")]
    log: String,
    /// Client commands: trust only the CA certificate(s) in this PEM file for
    /// https:// REPO-SPECs (default: the system's trust store). `serve` takes --tls-ca.
    #[arg(long, global = true, env = "QUADMESH_CA")]
    ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a controlling instance and copies on this machine (ports 10035, 10036, ...).
    LocalCluster(commands::local_cluster::LocalClusterArgs),
    /// Run a quadmesh server.
    Serve(Box<commands::serve::ServeArgs>),
    /// Create, delete or list repositories.
    #[command(subcommand)]
    Repo(commands::repo::RepoCommand),
    /// Replication clusters: create-cluster, grow-cluster, remove, stop, start,
    /// controlling-instance, settings, status.
    #[command(subcommand)]
    Repl(commands::repl::ReplCommand),
    /// Load RDF files into a repository.
    Load(commands::load::LoadArgs),
    /// Run a SPARQL query.
    Query(commands::query::QueryArgs),
    /// Write every statement of a repository.
    Export(commands::export::ExportArgs),
    /// Take an online, consistent, checksummed backup of a repository.
    Backup(commands::backup::BackupArgs),
    /// Restore a backup into a server as a new repository.
    Restore(commands::backup::RestoreArgs),
}

/// Logs to stderr in the chosen format; the audit log (target `quadmesh::audit`) always
/// as JSON lines, whatever the format and the filter, so that it can be routed apart.
fn init_logging(cli: &Cli) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let audit = quadmesh_server::AUDIT_TARGET;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&cli.log))
        .add_directive(format!("{audit}=off").parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match cli.log_format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    let audit_lines = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_filter(Targets::new().with_target(audit, LevelFilter::INFO));
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(audit_lines)
        .init();
}

fn main() -> ExitCode {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
        .block_on(async_main())
}

/// jemalloc for every allocation of the process, RocksDB's included (`malloc` itself is
/// replaced). With glibc's allocator a server's resident memory was large and kept
/// climbing: glibc gives threads that allocate at once arenas of their own, and memory
/// freed in one stays there, so a server whose work runs on a pool of blocking threads
/// spread its allocations over many arenas (`quadmesh-bench soak`, 3 instances with 192k
/// triples: 400–480 MiB each, growing ~10 MiB a minute; two arenas halved it but slowed
/// allocation-heavy work). jemalloc bounds fragmentation per size class and returns
/// freed pages to the system after a delay (10 s), from a background thread (the
/// `background_threads` feature turns it on; `MALLOC_CONF` still overrides).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

async fn async_main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    if let Some(ca) = cli.ca.clone() {
        client::trust_ca(ca);
    }
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes, without a backtrace: users get the message.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::LocalCluster(args) => commands::local_cluster::run(args).await,
        Command::Serve(args) => commands::serve::run(*args).await,
        Command::Repo(command) => commands::repo::run(command).await,
        Command::Repl(command) => commands::repl::run(command).await,
        Command::Load(args) => commands::load::run(args).await,
        Command::Query(args) => commands::query::run(args).await,
        Command::Export(args) => commands::export::run(args).await,
        Command::Backup(args) => commands::backup::backup(args).await,
        Command::Restore(args) => commands::backup::restore(args).await,
    }
}
