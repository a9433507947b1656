//! `quadmesh-bench cluster-load`: the generated dataset loaded into a fresh 3-instance
//! cluster over HTTP (POSTs of `--lines-per-post` lines, 100,000 by default, to the
//! controlling instance, one after another), until every member has applied the last
//! one, optionally with each member under its own memory limit (a cgroup, as `docker run
//! --memory` or a pod's limit sets it). Prints the rate, each member's CPU-seconds and
//! peak memory, and whether the kernel killed any.

use crate::cgroup::MemoryLimit;
use crate::scenarios::{
    caught_up, cluster, load_average, post_chunks_of, write_dataset, Http, REPO,
};
use crate::servers::Server;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ClusterLoadArgs {
    /// Products in the dataset (about 50 triples each; 200,000 is about 10 M triples).
    #[arg(long, default_value_t = 4000)]
    pub products: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Put each member in a cgroup of its own with this memory limit (MiB); the kernel
    /// kills a member that goes over, as it would a pod. Needs root.
    #[arg(long)]
    pub memory_limit_mib: Option<u64>,
    /// Lines of N-Triples per POST.
    #[arg(long, default_value_t = 100_000)]
    pub lines_per_post: usize,
    #[arg(long)]
    pub quadmesh: PathBuf,
    /// Where the servers keep their data (a fresh directory is made inside).
    #[arg(long, default_value = "/tmp")]
    pub work_dir: PathBuf,
}

pub async fn cluster_load(args: ClusterLoadArgs) -> Result<()> {
    let work = args
        .work_dir
        .join(format!("quadmesh-cluster-load-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let outcome = run_in(&args, &work).await;
    if std::env::var_os("QUADMESH_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    outcome
}

async fn run_in(args: &ClusterLoadArgs, work: &std::path::Path) -> Result<()> {
    let data = work.join("data.nt");
    let (triples, mib) = write_dataset(&data, args.products, args.seed)?;
    println!(
        "{triples} triples ({mib:.0} MiB of N-Triples) into a 3-instance cluster; load average {}",
        load_average()
    );
    let http = Http::new()?;
    // Declared before the members, so dropped after them: a cgroup is removed only once
    // its process has ended.
    let limits: Vec<MemoryLimit> = match args.memory_limit_mib {
        Some(limit) => (0..3)
            .map(|i| {
                MemoryLimit::create(
                    &format!("quadmesh-bench-{}-node{i}", std::process::id()),
                    limit,
                )
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let mut members: Vec<Server> = (0..3)
        .map(|i| {
            Server::quadmesh_limited(
                &args.quadmesh,
                &format!("node{i}"),
                &work.join(format!("node{i}")),
                limits.get(i).map(MemoryLimit::procs).as_deref(),
            )
        })
        .collect::<Result<_>>()?;
    http.create_repository(&members[0], REPO).await?;
    cluster(&http, &members, REPO).await?;
    for member in &members {
        member.reset_peak()?;
    }
    let cpu_before: Vec<f64> = members.iter().map(Server::cpu_seconds).collect();
    let started = Instant::now();
    let loaded = async {
        let token = post_chunks_of(
            &http,
            &members[0].url(&format!("/repositories/{REPO}/statements")),
            true,
            &data,
            args.lines_per_post,
        )
        .await?
        .context("the cluster's answer to a load had no causal token")?;
        let answered = started.elapsed().as_secs_f64();
        caught_up(&http, &members, REPO, &token, triples, started).await?;
        Ok::<_, anyhow::Error>(answered)
    }
    .await;
    let answered = match loaded {
        Ok(answered) => answered,
        Err(error) => {
            // Say which member ended and why, rather than only the refused connection.
            let mut ended = Vec::new();
            for (i, member) in members.iter_mut().enumerate() {
                if let Some(status) = member.exit_status() {
                    let kills = limits.get(i).map_or(0, MemoryLimit::oom_kills);
                    ended.push(format!(
                        "{} ended ({status}; OOM kills in its cgroup: {kills})",
                        member.name
                    ));
                }
            }
            if ended.is_empty() {
                return Err(error);
            }
            bail!("{}: {error:#}", ended.join("; "));
        }
    };
    let all = started.elapsed().as_secs_f64();
    let cpu: Vec<f64> = members
        .iter()
        .zip(&cpu_before)
        .map(|(m, before)| m.cpu_seconds() - before)
        .collect();
    let per_million = |seconds: f64| seconds / (triples as f64 / 1e6);
    let each = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };

    println!("\n| measure | origin / replica / replica | note |\n|---|---|---|");
    let line = |what: &str, value: String, note: &str| println!("| {what} | {value} | {note} |");
    line(
        "POSTs answered (s)",
        format!("{answered:.1}"),
        &format!("{}-line POSTs, one after another", args.lines_per_post),
    );
    line(
        "every member holds all (s); triples/s",
        format!("{all:.1}; {:.0}", triples as f64 / all),
        "the last POST's causal token answered by each member",
    );
    line(
        "CPU-seconds per million triples",
        each(&cpu.iter().map(|c| per_million(*c)).collect::<Vec<_>>()),
        &format!(
            "replica / origin {:.2}",
            (cpu[1] + cpu[2]) / 2.0 / cpu[0].max(f64::EPSILON)
        ),
    );
    line(
        "peak resident memory during the load (MiB, VmHWM)",
        each(
            &members
                .iter()
                .map(Server::peak_memory_mib)
                .collect::<Vec<_>>(),
        ),
        "the process's own pages",
    );
    line(
        "resident memory after it (MiB)",
        each(&members.iter().map(Server::memory_mib).collect::<Vec<_>>()),
        "",
    );
    if let Some(limit) = args.memory_limit_mib {
        let peaks: Vec<String> = limits
            .iter()
            .map(|l| l.peak_mib().map_or("?".into(), |p| format!("{p:.0}")))
            .collect();
        line(
            &format!("peak charged to each member's cgroup (MiB, limit {limit})"),
            peaks.join(" / "),
            "page cache included: the kernel reclaims it before it kills",
        );
        let kills: Vec<u64> = limits.iter().map(MemoryLimit::oom_kills).collect();
        line(
            "OOM kills",
            kills
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            "every member alive and holding every triple",
        );
        if kills.iter().any(|k| *k > 0) {
            bail!("the OOM killer ended a process in a member's cgroup");
        }
    }
    println!("\nload average at the end: {}", load_average());
    Ok(())
}
