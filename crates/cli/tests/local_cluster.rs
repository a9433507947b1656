//! `quadmesh local-cluster`, the README's run command, as a user runs it.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn local_cluster_runs_three_replicating_instances_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    // Three consecutive free ports.
    let port = loop {
        let p = free_port();
        if p < 65000 && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            break p;
        }
    };
    let mut child = Command::new(binary())
        .args([
            "local-cluster",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .env("QUADMESH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    while !printed.contains("Ctrl-C") {
        let line = lines
            .next()
            .expect("local-cluster ended before it was ready")
            .unwrap();
        printed.push_str(&line);
        printed.push('\n');
    }
    let password = std::fs::read_to_string(dir.path().join("local-cluster-password")).unwrap();
    assert!(
        printed.contains(&format!("password: {}", password.trim())),
        "{printed}"
    );
    for p in [port, port + 1, port + 2] {
        assert!(
            printed.contains(&format!("http://127.0.0.1:{p}/repositories/demo")),
            "{printed}"
        );
    }

    let http = reqwest::Client::new();
    let response = http
        .post(format!(
            "http://127.0.0.1:{}/repositories/demo/statements",
            port + 2
        ))
        .basic_auth("admin", Some(password.trim()))
        .header("content-type", "text/turtle")
        .body("<http://example.org/a> <http://example.org/b> \"written on copy-2\" .")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    for p in [port, port + 1] {
        loop {
            let size = success_text(
                http.get(format!("http://127.0.0.1:{p}/repositories/demo/size"))
                    .basic_auth("admin", Some(password.trim()))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if size.trim() == "1" {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "not visible on port {p} within {PATIENCE:?} (size {size})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    eprintln!(
        "a triple written on copy-2 was visible on the others after {:?}",
        started.elapsed()
    );

    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "local-cluster exited with {status}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the controlling instance still runs"
    );
}
