//! Backup and restore with real processes: an online backup under continuous writes
//! restores to a consistent cut (everything acknowledged before it started, and a
//! prefix of one writer's later writes); a truncated or damaged archive is refused and
//! creates nothing.

mod common;

use common::{binary, success_text, Client, Server};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run quadmesh")
}

async fn select_subjects(client: &Client, server: &Server, repository: &str) -> Vec<String> {
    // An error page must not read as rows (its first line skipped as a header).
    let text = success_text(
        client
            .get(server.url(&format!("/repositories/{repository}")))
            .query(&[("query", "SELECT ?s WHERE { ?s ?p ?o }")])
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap(),
    )
    .await;
    text.lines().skip(1).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_online_backup_restores_a_consistent_cut_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = Server::start(&dir.path().join("source"));
    let target = Server::start(&dir.path().join("target"));
    let client = Client::default();
    assert!(client
        .put(source.url("/repositories/src"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let response = client
        .post(source.url("/repositories/src/statements"))
        .header("content-type", "application/n-triples")
        .body(common::ntriples(2000))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    // One writer, one triple at a time, counting what was acknowledged.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        let url = source.url("/repositories/src/statements");
        tokio::spawn(async move {
            let client = Client::default();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(url.clone())
                    .header("content-type", "application/n-triples")
                    .body(format!(
                        "<http://example.org/w{i}> <http://example.org/p> \"{i}\" .\n"
                    ))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                i += 1;
                acknowledged.store(i, Ordering::SeqCst);
            }
            i
        })
    };
    while acknowledged.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = acknowledged.load(Ordering::SeqCst);
    let archive = dir.path().join("src.backup");
    let spec = source.spec("src");
    let archive_arg = archive.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || cli(&["backup", &spec, &archive_arg]))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let during = acknowledged.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    let attempted = writer.await.unwrap();
    assert!(during > before, "no write went on during the backup");

    // Restored elsewhere, as a new standalone repository.
    let output = cli(&[
        "restore",
        archive.to_str().unwrap(),
        &target.spec("restored"),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let subjects = select_subjects(&client, &target, "restored").await;
    let mut written: Vec<usize> = subjects
        .iter()
        .filter_map(|s| s.strip_prefix("http://example.org/w"))
        .map(|n| n.parse().unwrap())
        .collect();
    written.sort();
    let base = subjects.len() - written.len();
    assert_eq!(base, 2000, "the bulk load is whole");
    // A consistent cut of one writer's sequence: a prefix, holding at least what was
    // acknowledged before the backup began, and nothing never attempted.
    let cut = written.len();
    assert_eq!(written, (0..cut).collect::<Vec<_>>(), "not a prefix");
    assert!(
        cut >= before,
        "{cut} < {before} acknowledged before the backup"
    );
    assert!(cut <= attempted);
    eprintln!("backup cut at {cut} of {attempted} writes ({before} acknowledged before it)");

    // Restoring over an existing repository is refused.
    let output = cli(&[
        "restore",
        archive.to_str().unwrap(),
        &target.spec("restored"),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("409"));

    // A truncated archive and a damaged one are refused, and create nothing.
    let bytes = std::fs::read(&archive).unwrap();
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let damaged = dir.path().join("damaged.backup");
    let mut flipped = bytes.clone();
    // Inside the store's first file, past its 512-byte tar header.
    flipped[512 + 100] ^= 0x40;
    std::fs::write(&damaged, &flipped).unwrap();
    for (archive, name) in [(&truncated, "truncated"), (&damaged, "damaged")] {
        let output = cli(&["restore", archive.to_str().unwrap(), &target.spec(name)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} was restored");
        assert!(
            stderr.contains("400") && stderr.contains("invalid archive"),
            "{stderr}"
        );
        let status = client
            .get(target.url(&format!("/repositories/{name}/size")))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{name} left a repository behind");
    }

    // From standard input, as the first instance of a new cluster.
    let mut child = Command::new(binary())
        .args([
            "restore",
            "-",
            &target.spec("clustered"),
            "--new-cluster",
            "first",
        ])
        .stdin(std::fs::File::open(&archive).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let status: serde_json::Value = client
        .get(target.url("/repositories/clustered/repl/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["instance"], "first", "{status}");
    assert_eq!(
        select_subjects(&client, &target, "clustered").await.len(),
        subjects.len()
    );
}
