//! What a client behind a load balancer relies on: each request may reach any instance,
//! and every acknowledged write still holds, in real-time order, everywhere.
//! Real server processes on loopback, links cut and healed through the harness's proxies.

mod common;

use common::cluster::Cluster;
use common::{Client, Server};
use std::time::Duration;

/// Cluster tests run one at a time: each starts several processes on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const EX: &str = "http://example.org/";
const TOKEN: &str = "x-quadmesh-token";

fn triple(name: &str) -> String {
    format!("<{EX}{name}> <{EX}p> \"{name}\"")
}

async fn two(dir: &std::path::Path) -> Cluster {
    let cluster = Cluster::launch(dir, 2, &[]).await;
    cluster.form().await;
    cluster
}

/// Sends `ASK { pattern }` with `request` (authenticated, with any headers of the
/// caller's) and answers the result; anything but success fails the test.
async fn asks(request: reqwest::RequestBuilder, pattern: &str) -> bool {
    let response = ok(request
        .header("accept", "application/sparql-results+json")
        .form(&[("query", format!("ASK {{ {pattern} }}"))])
        .send()
        .await
        .unwrap())
    .await;
    response.json::<serde_json::Value>().await.unwrap()["boolean"]
        .as_bool()
        .unwrap()
}

async fn ask(cluster: &Cluster, index: usize, pattern: &str) -> bool {
    asks(
        cluster.client.post(cluster.instances[index].repo_url("")),
        pattern,
    )
    .await
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

/// One way in for a write of one triple: how to insert it and how to delete it.
#[derive(Clone, Copy, Debug)]
enum Door {
    SparqlData,
    Statements,
    GraphStore,
    SessionCommit,
}

impl Door {
    const ALL: [Door; 4] = [
        Door::SparqlData,
        Door::Statements,
        Door::GraphStore,
        Door::SessionCommit,
    ];

    /// The graph a door writes its triples to.
    fn graph(self) -> Option<String> {
        match self {
            Door::GraphStore | Door::Statements => Some(format!("{EX}g-{self:?}")),
            _ => None,
        }
    }

    fn pattern(self, name: &str) -> String {
        match self.graph() {
            Some(g) => format!("GRAPH <{g}> {{ {} }}", triple(name)),
            None => triple(name),
        }
    }

    async fn write(self, cluster: &Cluster, index: usize, name: &str, insert: bool) {
        let client = &cluster.client;
        let instance = &cluster.instances[index];
        let data = self.pattern(name);
        match (self, insert) {
            (Door::SparqlData, true) => {
                ok(cluster
                    .update(index, &format!("INSERT DATA {{ {data} }}"))
                    .await)
                .await;
            }
            (Door::SparqlData, false) => {
                ok(cluster
                    .update(index, &format!("DELETE DATA {{ {data} }}"))
                    .await)
                .await;
            }
            (Door::Statements, true) => {
                let graph = self.graph().unwrap();
                ok(client
                    .post(instance.repo_url("/statements"))
                    .query(&[("context", format!("<{graph}>"))])
                    .header("content-type", "text/plain")
                    .body(format!("{} .\n", triple(name)))
                    .send()
                    .await
                    .unwrap())
                .await;
            }
            (Door::Statements, false) => {
                // Concrete terms: the delete names its quad outright.
                let graph = self.graph().unwrap();
                ok(client
                    .delete(instance.repo_url("/statements"))
                    .query(&[
                        ("subj", format!("<{EX}{name}>")),
                        ("pred", format!("<{EX}p>")),
                        ("obj", format!("\"{name}\"")),
                        ("context", format!("<{graph}>")),
                    ])
                    .send()
                    .await
                    .unwrap())
                .await;
            }
            (Door::GraphStore, true) => {
                ok(client
                    .post(instance.repo_url("/rdf-graphs/service"))
                    .query(&[("graph", self.graph().unwrap())])
                    .header("content-type", "application/n-triples")
                    .body(format!("{} .\n", triple(name)))
                    .send()
                    .await
                    .unwrap())
                .await;
            }
            (Door::GraphStore, false) => {
                // The graph store deletes whole graphs (what the instance holds of
                // them); the named-quad delete goes through /statements/delete.
                ok(client
                    .post(instance.repo_url("/statements/delete"))
                    .json(&serde_json::json!([[
                        format!("<{EX}{name}>"),
                        format!("<{EX}p>"),
                        format!("\"{name}\""),
                        format!("<{}>", self.graph().unwrap()),
                    ]]))
                    .send()
                    .await
                    .unwrap())
                .await;
            }
            (Door::SessionCommit, insert) => {
                let response = ok(client
                    .post(instance.repo_url("/session?autoCommit=false"))
                    .header("accept", "application/json")
                    .send()
                    .await
                    .unwrap())
                .await;
                let session: String = response.json().await.unwrap();
                let verb = if insert { "INSERT" } else { "DELETE" };
                ok(client
                    .post(session.clone())
                    .form(&[("update", format!("{verb} DATA {{ {data} }}"))])
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
                client
                    .post(format!("{session}/session/close"))
                    .send()
                    .await
                    .ok();
            }
        }
    }
}

/// A delete reaching an instance that has not yet received the insert it undoes, and a
/// re-insert reaching an instance that still holds what another one just deleted: the
/// later acknowledged write wins on every instance, through every door.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_later_explicit_write_wins_whatever_the_instance_held() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = two(dir.path()).await;
    for door in Door::ALL {
        // Insert on 0 while 1 cannot hear of it; delete on 1, which lacks it.
        let deleted = format!("deleted-{door:?}");
        cluster.cut(0, 1);
        door.write(&cluster, 0, &deleted, true).await;
        door.write(&cluster, 1, &deleted, false).await;
        cluster.heal(0, 1);

        // Both hold it; delete on 0 while 1 cannot hear of it; re-insert on 1.
        let kept = format!("kept-{door:?}");
        door.write(&cluster, 0, &kept, true).await;
        cluster.converge(Duration::from_secs(20)).await;
        cluster.cut(0, 1);
        door.write(&cluster, 0, &kept, false).await;
        door.write(&cluster, 1, &kept, true).await;
        cluster.heal(0, 1);

        cluster.converge(Duration::from_secs(20)).await;
        for index in 0..2 {
            assert!(
                !ask(&cluster, index, &door.pattern(&deleted)).await,
                "{door:?}: an acknowledged delete was undone on instance {index}"
            );
            assert!(
                ask(&cluster, index, &door.pattern(&kept)).await,
                "{door:?}: an acknowledged insert was undone on instance {index}"
            );
        }
    }
}

/// With the token of a write on one instance, a read on another sees that write (it
/// waits until it has it); without the token it may not; a token the instance cannot
/// satisfy in time is answered 503, and a malformed one 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_causal_token_carries_read_your_writes_across_instances() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = two(dir.path()).await;
    let pattern = triple("tokened");

    cluster.cut(0, 1);
    let response = ok(cluster
        .update(0, &format!("INSERT DATA {{ {pattern} }}"))
        .await)
    .await;
    let token = response
        .headers()
        .get(TOKEN)
        .expect("a committing response carries a causal token")
        .to_str()
        .unwrap()
        .to_owned();

    // Without the token, instance 1 answers at once from what it has.
    assert!(!ask(&cluster, 1, &pattern).await);
    // With it, instance 1 cannot have the write while the link is cut: 503 in time.
    let response = cluster
        .client
        .post(cluster.instances[1].repo_url(""))
        .header(TOKEN, &token)
        .header("x-quadmesh-token-timeout", "0.5")
        .form(&[("query", format!("ASK {{ {pattern} }}"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let message = response.text().await.unwrap();
    assert!(message.contains("causal token"), "{message}");

    // The read waits for the link to come back, then sees the write.
    let read = {
        let client = cluster.client.http.clone();
        let url = cluster.instances[1].repo_url("");
        let token = token.clone();
        let pattern = pattern.clone();
        tokio::spawn(async move {
            let request = client
                .post(url)
                .basic_auth(common::USER, Some(common::PASSWORD))
                .query(&[("token", token)]);
            asks(request, &pattern).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.heal(0, 1);
    assert!(read.await.unwrap());

    // A write on 1 with the token from 0 returns a token covering both writes: a read
    // on 0 with only that newest token sees the write made on 1.
    let response = ok(cluster
        .client
        .post(cluster.instances[1].repo_url(""))
        .header(TOKEN, &token)
        .form(&[("update", format!("DELETE DATA {{ {pattern} }}"))])
        .send()
        .await
        .unwrap())
    .await;
    let newer = response.headers()[TOKEN].to_str().unwrap().to_owned();
    assert_ne!(newer, token);
    let request = cluster
        .client
        .post(cluster.instances[0].repo_url(""))
        .header(TOKEN, &newer);
    assert!(!asks(request, &pattern).await);

    let response = cluster
        .client
        .get(cluster.instances[0].repo_url("/size"))
        .header(TOKEN, "not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

async fn update(client: &Client, server: &Server, update: &str) -> reqwest::Response {
    client
        .post(server.url("/repositories/r"))
        .form(&[("update", update)])
        .send()
        .await
        .unwrap()
}

async fn select_graphs(client: &Client, server: &Server) -> Vec<String> {
    let response = client
        .post(server.url("/repositories/r"))
        .header("accept", "application/sparql-results+json")
        .form(&[("query", "SELECT ?g WHERE { GRAPH ?g {} }")])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    let mut graphs: Vec<String> = body["results"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["g"]["value"].as_str().unwrap().to_owned())
        .collect();
    graphs.sort();
    graphs
}

/// Graphs exist while they hold a quad, through every door; DROP/CLEAR of a missing
/// graph fail without SILENT and change nothing; CREATE of an existing one too.
#[tokio::test]
async fn graphs_exist_while_they_hold_a_quad() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    ok(client
        .put(server.url("/repositories/r"))
        .send()
        .await
        .unwrap())
    .await;
    let g1 = format!("{EX}g1");
    let g2 = format!("{EX}g2");
    ok(update(
        &client,
        &server,
        &format!(
            "INSERT DATA {{ GRAPH <{g1}> {{ {a} }} GRAPH <{g2}> {{ {b} }} }}",
            a = triple("a"),
            b = triple("b")
        ),
    )
    .await)
    .await;
    assert_eq!(
        select_graphs(&client, &server).await,
        vec![g1.clone(), g2.clone()]
    );

    // Deleting a graph's last quad, or dropping it, leaves no trace of the graph.
    ok(update(
        &client,
        &server,
        &format!("DELETE DATA {{ GRAPH <{g1}> {{ {} }} }}", triple("a")),
    )
    .await)
    .await;
    ok(update(&client, &server, &format!("DROP GRAPH <{g2}>")).await).await;
    assert!(select_graphs(&client, &server).await.is_empty());
    assert!(
        !asks(
            client.post(server.url("/repositories/r")),
            &format!("GRAPH <{g1}> {{}}")
        )
        .await
    );

    // Missing graphs: an error without SILENT, nothing changed by the whole request.
    ok(update(
        &client,
        &server,
        &format!("INSERT DATA {{ {} }}", triple("kept")),
    )
    .await)
    .await;
    for operation in ["DROP", "CLEAR"] {
        let response = update(
            &client,
            &server,
            &format!(
                "DELETE DATA {{ {} }} ; {operation} GRAPH <{g1}>",
                triple("kept")
            ),
        )
        .await;
        assert_eq!(response.status(), 400, "{operation} of a missing graph");
        let message = response.text().await.unwrap();
        assert!(message.contains("does not exist"), "{message}");
        ok(update(
            &client,
            &server,
            &format!("{operation} SILENT GRAPH <{g1}>"),
        )
        .await)
        .await;
    }
    assert!(
        asks(client.post(server.url("/repositories/r")), &triple("kept")).await,
        "a failed request changed something"
    );
    ok(update(&client, &server, &format!("CREATE GRAPH <{g1}>")).await).await;
    ok(update(
        &client,
        &server,
        &format!("INSERT DATA {{ GRAPH <{g1}> {{ {} }} }}", triple("c")),
    )
    .await)
    .await;
    let response = update(&client, &server, &format!("CREATE GRAPH <{g1}>")).await;
    assert_eq!(response.status(), 400);
    ok(update(&client, &server, &format!("CREATE SILENT GRAPH <{g1}>")).await).await;
    // DROP DEFAULT / ALL / NAMED never fail.
    ok(update(&client, &server, "DROP NAMED ; CLEAR DEFAULT ; DROP ALL").await).await;
    assert!(select_graphs(&client, &server).await.is_empty());
    let size = client
        .get(server.url("/repositories/r/size"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(size.trim(), "0");
}

/// A session opened on one instance works through any other: each request goes to a
/// different instance, which forwards it to the holder. It reads its own writes, others
/// do not see them until commit; rollback drops them; a holder that is gone is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_works_through_every_instance() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    let client = cluster.client.http.clone();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(common::USER, Some(common::PASSWORD));
    let open = ok(cluster
        .client
        .post(cluster.instances[0].repo_url("/session?autoCommit=false"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap())
    .await;
    let url: String = open.json().await.unwrap();
    let path = &url[url.find("/sessions/").unwrap()..];
    // The same session at each instance's address, round robin.
    let urls: Vec<String> = cluster.instances.iter().map(|i| i.url(path)).collect();
    let at = |i: usize| urls[i % 3].clone();

    let pattern = triple("in-session");
    ok(auth(client.post(at(1)))
        .form(&[("update", format!("INSERT DATA {{ {pattern} }}"))])
        .send()
        .await
        .unwrap())
    .await;
    assert!(asks(auth(client.post(at(2))), &pattern).await);
    for i in 0..3 {
        assert!(!ask(&cluster, i, &pattern).await, "uncommitted work leaked");
    }
    ok(auth(client.post(format!("{}/commit", at(1))))
        .send()
        .await
        .unwrap())
    .await;
    cluster.converge(Duration::from_secs(20)).await;
    for i in 0..3 {
        assert!(ask(&cluster, i, &pattern).await);
    }

    // Rollback through another instance drops the pending work.
    let rolled = triple("rolled-back");
    ok(auth(client.post(at(2)))
        .form(&[("update", format!("INSERT DATA {{ {rolled} }}"))])
        .send()
        .await
        .unwrap())
    .await;
    ok(auth(client.post(format!("{}/rollback", at(1))))
        .send()
        .await
        .unwrap())
    .await;
    ok(auth(client.post(format!("{}/commit", at(2))))
        .send()
        .await
        .unwrap())
    .await;
    cluster.converge(Duration::from_secs(20)).await;
    assert!(!ask(&cluster, 1, &rolled).await);

    // Without credentials, the forwarding instance refuses before forwarding.
    let response = client.post(at(1)).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // The holder is gone: the answer names it and says what became of the work.
    cluster.instances[0].kill();
    let response = auth(client.post(at(1)))
        .form(&[("query", "ASK {}")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let message = response.text().await.unwrap();
    assert!(
        message.contains("node0") && message.contains("nothing of its uncommitted work"),
        "{message}"
    );
}

/// A session without auto-commit reads the repository as of its start (or its last
/// commit or rollback) plus its own writes; others' commits appear after its commit or
/// rollback; a failed request in the session changes nothing of its pending work.
#[tokio::test]
async fn a_session_reads_a_snapshot_plus_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    ok(client
        .put(server.url("/repositories/r"))
        .send()
        .await
        .unwrap())
    .await;
    let session: String = ok(client
        .post(server.url("/repositories/r/session?autoCommit=false"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap())
    .await
    .json()
    .await
    .unwrap();
    let ask_at = |url: String, pattern: String| {
        let request = client.post(url);
        async move { asks(request, &pattern).await }
    };
    let repo = server.url("/repositories/r");
    let (mine, theirs) = (triple("mine"), triple("theirs"));
    // Touch the session once so that its snapshot is taken before the other commit.
    assert!(!ask_at(session.clone(), theirs.clone()).await);
    ok(client
        .post(session.clone())
        .form(&[("update", format!("INSERT DATA {{ {mine} }}"))])
        .send()
        .await
        .unwrap())
    .await;
    ok(update(&client, &server, &format!("INSERT DATA {{ {theirs} }}")).await).await;
    assert!(ask_at(session.clone(), mine.clone()).await);
    assert!(
        !ask_at(session.clone(), theirs.clone()).await,
        "the session saw a commit made after it started"
    );
    assert!(!ask_at(repo.clone(), mine.clone()).await);

    // A failing request (the second operation refers to a missing graph) keeps the
    // session's pending work as it was.
    let response = client
        .post(session.clone())
        .form(&[(
            "update",
            format!("DELETE DATA {{ {mine} }} ; DROP GRAPH <{EX}missing>"),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(ask_at(session.clone(), mine.clone()).await);

    ok(client
        .post(format!("{session}/commit"))
        .send()
        .await
        .unwrap())
    .await;
    assert!(ask_at(session.clone(), theirs.clone()).await);
    assert!(ask_at(repo.clone(), mine.clone()).await);

    // After a rollback, too, the session sees what others committed meanwhile.
    let later = triple("later");
    assert!(!ask_at(session.clone(), later.clone()).await);
    ok(update(&client, &server, &format!("INSERT DATA {{ {later} }}")).await).await;
    assert!(!ask_at(session.clone(), later.clone()).await);
    ok(client
        .post(format!("{session}/rollback"))
        .send()
        .await
        .unwrap())
    .await;
    assert!(ask_at(session.clone(), later.clone()).await);
}

async fn count(cluster: &Cluster, index: usize, prefix: &str) -> u64 {
    let response = ok(cluster
        .client
        .post(cluster.instances[index].repo_url(""))
        .header("accept", "application/sparql-results+json")
        .form(&[(
            "query",
            format!(
                "SELECT (COUNT(*) AS ?n) {{ ?s <{EX}p> ?o FILTER(STRSTARTS(STR(?s), \"{EX}{prefix}\")) }}"
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

/// The reproduction from the field, at full size: 1,000 times insert on one instance
/// then delete on the other at once; and the mirror, delete on one then re-insert on
/// the other. The later write must stand every time, on both instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_back_to_back_pairs_on_two_instances() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = two(dir.path()).await;
    for i in 0..1000 {
        let data = triple(&format!("pair{i}"));
        ok(cluster
            .update(0, &format!("INSERT DATA {{ {data} }}"))
            .await)
        .await;
        ok(cluster
            .update(1, &format!("DELETE DATA {{ {data} }}"))
            .await)
        .await;
    }
    let mut body = String::new();
    for i in 0..1000 {
        body.push_str(&format!("{} .\n", triple(&format!("mirror{i}"))));
    }
    ok(cluster
        .client
        .post(cluster.instances[0].repo_url("/statements"))
        .header("content-type", "application/n-triples")
        .body(body)
        .send()
        .await
        .unwrap())
    .await;
    cluster.converge(Duration::from_secs(20)).await;
    for i in 0..1000 {
        let data = triple(&format!("mirror{i}"));
        ok(cluster
            .update(0, &format!("DELETE DATA {{ {data} }}"))
            .await)
        .await;
        ok(cluster
            .update(1, &format!("INSERT DATA {{ {data} }}"))
            .await)
        .await;
    }
    cluster.converge(Duration::from_secs(20)).await;
    for index in 0..2 {
        assert_eq!(count(&cluster, index, "pair").await, 0, "instance {index}");
        assert_eq!(
            count(&cluster, index, "mirror").await,
            1000,
            "instance {index}"
        );
    }
}

/// A write that changes nothing on the instance it reaches (the quad is already there)
/// is still a write: with `durability=max` it waits for every member, and says what is
/// missing when one cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_that_changes_nothing_here_still_waits_for_durability() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = two(dir.path()).await;
    let data = triple("again");
    ok(cluster
        .update(0, &format!("INSERT DATA {{ {data} }}"))
        .await)
    .await;
    cluster.converge(Duration::from_secs(20)).await;
    cluster.cut(0, 1);
    let response = ok(cluster
        .client
        .post(cluster.instances[0].repo_url(""))
        .header(
            "x-repl-settings",
            "durability=max distributedTransactionTimeout=1",
        )
        .form(&[("update", format!("INSERT DATA {{ {data} }}"))])
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(
        response
            .headers()
            .get("x-durability")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("missing=1".to_owned()),
        "a re-assertion was acknowledged without waiting for the unreachable member"
    );
    assert!(response.headers().contains_key(TOKEN));
    cluster.heal(0, 1);
}
