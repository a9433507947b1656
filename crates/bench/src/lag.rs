//! Replication lag at a high commit rate: many writers at once, on every instance, as
//! behind a load balancer, with the lag read from each instance's own histogram of
//! "commit on the origin → applied here" (`quadmesh_replication_apply_delay_seconds`).
//!
//! One writer cannot measure this: at 1,000 commits/s a commit would have to take under
//! a millisecond, fsync included. And a poller cannot tell which of many concurrent
//! commits it sees; the server times every transaction it applies instead.

use crate::servers::{Server, PASSWORD, USER};
use crate::stats::percentile_ms;
use anyhow::{ensure, Context, Result};
use std::time::{Duration, Instant};

/// What a run at one rate measured.
pub struct LagRun {
    /// Commits acknowledged per second, over the run.
    pub achieved_rate: f64,
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
    pub failed: usize,
    /// Apply delay over every instance (ms): p50, p99 and the bucket the largest fell in.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_bucket_ms: f64,
    pub applied: u64,
}

/// Commits `rate` one-triple updates a second for `seconds`, from `writers` concurrent
/// writers spread over `servers` (writer *i* sends to instance *i* mod n).
pub async fn lag_at_rate(
    client: &reqwest::Client,
    servers: &[Server],
    repo: &str,
    rate: u64,
    seconds: u64,
    writers: usize,
) -> Result<LagRun> {
    let before = histograms(client, servers, repo).await?;
    let count = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(writers as f64 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = client.clone();
        let url = servers[w % servers.len()].url(&format!("/repositories/{repo}"));
        let mine = (count + writers - 1 - w) / writers;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(mine);
            let mut failed = 0usize;
            // Writers start spread over one interval, so the commits arrive evenly.
            let offset = interval.mul_f64(w as f64 / writers as f64);
            for i in 0..mine {
                tokio::time::sleep_until((started + offset + interval * i as u32).into()).await;
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .basic_auth(USER, Some(PASSWORD))
                    .header("content-type", "application/sparql-update")
                    .body(format!(
                        "INSERT DATA {{ <http://bench/w{w}_{i}> <http://bench/p> {i} }}"
                    ))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => latencies.push(sent.elapsed()),
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    for task in tasks {
        let (mine, lost) = task.await?;
        latencies.extend(mine);
        failed += lost;
    }
    let elapsed = started.elapsed();
    // Let the last commits reach every instance before reading the histograms.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = histograms(client, servers, repo).await?;
    let buckets: Vec<(f64, u64)> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| (a.0, a.1 - b.1))
        .collect();
    let applied = buckets.last().map(|b| b.1).unwrap_or(0);
    ensure!(
        applied > 0,
        "no instance applied a transaction from a peer during the run"
    );
    Ok(LagRun {
        achieved_rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        commit_p50_ms: percentile_ms(&mut latencies, 50.0),
        commit_p99_ms: percentile_ms(&mut latencies, 99.0),
        failed,
        lag_p50_ms: quantile_ms(&buckets, 0.50),
        lag_p99_ms: quantile_ms(&buckets, 0.99),
        lag_max_bucket_ms: quantile_ms(&buckets, 1.0),
        applied,
    })
}

/// The cumulative buckets `(upper bound in s, count)` of every instance's apply-delay
/// histogram for `repo`, summed (the `+Inf` bucket last).
async fn histograms(
    client: &reqwest::Client,
    servers: &[Server],
    repo: &str,
) -> Result<Vec<(f64, u64)>> {
    let mut sum: Vec<(f64, u64)> = Vec::new();
    for server in servers {
        let text = client
            .get(server.url("/metrics"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let buckets = parse_buckets(&text, repo)?;
        if sum.is_empty() {
            sum = buckets;
        } else {
            ensure!(sum.len() == buckets.len(), "instances report other buckets");
            for (total, (_, count)) in sum.iter_mut().zip(buckets) {
                total.1 += count;
            }
        }
    }
    Ok(sum)
}

fn parse_buckets(metrics: &str, repo: &str) -> Result<Vec<(f64, u64)>> {
    let label = format!("repository=\"{repo}\"");
    let mut buckets = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("quadmesh_replication_apply_delay_seconds_bucket{")
        else {
            continue;
        };
        if !rest.contains(&label) {
            continue;
        }
        let le = rest
            .split("le=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .context("a bucket without its bound")?;
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse()?
        };
        let count: u64 = line
            .rsplit(' ')
            .next()
            .context("a bucket without its count")?
            .parse()?;
        buckets.push((bound, count));
    }
    ensure!(
        !buckets.is_empty(),
        "no apply-delay histogram for {repo} in /metrics"
    );
    Ok(buckets)
}

/// The `q` quantile (0–1) of cumulative buckets, in ms, interpolated within its bucket
/// (as Prometheus's `histogram_quantile` does).
fn quantile_ms(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total = buckets.last().map(|b| b.1).unwrap_or(0) as f64;
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        let count = count as f64;
        if count >= rank {
            if bound.is_infinite() {
                return lower.0 * 1000.0;
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return (lower.0 + (bound - lower.0) * share) * 1000.0;
        }
        lower = (bound, count);
    }
    lower.0 * 1000.0
}

/// Starts three instances in a cluster under `work_dir` and prints one run.
pub async fn lag_alone(
    quadmesh: &std::path::Path,
    work_dir: &std::path::Path,
    rate: u64,
    writers: usize,
    seconds: u64,
) -> Result<()> {
    let work = work_dir.join(format!("quadmesh-lag-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = async {
        let http = crate::scenarios::Http::new()?;
        let members =
            crate::scenarios::three_instance_cluster(&http, quadmesh, &work, "lag").await?;
        let cpu_before: Vec<f64> = members.iter().map(Server::cpu_seconds).collect();
        let run = lag_at_rate(&http.0, &members, "lag", rate, seconds, writers).await?;
        // Commits and applications together, per transaction committed anywhere: each
        // instance commits a third of them and applies the other two thirds.
        let cpu_ms_per_transaction: Vec<String> = members
            .iter()
            .zip(&cpu_before)
            .map(|(m, before)| {
                let transactions = (run.achieved_rate * seconds as f64).max(1.0);
                format!("{:.3}", (m.cpu_seconds() - before) * 1000.0 / transactions)
            })
            .collect();
        println!(
            "{rate} commits/s asked, {:.0} acknowledged/s ({} failed) from {writers} writers on 3 instances; commit p50 {:.2} ms, p99 {:.2} ms; apply delay over {} transactions: p50 {:.2} ms, p99 {:.2} ms, max ≤{:.0} ms; CPU ms per transaction committed anywhere, each instance: {}; load average {}",
            run.achieved_rate,
            run.failed,
            run.commit_p50_ms,
            run.commit_p99_ms,
            run.applied,
            run.lag_p50_ms,
            run.lag_p99_ms,
            run.lag_max_bucket_ms,
            cpu_ms_per_transaction.join(" / "),
            crate::scenarios::load_average()
        );
        anyhow::Ok(())
    }
    .await;
    if std::env::var_os("QUADMESH_BENCH_KEEP").is_some() {
        println!("kept {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        // 100 observations: 50 under 1 ms, 40 in (1, 2], 9 in (2, 5], 1 in (5, +Inf).
        let buckets = [(0.001, 50), (0.002, 90), (0.005, 99), (f64::INFINITY, 100)];
        assert!((quantile_ms(&buckets, 0.5) - 1.0).abs() < 1e-9);
        assert!((quantile_ms(&buckets, 0.7) - 1.5).abs() < 1e-9);
        assert!((quantile_ms(&buckets, 0.99) - 5.0).abs() < 1e-9);
        assert!((quantile_ms(&buckets, 1.0) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn buckets_are_read_for_one_repository() {
        let text =
            "quadmesh_replication_apply_delay_seconds_bucket{repository=\"lag\",le=\"0.001\"} 3\n\
            quadmesh_replication_apply_delay_seconds_bucket{repository=\"other\",le=\"0.001\"} 9\n\
            quadmesh_replication_apply_delay_seconds_bucket{repository=\"lag\",le=\"+Inf\"} 4\n";
        assert_eq!(
            parse_buckets(text, "lag").unwrap(),
            vec![(0.001, 3), (f64::INFINITY, 4)]
        );
    }
}
