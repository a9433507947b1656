//! The measurements. Each prints its rows as soon as it is done.

use crate::generator::{generate, queries};
use crate::servers::{Server, PASSWORD, USER};
use crate::stats::percentile_ms;
use anyhow::{ensure, Context, Result};
use rand::SeedableRng;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Products in the dataset (about 50 triples each).
    #[arg(long, default_value_t = 4000)]
    pub products: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Concurrent query clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Seconds of queries per server.
    #[arg(long, default_value_t = 10)]
    pub query_seconds: u64,
    /// Seconds of rest between the loads and the queries.
    #[arg(long, default_value_t = 10)]
    pub settle_seconds: u64,
    /// Commits per second for the replication-lag measurement.
    #[arg(long, default_value_t = 100)]
    pub commit_rate: u64,
    #[arg(long)]
    pub quadmesh: PathBuf,
    #[arg(long)]
    pub oxigraph: PathBuf,
    /// Where the servers keep their data (a fresh directory is made inside).
    #[arg(long, default_value = "/tmp")]
    pub work_dir: PathBuf,
}

const REPO: &str = "bench";
const CHUNK: usize = 100_000;

fn row(what: &str, quadmesh: &str, peer: &str, ratio: &str, limit: &str) {
    println!("| {what} | {quadmesh} | {peer} | {ratio} | {limit} |");
}

struct Http(reqwest::Client);

impl Http {
    async fn ok(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("{status}: {}", response.text().await.unwrap_or_default());
        }
        Ok(response)
    }

    async fn quadmesh_size(&self, server: &Server, repo: &str) -> Result<usize> {
        let r = self
            .ok(self
                .0
                .get(server.url(&format!("/repositories/{repo}/size")))
                .basic_auth(USER, Some(PASSWORD)))
            .await?;
        Ok(r.text().await?.trim().parse()?)
    }

    async fn oxigraph_size(&self, server: &Server) -> Result<usize> {
        let r = self
            .ok(self
                .0
                .post(server.url("/query"))
                .header("content-type", "application/sparql-query")
                .header("accept", "application/sparql-results+json")
                .body("SELECT (COUNT(*) AS ?c) { ?s ?p ?o }"))
            .await?;
        let json: serde_json::Value = r.json().await?;
        Ok(json["results"]["bindings"][0]["c"]["value"]
            .as_str()
            .unwrap_or("0")
            .parse()?)
    }
}

/// Chunks of whole lines.
fn chunks(data: &str) -> Vec<String> {
    let lines: Vec<&str> = data.lines().collect();
    lines.chunks(CHUNK).map(|c| c.join("\n") + "\n").collect()
}

async fn load_quadmesh(http: &Http, server: &Server, repo: &str, parts: &[String]) -> Result<()> {
    for part in parts {
        http.ok(http
            .0
            .post(server.url(&format!("/repositories/{repo}/statements")))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/n-triples")
            .body(part.clone()))
            .await?;
    }
    Ok(())
}

async fn load_oxigraph(http: &Http, server: &Server, parts: &[String]) -> Result<()> {
    for part in parts {
        http.ok(http
            .0
            .post(server.url("/store?default"))
            .header("content-type", "application/n-triples")
            .body(part.clone()))
            .await?;
    }
    Ok(())
}

async fn cluster(http: &Http, servers: &[Server], repo: &str) -> Result<()> {
    let first = &servers[0];
    http.ok(http
        .0
        .put(first.url(&format!("/repositories/{repo}/repl/createCluster")))
        .basic_auth(USER, Some(PASSWORD))
        .query(&[
            ("host", "127.0.0.1"),
            ("port", &first.port.to_string()),
            ("instanceName", &first.name),
        ]))
    .await?;
    for server in &servers[1..] {
        grow(http, first, server, repo).await?;
    }
    Ok(())
}

async fn grow(http: &Http, controlling: &Server, new: &Server, repo: &str) -> Result<()> {
    http.ok(http
        .0
        .put(controlling.url(&format!("/repositories/{repo}/repl/growCluster")))
        .basic_auth(USER, Some(PASSWORD))
        .query(&[
            ("host", "127.0.0.1"),
            ("port", &new.port.to_string()),
            ("name", repo),
            ("user", USER),
            ("password", PASSWORD),
            ("instanceName", &new.name),
        ]))
    .await?;
    Ok(())
}

/// Queries from `clients` concurrent clients for `seconds`; returns queries per second.
async fn query_load(
    http: &reqwest::Client,
    url: String,
    auth: bool,
    clients: usize,
    seconds: u64,
    products: usize,
    seed: u64,
) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, url, done, stop) = (http.clone(), url.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed + client as u64);
            while !stop.load(Ordering::Relaxed) {
                let mut request = http
                    .post(&url)
                    .header("content-type", "application/sparql-query")
                    .header("accept", "application/sparql-results+json")
                    .body(queries(&mut rng, products));
                if auth {
                    request = request.basic_auth(USER, Some(PASSWORD));
                }
                let response = request.send().await?;
                ensure!(
                    response.status().is_success(),
                    "query failed: {}",
                    response.text().await?
                );
                response.bytes().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Small commits on `servers[0]`; the time each one took, and (when asked) the delay
/// until each was visible on every other server.
async fn commits(
    http: &Http,
    servers: &[Server],
    repo: &str,
    count: usize,
    rate: Option<u64>,
    settings: Option<&str>,
    watch: bool,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let base = http.quadmesh_size(&servers[0], repo).await?;
    let acks: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; count]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut watchers = Vec::new();
    if watch {
        for server in &servers[1..] {
            let (client, url, acks, stop) = (
                http.0.clone(),
                server.url(&format!("/repositories/{repo}/size")),
                acks.clone(),
                stop.clone(),
            );
            watchers.push(tokio::spawn(async move {
                let mut seen = vec![None; count];
                let mut next = 0;
                while next < count && !stop.load(Ordering::Relaxed) {
                    let size: usize = client
                        .get(&url)
                        .basic_auth(USER, Some(PASSWORD))
                        .send()
                        .await?
                        .text()
                        .await?
                        .trim()
                        .parse()?;
                    let now = Instant::now();
                    while next < count && size > base + next {
                        seen[next] = Some(now);
                        next += 1;
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                let acks = acks.lock().unwrap().clone();
                anyhow::Ok(
                    seen.iter()
                        .zip(acks)
                        .filter_map(|(s, a)| Some(s.as_ref()?.saturating_duration_since(a?)))
                        .collect::<Vec<_>>(),
                )
            }));
        }
    }
    let mut latencies = Vec::with_capacity(count);
    let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r as f64));
    let started = Instant::now();
    for i in 0..count {
        if let Some(interval) = interval {
            let due = started + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        let mut request = http
            .0
            .post(servers[0].url(&format!("/repositories/{repo}")))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/sparql-update")
            .body(format!(
                "INSERT DATA {{ <http://bench/c{i}_{}> <http://bench/p> {i} }}",
                started.elapsed().as_nanos()
            ));
        if let Some(settings) = settings {
            request = request.header("x-repl-settings", settings);
        }
        let sent = Instant::now();
        http.ok(request).await?;
        let acked = Instant::now();
        latencies.push(acked - sent);
        acks.lock().unwrap()[i] = Some(acked);
    }
    let mut delays = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        delays.extend(watcher.await??);
    }
    Ok((latencies, delays))
}

fn dir_size_mib(path: &std::path::Path) -> f64 {
    fn walk(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(path) as f64 / (1024.0 * 1024.0)
}

pub async fn run(args: RunArgs) -> Result<()> {
    let work = args
        .work_dir
        .join(format!("quadmesh-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run_in(&args, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run_in(args: &RunArgs, work: &std::path::Path) -> Result<()> {
    let http = Http(
        reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
    );
    let data = generate(args.products, args.seed);
    // Random features may repeat: count distinct triples, as a store does.
    let triples = data.lines().collect::<std::collections::HashSet<_>>().len();
    let parts = chunks(&data);
    drop(data);
    println!(
        "quadmesh-bench: {} products, {triples} triples (seed {}), {} CPUs\n",
        args.products,
        args.seed,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| measurement | quadmesh | oxigraph serve / reference | ratio | limited by |");
    println!("|---|---|---|---|---|");

    // Ingest: oxigraph serve, one quadmesh, a 3-instance cluster.
    let oxigraph = Server::oxigraph(&args.oxigraph, &work.join("oxigraph"))?;
    let started = Instant::now();
    load_oxigraph(&http, &oxigraph, &parts)
        .await
        .context("loading into oxigraph serve")?;
    let oxigraph_ingest = started.elapsed().as_secs_f64();
    ensure!(
        http.oxigraph_size(&oxigraph).await? == triples,
        "oxigraph holds the wrong number of triples"
    );

    let single = Server::quadmesh(&args.quadmesh, "single", &work.join("single"))?;
    http.ok(http
        .0
        .put(single.url(&format!("/repositories/{REPO}")))
        .basic_auth(USER, Some(PASSWORD)))
        .await?;
    let started = Instant::now();
    load_quadmesh(&http, &single, REPO, &parts)
        .await
        .context("loading into quadmesh")?;
    let single_ingest = started.elapsed().as_secs_f64();
    ensure!(
        http.quadmesh_size(&single, REPO).await? == triples,
        "quadmesh holds the wrong number of triples"
    );
    row(
        &format!("ingest {triples} triples over HTTP, one instance (triples/s)"),
        &format!("{:.0}", triples as f64 / single_ingest),
        &format!("{:.0}", triples as f64 / oxigraph_ingest),
        &format!("{:.2}", oxigraph_ingest / single_ingest),
        "CPU (parsing, indexing); one fsync per request",
    );

    // Queries: the same mix against oxigraph serve and one quadmesh instance, while
    // nothing else runs (the cluster below would take CPU from both), after a pause in
    // which both finish the compactions their loads started: users query long after a
    // load, and that work is not query time.
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let oxigraph_qps = query_load(
        &http.0,
        oxigraph.url("/query"),
        false,
        args.clients,
        args.query_seconds,
        args.products,
        args.seed,
    )
    .await?;
    let quadmesh_qps = query_load(
        &http.0,
        single.url(&format!("/repositories/{REPO}")),
        true,
        args.clients,
        args.query_seconds,
        args.products,
        args.seed,
    )
    .await?;
    row(
        &format!("query mix, {} clients (queries/s)", args.clients),
        &format!("{quadmesh_qps:.0}"),
        &format!("{oxigraph_qps:.0}"),
        &format!("{:.2}", quadmesh_qps / oxigraph_qps),
        "CPU (two cores shared by clients and server)",
    );

    let members: Vec<Server> = (0..3)
        .map(|i| {
            Server::quadmesh(
                &args.quadmesh,
                &format!("node{i}"),
                &work.join(format!("node{i}")),
            )
        })
        .collect::<Result<_>>()?;
    cluster(&http, &members, REPO).await?;
    let started = Instant::now();
    load_quadmesh(&http, &members[0], REPO, &parts).await?;
    loop {
        let mut all = true;
        for m in &members {
            all &= http.quadmesh_size(m, REPO).await? == triples;
        }
        if all {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the cluster did not converge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cluster_ingest = started.elapsed().as_secs_f64();
    row(
        "ingest, 3-instance cluster, until every instance holds all (triples/s)",
        &format!("{:.0}", triples as f64 / cluster_ingest),
        &format!("{:.0} (quadmesh alone)", triples as f64 / single_ingest),
        &format!("{:.2}", single_ingest / cluster_ingest),
        "CPU: three instances index on two cores",
    );

    // Commit latency and replication lag, on a fresh small repository.
    let lag_repo = "lag";
    http.ok(http
        .0
        .put(single.url(&format!("/repositories/{lag_repo}")))
        .basic_auth(USER, Some(PASSWORD)))
        .await?;
    let (mut alone, _) = commits(
        &http,
        std::slice::from_ref(&single),
        lag_repo,
        200,
        None,
        None,
        false,
    )
    .await?;
    cluster(&http, &members, lag_repo).await?;
    let mut figures = Vec::new();
    for durability in ["min", "quorum", "max"] {
        let settings = format!("durability={durability} distributedTransactionTimeout=10");
        let (mut latencies, _) =
            commits(&http, &members, lag_repo, 200, None, Some(&settings), false).await?;
        figures.push((
            durability,
            percentile_ms(&mut latencies, 50.0),
            percentile_ms(&mut latencies, 99.0),
        ));
    }
    let alone_p50 = percentile_ms(&mut alone, 50.0);
    for (durability, p50, p99) in &figures {
        row(
            &format!("commit latency, durability={durability}, 3 instances (p50 / p99 ms)"),
            &format!("{p50:.2} / {p99:.2}"),
            &format!(
                "{alone_p50:.2} / {:.2} (one instance)",
                percentile_ms(&mut alone, 99.0)
            ),
            &format!("{:.2}", p50 / alone_p50),
            "fsync of the log; then a round trip to the members",
        );
    }
    let count = (args.commit_rate * 5) as usize;
    let (_, mut delays) = commits(
        &http,
        &members,
        lag_repo,
        count,
        Some(args.commit_rate),
        None,
        true,
    )
    .await?;
    row(
        &format!(
            "replication lag at {} commits/s (p50 / p99 / max ms)",
            args.commit_rate
        ),
        &format!(
            "{:.2} / {:.2} / {:.2}",
            percentile_ms(&mut delays, 50.0),
            percentile_ms(&mut delays, 99.0),
            percentile_ms(&mut delays, 100.0)
        ),
        "100 ms (Amazon Neptune's stated typical lag)",
        &format!("{:.3}", percentile_ms(&mut delays, 99.0) / 100.0),
        "polling resolution ~1 ms; loopback",
    );

    // Scale-up: growing a fourth instance from the bench repository, against cp -r.
    let fourth = Server::quadmesh(&args.quadmesh, "node3", &work.join("node3"))?;
    let started = Instant::now();
    grow(&http, &members[0], &fourth, REPO).await?;
    let grow_seconds = started.elapsed().as_secs_f64();
    ensure!(
        http.quadmesh_size(&fourth, REPO).await? == triples,
        "the grown instance lacks data"
    );
    let source = members[0].data_dir.join("repositories").join(REPO);
    let started = Instant::now();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&source)
        .arg(work.join("copy"))
        .status()?;
    ensure!(status.success(), "cp -r failed");
    let copy_seconds = started.elapsed().as_secs_f64();
    row(
        &format!(
            "scale-up: grow-cluster with {triples} triples ({:.0} MiB) (s)",
            dir_size_mib(&source)
        ),
        &format!("{grow_seconds:.3}"),
        &format!("{copy_seconds:.3} (cp -r of the data directory)"),
        &format!("{:.2}", grow_seconds / copy_seconds),
        "disk; snapshot tar + HTTP + untar",
    );

    // Peak memory.
    let cluster_peak = members
        .iter()
        .map(Server::peak_memory_mib)
        .fold(0.0, f64::max);
    row(
        "peak memory (MiB)",
        &format!(
            "{:.0} (one instance), {cluster_peak:.0} (largest cluster member)",
            single.peak_memory_mib()
        ),
        &format!("{:.0}", oxigraph.peak_memory_mib()),
        &format!(
            "{:.2}",
            single.peak_memory_mib() / oxigraph.peak_memory_mib()
        ),
        "RocksDB caches; whole requests held in memory",
    );
    let _ = fourth;
    Ok(())
}
