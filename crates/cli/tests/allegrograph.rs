//! AllegroGraph's conventions as its clients and scripts use them, against a real
//! server: bindings outside the projection, `context` as the dataset, namespaces in
//! queries, `x-repl-settings` outside a cluster, `commit=N`, `json-ld-context`,
//! `text/table` and `x-quints+json` for statements, and clear answers for the endpoints
//! quadmesh lacks.

mod common;

use common::*;

struct Repo {
    client: Client,
    server: Server,
    url: String,
    _dir: tempfile::TempDir,
}

impl Repo {
    async fn start() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        let client = Client::default();
        let response = client
            .put(server.url("/repositories/ag"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        let url = server.url("/repositories/ag");
        Repo {
            client,
            server,
            url,
            _dir: dir,
        }
    }

    async fn add(&self, ntriples_or_nquads: &str) {
        let response = self
            .client
            .post(format!("{}/statements", self.url))
            .header("content-type", "application/n-quads")
            .body(ntriples_or_nquads.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    async fn size(&self) -> u64 {
        size(&self.client, &self.server, "ag").await
    }

    /// SELECT through AllegroGraph's JSON, with extra parameters: the rows' cells.
    async fn select(&self, query: &str, params: &[(&str, &str)]) -> Vec<Vec<String>> {
        let mut all = vec![("query", query)];
        all.extend_from_slice(params);
        let response = self
            .client
            .get(self.url.clone())
            .query(&all)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let json: serde_json::Value = response.json().await.unwrap();
        let mut rows: Vec<Vec<String>> = json["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .collect();
        rows.sort();
        rows
    }
}

const PEOPLE: &str = "<http://ex.org/alice> <http://ex.org/knows> <http://ex.org/bob> .\n<http://ex.org/carol> <http://ex.org/knows> <http://ex.org/dave> .\n<http://ex.org/alice> <http://ex.org/age> \"30\"^^<http://www.w3.org/2001/XMLSchema#integer> <http://ex.org/g1> .\n<http://ex.org/bob> <http://ex.org/age> \"40\"^^<http://www.w3.org/2001/XMLSchema#integer> <http://ex.org/g2> .\n";

#[tokio::test]
async fn bindings_apply_to_variables_outside_the_projection() {
    let r = Repo::start().await;
    r.add(PEOPLE).await;
    let query = "SELECT ?who WHERE { ?who <http://ex.org/knows> ?x }";
    assert_eq!(r.select(query, &[]).await.len(), 2);
    assert_eq!(
        r.select(query, &[("$x", "<http://ex.org/bob>")]).await,
        vec![vec!["<http://ex.org/alice>".to_owned()]]
    );
    // Seen by FILTERs too, and by aggregates.
    let rows = r
        .select(
            "SELECT ?s WHERE { GRAPH ?g { ?s <http://ex.org/age> ?age } FILTER(?age > ?min) }",
            &[("$min", "\"35\"^^<http://www.w3.org/2001/XMLSchema#integer>")],
        )
        .await;
    assert_eq!(rows, vec![vec!["<http://ex.org/bob>".to_owned()]]);
    let rows = r
        .select(
            "SELECT (COUNT(*) AS ?n) WHERE { ?who <http://ex.org/knows> ?x }",
            &[("$x", "<http://ex.org/dave>")],
        )
        .await;
    assert_eq!(
        rows[0][0],
        "\"1\"^^<http://www.w3.org/2001/XMLSchema#integer>"
    );
    // A projected variable still shows its bound value.
    let rows = r
        .select(
            "SELECT ?who ?x WHERE { ?who <http://ex.org/knows> ?x }",
            &[("$x", "<http://ex.org/dave>")],
        )
        .await;
    assert_eq!(
        rows,
        vec![vec![
            "<http://ex.org/carol>".to_owned(),
            "<http://ex.org/dave>".to_owned()
        ]]
    );
    // A malformed value is a 400 naming it.
    let response = r
        .client
        .get(r.url.clone())
        .query(&[("query", query), ("$x", "<not an iri")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn context_is_the_dataset_and_null_is_the_default_graph() {
    let r = Repo::start().await;
    r.add(PEOPLE).await;
    let query = "SELECT ?s WHERE { ?s ?p ?o }";
    let subjects =
        |rows: Vec<Vec<String>>| rows.into_iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    assert_eq!(
        subjects(r.select(query, &[("context", "null")]).await),
        vec!["<http://ex.org/alice>", "<http://ex.org/carol>"]
    );
    assert_eq!(
        subjects(r.select(query, &[("context", "<http://ex.org/g1>")]).await),
        vec!["<http://ex.org/alice>"]
    );
    assert_eq!(
        subjects(
            r.select(
                query,
                &[
                    ("context", "<http://ex.org/g1>"),
                    ("context", "<http://ex.org/g2>")
                ]
            )
            .await
        ),
        vec!["<http://ex.org/alice>", "<http://ex.org/bob>"]
    );
    assert_eq!(
        r.select(
            query,
            &[("context", "null"), ("context", "<http://ex.org/g2>")]
        )
        .await
        .len(),
        3
    );
    let response = r
        .client
        .get(r.url.clone())
        .query(&[("query", query), ("context", "\"a literal\"")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn namespaces_apply_to_queries_and_updates_without_a_prefix_line() {
    let r = Repo::start().await;
    r.add(PEOPLE).await;
    let response = r
        .client
        .put(format!("{}/namespaces/ex", r.url))
        .body("http://ex.org/")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    // The repository's prefix and a standard one (xsd), with no PREFIX line.
    let rows = r
        .select("SELECT ?who WHERE { ?who ex:knows ex:bob }", &[])
        .await;
    assert_eq!(rows, vec![vec!["<http://ex.org/alice>".to_owned()]]);
    let rows = r
        .select(
            "SELECT ?s WHERE { GRAPH ?g { ?s ex:age ?a } FILTER(?a = \"40\"^^xsd:integer) }",
            &[],
        )
        .await;
    assert_eq!(rows, vec![vec!["<http://ex.org/bob>".to_owned()]]);
    // In an update too.
    let response = r
        .client
        .post(r.url.clone())
        .form(&[("update", "INSERT DATA { ex:erin rdf:type foaf:Person }")])
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let rows = r
        .select(
            "SELECT ?s WHERE { ?s a <http://xmlns.com/foaf/0.1/Person> }",
            &[],
        )
        .await;
    assert_eq!(rows, vec![vec!["<http://ex.org/erin>".to_owned()]]);
    // An explicit PREFIX wins over the stored one.
    let rows = r
        .select(
            "PREFIX ex: <http://other.org/> SELECT ?who WHERE { ?who ex:knows ?x }",
            &[],
        )
        .await;
    assert!(rows.is_empty());
    // An unknown prefix is still a 400.
    let response = r
        .client
        .get(r.url.clone())
        .query(&[("query", "SELECT * WHERE { ?s nope:p ?o }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn repl_settings_are_met_outside_a_cluster() {
    let r = Repo::start().await;
    for settings in [
        "durability=max",
        "durability=quorum",
        "durability=3 distributedTransactionTimeout=2",
        "durability=min transactionLatencyCount=1",
    ] {
        let response = r
            .client
            .post(format!("{}/statements", r.url))
            .header("content-type", "application/n-triples")
            .header("x-repl-settings", settings)
            .body(format!(
                "<http://ex.org/s> <http://ex.org/p> \"{settings}\" .\n"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{settings}: {}",
            response.text().await.unwrap()
        );
        assert!(response.headers().get("x-durability").is_none());
    }
    assert_eq!(r.size().await, 4);
    // Malformed settings are still refused, and write nothing.
    let response = r
        .client
        .post(format!("{}/statements", r.url))
        .header("content-type", "application/n-triples")
        .header("x-repl-settings", "durability=sometimes")
        .body("<http://ex.org/s> <http://ex.org/p> \"no\" .\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(r.size().await, 4);
}

#[tokio::test]
async fn commit_every_n_statements() {
    let r = Repo::start().await;
    let commits = || async {
        let metrics = r
            .client
            .get(r.server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find(|l| l.starts_with("quadmesh_commits_total") && l.contains("\"ag\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = commits().await;
    let response = r
        .client
        .post(format!("{}/statements?commit=10", r.url))
        .header("content-type", "application/n-triples")
        .body(ntriples(25))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(response.text().await.unwrap(), "25");
    assert_eq!(r.size().await, 25);
    assert_eq!(
        commits().await - before,
        3.0,
        "25 statements, commit=10: three commits"
    );

    // A bad document changes nothing, commit=N or not.
    let mut bad = ntriples(30);
    bad.push_str("<http://ex.org/broken> .\n");
    let response = r
        .client
        .post(format!("{}/statements?commit=5", r.url))
        .header("content-type", "application/n-triples")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(r.size().await, 25);
    for query in ["commit=0", "commit=many"] {
        let response = r
            .client
            .post(format!("{}/statements?{query}", r.url))
            .header("content-type", "application/n-triples")
            .body(ntriples(3))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
    }
    assert_eq!(r.size().await, 25);
}

#[tokio::test]
async fn json_ld_context_is_applied_or_refused_never_dropped() {
    let r = Repo::start().await;
    let post = |query: &'static str, content_type: &'static str, body: &'static str| {
        r.client
            .post(format!("{}/statements?{query}", r.url))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // AllegroGraph's parameter name and agraph-python's (which wraps it in @context).
    let response = post(
        "json-ld-context=%7B%22name%22%3A%22http%3A%2F%2Fex.org%2Fname%22%7D",
        "application/ld+json",
        r#"{"@id": "http://ex.org/a", "name": "A"}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = post(
        "jsonLdContext=%7B%22%40context%22%3A%7B%22name%22%3A%22http%3A%2F%2Fex.org%2Fname%22%7D%7D",
        "application/ld+json",
        r#"[{"@id": "http://ex.org/b", "name": "B"}]"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // The document's own context comes after (and so over) the given one.
    let response = post(
        "json-ld-context=%7B%22name%22%3A%22http%3A%2F%2Fex.org%2Fname%22%7D",
        "application/ld+json",
        r#"{"@context": {"label": "http://ex.org/label"}, "@id": "http://ex.org/c", "name": "C", "label": "c"}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let rows = r
        .select("SELECT ?s ?o WHERE { ?s <http://ex.org/name> ?o }", &[])
        .await;
    assert_eq!(
        rows,
        vec![
            vec!["<http://ex.org/a>".to_owned(), "\"A\"".to_owned()],
            vec!["<http://ex.org/b>".to_owned(), "\"B\"".to_owned()],
            vec!["<http://ex.org/c>".to_owned(), "\"C\"".to_owned()],
        ]
    );
    assert_eq!(r.size().await, 4);
    // Refused, with nothing stored: a context for a format that has none, and a
    // context that is no context.
    for (query, content_type, body) in [
        (
            "json-ld-context=%7B%7D",
            "text/turtle",
            "<http://ex.org/x> <http://ex.org/y> 1 .",
        ),
        (
            "json-ld-context=42",
            "application/ld+json",
            r#"{"@id": "http://ex.org/d", "http://ex.org/name": "D"}"#,
        ),
    ] {
        let response = post(query, content_type, body).await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert!(response.text().await.unwrap().contains("json-ld-context"));
    }
    assert_eq!(r.size().await, 4);
}

#[tokio::test]
async fn statements_as_table_and_quints() {
    let r = Repo::start().await;
    r.add(PEOPLE).await;
    let construct =
        "CONSTRUCT { ?s <http://ex.org/knows> ?o } WHERE { ?s <http://ex.org/knows> ?o }";
    let response = r
        .client
        .get(r.url.clone())
        .query(&[("query", construct)])
        .header("accept", "text/table")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/table");
    let table = response.text().await.unwrap();
    assert!(table.contains("| s "), "{table}");
    assert!(
        table.contains("<http://ex.org/alice>") && table.contains("2 rows"),
        "{table}"
    );
    let response = r
        .client
        .get(r.url.clone())
        .query(&[("query", "DESCRIBE <http://ex.org/carol>")])
        .header("accept", "text/table")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("<http://ex.org/dave>"));

    // agraph-python's triple-id calls: [id, s, p, o, g] rows, ids the same each time.
    let quints = || async {
        let response = r
            .client
            .get(format!("{}/statements", r.url))
            .query(&[("subj", "<http://ex.org/alice>")])
            .header("accept", "application/x-quints+json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-quints+json"
        );
        let mut rows: Vec<Vec<serde_json::Value>> = response.json().await.unwrap();
        rows.sort_by_key(|r| r[2].as_str().unwrap().to_owned());
        rows
    };
    let rows = quints().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1], "<http://ex.org/alice>");
    assert_eq!(rows[0][2], "<http://ex.org/age>");
    assert_eq!(rows[0][4], "<http://ex.org/g1>");
    assert_ne!(rows[0][0], rows[1][0]);
    assert_eq!(quints().await, rows);
}

#[tokio::test]
async fn unknown_allegrograph_endpoints_say_so() {
    let r = Repo::start().await;
    for (path, status, words) in [
        (
            "/repositories/ag/freetext?pattern=x",
            501,
            "free-text indices",
        ),
        ("/repositories/ag/functor", 501, "Prolog functors"),
        (
            "/repositories/ag/attributes/definitions",
            501,
            "triple attributes",
        ),
        (
            "/users/admin/security-filters/allow",
            501,
            "security filters",
        ),
        ("/catalogs/other/repositories", 501, "catalogs"),
        ("/repositories/ag/no-such-thing", 404, "no such endpoint"),
    ] {
        let response = r.client.get(r.server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(words), "{path}: {text}");
        if status == 501 {
            assert!(text.contains("not supported by quadmesh"), "{path}: {text}");
        }
    }
    // Still authenticated first.
    let response = reqwest::get(r.server.url("/repositories/ag/freetext"))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
