//! Results, exports and uploads stream: their size does not become the server's memory,
//! an upload with an error anywhere changes nothing, and a client that leaves stops the
//! work it asked for.

mod common;

use common::*;
use futures::StreamExt;
use std::time::Duration;

const REPO: &str = "big";

/// A field of `/proc/PID/status`, in kB.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Peak resident memory of the server so far, in MiB.
fn peak_mb(server: &Server) -> u64 {
    proc_status_kb(server.pid(), "VmHWM") / 1024
}

async fn create_repository(client: &Client, server: &Server, name: &str) {
    let response = client
        .put(server.url(&format!("/repositories/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

/// Reads a whole response body, counting its bytes without keeping them.
async fn drain(response: reqwest::Response) -> u64 {
    let mut stream = response.bytes_stream();
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk.expect("the body arrives whole").len() as u64;
    }
    total
}

/// `Authorization` for the superuser, as a client sends it.
fn basic_authorization() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let plain = format!("{USER}:{PASSWORD}");
    let mut out = String::new();
    for chunk in plain.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | ((*b as u32) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// POSTs `body` over a plain socket and returns the server's whole answer (head and
/// body) as text. The server may answer and close before the body is all sent; an HTTP
/// client then reports the broken send instead of the answer, but the answer is already
/// here, so the sending simply stops and the answer is read.
fn post_raw(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: {}\r\n\
         content-length: {}\r\nconnection: close\r\n",
        basic_authorization(),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(64 << 10) {
        if stream.write_all(chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    // A reset after the answer is no failure: what arrived before it is kept.
    let read = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        !answer.is_empty(),
        "no answer to POST {path} ({} bytes): {read:?}",
        body.len()
    );
    answer
}

/// A value of `/metrics`, by its full name.
async fn metric(client: &Client, server: &Server, name: &str) -> f64 {
    let text = success_text(client.get(server.url("/metrics")).send().await.unwrap()).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// `count` triples about `<http://example.org/{part}/s{i}>`, each with a literal of
/// `literal_bytes` bytes.
fn fat_ntriples(part: usize, count: usize, literal_bytes: usize) -> Vec<u8> {
    let filler = "x".repeat(literal_bytes);
    let mut out = Vec::with_capacity(count * (literal_bytes + 80));
    for i in 0..count {
        out.extend_from_slice(
            format!("<http://example.org/{part}/s{i}> <http://example.org/p> \"{i} {filler}\" .\n")
                .as_bytes(),
        );
    }
    out
}

#[tokio::test]
async fn a_result_and_an_export_far_larger_than_the_memory_they_cost_stream_through() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--no-fsync"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    // 240 MB of literals, in 4 uploads of 60 MB.
    const TRIPLES: usize = 2_400;
    const LITERAL: usize = 100_000;
    for part in 0..4 {
        let body = fat_ntriples(part, TRIPLES / 4, LITERAL);
        let response = client
            .post(format!("{repo_url}/statements"))
            .header("content-type", "application/n-triples")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    assert_eq!(size(&client, &server, REPO).await, TRIPLES as u64);
    // Loading has its own peak: measure the reads on a fresh process.
    server.stop();
    server.restart();
    // A new client: the old one's pooled connections went with the old process.
    let client = Client::default();

    let before = peak_mb(&server);
    let response = client
        .get(repo_url.clone())
        .query(&[("query", "SELECT * WHERE { ?s ?p ?o }")])
        .header("accept", "application/sparql-results+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let select_bytes = drain(response).await;
    let after_select = peak_mb(&server);

    let response = client
        .get(format!("{repo_url}/statements"))
        .header("accept", "application/n-quads")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let export_bytes = drain(response).await;
    let after_export = peak_mb(&server);

    eprintln!(
        "peak RSS {before} MiB; after a {} MiB SELECT {after_select} MiB; after a {} MiB export {after_export} MiB",
        select_bytes >> 20,
        export_bytes >> 20
    );
    assert!(select_bytes > 200 << 20 && export_bytes > 200 << 20);
    assert!(
        after_select - before < 100,
        "a {} MiB result took the server's peak from {before} to {after_select} MiB",
        select_bytes >> 20
    );
    assert!(
        after_export - before < 100,
        "a {} MiB export took the server's peak from {before} to {after_export} MiB",
        export_bytes >> 20
    );
}

#[tokio::test]
async fn an_upload_with_an_error_on_its_last_line_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--no-fsync"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body("<http://example.org/a> <http://example.org/b> \"kept\" .\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // About 20 MB (well past what is kept in memory), broken on line 300,001.
    let mut body = ntriples(300_000).replace("example.org/s", "example.org/new");
    body.push_str("<http://example.org/last> <http://example.org/p> \"unterminated .\n");
    assert!(body.len() > 16 << 20);
    // An auto-committing session: its writes commit at once.
    let response = client
        .post(server.url(&format!("/repositories/{REPO}/session?autoCommit=true")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session: String = response.json().await.unwrap();
    for (method, url, content_type) in [
        // The load path (N-Triples, Turtle), the replacing path, a session's path, the
        // graph store.
        (
            "POST",
            format!("{repo_url}/statements"),
            "application/n-triples",
        ),
        ("POST", format!("{repo_url}/statements"), "text/turtle"),
        (
            "PUT",
            format!("{repo_url}/statements"),
            "application/n-triples",
        ),
        (
            "POST",
            format!("{session}/statements"),
            "application/n-triples",
        ),
        (
            "PUT",
            format!("{repo_url}/rdf-graphs/service?graph=http://example.org/g"),
            "application/n-triples",
        ),
    ] {
        let request = match method {
            "POST" => client.post(url.clone()),
            _ => client.put(url.clone()),
        };
        let response = request
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let message = response.text().await.unwrap();
        assert_eq!(status, 400, "{method} {url}: {message}");
        assert!(
            message.contains("300001"),
            "{method} {url}: the message names the line: {message}"
        );
        assert_eq!(size(&client, &server, REPO).await, 1, "{method} {url}");
    }

    // The same body, gzipped and repaired, goes in whole.
    let fixed = body.replace("\"unterminated .", "\"terminated\" .");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, fixed.as_bytes()).unwrap();
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(size(&client, &server, REPO).await, 300_002);
}

#[tokio::test]
async fn a_blank_node_is_one_node_throughout_a_large_upload_and_another_in_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--no-fsync"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    // About 14 MB: parsed in many pieces, on every core; the label is in every piece.
    let mut body = String::new();
    for i in 0..200_000 {
        body.push_str(&format!(
            "<http://example.org/s{i}> <http://example.org/p> _:shared .\n"
        ));
    }
    for _ in 0..2 {
        let response = client
            .post(format!("{repo_url}/statements"))
            .header("content-type", "application/n-triples")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        success_text(response).await;
    }
    assert_eq!(size(&client, &server, REPO).await, 400_000);
    let nodes = select_one(
        &client,
        &repo_url,
        "SELECT (COUNT(DISTINCT ?o) AS ?n) WHERE { ?s <http://example.org/p> ?o }",
    )
    .await;
    assert_eq!(nodes, "2", "one node per upload");
}

#[tokio::test]
async fn an_upload_past_the_size_limit_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--no-fsync", "--max-body-mb", "2"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let path = format!("/repositories/{REPO}/statements");
    // About 3.5 MB. The server answers 413 as soon as the limit is passed, and closes
    // the connection.
    let body = ntriples(60_000);
    let answer = post_raw(
        server.port,
        &path,
        &[("content-type", "application/n-triples")],
        body.as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("the request body exceeds the limit of 2097152 bytes"),
        "{answer}"
    );
    // Small when sent, too large once decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 2 << 20, "{} bytes gzipped", gz.len());
    let answer = post_raw(
        server.port,
        &path,
        &[
            ("content-type", "application/n-triples"),
            ("content-encoding", "gzip"),
        ],
        &gz,
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("the decompressed body exceeds the limit of 2097152 bytes"),
        "{answer}"
    );
    assert_eq!(size(&client, &server, REPO).await, 0);
    // Below the limit the same route takes the same kind of body (the refusals above
    // were for the size).
    let response = client
        .post(server.url(&path))
        .header("content-type", "application/n-triples")
        .body(ntriples(1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(size(&client, &server, REPO).await, 1_000);
}

#[tokio::test]
async fn a_memory_limit_bounds_the_largest_upload_unless_the_body_limit_is_set() {
    // 64 MiB: uploads up to a thirty-second of it, 2 MiB.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--no-fsync", "--memory-limit-mib", "64"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let path = format!("/repositories/{REPO}/statements");
    let answer = post_raw(
        server.port,
        &path,
        &[("content-type", "application/n-triples")],
        ntriples(60_000).as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("the request body exceeds the limit of 2097152 bytes")
            && answer.contains("--memory-limit-mib"),
        "{answer}"
    );
    assert_eq!(size(&client, &server, REPO).await, 0);
    let response = client
        .post(server.url(&path))
        .header("content-type", "application/n-triples")
        .body(ntriples(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(size(&client, &server, REPO).await, 20_000);
    drop(server);

    // The operator's own body limit wins over the derived one.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--no-fsync",
            "--memory-limit-mib",
            "64",
            "--max-body-mb",
            "8",
        ],
    );
    create_repository(&client, &server, REPO).await;
    let response = client
        .post(server.url(&path))
        .header("content-type", "application/n-triples")
        .body(ntriples(60_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(size(&client, &server, REPO).await, 60_000);
}

/// 10^9 rows from 1,000 triples: a result no test waits for.
const ENDLESS: &str = "SELECT * WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }";

#[tokio::test]
async fn a_client_that_leaves_mid_result_stops_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--no-fsync"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body(ntriples(1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let running = "quadmesh_result_streams_running";
    let abandoned = "quadmesh_result_streams_abandoned_total";
    assert_eq!(metric(&client, &server, abandoned).await, 0.0);

    // Leaves after the first megabyte of rows.
    let response = client
        .get(repo_url.clone())
        .query(&[("query", ENDLESS)])
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = 0;
    while received < 1 << 20 {
        received += stream.next().await.unwrap().unwrap().len();
    }
    assert_eq!(metric(&client, &server, running).await, 1.0);
    drop(stream);
    wait_for("the query to stop", Duration::from_secs(30), async || {
        metric(&client, &server, running).await == 0.0
    })
    .await;
    assert_eq!(metric(&client, &server, abandoned).await, 1.0);

    // Leaves before the first row: the query is still computing (a count).
    let leaving = client
        .get(repo_url.clone())
        .query(&[(
            "query",
            "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }",
        )])
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(leaving.unwrap_err().is_timeout());
    wait_for("the count to stop", Duration::from_secs(30), async || {
        metric(&client, &server, running).await == 0.0
    })
    .await;
    assert_eq!(metric(&client, &server, abandoned).await, 2.0);

    // The server answers as before.
    assert_eq!(
        select_one(
            &client,
            &repo_url,
            "SELECT (COUNT(*) AS ?c) WHERE { ?s ?p ?o }"
        )
        .await,
        "1000"
    );
}

#[tokio::test]
async fn an_error_after_the_first_bytes_breaks_the_response_instead_of_ending_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--no-fsync"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body(ntriples(1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The timeout fires while rows stream: the body must not end as if complete.
    let response = client
        .get(repo_url.clone())
        .query(&[("query", ENDLESS), ("timeout", "1")])
        .header("accept", "application/sparql-results+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut broken = false;
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            broken = true;
            break;
        }
    }
    assert!(broken, "the body ended as if it were complete");
    // A timeout before the first row is still a status with a message.
    let response = client
        .get(repo_url)
        .query(&[
            (
                "query",
                "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }",
            ),
            ("timeout", "0.5"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("timeout"));
}
