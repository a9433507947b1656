//! IRIs as AllegroGraph keeps them (issue 24, item 3): any string, sent and returned in
//! N-Triples syntax with `\u` escapes for what N-Triples forbids raw (agraph-python's
//! `test_escaping`, `test_export_query_result_tsv`). Stored and returned unchanged
//! through `/statement`, `/statements` in every format, SPARQL results and bindings,
//! export and load, and replication, against real servers.

mod common;

use common::cluster::Cluster;
use common::*;
use std::process::Command;
use std::time::Duration;

/// agraph-python's `test_escaping` subject, predicate and datatype.
const S: &str = "http://franz.com/ex#\"Zażółć gęślą jaźń\"";
const P: &str = "http://franz.com/ex#<langle{lcurl|or^caret\"dblquote\\bslash}rcurl>rangle";
const T: &str = "http://franz.com/ex#\"quoted\"";
/// `test_export_query_result_tsv`'s object: a tab, a line feed, a carriage return, a
/// backslash.
const O: &str = "http://franz.com/aa \t \n \r \\ bb";
const G: &str = "http://franz.com/graph {1}";

/// An IRI in N-Triples syntax as quadmesh writes it (agraph-python writes the same
/// escapes in lower case, which quadmesh reads too).
fn nt(iri: &str) -> String {
    let mut out = String::from("<");
    for c in iri.chars() {
        if c <= ' ' || "<>\"{}|^`\\".contains(c) {
            out.push_str(&format!("\\u{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('>');
    out
}

/// The same, in agraph-python's lower case.
fn nt_lower(iri: &str) -> String {
    let mut out = String::from("<");
    for c in iri.chars() {
        if c <= ' ' || "<>\"{}|^`\\".contains(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('>');
    out
}

fn literal() -> String {
    format!("\"\\\"Zażółć gęślą jaźń\\\"\"^^{}", nt(T))
}

struct Repo {
    client: Client,
    server: Server,
    _dir: tempfile::TempDir,
}

impl Repo {
    async fn start() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        let repo = Repo {
            client: Client::default(),
            server,
            _dir: dir,
        };
        repo.create("ag").await;
        repo
    }

    async fn create(&self, name: &str) {
        let response = self
            .client
            .put(self.server.url(&format!("/repositories/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    fn url(&self, name: &str, path: &str) -> String {
        self.server.url(&format!("/repositories/{name}{path}"))
    }

    async fn statements(&self, name: &str, accept: &str) -> String {
        success_text(
            self.client
                .get(self.url(name, "/statements"))
                .header("accept", accept)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn add_statement(&self, params: &[(&str, String)]) {
        success_text(
            self.client
                .put(self.url("ag", "/statement"))
                .query(params)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }

    async fn select(&self, query: &str, params: &[(&str, &str)], accept: &str) -> String {
        let mut all = vec![("query", query)];
        all.extend_from_slice(params);
        success_text(
            self.client
                .get(self.url("ag", ""))
                .query(&all)
                .header("accept", accept)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn statement_stores_and_returns_iris_as_allegrograph_keeps_them() {
    let repo = Repo::start().await;
    // As agraph-python's addTriple sends them (escapes in lower case).
    repo.add_statement(&[
        ("subj", nt_lower(S)),
        ("pred", nt_lower(P)),
        (
            "obj",
            format!("\"\\\"Zażółć gęślą jaźń\\\"\"^^{}", nt_lower(T)),
        ),
    ])
    .await;
    repo.add_statement(&[
        ("subj", nt(S)),
        ("pred", "<http://franz.com/p>".into()),
        ("obj", nt(O)),
        ("context", nt(G)),
    ])
    .await;

    // AllegroGraph's JSON rows: N-Triples strings, read back by agraph-python.
    let rows: serde_json::Value =
        serde_json::from_str(&repo.statements("ag", "application/json").await).unwrap();
    let mut rows: Vec<serde_json::Value> = rows.as_array().unwrap().clone();
    rows.sort_by_key(|r| r.to_string());
    assert_eq!(
        rows,
        vec![
            serde_json::json!([nt(S), nt(P), literal(), null]),
            serde_json::json!([nt(S), "<http://franz.com/p>", nt(O), nt(G)]),
        ]
    );

    // N-Quads and N-Triples: escaped, one statement a line.
    let first = format!("{} {} {} .", nt(S), nt(P), literal());
    let second = format!("{} <http://franz.com/p> {}", nt(S), nt(O));
    assert_eq!(
        sorted_lines(&repo.statements("ag", "application/n-quads").await),
        vec![first.clone(), format!("{second} {} .", nt(G))]
    );
    assert_eq!(
        sorted_lines(&repo.statements("ag", "application/n-triples").await),
        vec![first.clone(), format!("{second} .")]
    );
    // Turtle and TriG: the same escapes, never an IRI written raw.
    for accept in ["text/turtle", "application/trig", "text/table"] {
        let text = repo.statements("ag", accept).await;
        assert!(
            text.contains(&nt(S)) && text.contains(&nt(O)),
            "{accept}: {text}"
        );
        assert!(!text.contains("Zażółć gęślą jaźń\">"), "{accept}: {text}");
    }
    assert!(repo
        .statements("ag", "application/trig")
        .await
        .contains(&format!("{} {{", nt(G))));

    // Filters by such terms, and a delete by pattern.
    let filtered = success_text(
        repo.client
            .get(repo.url("ag", "/statements"))
            .query(&[("subj", nt(S)), ("obj", nt(O))])
            .header("accept", "application/n-triples")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(filtered.trim(), format!("{second} ."));
    success_text(
        repo.client
            .delete(repo.url("ag", "/statements"))
            .query(&[("subj", nt(S)), ("pred", nt(P))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(size(&repo.client, &repo.server, "ag").await, 1);

    // RDF/XML writes such IRIs as XML allows, and refuses a predicate no XML element
    // can name rather than writing what is not XML.
    let xml = repo.statements("ag", "application/rdf+xml").await;
    assert!(
        xml.contains("rdf:about=\"http://franz.com/ex#&quot;"),
        "{xml}"
    );
    repo.add_statement(&[
        ("subj", "<http://franz.com/s>".into()),
        ("pred", "<http://franz.com/p\\u0020>".into()),
        ("obj", "\"x\"".into()),
    ])
    .await;
    let response = repo
        .client
        .get(repo.url("ag", "/statements"))
        .header("accept", "application/rdf+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let message = response.text().await.unwrap();
    assert!(message.contains("RDF/XML"), "{message}");
}

#[tokio::test]
async fn ntriples_documents_take_escaped_iris_and_refuse_raw_ones() {
    let repo = Repo::start().await;
    let document = format!(
        "{} {} {} .\n{} <http://franz.com/p> {} {} .\n",
        nt_lower(S),
        nt_lower(P),
        literal(),
        nt(S),
        nt(O),
        nt(G)
    );
    let response = repo
        .client
        .post(repo.url("ag", "/statements"))
        .header("content-type", "application/n-quads")
        .body(document)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let exported = repo.statements("ag", "application/n-quads").await;

    // Export, then load into another repository: the same quads.
    repo.create("copy").await;
    let response = repo
        .client
        .post(repo.url("copy", "/statements"))
        .header("content-type", "application/n-quads")
        .body(exported.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(
        sorted_lines(&repo.statements("copy", "application/n-quads").await),
        sorted_lines(&exported)
    );
    // The JSON rows of AllegroGraph's upload format too.
    let rows = repo.statements("ag", "application/json").await;
    repo.create("rows").await;
    let response = repo
        .client
        .post(repo.url("rows", "/statements"))
        .header("content-type", "application/json")
        .body(rows)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(
        sorted_lines(&repo.statements("rows", "application/n-quads").await),
        sorted_lines(&exported)
    );

    // A forbidden character written raw is a syntax error, as N-Triples says: 400,
    // naming the place, and nothing changes.
    for (document, named) in [
        (
            "<http://franz.com/s> <http://franz.com/p> <http://franz.com/o> .\n<http://franz.com/a b> <http://franz.com/p> <http://franz.com/o> .\n",
            "line 2",
        ),
        (
            "<http://franz.com/s> <http://franz.com/p> <http://franz.com/a\"b> .\n",
            "'\"'",
        ),
    ] {
        let response = repo
            .client
            .post(repo.url("ag", "/statements"))
            .header("content-type", "application/n-triples")
            .body(document)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let message = response.text().await.unwrap();
        assert!(message.contains(named), "{message}");
    }
    let response = repo
        .client
        .put(repo.url("ag", "/statement"))
        .query(&[
            ("subj", "<http://franz.com/a b>"),
            ("pred", "<http://franz.com/p>"),
            ("obj", "<http://franz.com/o>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(size(&repo.client, &repo.server, "ag").await, 2);
}

#[tokio::test]
async fn sparql_results_and_bindings_carry_such_iris() {
    let repo = Repo::start().await;
    repo.add_statement(&[
        ("subj", "<http://franz.com/s>".into()),
        ("pred", "<http://franz.com/p>".into()),
        ("obj", nt(O)),
    ])
    .await;
    repo.add_statement(&[
        ("subj", nt(S)),
        ("pred", "<http://franz.com/p>".into()),
        ("obj", "\"x\"".into()),
    ])
    .await;
    let query = "select ?o { ?s ?p ?o }";
    let bound: &[(&str, &str)] = &[("$s", "<http://franz.com/s>")];

    // TSV as AllegroGraph writes it (test_export_query_result_tsv's expectation).
    assert_eq!(
        repo.select(query, bound, "text/tab-separated-values").await,
        "?o\n<http://franz.com/aa \\t \\n \\r \\\\ bb>\n"
    );
    // CSV: the IRI bare, quoted since it holds line breaks.
    assert_eq!(
        repo.select(query, bound, "text/csv").await,
        format!("o\r\n\"{O}\"\r\n")
    );
    let json: serde_json::Value = serde_json::from_str(
        &repo
            .select(query, bound, "application/sparql-results+json")
            .await,
    )
    .unwrap();
    assert_eq!(json["results"]["bindings"][0]["o"]["type"], "uri");
    assert_eq!(json["results"]["bindings"][0]["o"]["value"], O);
    let xml = repo
        .select(query, bound, "application/sparql-results+xml")
        .await;
    assert!(
        xml.contains("<uri>http://franz.com/aa \t \n \r \\ bb</uri>"),
        "{xml}"
    );
    let ag: serde_json::Value =
        serde_json::from_str(&repo.select(query, bound, "application/json").await).unwrap();
    assert_eq!(ag["values"], serde_json::json!([[nt(O)]]));

    // Such an IRI bound as `$s`, in agraph-python's lower-case escapes.
    let by_subject = nt_lower(S);
    let ag: serde_json::Value = serde_json::from_str(
        &repo
            .select(query, &[("$s", &by_subject)], "application/json")
            .await,
    )
    .unwrap();
    assert_eq!(ag["values"], serde_json::json!([["\"x\""]]));
    // And read back as a subject.
    let ag: serde_json::Value = serde_json::from_str(
        &repo
            .select(
                "select ?s { ?s ?p \"x\" }",
                &[],
                "application/sparql-results+json",
            )
            .await,
    )
    .unwrap();
    assert_eq!(ag["results"]["bindings"][0]["s"]["value"], S);
}

#[test]
fn export_then_load_gives_the_same_quads() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let quadmesh = |args: &[&str]| {
        let output = Command::new(binary())
            .args(args)
            .env_remove("QUADMESH_USER")
            .env_remove("QUADMESH_PASSWORD")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    quadmesh(&["repo", "create", &server.spec("from")]);
    quadmesh(&["repo", "create", &server.spec("to")]);
    let source = dir.path().join("source.nq");
    std::fs::write(
        &source,
        format!(
            "{} {} {} .\n{} <http://franz.com/p> {} {} .\n_:b {} {} .\n",
            nt_lower(S),
            nt_lower(P),
            literal(),
            nt(S),
            nt(O),
            nt(G),
            nt(P),
            nt(O)
        ),
    )
    .unwrap();
    assert!(quadmesh(&[
        "load",
        &server.spec("from"),
        source.to_str().unwrap(),
        "--quiet"
    ])
    .contains("loaded 3 statements"));
    let exported = quadmesh(&["export", &server.spec("from")]);
    let file = dir.path().join("export.nq");
    std::fs::write(&file, &exported).unwrap();
    quadmesh(&[
        "load",
        &server.spec("to"),
        file.to_str().unwrap(),
        "--quiet",
    ]);
    let again = quadmesh(&["export", &server.spec("to")]);
    // Blank node labels are new per load; everything else is the same.
    let without_blank_nodes = |text: &str| -> Vec<String> {
        sorted_lines(text)
            .into_iter()
            .map(|l| {
                if l.starts_with("_:") {
                    l.split_once(' ').unwrap().1.to_owned()
                } else {
                    l
                }
            })
            .collect()
    };
    assert_eq!(without_blank_nodes(&again), without_blank_nodes(&exported));
    assert!(exported.contains(&format!("{} {} {} .", nt(S), nt(P), literal())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn such_iris_replicate_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 2, &[]).await;
    cluster.form().await;
    let put = |index: usize, params: Vec<(&'static str, String)>| {
        let request = cluster
            .client
            .put(cluster.instances[index].repo_url("/statement"))
            .query(&params);
        async move { success_text(request.send().await.unwrap()).await }
    };
    put(
        0,
        vec![("subj", nt(S)), ("pred", nt(P)), ("obj", literal())],
    )
    .await;
    put(
        1,
        vec![
            ("subj", nt(S)),
            ("pred", "<http://franz.com/p>".into()),
            ("obj", nt(O)),
            ("context", nt(G)),
        ],
    )
    .await;
    put(
        0,
        vec![
            ("subj", nt(O)),
            ("pred", "<http://franz.com/p>".into()),
            ("obj", "\"gone\"".into()),
        ],
    )
    .await;
    // A delete by pattern naming such an IRI: a range delete, replicated as a pattern.
    success_text(
        cluster
            .client
            .delete(cluster.instances[1].repo_url("/statements"))
            .query(&[("subj", nt(O))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    cluster.converge(Duration::from_secs(60)).await;
    let expected = [
        format!("{} {} {} .", nt(S), nt(P), literal()),
        format!("{} <http://franz.com/p> {} {} .", nt(S), nt(O), nt(G)),
    ];
    assert_eq!(cluster.export(1).await, expected.join("\n"));

    // Replayed from the log and the checkpoint after a restart: the same.
    cluster.instances[1].stop();
    cluster.instances[1].start(false);
    cluster.converge(Duration::from_secs(60)).await;
    assert_eq!(cluster.export(1).await, expected.join("\n"));
    assert_eq!(cluster.export(0).await, expected.join("\n"));
}
