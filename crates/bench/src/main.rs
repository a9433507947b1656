//! `quadmesh-bench`: quadmesh against oxigraph's own server (`oxigraph serve`), in the
//! same run, on the same generated data. Prints a table of figures and ratios.

mod generator;
mod scenarios;
mod servers;
mod stats;

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
            std::io::stdout().write_all(generator::generate(products, seed).as_bytes())?;
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
    }
}
