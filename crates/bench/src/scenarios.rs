//! The measurements. Each prints its rows as soon as it is done.

use crate::generator::{generate_into, queries};
use crate::servers::{measure, Server, PASSWORD, USER};
use crate::stats::percentile_ms;
use anyhow::{ensure, Context, Result};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::Command;
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
    /// Seconds of queries per server in each round.
    #[arg(long, default_value_t = 5)]
    pub query_seconds: u64,
    /// Rounds of queries; each round measures oxigraph serve, then quadmesh, so that
    /// other work on the machine falls on both alike.
    #[arg(long, default_value_t = 4)]
    pub query_rounds: usize,
    /// Seconds of rest between the loads and the queries.
    #[arg(long, default_value_t = 10)]
    pub settle_seconds: u64,
    /// Commits per second for the replication-lag measurement.
    #[arg(long, default_value_t = 100)]
    pub commit_rate: u64,
    /// Commits per second for the lag measurement with many writers on every instance.
    #[arg(long, default_value_t = 1000)]
    pub high_commit_rate: u64,
    /// Concurrent writers for that measurement.
    #[arg(long, default_value_t = 16)]
    pub high_rate_writers: usize,
    #[arg(long)]
    pub quadmesh: PathBuf,
    #[arg(long)]
    pub oxigraph: PathBuf,
    /// Where the servers keep their data (a fresh directory is made inside).
    #[arg(long, default_value = "/tmp")]
    pub work_dir: PathBuf,
    /// Leave out loading the file with `quadmesh load` and `oxigraph load`.
    #[arg(long)]
    pub skip_cli_load: bool,
    /// Leave out oxigraph's transactional HTTP load (the slowest step at 10M triples).
    #[arg(long)]
    pub skip_transactional: bool,
    /// Leave out the 3-instance cluster (its load, commit latency and lag).
    #[arg(long)]
    pub skip_cluster: bool,
    /// Stop after the loads (command line and HTTP, one instance): for comparing load
    /// paths run after run.
    #[arg(long)]
    pub loads_only: bool,
}

pub const REPO: &str = "bench";
/// Lines per POST when loading over HTTP.
const CHUNK: usize = 100_000;

pub fn row(what: &str, quadmesh: &str, peer: &str, ratio: &str, limit: &str) {
    println!("| {what} | {quadmesh} | {peer} | {ratio} | {limit} |");
}

pub struct Http(pub reqwest::Client);

impl Http {
    pub fn new() -> Result<Http> {
        Ok(Http(
            reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                // Under the servers' 30 s keep-alive wait: a pooled connection is never
                // reused just as the server closes it.
                .pool_idle_timeout(std::time::Duration::from_secs(20))
                .build()?,
        ))
    }

    pub async fn ok(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("{status}: {}", response.text().await.unwrap_or_default());
        }
        Ok(response)
    }

    pub async fn create_repository(&self, server: &Server, repo: &str) -> Result<()> {
        self.ok(self
            .0
            .put(server.url(&format!("/repositories/{repo}")))
            .basic_auth(USER, Some(PASSWORD)))
            .await?;
        Ok(())
    }

    pub async fn quadmesh_size(&self, server: &Server, repo: &str) -> Result<usize> {
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

/// Sends the file `data` (N-Triples) to `url` in POSTs of [`CHUNK`] lines, one after
/// another, with the bench's credentials when `auth`; answers the causal token of the
/// last answer (quadmesh's, when it gave one).
pub async fn post_chunks(
    http: &Http,
    url: &str,
    auth: bool,
    data: &Path,
) -> Result<Option<String>> {
    post_chunks_of(http, url, auth, data, CHUNK).await
}

/// [`post_chunks`] in POSTs of `lines` lines.
pub async fn post_chunks_of(
    http: &Http,
    url: &str,
    auth: bool,
    data: &Path,
    lines_per_post: usize,
) -> Result<Option<String>> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(std::fs::File::open(data)?);
    let mut token = None;
    loop {
        let mut part = Vec::with_capacity(lines_per_post.min(1 << 20) * 90);
        let mut lines = 0;
        while lines < lines_per_post && reader.read_until(b'\n', &mut part)? > 0 {
            lines += 1;
        }
        if lines == 0 {
            return Ok(token);
        }
        let mut request = http
            .0
            .post(url)
            .header("content-type", "application/n-triples")
            .body(part);
        if auth {
            request = request.basic_auth(USER, Some(PASSWORD));
        }
        token = token_of(&http.ok(request).await?);
    }
}

/// The causal token a write was answered with.
pub fn token_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The causal token header (quadmesh answers every write with one; a request carrying
/// it waits until the instance has applied what it names).
const TOKEN_HEADER: &str = "x-quadmesh-token";

/// Waits until every server has applied the write `token` names, as a client behind a
/// load balancer does (the request carries the token and waits), then checks that each
/// holds `triples`. Polling the count instead would measure the polling: a count is a
/// full scan of the store, on every member.
pub async fn caught_up(
    http: &Http,
    servers: &[Server],
    repo: &str,
    token: &str,
    triples: usize,
    started: Instant,
) -> Result<()> {
    for server in servers {
        loop {
            let response = http
                .0
                .get(server.url(&format!("/repositories/{repo}/size")))
                .basic_auth(USER, Some(PASSWORD))
                .header(TOKEN_HEADER, token)
                .header("x-quadmesh-token-timeout", "300")
                .send()
                .await?;
            if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                ensure!(
                    started.elapsed() < Duration::from_secs(3600),
                    "the cluster did not converge"
                );
                continue;
            }
            let size: usize = http_text(response).await?.trim().parse()?;
            ensure!(
                size == triples,
                "{} holds {size} triples after applying the last load, not {triples}",
                server.name
            );
            break;
        }
    }
    Ok(())
}

async fn http_text(response: reqwest::Response) -> Result<String> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    ensure!(status.is_success(), "{status}: {text}");
    Ok(text)
}

/// Starts three quadmesh instances (`node0`–`node2`, data under `work`) and makes `repo`
/// a cluster of them, `node0` controlling.
pub async fn three_instance_cluster(
    http: &Http,
    quadmesh: &Path,
    work: &Path,
    repo: &str,
) -> Result<Vec<Server>> {
    let members: Vec<Server> = (0..3)
        .map(|i| {
            Server::quadmesh(
                quadmesh,
                &format!("node{i}"),
                &work.join(format!("node{i}")),
            )
        })
        .collect::<Result<_>>()?;
    http.create_repository(&members[0], repo).await?;
    cluster(http, &members, repo).await?;
    Ok(members)
}

/// Makes `repo` on `servers[0]` replicated and grows it onto the others.
pub async fn cluster(http: &Http, servers: &[Server], repo: &str) -> Result<()> {
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
pub async fn query_load(
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

pub async fn run(args: RunArgs) -> Result<()> {
    let work = args
        .work_dir
        .join(format!("quadmesh-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run_in(&args, &work).await;
    let errors = crate::servers::logged_errors(&work);
    if !errors.is_empty() {
        println!("\nerrors the servers logged:");
        for line in errors {
            println!("    {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The load averages now (`/proc/loadavg`): how busy the machine was with other work.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Writes the dataset to `path`; returns its distinct triples (the generator may repeat
/// a random feature; a store keeps it once) and its size in MiB.
pub fn write_dataset(path: &Path, products: usize, seed: u64) -> Result<(usize, f64)> {
    use std::hash::BuildHasher;
    use std::io::{BufRead, Write};
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    generate_into(products, seed, &mut out)?;
    out.flush()?;
    drop(out);
    // 64-bit hashes of the lines: at 10 million lines a collision is a few-in-a-million
    // chance, and the counts are checked against both servers anyway.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut seen = std::collections::HashSet::new();
    for line in std::io::BufReader::new(std::fs::File::open(path)?).split(b'\n') {
        seen.insert(hasher.hash_one(line?));
    }
    Ok((seen.len(), std::fs::metadata(path)?.len() as f64 / MIB))
}

const MIB: f64 = 1024.0 * 1024.0;

fn spec(server: &Server) -> String {
    format!("{USER}:{PASSWORD}@127.0.0.1:{}/{REPO}", server.port)
}

/// Runs `SELECT * { ?s ?p ?o }` as JSON and reads the answer to its end; returns the
/// seconds, the bytes and the server's memory before and at its peak during it.
async fn full_select(
    http: &Http,
    server: &Server,
    url: String,
    auth: bool,
) -> Result<(f64, u64, f64, f64)> {
    use futures::StreamExt;
    let before = server.memory_mib();
    server.reset_peak()?;
    let started = Instant::now();
    let mut request = http
        .0
        .post(url)
        .header("content-type", "application/sparql-query")
        .header("accept", "application/sparql-results+json")
        .body("SELECT * WHERE { ?s ?p ?o }");
    if auth {
        request = request.basic_auth(USER, Some(PASSWORD));
    }
    let mut body = http.ok(request).await?.bytes_stream();
    let mut bytes = 0;
    while let Some(chunk) = body.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok((
        started.elapsed().as_secs_f64(),
        bytes,
        before,
        server.peak_memory_mib(),
    ))
}

/// Counts the lines of a file.
fn lines_of(path: &Path) -> Result<usize> {
    use std::io::BufRead;
    let mut count = 0;
    for line in std::io::BufReader::new(std::fs::File::open(path)?).split(b'\n') {
        line?;
        count += 1;
    }
    Ok(count)
}

fn memory_step(before: f64, peak: f64) -> String {
    format!("{before:.0} → {peak:.0} (+{:.0})", peak - before)
}

async fn run_in(args: &RunArgs, work: &Path) -> Result<()> {
    let http = Http::new()?;
    let data = work.join("data.nt");
    let (triples, data_mib) = write_dataset(&data, args.products, args.seed)?;
    println!(
        "quadmesh-bench: {} products, {triples} triples, {data_mib:.0} MiB of N-Triples (seed {}); {} CPUs; load average at the start {}\n",
        args.products,
        args.seed,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
    );
    println!("| measurement | quadmesh | oxigraph / reference | ratio | limited by |");
    println!("|---|---|---|---|---|");
    let rate = |seconds: f64| format!("{:.0}", triples as f64 / seconds);

    // Ingest, each into a fresh store, alternating between the two systems: oxigraph's
    // bulk loader from a file, `quadmesh load`; then over HTTP: oxigraph's bulk path
    // (`no_transaction`), quadmesh, oxigraph's transactional path.
    let mut loaded_peak = None;
    if !args.skip_cli_load {
        let oxigraph_load = measure({
            let mut command = Command::new(&args.oxigraph);
            command
                .arg("load")
                .arg("--location")
                .arg(work.join("oxigraph-load"))
                .arg("--file")
                .arg(&data);
            command
        })
        .context("oxigraph load")?;
        let _ = std::fs::remove_dir_all(work.join("oxigraph-load"));

        let loaded = Server::quadmesh(&args.quadmesh, "loaded", &work.join("loaded"))?;
        http.create_repository(&loaded, REPO).await?;
        let quadmesh_load = measure({
            let mut command = Command::new(&args.quadmesh);
            command
                .arg("load")
                .arg(spec(&loaded))
                .arg(&data)
                .arg("--quiet");
            command
        })
        .context("quadmesh load")?;
        ensure!(
            http.quadmesh_size(&loaded, REPO).await? == triples,
            "quadmesh load left the wrong number of triples"
        );
        row(
            &format!("load a {data_mib:.0} MiB N-Triples file from the command line (triples/s)"),
            &format!(
                "{} (`quadmesh load`, to a server)",
                rate(quadmesh_load.seconds)
            ),
            &format!(
                "{} (`oxigraph load`: bulk loader, in process, no server)",
                rate(oxigraph_load.seconds)
            ),
            &format!("{:.2}", oxigraph_load.seconds / quadmesh_load.seconds),
            "CPU: parsing twice (check, then send), HTTP, indexing",
        );
        row(
            "peak memory of the loading command (MiB)",
            &format!("{:.0} (`quadmesh load`)", quadmesh_load.peak_mib),
            &format!("{:.0} (`oxigraph load`)", oxigraph_load.peak_mib),
            &format!("{:.2}", quadmesh_load.peak_mib / oxigraph_load.peak_mib),
            "target: `quadmesh load` under 200 MiB for any file size",
        );
        let peak = loaded.peak_memory_mib();
        drop(loaded);
        let _ = std::fs::remove_dir_all(work.join("loaded"));
        loaded_peak = Some(peak);
    }

    let oxigraph = Server::oxigraph(&args.oxigraph, &work.join("oxigraph"))?;
    let started = Instant::now();
    post_chunks(
        &http,
        &oxigraph.url("/store?default&no_transaction"),
        false,
        &data,
    )
    .await
    .context("loading into oxigraph serve")?;
    let oxigraph_bulk = started.elapsed().as_secs_f64();
    ensure!(
        http.oxigraph_size(&oxigraph).await? == triples,
        "oxigraph holds the wrong number of triples"
    );

    let single = Server::quadmesh(&args.quadmesh, "single", &work.join("single"))?;
    http.create_repository(&single, REPO).await?;
    let started = Instant::now();
    post_chunks(
        &http,
        &single.url(&format!("/repositories/{REPO}/statements")),
        true,
        &data,
    )
    .await
    .context("loading into quadmesh")?;
    let single_ingest = started.elapsed().as_secs_f64();
    ensure!(
        http.quadmesh_size(&single, REPO).await? == triples,
        "quadmesh holds the wrong number of triples"
    );

    let mut transactional = None;
    if !args.skip_transactional {
        let server = Server::oxigraph(&args.oxigraph, &work.join("oxigraph-tx"))?;
        let started = Instant::now();
        post_chunks(&http, &server.url("/store?default"), false, &data)
            .await
            .context("loading into oxigraph serve, transactionally")?;
        let oxigraph_transactional = started.elapsed().as_secs_f64();
        ensure!(
            http.oxigraph_size(&server).await? == triples,
            "oxigraph holds the wrong number of triples"
        );
        let transactional_peak = server.peak_memory_mib();
        drop(server);
        let _ = std::fs::remove_dir_all(work.join("oxigraph-tx"));
        transactional = Some((oxigraph_transactional, transactional_peak));
    }
    let http_load = format!("{CHUNK}-line POSTs, one instance (triples/s)");
    row(
        &format!("load over HTTP in {http_load}"),
        &rate(single_ingest),
        &format!(
            "{} (`POST /store?default&no_transaction`: bulk loader)",
            rate(oxigraph_bulk)
        ),
        &format!("{:.2}", oxigraph_bulk / single_ingest),
        "CPU (parsing, indexing); each POST all-or-nothing, logged and fsynced",
    );
    if let Some((oxigraph_transactional, _)) = transactional {
        row(
            &format!("load over HTTP in {http_load}, against a transaction per POST"),
            &rate(single_ingest),
            &format!(
                "{} (`POST /store?default`: one transaction per POST)",
                rate(oxigraph_transactional)
            ),
            &format!("{:.2}", oxigraph_transactional / single_ingest),
            "like for like in guarantees: every POST all-or-nothing",
        );
    }

    if args.loads_only {
        println!("\nload average at the end: {}", load_average());
        return Ok(());
    }

    // Queries: the same mix against oxigraph serve and one quadmesh instance, while
    // nothing else runs, in alternating rounds, after a pause in which both finish the
    // compactions their loads started: users query long after a load.
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let (mut oxigraph_queries, mut quadmesh_queries, mut ratios) = (0.0, 0.0, Vec::new());
    for _ in 0..args.query_rounds.max(1) {
        let o = query_load(
            &http.0,
            oxigraph.url("/query"),
            false,
            args.clients,
            args.query_seconds,
            args.products,
            args.seed,
        )
        .await?;
        let q = query_load(
            &http.0,
            single.url(&format!("/repositories/{REPO}")),
            true,
            args.clients,
            args.query_seconds,
            args.products,
            args.seed,
        )
        .await?;
        oxigraph_queries += o;
        quadmesh_queries += q;
        ratios.push(q / o);
    }
    let rounds = args.query_rounds.max(1) as f64;
    let (low, high) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    row(
        &format!(
            "query mix, {} clients, {} alternating rounds of {} s (queries/s)",
            args.clients, args.query_rounds, args.query_seconds
        ),
        &format!("{:.0}", quadmesh_queries / rounds),
        &format!("{:.0} (`oxigraph serve`)", oxigraph_queries / rounds),
        &format!(
            "{:.2} (rounds {low:.2}–{high:.2})",
            quadmesh_queries / oxigraph_queries
        ),
        "CPU (two cores shared by clients and server)",
    );

    // A full SELECT and an export: time, and the server's memory while it answers.
    let (o_seconds, o_bytes, o_before, o_peak) =
        full_select(&http, &oxigraph, oxigraph.url("/query"), false).await?;
    let (q_seconds, q_bytes, q_before, q_peak) = full_select(
        &http,
        &single,
        single.url(&format!("/repositories/{REPO}")),
        true,
    )
    .await?;
    row(
        &format!(
            "full `SELECT *` as JSON ({:.0} MiB) (s)",
            q_bytes as f64 / MIB
        ),
        &format!("{q_seconds:.1}"),
        &format!("{o_seconds:.1} ({:.0} MiB)", o_bytes as f64 / MIB),
        &format!("{:.2}", q_seconds / o_seconds),
        "CPU: decoding terms, writing JSON",
    );
    row(
        "server memory during the full SELECT: before → peak (MiB)",
        &memory_step(q_before, q_peak),
        &memory_step(o_before, o_peak),
        "–",
        "target: quadmesh at most +100 MiB at 10M triples",
    );
    let export = work.join("export.nt");
    let before = single.memory_mib();
    single.reset_peak()?;
    let quadmesh_export = measure({
        let mut command = Command::new(&args.quadmesh);
        command
            .arg("export")
            .arg(spec(&single))
            .args(["--format", "ntriples", "--output"])
            .arg(&export);
        command
    })
    .context("quadmesh export")?;
    let export_peak = single.peak_memory_mib();
    ensure!(
        lines_of(&export)? == triples,
        "the export lacks triples or has too many"
    );
    let _ = std::fs::remove_file(&export);
    let o_before = oxigraph.memory_mib();
    oxigraph.reset_peak()?;
    let started = Instant::now();
    {
        use futures::StreamExt;
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&export)?);
        let mut body = http
            .ok(http
                .0
                .get(oxigraph.url("/store?default"))
                .header("accept", "application/n-triples"))
            .await?
            .bytes_stream();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk?)?;
        }
        out.flush()?;
    }
    let oxigraph_export = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&export);
    row(
        "export as N-Triples to a file (s)",
        &format!("{:.1} (`quadmesh export`)", quadmesh_export.seconds),
        &format!("{oxigraph_export:.1} (`GET /store?default`)"),
        &format!("{:.2}", quadmesh_export.seconds / oxigraph_export),
        "CPU: decoding terms, writing N-Triples",
    );
    row(
        "server memory during the export: before → peak (MiB); the exporting command's peak",
        &format!(
            "{}; `quadmesh export` {:.0}",
            memory_step(before, export_peak),
            quadmesh_export.peak_mib
        ),
        &memory_step(o_before, oxigraph.peak_memory_mib()),
        "–",
        "target: at most +100 MiB at 10M triples",
    );
    let oxigraph_peak = oxigraph.peak_memory_mib();
    drop(oxigraph);
    let _ = std::fs::remove_dir_all(work.join("oxigraph"));

    // Scale-up: the loaded instance becomes the first of a cluster, and a new instance
    // is grown from it, between two `cp -r` of its repository's directory (after a
    // rest, so that its compactions are done).
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    http.ok(http
        .0
        .put(single.url(&format!("/repositories/{REPO}/repl/createCluster")))
        .basic_auth(USER, Some(PASSWORD))
        .query(&[
            ("host", "127.0.0.1"),
            ("port", &single.port.to_string()),
            ("instanceName", &single.name),
        ]))
    .await?;
    let source = single.data_dir.join("repositories").join(REPO);
    // `synced`: the copy then `sync -f` (what the grown instance does before it takes
    // the store: its files on disk), after a `sync` outside the timing.
    let copy_with = |n: usize, synced: bool| -> Result<f64> {
        let target = work.join(format!("copy{n}"));
        if synced {
            ensure!(Command::new("sync").status()?.success(), "sync failed");
        }
        let started = Instant::now();
        let status = Command::new("cp")
            .arg("-r")
            .arg(&source)
            .arg(&target)
            .status()?;
        ensure!(status.success(), "cp -r failed");
        if synced {
            let status = Command::new("sync").arg("-f").arg(&target).status()?;
            ensure!(status.success(), "sync -f failed");
        }
        let seconds = started.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&target);
        Ok(seconds)
    };
    let copy = |n: usize| copy_with(n, false);
    let source_mib = dir_size_mib(&source);
    let copy_before = copy(0)?;
    let grown = Server::quadmesh(&args.quadmesh, "grown", &work.join("grown"))?;
    let started = Instant::now();
    grow(&http, &single, &grown, REPO).await?;
    let grow_seconds = started.elapsed().as_secs_f64();
    ensure!(
        http.quadmesh_size(&grown, REPO).await? == triples,
        "the grown instance lacks data"
    );
    let copy_after = copy(1)?;
    let copy_seconds = (copy_before + copy_after) / 2.0;
    row(
        &format!("grow-cluster of a repository of {triples} triples ({source_mib:.0} MiB) (s)"),
        &format!("{grow_seconds:.2}"),
        &format!("{copy_seconds:.2} (`cp -r` of its directory: {copy_before:.2} before, {copy_after:.2} after)"),
        &format!("{:.2}", grow_seconds / copy_seconds),
        "disk; SHA-256 of every file on both sides; the new instance syncs what it received, `cp -r` syncs nothing",
    );
    let copy_synced = copy_with(2, true)?;
    row(
        "the same grow against `cp -r` then `sync -f` of the copy (s)",
        &format!("{grow_seconds:.2}"),
        &format!("{copy_synced:.2}"),
        &format!("{:.2}", grow_seconds / copy_synced),
        "like for like in durability: both end with the files on disk",
    );
    let grown_peak = grown.peak_memory_mib();
    drop(grown);
    let _ = std::fs::remove_dir_all(work.join("grown"));

    let mut cluster_peaks = Vec::new();
    if !args.skip_cluster {
        // A 3-instance cluster: the same POSTs to the controlling instance, until every
        // instance holds everything.
        let members = three_instance_cluster(&http, &args.quadmesh, work, REPO).await?;
        let cpu_before: Vec<f64> = members.iter().map(Server::cpu_seconds).collect();
        let started = Instant::now();
        let token = post_chunks(
            &http,
            &members[0].url(&format!("/repositories/{REPO}/statements")),
            true,
            &data,
        )
        .await?
        .context("the cluster's answer to a load had no causal token")?;
        caught_up(&http, &members, REPO, &token, triples, started).await?;
        let cluster_ingest = started.elapsed().as_secs_f64();
        let cpu: Vec<f64> = members
            .iter()
            .zip(&cpu_before)
            .map(|(m, before)| m.cpu_seconds() - before)
            .collect();
        row(
            "load over HTTP into a 3-instance cluster, until every instance holds all (triples/s)",
            &rate(cluster_ingest),
            &format!("{} (quadmesh alone)", rate(single_ingest)),
            &format!("{:.2}", single_ingest / cluster_ingest),
            "CPU: three instances index on two cores",
        );
        let per_million = |seconds: f64| seconds / (triples as f64 / 1e6);
        let replicas = (cpu[1] + cpu[2]) / 2.0;
        row(
            "CPU-seconds per million triples during that load: the origin / each replica",
            &format!(
                "{:.1} / {:.1} / {:.1}",
                per_million(cpu[0]),
                per_million(cpu[1]),
                per_million(cpu[2])
            ),
            &format!("{:.1} (the origin)", per_million(cpu[0])),
            &format!("{:.2}", replicas / cpu[0].max(f64::EPSILON)),
            "a replica's share of the origin's work (mean of the two)",
        );
        row(
            "peak memory of each cluster member during that load (MiB)",
            &members
                .iter()
                .map(|m| format!("{:.0}", m.peak_memory_mib()))
                .collect::<Vec<_>>()
                .join(" / "),
            &format!("{oxigraph_peak:.0} (`oxigraph serve`, whole run)"),
            "–",
            "RocksDB write buffers and caches, per instance",
        );

        // Commit latency and replication lag, on a fresh small repository, after a rest
        // in which the members finish the compaction that follows a load once loads
        // pause (else it would be measured as lag).
        tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
        let lag_repo = "lag";
        http.create_repository(&single, lag_repo).await?;
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
        http.create_repository(&members[0], lag_repo).await?;
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
        let run = crate::lag::lag_at_rate(
            &http.0,
            &members,
            lag_repo,
            args.high_commit_rate,
            5,
            args.high_rate_writers,
        )
        .await?;
        row(
            &format!(
                "replication lag at {} commits/s, {} writers on all 3 instances (p50 / p99 / max ms; each instance's apply-delay histogram)",
                args.high_commit_rate, args.high_rate_writers
            ),
            &format!(
                "{:.2} / {:.2} / ≤{:.0} ({} transactions applied)",
                run.lag_p50_ms, run.lag_p99_ms, run.lag_max_bucket_ms, run.applied
            ),
            "target: p99 under 5 ms",
            &format!("{:.2}", run.lag_p99_ms / 5.0),
            "stamps have ms precision; commit on the origin to applied here, fsync of both logs included",
        );
        row(
            "that run: commits acknowledged per second; commit latency (p50 / p99 ms); failed requests",
            &format!(
                "{:.0}; {:.2} / {:.2}; {}",
                run.achieved_rate, run.commit_p50_ms, run.commit_p99_ms, run.failed
            ),
            &format!("{} asked", args.high_commit_rate),
            &format!("{:.2}", run.achieved_rate / args.high_commit_rate as f64),
            "the single writer of each instance: one fsync per commit",
        );
        cluster_peaks = members.iter().map(Server::peak_memory_mib).collect();
    }

    let mut quadmesh_peaks = Vec::new();
    if let Some(peak) = loaded_peak {
        quadmesh_peaks.push(format!("{peak:.0} (`quadmesh load`'s server)"));
    }
    quadmesh_peaks.push(format!(
        "{:.0} (HTTP loads, queries, export, grow source)",
        single.peak_memory_mib()
    ));
    quadmesh_peaks.push(format!("{grown_peak:.0} (grown)"));
    if !cluster_peaks.is_empty() {
        quadmesh_peaks.push(format!(
            "{} (cluster)",
            cluster_peaks
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    let mut oxigraph_peaks = vec![format!("{oxigraph_peak:.0} (bulk loads, queries, export)")];
    if let Some((_, peak)) = transactional {
        oxigraph_peaks.push(format!("{peak:.0} (transactional loads)"));
    }
    row(
        "peak memory of each server over the run (MiB)",
        &quadmesh_peaks.join(", "),
        &oxigraph_peaks.join(", "),
        "–",
        "peaks after a reset (SELECT, export) are in their own rows",
    );
    println!("\nload average at the end: {}", load_average());
    Ok(())
}

pub fn dir_size_mib(path: &Path) -> f64 {
    fn walk(p: &Path) -> u64 {
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
    walk(path) as f64 / MIB
}
