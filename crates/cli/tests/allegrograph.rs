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
            "/repositories/ag/attributes/triples",
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

/// issue 24's data: `alice knows bob`, `carol knows alice` in the default graph, `bob
/// knows alice` in graph g1.
const KNOWS: &str = "<http://ex.org/alice> <http://ex.org/knows> <http://ex.org/bob> .\n<http://ex.org/carol> <http://ex.org/knows> <http://ex.org/alice> .\n<http://ex.org/bob> <http://ex.org/knows> <http://ex.org/alice> <http://ex.org/g1> .\n";

const WHO_KNOWS_ALICE: &str = "SELECT ?who { ?who <http://ex.org/knows> ?x }";
const ALICE: (&str, &str) = ("$x", "<http://ex.org/alice>");

fn who(rows: Vec<Vec<String>>) -> Vec<String> {
    rows.into_iter().map(|r| r[0].clone()).collect()
}

const BOB_AND_CAROL: [&str; 2] = ["<http://ex.org/bob>", "<http://ex.org/carol>"];
const CAROL: [&str; 1] = ["<http://ex.org/carol>"];

impl Repo {
    async fn status_of(&self, query: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url.clone())
            .query(&[("query", query)])
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn update(&self, update: &str) {
        let response = self
            .client
            .post(self.url.clone())
            .form(&[("update", update)])
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }

    async fn json(&self, url: &str) -> serde_json::Value {
        success_json(self.client.get(url.to_owned()).send().await.unwrap()).await
    }

    async fn set_dataset(&self, value: Option<&str>) {
        let url = format!("{}/defaultDatasetBehavior", self.url);
        let response = match value {
            Some(v) => self.client.put(url).query(&[("value", v)]).send().await,
            None => self.client.delete(url).send().await,
        }
        .unwrap();
        assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    }
}

#[tokio::test]
async fn a_query_without_a_dataset_sees_every_graph_as_allegrograph_does() {
    let r = Repo::start().await;
    r.add(KNOWS).await;
    // AllegroGraph's default: the default graph is every graph's quads.
    assert_eq!(
        who(r.select(WHO_KNOWS_ALICE, &[ALICE]).await),
        BOB_AND_CAROL
    );
    // Per query: franz:rdf and franz:default name the null graph alone, franz:all all.
    for (option, expected) in [
        ("franz:rdf", &CAROL[..]),
        ("franz:default", &CAROL[..]),
        ("franz:all", &BOB_AND_CAROL[..]),
    ] {
        let query =
            format!("PREFIX franzOption_defaultDatasetBehavior: <{option}>\n{WHO_KNOWS_ALICE}");
        assert_eq!(who(r.select(&query, &[ALICE]).await), expected, "{option}");
    }
    // FROM DEFAULT is the null graph; with FROM <g1> it merges g1 in; FROM <g1> alone
    // is g1.
    let from = |clauses: &str| format!("SELECT ?who {clauses} {{ ?who <http://ex.org/knows> ?x }}");
    assert_eq!(who(r.select(&from("FROM DEFAULT"), &[ALICE]).await), CAROL);
    assert_eq!(
        who(r
            .select(&from("FROM DEFAULT FROM <http://ex.org/g1>"), &[ALICE])
            .await),
        BOB_AND_CAROL
    );
    assert_eq!(
        who(r.select(&from("from default"), &[ALICE]).await),
        CAROL,
        "keywords in any case"
    );
    assert_eq!(
        who(r.select(&from("FROM <http://ex.org/g1>"), &[ALICE]).await),
        ["<http://ex.org/bob>"]
    );
    // GRAPH ?g still ranges over the named graphs only.
    assert_eq!(
        who(r
            .select(
                "SELECT ?who { GRAPH ?g { ?who <http://ex.org/knows> ?x } }",
                &[ALICE]
            )
            .await),
        ["<http://ex.org/bob>"]
    );
    // An option quadmesh does not implement, or a value it does not know: 400.
    for query in [
        format!("PREFIX franzOption_defaultDatasetBehavior: <franz:none>\n{WHO_KNOWS_ALICE}"),
        format!("PREFIX franzOption_clauseReorderer: <franz:identity>\n{WHO_KNOWS_ALICE}"),
    ] {
        let (status, text) = r.status_of(&query).await;
        assert_eq!(status, 400, "{query}: {text}");
        assert!(text.contains("franzOption_"), "{text}");
    }
}

#[tokio::test]
async fn the_repository_setting_chooses_the_w3c_default_graph() {
    let r = Repo::start().await;
    r.add(KNOWS).await;
    let setting = || async {
        success_json(
            r.client
                .get(format!("{}/defaultDatasetBehavior", r.url))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    assert_eq!(setting().await["defaultDatasetBehavior"], "all");
    assert_eq!(setting().await["source"], "server");
    r.set_dataset(Some("rdf")).await;
    assert_eq!(setting().await["defaultDatasetBehavior"], "rdf");
    assert_eq!(setting().await["source"], "repository");
    assert_eq!(who(r.select(WHO_KNOWS_ALICE, &[ALICE]).await), CAROL);
    // The query's own option still wins.
    let all = format!("PREFIX franzOption_defaultDatasetBehavior: <franz:all>\n{WHO_KNOWS_ALICE}");
    assert_eq!(who(r.select(&all, &[ALICE]).await), BOB_AND_CAROL);
    // It survives a restart.
    let mut r = r;
    r.server.stop();
    r.server.restart();
    // Pooled connections went with the old process.
    r.client = Client::default();
    assert_eq!(who(r.select(WHO_KNOWS_ALICE, &[ALICE]).await), CAROL);
    // A value it does not know is refused; deleting it brings the server's back.
    let response = r
        .client
        .put(format!("{}/defaultDatasetBehavior", r.url))
        .query(&[("value", "some")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    r.set_dataset(None).await;
    assert_eq!(
        who(r.select(WHO_KNOWS_ALICE, &[ALICE]).await),
        BOB_AND_CAROL
    );
}

#[tokio::test]
async fn the_server_setting_chooses_the_w3c_default_graph() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--default-dataset", "rdf"]);
    let client = Client::default();
    success_text(
        client
            .put(server.url("/repositories/ag"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = Repo {
        client,
        url: server.url("/repositories/ag"),
        server,
        _dir: dir,
    };
    r.add(KNOWS).await;
    assert_eq!(who(r.select(WHO_KNOWS_ALICE, &[ALICE]).await), CAROL);
    r.set_dataset(Some("all")).await;
    assert_eq!(
        who(r.select(WHO_KNOWS_ALICE, &[ALICE]).await),
        BOB_AND_CAROL
    );
}

#[tokio::test]
async fn an_update_where_sees_what_a_query_sees_and_writes_the_null_graph() {
    let r = Repo::start().await;
    r.add(KNOWS).await;
    // The WHERE sees every graph; the template without GRAPH writes the null graph.
    r.update("INSERT { ?who <http://ex.org/fan> true } WHERE { ?who <http://ex.org/knows> <http://ex.org/alice> }").await;
    let fans = "SELECT ?who FROM DEFAULT { ?who <http://ex.org/fan> true }";
    assert_eq!(who(r.select(fans, &[]).await), BOB_AND_CAROL);
    // Under the W3C option, the null graph alone.
    r.update("DELETE WHERE { ?who <http://ex.org/fan> ?any }")
        .await;
    r.update("PREFIX franzOption_defaultDatasetBehavior: <franz:rdf>\nINSERT { ?who <http://ex.org/fan> true } WHERE { ?who <http://ex.org/knows> <http://ex.org/alice> }").await;
    assert_eq!(who(r.select(fans, &[]).await), CAROL);
    // And under the repository's setting.
    r.update("DELETE WHERE { ?who <http://ex.org/fan> ?any }")
        .await;
    r.set_dataset(Some("rdf")).await;
    r.update("INSERT { ?who <http://ex.org/fan> true } WHERE { ?who <http://ex.org/knows> <http://ex.org/alice> }").await;
    assert_eq!(who(r.select(fans, &[]).await), CAROL);
    r.set_dataset(None).await;
    // A DELETE whose template has no GRAPH deletes from the null graph only, whatever
    // the WHERE saw: bob's statement in g1 stays.
    r.update("DELETE { ?who <http://ex.org/knows> ?x } WHERE { ?who <http://ex.org/knows> ?x }")
        .await;
    assert_eq!(
        who(r.select(WHO_KNOWS_ALICE, &[ALICE]).await),
        ["<http://ex.org/bob>"]
    );
    assert_eq!(
        r.size().await,
        2,
        "bob's quad in g1 and carol's fan statement"
    );
}

#[tokio::test]
async fn a_blank_node_is_bound_by_the_id_quadmesh_returned() {
    let r = Repo::start().await;
    r.add("_:b1 <http://ex.org/point> \"one\" .\n_:b2 <http://ex.org/point> \"two\" .\n")
        .await;
    let rows = r
        .select("SELECT * { ?s <http://ex.org/point> \"one\" }", &[])
        .await;
    let id = rows[0][0].clone();
    assert!(id.starts_with("_:"), "{id}");
    let rows = r
        .select(
            "SELECT * { ?s <http://ex.org/point> ?o }",
            &[("$s", id.as_str())],
        )
        .await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].contains(&id) && rows[0].contains(&"\"one\"".to_owned()),
        "{rows:?}"
    );
    // An id the store does not hold matches nothing.
    let rows = r
        .select(
            "SELECT * { ?s <http://ex.org/point> ?o }",
            &[("$s", "_:nosuch")],
        )
        .await;
    assert!(rows.is_empty());
    // A variable outside the results cannot take a blank node: 400, saying so.
    let response = r
        .client
        .get(r.url.clone())
        .query(&[
            ("query", "SELECT ?o { ?s <http://ex.org/point> ?o }"),
            ("$s", id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("blank node"));
}

#[tokio::test]
async fn extended_nquads_are_written() {
    let r = Repo::start().await;
    r.add("<http://ex.org/s> <http://ex.org/p> <http://ex.org/o> .\n<http://ex.org/s> <http://ex.org/p> \"x\" <http://ex.org/g> .\n")
        .await;
    let response = r
        .client
        .get(format!("{}/statements", r.url))
        .header("accept", "application/x-extended-nquads")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-extended-nquads"
    );
    let mut lines: Vec<String> = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "<http://ex.org/s> <http://ex.org/p> \"x\" <http://ex.org/g> .",
            "<http://ex.org/s> <http://ex.org/p> <http://ex.org/o> .",
        ]
    );
}

#[tokio::test]
async fn infer_false_query_language_and_range_queries() {
    let r = Repo::start().await;
    r.add(KNOWS).await;
    // (RDFS++ reasoning itself: tests/reasoning.rs.)
    assert_eq!(
        r.select(WHO_KNOWS_ALICE, &[("infer", "false")]).await.len(),
        3
    );
    // A query language other than SPARQL is refused, not read as SPARQL.
    assert_eq!(
        r.select(WHO_KNOWS_ALICE, &[("queryLn", "SPARQL")])
            .await
            .len(),
        3
    );
    let response = r
        .client
        .get(r.url.clone())
        .query(&[
            ("query", "(select (?s) (q ?s ?p ?o))"),
            ("queryLn", "prolog"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    assert!(response.text().await.unwrap().contains("queryLn=prolog"));
    // AllegroGraph's range queries are refused, not answered as the plain pattern.
    let response = r
        .client
        .get(format!("{}/statements", r.url))
        .query(&[("obj", "\"1\""), ("objEnd", "\"9\"")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
}

#[tokio::test]
async fn attribute_definitions_filters_and_duplicate_suppression_answer_truthfully() {
    let mut r = Repo::start().await;
    let url = format!("{}/attributes/definitions", r.url);
    assert_eq!(r.json(&url).await, serde_json::json!([]));
    let response = r
        .client
        .post(url.clone())
        .query(&[
            ("name", "level"),
            ("allowed-values", "low"),
            ("allowed-values", "high"),
            ("ordered", "true"),
            ("minimum-number", "0"),
            ("maximum-number", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let expected = serde_json::json!([{
        "name": "level", "ordered": true, "minimum-number": 0, "maximum-number": 1,
        "allowed-values": ["low", "high"],
    }]);
    assert_eq!(r.json(&url).await, expected);
    // Kept across a restart (the repository's metadata book).
    r.server.stop();
    r.server.restart();
    // Pooled connections went with the old process.
    r.client = Client::default();
    assert_eq!(r.json(&url).await, expected);
    // Bad definitions are refused.
    let response = r
        .client
        .post(url.clone())
        .query(&[
            ("name", "x"),
            ("minimum-number", "3"),
            ("maximum-number", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = r
        .client
        .delete(url.clone())
        .query(&[("name", "level")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(r.json(&url).await, serde_json::json!([]));
    let response = r
        .client
        .delete(url.clone())
        .query(&[("name", "level")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Attributes on statements are still not supported.
    let response = r
        .client
        .get(format!("{}/attributes/triples", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    // No static filter is ever set: get answers none, clear succeeds, set is refused.
    let filter = format!("{}/attributes/staticFilter", r.url);
    assert_eq!(
        r.client.get(filter.clone()).send().await.unwrap().status(),
        204
    );
    assert_eq!(
        r.client
            .delete(filter.clone())
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let response = r
        .client
        .post(filter)
        .query(&[("filter", "(attribute-set>= user.level triple.level)")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    // User attributes: a JSON object is accepted, anything else refused.
    let query = |header: &str| {
        r.client
            .get(r.url.clone())
            .query(&[("query", "ASK {}")])
            .header("x-user-attributes", header.to_owned())
            .send()
    };
    assert_eq!(query("{\"level\": \"low\"}").await.unwrap().status(), 200);
    assert_eq!(query("{\"level\": 3}").await.unwrap().status(), 400);
    assert_eq!(query("not json").await.unwrap().status(), 400);
    // Duplicate suppression: the policy the store keeps is spog.
    let suppression = format!("{}/suppressDuplicates", r.url);
    assert_eq!(r.json(&suppression).await, "spog");
    let set = |kind: &str| {
        r.client
            .put(suppression.clone())
            .query(&[("type", kind.to_owned())])
            .send()
    };
    assert_eq!(set("spog").await.unwrap().status(), 204);
    let response = set("spo").await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("spog"));
    let response = r.client.delete(suppression.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("cannot be disabled"));
    assert_eq!(r.json(&suppression).await, "spog");
}
