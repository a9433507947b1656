//! `quadmesh-bench`: quadmesh against oxigraph's own server (`oxigraph serve`), in the
//! same run, on the same generated data. Prints a table of figures and ratios. `soak`
//! runs a cluster under mixed load and watches its memory.

mod cgroup;
mod cluster_load;
mod generator;
mod lag;
mod scenarios;
mod servers;
mod soak;
mod stats;
mod tombstones;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "quadmesh-bench",
    about = "Benchmarks quadmesh against oxigraph serve"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the generated dataset (N-Triples) to standard output.
    Generate {
        /// Products (about 50 triples each).
        #[arg(long, default_value_t = 4000)]
        products: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Run every benchmark and print the table.
    Run(scenarios::RunArgs),
    /// Load the dataset into a fresh 3-instance cluster, optionally with each member
    /// under a memory limit; prints the rate, CPU and memory of each member.
    ClusterLoad(cluster_load::ClusterLoadArgs),
    /// Run a 3-instance cluster under mixed reads and writes, sampling its memory.
    Soak(soak::SoakArgs),
    /// Replication lag at a high commit rate on a fresh 3-instance cluster (the run's
    /// row, alone).
    Lag {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 16)]
        writers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        quadmesh: PathBuf,
        #[arg(long, default_value = "/tmp")]
        work_dir: PathBuf,
    },
    /// What deletes by pattern (range tombstones) cost on a 3-instance cluster.
    Tombstones(tombstones::TombstoneArgs),
    /// Send the query mix to a running server (for profiling); prints queries/s.
    Queries {
        /// The SPARQL endpoint: `http://HOST:PORT/repositories/NAME`, or oxigraph's
        /// `http://HOST:PORT/query`.
        url: String,
        /// Send the bench's credentials (a quadmesh started with them).
        #[arg(long)]
        auth: bool,
        /// The products of the loaded dataset.
        #[arg(long, default_value_t = 4000)]
        products: usize,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Generate { products, seed } => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            generator::generate_into(products, seed, &mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Run(args) => {
            let quadmesh: PathBuf = args.quadmesh.clone();
            let oxigraph: PathBuf = args.oxigraph.clone();
            anyhow::ensure!(
                quadmesh.exists(),
                "no quadmesh binary at {}",
                quadmesh.display()
            );
            anyhow::ensure!(
                oxigraph.exists(),
                "no oxigraph binary at {}",
                oxigraph.display()
            );
            scenarios::run(args).await.context("benchmark failed")
        }
        Command::Queries {
            url,
            auth,
            products,
            clients,
            seconds,
            seed,
        } => {
            let http = reqwest::Client::new();
            let rate =
                scenarios::query_load(&http, url, auth, clients, seconds, products, seed).await?;
            println!("{rate:.0} queries/s");
            Ok(())
        }
        Command::Lag {
            rate,
            writers,
            seconds,
            quadmesh,
            work_dir,
        } => lag::lag_alone(&quadmesh, &work_dir, rate, writers, seconds).await,
        Command::ClusterLoad(args) => {
            anyhow::ensure!(
                args.quadmesh.exists(),
                "no quadmesh binary at {}",
                args.quadmesh.display()
            );
            cluster_load::cluster_load(args)
                .await
                .context("cluster load failed")
        }
        Command::Tombstones(args) => tombstones::tombstones(args)
            .await
            .context("tombstone benchmark failed"),
        Command::Soak(args) => {
            anyhow::ensure!(
                args.quadmesh.exists(),
                "no quadmesh binary at {}",
                args.quadmesh.display()
            );
            soak::soak(args).await.context("soak failed")
        }
    }
}
