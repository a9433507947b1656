//! The `quadmesh` client commands against a real server.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Output};

fn quadmesh(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("QUADMESH_USER")
        .env_remove("QUADMESH_PASSWORD")
        .output()
        .expect("run quadmesh")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn repo_load_query_export() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let spec = server.spec("books");

    ok(&quadmesh(&["repo", "create", &spec]));
    let listing = ok(&quadmesh(&["repo", "list", &server.spec("")]));
    assert!(listing.contains("| books"), "{listing}");

    // A gzipped N-Triples file and a Turtle file put into a named graph.
    let nt_gz = dir.path().join("data.nt.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&nt_gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(ntriples(2500).as_bytes()).unwrap();
    encoder.finish().unwrap();
    let ttl = dir.path().join("more.ttl");
    std::fs::write(
        &ttl,
        "@prefix ex: <http://example.org/> .\nex:x ex:p [ ex:q 1 ] .\n",
    )
    .unwrap();
    let out = ok(&quadmesh(&[
        "load",
        &spec,
        nt_gz.to_str().unwrap(),
        "--batch-size",
        "1000",
        "--quiet",
    ]));
    assert!(out.contains("loaded 2500 statements"), "{out}");
    let out = ok(&quadmesh(&[
        "load",
        &spec,
        ttl.to_str().unwrap(),
        "--context",
        "http://example.org/g",
        "--quiet",
    ]));
    assert!(out.contains("loaded 2 statements"), "{out}");

    // The table names the column and counts rows; without a dataset the query sees
    // every graph (AllegroGraph's default), with FROM DEFAULT the default graph alone.
    let table = ok(&quadmesh(&[
        "query",
        &spec,
        "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
    ]));
    assert!(
        table.contains("| n ") && table.contains("2502") && table.contains("1 row"),
        "{table}"
    );
    let table = ok(&quadmesh(&[
        "query",
        &spec,
        "SELECT (COUNT(*) AS ?n) FROM DEFAULT WHERE { ?s ?p ?o }",
    ]));
    assert!(table.contains("2500"), "{table}");
    let query_file = dir.path().join("q.rq");
    std::fs::write(
        &query_file,
        "SELECT ?o WHERE { GRAPH <http://example.org/g> { ?b <http://example.org/q> ?o } }",
    )
    .unwrap();
    let csv = ok(&quadmesh(&[
        "query",
        &spec,
        &format!("@{}", query_file.display()),
        "--format",
        "csv",
    ]));
    assert_eq!(csv.replace("\r\n", "\n"), "o\n1\n");

    // Export writes everything, graphs included; blank nodes stay linked.
    let exported = ok(&quadmesh(&["export", &spec]));
    assert_eq!(exported.lines().count(), 2502);
    assert!(exported.contains("<http://example.org/g> ."));

    // A broken file loads nothing, and the error names the file.
    let bad = dir.path().join("bad.ttl");
    std::fs::write(
        &bad,
        format!(
            "{}<http://example.org/z> <http://example.org/p> \"oops .\n",
            ntriples(100)
        ),
    )
    .unwrap();
    let output = quadmesh(&["load", &spec, bad.to_str().unwrap(), "--quiet"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.ttl") && stderr.contains("nothing was loaded"),
        "{stderr}"
    );
    let table = ok(&quadmesh(&[
        "query",
        &spec,
        "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }",
    ]));
    assert!(table.contains("| 2 "), "{table}");

    ok(&quadmesh(&["repo", "delete", &spec]));
    let listing = ok(&quadmesh(&["repo", "list", &server.spec("")]));
    assert!(!listing.contains("books"));
}

#[test]
fn client_errors_name_the_problem() {
    let output = quadmesh(&["query", "admin:pw@localhost:notaport/r", "ASK {}"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid port"));

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let wrong = format!("{USER}:wrong@127.0.0.1:{}/x", server.port);
    let output = quadmesh(&["repo", "create", &wrong]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
    let output = quadmesh(&["load", &server.spec("x"), "missing.nt"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.nt"));
    let output = quadmesh(&["query", &server.spec("nope"), "ASK {}"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[test]
fn serve_without_a_superuser_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = quadmesh(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--port",
        &free_port().to_string(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no superuser") && stderr.contains("QUADMESH_PASSWORD"),
        "{stderr}"
    );
}
