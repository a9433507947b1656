//! What deletes by pattern (range tombstones) cost, on a 3-instance cluster:
//! - `CLEAR GRAPH` of a large graph: the log grows by one small entry, not one per
//!   triple; the time until every instance is empty, beside `oxigraph serve` clearing
//!   the same graph;
//! - pattern deletes at a steady rate: the log and the tombstone table stay bounded
//!   (tombstones go as soon as every member has sent everything older);
//! - applying peers' inserts while many tombstones are live (one member stopped, so the
//!   frontier cannot pass them) beside the same with none: the apply delay histogram.

use crate::lag::lag_at_rate;
use crate::scenarios::{three_instance_cluster, token_of, Http};
use crate::servers::{Server, PASSWORD, USER};
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TombstoneArgs {
    /// Triples in the graph that is cleared.
    #[arg(long, default_value_t = 1_000_000)]
    pub triples: usize,
    /// Pattern deletes a second, and for how long.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Tombstones live while peers' inserts are applied.
    #[arg(long, default_value_t = 10_000)]
    pub live: usize,
    #[arg(long)]
    pub quadmesh: PathBuf,
    #[arg(long)]
    pub oxigraph: PathBuf,
    #[arg(long, default_value = "/tmp")]
    pub work_dir: PathBuf,
}

const REPO: &str = "tomb";
const GRAPH: &str = "http://bench/cleared";

pub async fn tombstones(args: TombstoneArgs) -> Result<()> {
    let work = args
        .work_dir
        .join(format!("quadmesh-tombstones-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run(&args, &work).await;
    if std::env::var_os("QUADMESH_BENCH_KEEP").is_some() {
        println!("kept {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

async fn run(args: &TombstoneArgs, work: &Path) -> Result<()> {
    let http = Http::new()?;
    let data = work.join("graph.nt");
    write_graph(&data, args.triples)?;

    // 1. CLEAR GRAPH of `triples`. No timed checkpoint meanwhile, so that the log's
    // growth is the CLEAR's entry (the log is truncated at checkpoints).
    std::env::set_var("QUADMESH_CHECKPOINT_INTERVAL", "86400");
    let members = three_instance_cluster(&http, &args.quadmesh, &work.join("clear"), REPO).await?;
    let mut loaded = None;
    for chunk in chunks(&data, 100_000)? {
        let response = http
            .ok(http
                .0
                .post(members[0].url(&format!("/repositories/{REPO}/statements")))
                .basic_auth(USER, Some(PASSWORD))
                .query(&[("context", format!("<{GRAPH}>"))])
                .header("content-type", "application/n-triples")
                .body(chunk))
            .await?;
        loaded = token_of(&response);
    }
    wait_sizes(&http, &members, loaded, args.triples).await?;
    let log_before = log_bytes(&members[1])?;
    let commits_before = metric(&http, &members[1], "quadmesh_commits_total").await?;
    let started = Instant::now();
    let cleared = update(&http, &members[1], &format!("CLEAR GRAPH <{GRAPH}>")).await?;
    let acknowledged = started.elapsed();
    wait_sizes(&http, &members, cleared, 0).await?;
    let everywhere = started.elapsed();
    let log_after = log_bytes(&members[1])?;
    let commits_after = metric(&http, &members[1], "quadmesh_commits_total").await?;
    drop(members);
    std::env::remove_var("QUADMESH_CHECKPOINT_INTERVAL");

    let oxigraph = Server::oxigraph(&args.oxigraph, &work.join("oxigraph"))?;
    for chunk in chunks(&data, 100_000)? {
        http.ok(http
            .0
            .post(oxigraph.url("/store"))
            .query(&[("graph", GRAPH)])
            .header("content-type", "application/n-triples")
            .body(chunk))
            .await?;
    }
    let started = Instant::now();
    http.ok(http
        .0
        .post(oxigraph.url("/update"))
        .header("content-type", "application/sparql-update")
        .body(format!("CLEAR GRAPH <{GRAPH}>")))
        .await?;
    let oxigraph_clear = started.elapsed();
    drop(oxigraph);
    println!(
        "CLEAR GRAPH of {} triples on a 3-instance cluster: acknowledged in {:.2} s, every instance empty after {:.2} s \
         (oxigraph serve, one instance: {:.2} s; ratio {:.2}); the clearing instance committed {} transaction(s) and its log grew by {} bytes",
        args.triples,
        acknowledged.as_secs_f64(),
        everywhere.as_secs_f64(),
        oxigraph_clear.as_secs_f64(),
        everywhere.as_secs_f64() / oxigraph_clear.as_secs_f64(),
        commits_after - commits_before,
        log_after as i64 - log_before as i64,
    );

    // 2. Pattern deletes at a steady rate.
    let members = three_instance_cluster(&http, &args.quadmesh, &work.join("rate"), REPO).await?;
    let (sent, failed, peak, samples) = pattern_deletes_at_rate(&http, &members, args).await?;
    let at_end = metric(&http, &members[0], "quadmesh_register_tombstones").await?;
    let ended = Instant::now();
    caught_up(&http, &members).await?;
    let catch_up = ended.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = metric(&http, &members[0], "quadmesh_register_tombstones").await?;
    let log_entries = metric(&http, &members[0], "quadmesh_log_entries").await?;
    println!(
        "{} pattern deletes/s asked for {} s: {:.0}/s acknowledged ({failed} failed); tombstones live on an instance: \
         peak {peak}, {at_end} at the last delete, {after} 1 s after every instance had applied everything ({:.1} s later); \
         log entries kept: {log_entries}, log {} bytes; samples (s, tombstones, log entries): {samples:?}",
        args.rate,
        args.seconds,
        sent as f64 / args.seconds as f64,
        catch_up.as_secs_f64(),
        log_bytes(&members[0])?,
    );
    drop(members);

    // 3. Applying inserts with `live` tombstones, against none.
    let members = three_instance_cluster(&http, &args.quadmesh, &work.join("apply"), REPO).await?;
    // A stopped member sends no heartbeat: the frontier stays where it was, and every
    // tombstone made from now on stays live. Both runs are made with it stopped.
    stop(&members[2], true)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let none = lag_at_rate(&http.0, &members[..2], REPO, 200, 10, 4).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (client, url) = (
            http.0.clone(),
            members[w % 2].url(&format!("/repositories/{REPO}/statements")),
        );
        let live = args.live;
        tasks.push(tokio::spawn(async move {
            for i in (w..live).step_by(8) {
                let response = client
                    .delete(&url)
                    .basic_auth(USER, Some(PASSWORD))
                    .query(&[("subj", format!("<http://bench/gone{i}>"))])
                    .send()
                    .await?;
                ensure!(response.status().is_success(), "{}", response.status());
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let made_in = started.elapsed();
    // Both instances applied every tombstone before inserts are timed.
    caught_up(&http, &members[..2]).await?;
    let live = metric(&http, &members[1], "quadmesh_register_tombstones").await?;
    let with = lag_at_rate(&http.0, &members[..2], REPO, 200, 10, 4).await?;
    stop(&members[2], false)?;
    println!(
        "applying peers' inserts at 200 commits/s between two instances (the third stopped): \
         apply delay p50 {:.2} ms, p99 {:.2} ms with {live} tombstones live (made in {:.1} s) \
         against p50 {:.2} ms, p99 {:.2} ms with none (ratio of p50s {:.2})",
        with.lag_p50_ms,
        with.lag_p99_ms,
        made_in.as_secs_f64(),
        none.lag_p50_ms,
        none.lag_p99_ms,
        with.lag_p50_ms / none.lag_p50_ms.max(1e-9),
    );
    Ok(())
}

fn write_graph(path: &Path, triples: usize) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..triples {
        writeln!(
            out,
            "<http://bench/s{}> <http://bench/p{}> \"value {i}\" .",
            i / 10,
            i % 10
        )?;
    }
    out.flush()?;
    Ok(())
}

fn chunks(path: &Path, lines: usize) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read(path)?;
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, byte) in text.iter().enumerate() {
        if *byte == b'\n' {
            count += 1;
            if count == lines {
                out.push(text[start..=i].to_vec());
                start = i + 1;
                count = 0;
            }
        }
    }
    if start < text.len() {
        out.push(text[start..].to_vec());
    }
    Ok(out)
}

/// Sends a SPARQL update; answers its causal token.
async fn update(http: &Http, server: &Server, text: &str) -> Result<Option<String>> {
    let response = http
        .ok(http
            .0
            .post(server.url(&format!("/repositories/{REPO}")))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/sparql-update")
            .body(text.to_owned()))
        .await?;
    Ok(token_of(&response))
}

/// Waits until every server has applied the write `token` names and holds `size`.
async fn wait_sizes(
    http: &Http,
    servers: &[Server],
    token: Option<String>,
    size: usize,
) -> Result<()> {
    let token = token.context("the write was answered without a causal token")?;
    crate::scenarios::caught_up(http, servers, REPO, &token, size, Instant::now()).await
}

/// Bytes in the repository's log directory on `server`.
fn log_bytes(server: &Server) -> Result<u64> {
    let dir = server.data_dir.join("repositories").join(REPO).join("log");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

/// One sample of a repository gauge from `/metrics`.
async fn metric(http: &Http, server: &Server, name: &str) -> Result<u64> {
    let text = http
        .ok(http
            .0
            .get(server.url("/metrics"))
            .basic_auth(USER, Some(PASSWORD)))
        .await?
        .text()
        .await?;
    let prefix = format!("{name}{{repository=\"{REPO}\"}} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .with_context(|| format!("{name} not in /metrics"))?;
    Ok(line[prefix.len()..].trim().parse::<f64>()? as u64)
}

/// Deletes by subject (a pattern each) at `args.rate` a second for `args.seconds`,
/// spread over the instances; samples the tombstones and log entries of instance 0
/// every 5 s. Returns (acknowledged, failed, peak tombstones, samples).
async fn pattern_deletes_at_rate(
    http: &Http,
    members: &[Server],
    args: &TombstoneArgs,
) -> Result<(u64, u64, u64, Vec<(u64, u64, u64)>)> {
    let writers = 32usize;
    let count = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(writers as f64 / args.rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = http.0.clone();
        let url = members[w % members.len()].url(&format!("/repositories/{REPO}/statements"));
        let mine = (count + writers - 1 - w) / writers;
        let deadline = started + Duration::from_secs(args.seconds);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            for i in 0..mine {
                let due = started + interval * i as u32;
                if Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let response = client
                    .delete(&url)
                    .basic_auth(USER, Some(PASSWORD))
                    .query(&[("subj", format!("<http://bench/d{w}_{i}>"))])
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let mut samples = Vec::new();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let live = metric(http, &members[0], "quadmesh_register_tombstones").await?;
        let entries = metric(http, &members[0], "quadmesh_log_entries").await?;
        peak = peak.max(live);
        samples.push((started.elapsed().as_secs(), live, entries));
    }
    let (mut sent, mut failed) = (0, 0);
    for task in tasks {
        let (ok, bad) = task.await?;
        sent += ok;
        failed += bad;
    }
    Ok((sent, failed, peak, samples))
}

/// Waits until every server reports the same version vector for itself (each has
/// applied everything the others committed).
async fn caught_up(http: &Http, servers: &[Server]) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut vectors = Vec::new();
        for server in servers {
            let status: serde_json::Value = http
                .ok(http
                    .0
                    .get(server.url(&format!("/repositories/{REPO}/repl/status")))
                    .basic_auth(USER, Some(PASSWORD)))
                .await?
                .json()
                .await?;
            let own = status["instances"]
                .as_array()
                .and_then(|a| a.iter().find(|m| m["state"] == "self"))
                .map(|m| m["versionVector"].clone());
            vectors.push(own);
        }
        if vectors.windows(2).all(|w| w[0] == w[1]) {
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the instances did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops (SIGSTOP) or continues (SIGCONT) a server's process.
fn stop(server: &Server, stop: bool) -> Result<()> {
    let signal = if stop { "-STOP" } else { "-CONT" };
    let status = std::process::Command::new("kill")
        .arg(signal)
        .arg(server.pid().to_string())
        .status()?;
    ensure!(status.success(), "kill {signal} failed");
    Ok(())
}
