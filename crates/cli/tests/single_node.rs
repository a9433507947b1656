//! The single-node server as a user meets it: real processes, real HTTP, a real store
//! on disk.

mod common;

use common::*;
use std::time::{Duration, Instant};

const REPO: &str = "test";

async fn create_repository(client: &Client, server: &Server, name: &str) {
    let response = client
        .put(server.url(&format!("/repositories/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn the_issue_walkthrough_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));

    // 100,000 generated N-Triples in one POST.
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body(ntriples(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(size(&client, &server, REPO).await, 100_000);
    assert_eq!(
        select_one(
            &client,
            &repo_url,
            "SELECT (COUNT(*) AS ?c) WHERE { ?s ?p ?o }"
        )
        .await,
        "100000"
    );

    // A SPARQL Update changes it as expected.
    let response = client
        .post(repo_url.clone())
        .form(&[(
            "update",
            "DELETE { ?s ?p ?o } INSERT { ?s <http://example.org/q> ?o } WHERE { ?s ?p ?o FILTER(?o IN (\"v1\", \"v2\", \"v3\")) }",
        )])
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    assert_eq!(size(&client, &server, REPO).await, 100_000);
    assert_eq!(
        select_one(
            &client,
            &repo_url,
            "SELECT (COUNT(*) AS ?c) WHERE { ?s <http://example.org/q> ?o }"
        )
        .await,
        "3"
    );
    let response = client
        .post(repo_url.clone())
        .header("content-type", "application/sparql-update")
        .body("DELETE WHERE { <http://example.org/s10> ?p ?o }")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(size(&client, &server, REPO).await, 99_999);

    // A session's writes: visible inside, invisible outside until commit, gone after rollback.
    let session = open_session(&client, &server, REPO, "").await;
    let add = |url: String| {
        client
            .post(format!("{url}/statements"))
            .header("content-type", "text/turtle")
            .body("<http://example.org/new> <http://example.org/p> \"in session\" .")
            .send()
    };
    assert_eq!(add(session.clone()).await.unwrap().status(), 200);
    let count_new = "SELECT (COUNT(*) AS ?c) WHERE { <http://example.org/new> ?p ?o }";
    assert_eq!(select_one(&client, &session, count_new).await, "1");
    assert_eq!(select_one(&client, &repo_url, count_new).await, "0");
    assert_eq!(size(&client, &server, REPO).await, 99_999);
    let session_size: u64 = client
        .get(format!("{session}/size"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(session_size, 100_000);
    assert_eq!(
        client
            .post(format!("{session}/commit"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(select_one(&client, &repo_url, count_new).await, "1");

    let response = client
        .post(session.clone())
        .form(&[(
            "update",
            "DELETE DATA { <http://example.org/new> <http://example.org/p> \"in session\" }",
        )])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(select_one(&client, &session, count_new).await, "0");
    assert_eq!(select_one(&client, &repo_url, count_new).await, "1");
    assert_eq!(
        client
            .post(format!("{session}/rollback"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(select_one(&client, &session, count_new).await, "1");
    assert_eq!(
        client
            .post(format!("{session}/session/close"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        client
            .get(format!("{session}/size"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // A bad Turtle upload answers 400 and changes nothing.
    let before = size(&client, &server, REPO).await;
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "text/turtle")
        .body("<http://example.org/a> <http://example.org/b> <http://example.org/c> .\n<http://example.org/a> <http://example.org/b> \"unterminated .\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("line 2"));
    assert_eq!(size(&client, &server, REPO).await, before);

    // No credentials: 401 with a challenge.
    let response = reqwest::get(server.url(&format!("/repositories/{REPO}/size")))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let response = reqwest::Client::new()
        .get(server.url("/repositories"))
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // After a restart (no credentials needed any more) the data is there.
    server.stop();
    server.restart();
    // A new client: pooled connections went with the old process.
    let client = Client::default();
    assert_eq!(size(&client, &server, REPO).await, before);
    assert_eq!(select_one(&client, &repo_url, count_new).await, "1");
}

async fn open_session(client: &Client, server: &Server, repository: &str, query: &str) -> String {
    let response = client
        .post(server.url(&format!(
            "/repositories/{repository}/session?autoCommit=false{query}"
        )))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let url: String = response.json().await.unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with('/'),
        "{url}"
    );
    url
}

#[tokio::test]
async fn an_error_on_the_last_of_1000_lines_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let mut body = ntriples(999);
    body.push_str("<http://example.org/s> <http://example.org/p> <not an iri> .\n");
    for content_type in ["application/n-triples", "text/turtle"] {
        let response = client
            .post(server.url(&format!("/repositories/{REPO}/statements")))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let message = response.text().await.unwrap();
        assert!(
            message.contains("1000"),
            "the error should name line 1000: {message}"
        );
    }
    assert_eq!(size(&client, &server, REPO).await, 0);
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_answers_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-body-mb", "1"]);
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body(ntriples(10))
        .send()
        .await
        .unwrap();

    let check = |status: u16, needle: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status().as_u16(), status);
            let text = response.text().await.unwrap();
            assert!(
                text.to_lowercase().contains(needle),
                "expected '{needle}' in: {text}"
            );
        }
    };
    // SPARQL syntax errors.
    check(400, "syntax")(
        client
            .get(repo_url.clone())
            .query(&[("query", "SELEC * WHERE {")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(400, "syntax")(
        client
            .post(repo_url.clone())
            .form(&[("update", "INSERT DATA { <a> }")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Unknown content type and unknown result type.
    check(415, "content-type")(
        client
            .post(format!("{repo_url}/statements"))
            .header("content-type", "application/x-unknown")
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(406, "accepted")(
        client
            .get(repo_url.clone())
            .query(&[("query", "SELECT * WHERE { ?s ?p ?o }")])
            .header("accept", "image/png")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Unknown repository.
    check(404, "does not exist")(
        client
            .get(server.url("/repositories/nope/size"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(404, "does not exist")(
        client
            .get(server.url("/repositories/nope"))
            .query(&[("query", "ASK {}")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Invalid repository name, existing repository.
    check(400, "invalid repository name")(
        client
            .put(server.url("/repositories/.hidden"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(409, "already exists")(client.put(repo_url.clone()).send().await.unwrap()).await;
    // A body over the limit. (A client of its own: the server answers before reading
    // the body and closes that connection, which must not go back to a shared pool.)
    let response = Client::default()
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body(ntriples(40_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Bad terms in parameters.
    check(400, "invalid subject")(
        client
            .delete(format!("{repo_url}/statements"))
            .query(&[("subj", "\"a literal\"")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    // LOAD is refused rather than fetching from the network.
    check(400, "not supported")(
        client
            .post(repo_url.clone())
            .form(&[("update", "LOAD <http://example.org/data.ttl>")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(size(&client, &server, REPO).await, 10);
}

#[tokio::test]
async fn a_query_past_its_timeout_is_stopped_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body(ntriples(20_000))
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    // 4 * 10^8 combinations: far longer than the timeout.
    let response = client
        .get(repo_url.clone())
        .query(&[
            (
                "query",
                "SELECT (COUNT(*) AS ?c) WHERE { ?a ?b ?c . ?d ?e ?f }",
            ),
            ("timeout", "0.5"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout did not stop the query"
    );
    assert_eq!(size(&client, &server, REPO).await, 20_000);
}

#[tokio::test]
async fn sessions_expire_and_never_block_other_writers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    // Long enough that no stall of a busy machine between two requests (a ping every
    // quarter of it) outlasts it.
    const LIFETIME: Duration = Duration::from_secs(8);
    let session = open_session(
        &client,
        &server,
        REPO,
        &format!("&lifetime={}", LIFETIME.as_secs()),
    )
    .await;
    let touched = Instant::now();
    let response = client
        .put(format!("{session}/statement"))
        .query(&[
            ("subj", "<http://example.org/x>"),
            ("pred", "<http://example.org/p>"),
            ("obj", "\"pending\""),
            ("context", "null"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // Another writer goes ahead while the session holds uncommitted work: it is done
    // while the session is still open (a writer that waited for the session would
    // wait for its expiry, and the ping below would find it gone).
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/n-triples")
        .body(ntriples(5))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(size(&client, &server, REPO).await, 5);
    assert_eq!(sessions_open(&client, &server).await, 1);

    // Pinging keeps it past its lifetime; silence ends it, and its work is rolled back.
    while touched.elapsed() < LIFETIME + LIFETIME / 4 {
        tokio::time::sleep(LIFETIME / 4).await;
        let status = client
            .get(format!("{session}/session/ping"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status,
            204,
            "ping {:?} after the session opened",
            touched.elapsed()
        );
    }
    let last_touch = Instant::now();
    let text = success_text(client.get(format!("{session}/size")).send().await.unwrap()).await;
    // The session reads its snapshot plus its own write: the other writer's five quads
    // came after it started.
    assert_eq!(text.trim(), "1");
    wait_for(
        "the silent session to expire",
        LIFETIME + PATIENCE,
        async || sessions_open(&client, &server).await == 0,
    )
    .await;
    assert!(
        last_touch.elapsed() >= LIFETIME,
        "the session expired {:?} after its last use, before its lifetime",
        last_touch.elapsed()
    );
    assert_eq!(
        client
            .post(format!("{session}/commit"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(size(&client, &server, REPO).await, 5);
}

/// `quadmesh_sessions_open` of a server (reading `/metrics` uses no session).
async fn sessions_open(client: &Client, server: &Server) -> u64 {
    let text = success_text(client.get(server.url("/metrics")).send().await.unwrap()).await;
    text.lines()
        .find_map(|l| l.strip_prefix("quadmesh_sessions_open "))
        .unwrap_or_else(|| panic!("no quadmesh_sessions_open in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn statements_and_graphs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    let repo_url = server.url(&format!("/repositories/{REPO}"));
    let trig = r#"
        <http://example.org/a> <http://example.org/p> "default" .
        <http://example.org/g1> { <http://example.org/a> <http://example.org/p> "one" . <http://example.org/b> <http://example.org/p> "two"@EN-gb . }
        <http://example.org/g2> { _:x <http://example.org/p> _:x . }
    "#;
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/trig")
        .body(trig)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(size(&client, &server, REPO).await, 4);

    let contexts: Vec<serde_json::Value> = client
        .get(format!("{repo_url}/contexts"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        contexts,
        vec![
            serde_json::json!({"contextID": "<http://example.org/g1>"}),
            serde_json::json!({"contextID": "<http://example.org/g2>"})
        ]
    );
    let in_g1 = client
        .get(format!("{repo_url}/size"))
        .query(&[("context", "<http://example.org/g1>")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(in_g1.trim(), "2");
    let in_default = client
        .get(format!("{repo_url}/size"))
        .query(&[("context", "null")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(in_default.trim(), "1");

    // GET statements as AllegroGraph JSON: N-Triples cells, lower-cased language tags.
    let rows: Vec<Vec<serde_json::Value>> = client
        .get(format!("{repo_url}/statements"))
        .query(&[("subj", "<http://example.org/b>")])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            serde_json::json!("<http://example.org/b>"),
            serde_json::json!("<http://example.org/p>"),
            serde_json::json!("\"two\"@en-gb"),
            serde_json::json!("<http://example.org/g1>"),
        ]]
    );

    // Blank nodes keep one label within a document, a label clients can read back.
    let rows: Vec<Vec<serde_json::Value>> = client
        .get(format!("{repo_url}/statements"))
        .query(&[("context", "<http://example.org/g2>")])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (s, o) = (rows[0][0].as_str().unwrap(), rows[0][2].as_str().unwrap());
    assert_eq!(s, o);
    assert!(
        s.starts_with("_:b") && s[3..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{s}"
    );

    // Graph store protocol: replace g1, read it back, drop it.
    let gsp = format!("{repo_url}/rdf-graphs/service");
    let response = client
        .put(gsp.clone())
        .query(&[("graph", "http://example.org/g1")])
        .header("content-type", "application/n-triples")
        .body("<http://example.org/c> <http://example.org/p> \"replaced\" .\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let body = client
        .get(gsp.clone())
        .query(&[("graph", "http://example.org/g1")])
        .header("accept", "application/n-triples")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body.trim(),
        "<http://example.org/c> <http://example.org/p> \"replaced\" ."
    );
    assert_eq!(
        client
            .delete(gsp.clone())
            .query(&[("graph", "http://example.org/g1")])
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        client
            .get(gsp.clone())
            .query(&[("graph", "http://example.org/g1")])
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(size(&client, &server, REPO).await, 2);

    // DELETE /statements with a pattern, and /statements/delete with JSON quads.
    let removed: u64 = client
        .delete(format!("{repo_url}/statements"))
        .query(&[("obj", "\"default\""), ("context", "null")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let response = client
        .post(format!("{repo_url}/statements"))
        .header("content-type", "application/json")
        .body(r#"[["<http://example.org/j>", "<http://example.org/p>", "\"json\"", null]]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(size(&client, &server, REPO).await, 2);
    let response = client
        .post(format!("{repo_url}/statements/delete"))
        .header("content-type", "application/json")
        .body(r#"[["<http://example.org/j>", "<http://example.org/p>", "\"json\"", "null"]]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(size(&client, &server, REPO).await, 1);

    // Content negotiation of SELECT results.
    for (accept, needle) in [
        ("application/sparql-results+xml", "<sparql"),
        ("text/csv", "s\r\n"),
        ("text/tab-separated-values", "?s"),
        ("application/json", "\"names\""),
    ] {
        let response = client
            .get(repo_url.clone())
            .query(&[("query", "SELECT ?s WHERE { GRAPH ?g { ?s ?p ?o } }")])
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains(needle), "{accept}");
    }
    // CONSTRUCT in Turtle, bindings with $var.
    let response = client
        .get(repo_url.clone())
        .query(&[
            (
                "query",
                "CONSTRUCT { ?s <http://example.org/seen> true } WHERE { GRAPH ?g { ?s ?p ?o } }",
            ),
            ("$g", "<http://example.org/g2>"),
        ])
        .header("accept", "text/turtle")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("<http://example.org/seen> true"));
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = Client::default();
    create_repository(&client, &server, REPO).await;
    for batch in 0..5 {
        let body: String = (0..1000)
            .map(|i| {
                format!("<http://example.org/b{batch}/s{i}> <http://example.org/p> \"{i}\" .\n")
            })
            .collect();
        let response = client
            .post(server.url(&format!("/repositories/{REPO}/statements")))
            .header("content-type", "application/n-triples")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // A load large enough for the bulk path, acknowledged just before the kill.
    let response = client
        .post(server.url(&format!("/repositories/{REPO}/statements")))
        .header("content-type", "application/n-triples")
        .body(ntriples(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.kill();
    server.restart();
    assert_eq!(size(&Client::default(), &server, REPO).await, 25_000);
}
