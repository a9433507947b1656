//! `quadmesh-bench soak`: a 3-instance cluster under mixed reads and writes for a
//! number of minutes, each instance's resident memory sampled at a fixed period, and
//! whether it stayed flat over the last part of the run.

use crate::generator::{generate_into, queries};
use crate::scenarios::{caught_up, load_average, post_chunks, three_instance_cluster, Http, REPO};
use crate::servers::{Server, PASSWORD, USER};
use anyhow::{ensure, Context, Result};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long the mixed load runs.
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
    /// Products loaded before the soak (about 50 triples each).
    #[arg(long, default_value_t = 4000)]
    pub products: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Concurrent clients sending queries, to any instance.
    #[arg(long, default_value_t = 6)]
    pub readers: usize,
    /// Concurrent clients sending small updates, to any instance: each inserts new
    /// triples and deletes the ones it inserted a while ago, so the data keeps its size.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 60)]
    pub sample_seconds: u64,
    #[arg(long)]
    pub quadmesh: PathBuf,
    /// Where the servers keep their data (a fresh directory is made inside).
    #[arg(long, default_value = "/tmp")]
    pub work_dir: PathBuf,
}

/// Triples one writer keeps alive: it deletes what it inserted this many updates ago.
const KEPT: u64 = 500;

/// A growth below this, per minute of the judged window, counts as flat (MiB).
const FLAT_MIB_PER_MINUTE: f64 = 0.5;

#[derive(Default)]
struct Counts {
    queries: AtomicU64,
    writes: AtomicU64,
    failures: AtomicU64,
}

pub async fn soak(args: SoakArgs) -> Result<()> {
    let work = args
        .work_dir
        .join(format!("quadmesh-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = soak_in(&args, &work).await;
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

fn update(writer: usize, n: u64, insert: bool) -> String {
    let ns = crate::generator::NS;
    format!(
        "{} DATA {{ <{ns}soak/{writer}/{n}> <{ns}label> \"soak {writer} {n}\" . <{ns}soak/{writer}/{n}> <{ns}numeric1> {n} }}",
        if insert { "INSERT" } else { "DELETE" }
    )
}

async fn soak_in(args: &SoakArgs, work: &Path) -> Result<()> {
    let http = Http::new()?;
    let data = work.join("data.nt");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&data)?);
        generate_into(args.products, args.seed, &mut out)?;
        std::io::Write::flush(&mut out)?;
    }
    let members = three_instance_cluster(&http, &args.quadmesh, work, REPO).await?;
    let token = post_chunks(
        &http,
        &members[0].url(&format!("/repositories/{REPO}/statements")),
        true,
        &data,
    )
    .await?
    .context("the load was answered without a causal token")?;
    let triples = http.quadmesh_size(&members[0], REPO).await?;
    caught_up(&http, &members, REPO, &token, triples, Instant::now()).await?;
    println!(
        "quadmesh-bench soak: 3 instances, {triples} triples, {} readers and {} writers on any instance, {} minutes; {} CPUs; load average at the start {}\n",
        args.readers,
        args.writers,
        args.minutes,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!("| minute | RSS node0 / node1 / node2 (MiB) | queries/s | updates/s | failed | load average |");
    println!("|---|---|---|---|---|---|");

    let urls: Arc<Vec<String>> = Arc::new(
        members
            .iter()
            .map(|m| m.url(&format!("/repositories/{REPO}")))
            .collect(),
    );
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for reader in 0..args.readers {
        let (client, urls, counts, stop) =
            (http.0.clone(), urls.clone(), counts.clone(), stop.clone());
        let (products, seed) = (args.products, args.seed + reader as u64);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            while !stop.load(Ordering::Relaxed) {
                let url = &urls[rng.random_range(0..urls.len())];
                let sent = client
                    .post(url)
                    .basic_auth(USER, Some(PASSWORD))
                    .header("content-type", "application/sparql-query")
                    .header("accept", "application/sparql-results+json")
                    .body(queries(&mut rng, products))
                    .send()
                    .await;
                let ok = match sent {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                let counter = if ok {
                    &counts.queries
                } else {
                    &counts.failures
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for writer in 0..args.writers {
        let (client, urls, counts, stop) =
            (http.0.clone(), urls.clone(), counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let url = &urls[(n as usize + writer) % urls.len()];
                let mut body = update(writer, n, true);
                if n >= KEPT {
                    body = format!("{} ; {body}", update(writer, n - KEPT, false));
                }
                let sent = client
                    .post(url)
                    .basic_auth(USER, Some(PASSWORD))
                    .header("content-type", "application/sparql-update")
                    .body(body)
                    .send()
                    .await;
                let ok = matches!(sent, Ok(r) if r.status().is_success());
                let counter = if ok { &counts.writes } else { &counts.failures };
                counter.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }

    let period = Duration::from_secs(args.sample_seconds.max(1));
    let samples_wanted = (args.minutes * 60).div_ceil(period.as_secs()).max(1);
    let mut samples: Vec<Vec<f64>> = Vec::new();
    let started = Instant::now();
    let (mut queries_before, mut writes_before) = (0, 0);
    for sample in 1..=samples_wanted {
        tokio::time::sleep_until((started + period * sample as u32).into()).await;
        let rss: Vec<f64> = members.iter().map(Server::memory_mib).collect();
        let (q, w) = (
            counts.queries.load(Ordering::Relaxed),
            counts.writes.load(Ordering::Relaxed),
        );
        println!(
            "| {:.1} | {} | {:.0} | {:.0} | {} | {} |",
            started.elapsed().as_secs_f64() / 60.0,
            rss.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            (q - queries_before) as f64 / period.as_secs_f64(),
            (w - writes_before) as f64 / period.as_secs_f64(),
            counts.failures.load(Ordering::Relaxed),
            load_average()
        );
        (queries_before, writes_before) = (q, w);
        samples.push(rss);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }

    // Every instance must end with the same data: the writers' last triples and the
    // loaded ones.
    let expected = http.quadmesh_size(&members[0], REPO).await?;
    let settled = Instant::now();
    loop {
        let mut sizes = Vec::new();
        for m in &members {
            sizes.push(http.quadmesh_size(m, REPO).await?);
        }
        if sizes.iter().all(|s| *s == expected) {
            break;
        }
        ensure!(
            settled.elapsed() < Duration::from_secs(60),
            "the instances disagree after the soak: {sizes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The judged window: from minute 5 on (memory must be flat once the first load and
    // the caches settled) in a run of 10 minutes or more, else the last two thirds.
    let minutes_per_sample = period.as_secs_f64() / 60.0;
    let window_minutes = if args.minutes >= 10 {
        args.minutes as f64 - 5.0
    } else {
        (args.minutes as f64 * 2.0 / 3.0).max(minutes_per_sample)
    };
    let window_samples = ((window_minutes / minutes_per_sample).round() as usize)
        .clamp(1, samples.len().saturating_sub(1).max(1));
    let window = &samples[samples.len() - 1 - window_samples.min(samples.len() - 1)..];
    let (first, last) = (&window[0], &window[window.len() - 1]);
    let judged = window_samples as f64 * minutes_per_sample;
    let growth: Vec<f64> = first.iter().zip(last).map(|(a, b)| b - a).collect();
    // The trend: a least-squares slope over every sample of the window, so that one
    // sample at either end (a compaction, a burst of requests) does not decide it.
    let slopes: Vec<f64> = (0..first.len())
        .map(|i| {
            let points: Vec<(f64, f64)> = window
                .iter()
                .enumerate()
                .map(|(k, sample)| (k as f64 * minutes_per_sample, sample[i]))
                .collect();
            slope(&points)
        })
        .collect();
    let flat = slopes.iter().all(|s| *s <= FLAT_MIB_PER_MINUTE);
    let joined = |values: &[f64], precision: usize| {
        values
            .iter()
            .map(|v| format!("{v:+.precision$}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "\nRSS over the last {judged:.0} minutes: trend {} MiB/min (least squares over {} samples); first to last sample {} MiB ({} MiB/min): {}; {} queries, {} updates, {} failed requests; every instance holds {expected} triples at the end; load average at the end {}",
        joined(&slopes, 2),
        window.len(),
        joined(&growth, 1),
        joined(&growth.iter().map(|g| g / judged).collect::<Vec<_>>(), 2),
        if flat {
            format!("flat (a trend of at most {FLAT_MIB_PER_MINUTE} MiB/min on every instance)")
        } else {
            format!("NOT flat (a trend above {FLAT_MIB_PER_MINUTE} MiB/min on some instance)")
        },
        counts.queries.load(Ordering::Relaxed),
        counts.writes.load(Ordering::Relaxed),
        counts.failures.load(Ordering::Relaxed),
        load_average()
    );
    Ok(())
}

/// The least-squares slope of `points` (y per x); 0 for fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let spread: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if spread == 0.0 {
        return 0.0;
    }
    points
        .iter()
        .map(|p| (p.0 - mean_x) * (p.1 - mean_y))
        .sum::<f64>()
        / spread
}

#[cfg(test)]
mod tests {
    use super::slope;

    #[test]
    fn the_trend_is_the_least_squares_slope() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        // A rise at the start of the window and flat after it: a small trend.
        let points: Vec<(f64, f64)> = [269.0, 301.0, 315.0, 314.0, 304.0, 302.0, 288.0, 284.0]
            .iter()
            .enumerate()
            .map(|(k, y)| (k as f64, *y))
            .collect();
        assert!(slope(&points) < 0.0);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
    }
}
