//! Deletes by pattern behind a load balancer: AllegroGraph's delete-by-triple
//! (`DELETE /statements?subj&pred&obj`, no context), CLEAR and DROP, the graph store's
//! DELETE and PUT, `DELETE WHERE` of one pattern, and the same in sessions. Each is a
//! range tombstone: acknowledged, it is never undone by an insert acknowledged before it
//! began, whichever instance each reached and whatever the links did.
//! Real server processes on loopback, links cut and healed through the harness's proxies.

mod common;

use common::cluster::Cluster;
use std::sync::Arc;
use std::time::Duration;

/// Cluster tests run one at a time: each starts several processes on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const EX: &str = "http://example.org/";

fn subject(name: &str) -> String {
    format!("<{EX}{name}>")
}

fn triple(name: &str) -> String {
    format!("<{EX}{name}> <{EX}p> \"{name}\"")
}

async fn ok(response: reqwest::Response) -> reqwest::Response {
    let status = response.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        response.text().await.unwrap()
    );
    response
}

async fn launch(dir: &std::path::Path, n: usize) -> Cluster {
    let cluster = Cluster::launch(dir, n, &[]).await;
    cluster.form().await;
    cluster
}

/// `POST /statements` of one triple, into the default graph or `graph`.
async fn insert(cluster: &Cluster, index: usize, name: &str, graph: Option<&str>) {
    let mut request = cluster
        .client
        .post(cluster.instances[index].repo_url("/statements"))
        .header("content-type", "text/plain")
        .body(format!("{} .\n", triple(name)));
    if let Some(graph) = graph {
        request = request.query(&[("context", format!("<{graph}>"))]);
    }
    ok(request.send().await.unwrap()).await;
}

/// agraph-python's `removeTriples(s, p, o)`: `DELETE /statements?subj&pred&obj`
/// without a context. Answers how many quads it removed on that instance.
async fn delete_by_triple(cluster: &Cluster, index: usize, name: &str) -> u64 {
    let response = ok(cluster
        .client
        .delete(cluster.instances[index].repo_url("/statements"))
        .query(&[
            ("subj", subject(name)),
            ("pred", format!("<{EX}p>")),
            ("obj", format!("\"{name}\"")),
        ])
        .send()
        .await
        .unwrap())
    .await;
    response.text().await.unwrap().trim().parse().unwrap()
}

/// How many triples with subjects starting with `prefix` an instance holds, asked of
/// that instance directly, in any graph.
async fn alive(cluster: &Cluster, index: usize, prefix: &str) -> u64 {
    let response = ok(cluster
        .client
        .post(cluster.instances[index].repo_url(""))
        .header("accept", "application/sparql-results+json")
        .form(&[(
            "query",
            format!(
                "SELECT (COUNT(*) AS ?n) {{ {{ ?s ?p ?o }} UNION {{ GRAPH ?g {{ ?s ?p ?o }} }} \
                 FILTER(STRSTARTS(STR(?s), \"{EX}{prefix}\")) }}"
            ),
        )])
        .send()
        .await
        .unwrap())
    .await;
    let body: serde_json::Value = response.json().await.unwrap();
    body["results"]["bindings"][0]["n"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// 1,000 rounds of: insert T at one instance (acknowledged), then at once delete it by
/// triple at the next instance, four rounds at a time. Whether or not the insert had
/// reached the deleting instance (a `0` answer), no triple may come back.
async fn pairs(cluster: Arc<Cluster>, prefix: &'static str) -> usize {
    let n = cluster.instances.len();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let mut blind = 0;
            for i in (worker..1000).step_by(4) {
                let name = format!("{prefix}{i}");
                let (a, b) = (i % n, (i + 1) % n);
                insert(&cluster, a, &name, None).await;
                if delete_by_triple(&cluster, b, &name).await == 0 {
                    blind += 1;
                }
            }
            blind
        }));
    }
    let mut blind = 0;
    for task in tasks {
        blind += task.await.unwrap();
    }
    blind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_deletes_by_triple_at_other_instances_hold_with_and_without_a_cut_link() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(launch(dir.path(), 3).await);

    let blind = pairs(cluster.clone(), "plain").await;
    eprintln!("{blind} of 1000 deletes by triple reached an instance without the insert");
    cluster.converge(Duration::from_secs(60)).await;
    for index in 0..3 {
        assert_eq!(
            alive(&cluster, index, "plain").await,
            0,
            "acknowledged deletes by triple undone on instance {index} \
             ({blind} of 1000 deletes reached an instance without the insert)"
        );
    }

    // Instances 0 and 1 cannot reach each other: what one writes reaches the other
    // only through instance 2, if at all before the delete.
    cluster.cut(0, 1);
    let blind = pairs(cluster.clone(), "cut").await;
    eprintln!("with a cut link: {blind} of 1000 deletes reached an instance without the insert");
    cluster.heal(0, 1);
    cluster.converge(Duration::from_secs(60)).await;
    for index in 0..3 {
        assert_eq!(
            alive(&cluster, index, "cut").await,
            0,
            "acknowledged deletes by triple undone on instance {index} after a cut link \
             ({blind} of 1000 deletes reached an instance without the insert)"
        );
    }
}

/// A delete at an instance cut off from the others, after the insert was acknowledged
/// elsewhere: it answers 0, and after healing the triple is gone everywhere. Patterns
/// with fewer fixed terms hold the same way; an insert made after the delete survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pattern_delete_at_a_cut_off_instance_holds_after_healing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = launch(dir.path(), 3).await;
    cluster.cut(0, 1);
    cluster.cut(0, 2);
    cluster.cut(1, 2);

    insert(&cluster, 0, "isolated", None).await;
    insert(&cluster, 0, "bysubject", Some(&format!("{EX}g"))).await;
    insert(&cluster, 0, "bypredicate", None).await;
    insert(&cluster, 0, "nullcontext", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(delete_by_triple(&cluster, 1, "isolated").await, 0);
    // Subject only, every graph.
    let removed = ok(cluster
        .client
        .delete(cluster.instances[1].repo_url("/statements"))
        .query(&[("subj", subject("bysubject"))])
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(removed.text().await.unwrap().trim(), "0");
    // Predicate and object.
    ok(cluster
        .client
        .delete(cluster.instances[2].repo_url("/statements"))
        .query(&[
            ("pred", format!("<{EX}p>")),
            ("obj", "\"bypredicate\"".to_owned()),
        ])
        .send()
        .await
        .unwrap())
    .await;
    // The default graph only (AllegroGraph's `context=null`), in a session committed
    // at a third instance.
    let session: String = ok(cluster
        .client
        .post(cluster.instances[2].repo_url("/session?autoCommit=false"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap())
    .await
    .json()
    .await
    .unwrap();
    ok(cluster
        .client
        .delete(format!("{session}/statements"))
        .query(&[("subj", subject("nullcontext")), ("context", "null".into())])
        .send()
        .await
        .unwrap())
    .await;
    ok(cluster
        .client
        .post(format!("{session}/commit"))
        .send()
        .await
        .unwrap())
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Newer than every delete and matching one: survives it.
    ok(cluster
        .update(
            0,
            &format!(
                "INSERT DATA {{ {} <{EX}q> \"newer\" }}",
                subject("bysubject")
            ),
        )
        .await)
    .await;
    ok(cluster
        .update(0, &format!("INSERT DATA {{ {} }}", triple("isolated")))
        .await)
    .await;

    cluster.heal(0, 1);
    cluster.heal(0, 2);
    cluster.heal(1, 2);
    cluster.converge(Duration::from_secs(60)).await;
    for index in 0..3 {
        for gone in ["bysubject", "bypredicate", "nullcontext"] {
            let left = alive(&cluster, index, gone).await;
            let newer = u64::from(gone == "bysubject");
            assert_eq!(left, newer, "{gone} on instance {index}");
        }
        assert_eq!(
            alive(&cluster, index, "isolated").await,
            1,
            "the insert made after the delete must stand on instance {index}"
        );
    }
}

/// The writes that clear a graph, each through its own door.
#[derive(Clone, Copy, Debug)]
enum Clear {
    Sparql,
    SparqlDrop,
    DeleteWhere,
    GraphStoreDelete,
    GraphStorePut,
    StatementsContext,
    Session,
}

impl Clear {
    const ALL: [Clear; 7] = [
        Clear::Sparql,
        Clear::SparqlDrop,
        Clear::DeleteWhere,
        Clear::GraphStoreDelete,
        Clear::GraphStorePut,
        Clear::StatementsContext,
        Clear::Session,
    ];

    async fn run(self, cluster: &Cluster, index: usize, graph: &str) {
        let instance = &cluster.instances[index];
        let client = &cluster.client;
        match self {
            Clear::Sparql => {
                ok(cluster
                    .update(index, &format!("CLEAR GRAPH <{graph}>"))
                    .await)
                .await;
            }
            Clear::SparqlDrop => {
                ok(cluster
                    .update(index, &format!("DROP GRAPH <{graph}>"))
                    .await)
                .await;
            }
            Clear::DeleteWhere => {
                ok(cluster
                    .update(
                        index,
                        &format!("DELETE WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"),
                    )
                    .await)
                .await;
            }
            Clear::GraphStoreDelete => {
                ok(client
                    .delete(instance.repo_url("/rdf-graphs/service"))
                    .query(&[("graph", graph)])
                    .send()
                    .await
                    .unwrap())
                .await;
            }
            Clear::GraphStorePut => {
                ok(client
                    .put(instance.repo_url("/rdf-graphs/service"))
                    .query(&[("graph", graph)])
                    .header("content-type", "application/n-triples")
                    .body(format!("{} .\n", triple("zreplacement")))
                    .send()
                    .await
                    .unwrap())
                .await;
            }
            Clear::StatementsContext => {
                ok(client
                    .delete(instance.repo_url("/statements"))
                    .query(&[("context", format!("<{graph}>"))])
                    .send()
                    .await
                    .unwrap())
                .await;
            }
            Clear::Session => {
                let session: String = ok(client
                    .post(instance.repo_url("/session?autoCommit=false"))
                    .header("accept", "application/json")
                    .send()
                    .await
                    .unwrap())
                .await
                .json()
                .await
                .unwrap();
                ok(client
                    .post(session.clone())
                    .form(&[("update", format!("CLEAR GRAPH <{graph}>"))])
                    .send()
                    .await
                    .unwrap())
                .await;
                ok(client
                    .post(format!("{session}/commit"))
                    .send()
                    .await
                    .unwrap())
                .await;
            }
        }
    }
}

/// Whether an instance holds the triple `name` in `graph`.
async fn holds(cluster: &Cluster, index: usize, name: &str, graph: &str) -> bool {
    let response = ok(cluster
        .client
        .post(cluster.instances[index].repo_url(""))
        .header("accept", "application/sparql-results+json")
        .form(&[(
            "query",
            format!("ASK {{ GRAPH <{graph}> {{ {} }} }}", triple(name)),
        )])
        .send()
        .await
        .unwrap())
    .await;
    let body: serde_json::Value = response.json().await.unwrap();
    body["boolean"].as_bool().unwrap()
}

/// `CLEAR GRAPH g` (and every other way to empty a graph) at instance 1, then an older
/// insert into g arriving from instance 0: the graph stays cleared; an insert made
/// after the clear survives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cleared_graph_refuses_older_inserts_arriving_later_and_keeps_newer_ones() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = launch(dir.path(), 2).await;
    for door in Clear::ALL {
        let graph = format!("{EX}g-{door:?}");
        insert(&cluster, 0, "existing", Some(&graph)).await;
        cluster.converge(Duration::from_secs(30)).await;

        cluster.cut(0, 1);
        insert(&cluster, 0, "older", Some(&graph)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        door.run(&cluster, 1, &graph).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        insert(&cluster, 0, "newer", Some(&graph)).await;
        cluster.heal(0, 1);
        cluster.converge(Duration::from_secs(30)).await;

        for index in 0..2 {
            assert!(
                !holds(&cluster, index, "existing", &graph).await,
                "{door:?}: a cleared triple is back on instance {index}"
            );
            assert!(
                !holds(&cluster, index, "older", &graph).await,
                "{door:?}: an insert older than the clear survived it on instance {index}"
            );
            assert!(
                holds(&cluster, index, "newer", &graph).await,
                "{door:?}: an insert newer than the clear was lost on instance {index}"
            );
            let replaced = holds(&cluster, index, "zreplacement", &graph).await;
            assert_eq!(
                replaced,
                matches!(door, Clear::GraphStorePut),
                "{door:?}: the replacement on instance {index}"
            );
        }
    }
}

/// A pattern delete is a transaction like any other: with `durability=max` while both
/// peers are cut off it says that two members are missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durability_max_on_a_pattern_delete_reports_the_missing_members() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = launch(dir.path(), 3).await;
    insert(&cluster, 1, "durable", None).await;
    cluster.converge(Duration::from_secs(30)).await;
    cluster.cut(0, 1);
    cluster.cut(0, 2);
    let response = ok(cluster
        .client
        .delete(cluster.instances[0].repo_url("/statements"))
        .header(
            "x-repl-settings",
            "durability=max distributedTransactionTimeout=1",
        )
        .query(&[("subj", subject("durable")), ("pred", format!("<{EX}p>"))])
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(
        response
            .headers()
            .get("x-durability")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("missing=2".to_owned()),
        "a pattern delete was acknowledged without waiting for the unreachable members"
    );
    assert!(response.headers().contains_key("x-quadmesh-token"));
    assert_eq!(response.text().await.unwrap().trim(), "1");
    cluster.heal(0, 1);
    cluster.heal(0, 2);
    cluster.converge(Duration::from_secs(30)).await;
    for index in 0..3 {
        assert_eq!(alive(&cluster, index, "durable").await, 0);
    }
}
