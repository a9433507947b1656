//! Instances of a cluster under any repository name, on any server, several per server
//! (AllegroGraph's `growCluster` `name`), with real server processes: two instances of
//! one cluster on one server replicating both ways (a server pulling from itself under
//! another name), a grow into another name on another server, and a `cluster.json`
//! written before members had their own repository names.

mod common;

use common::{wait_for, Client, Server, PATIENCE};
use serde_json::Value;
use std::time::{Duration, Instant};

const EX: &str = "http://example.org/";

/// Tests that start server processes run one at a time (two cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn address(server: &Server) -> String {
    format!("127.0.0.1:{}", server.port)
}

/// `PUT repl/CALL` of repository `repository` at `server`; the status and the body.
async fn call(
    client: &Client,
    server: &Server,
    repository: &str,
    call: &str,
    params: &[(&str, &str)],
) -> (u16, String) {
    let response = client
        .put(server.url(&format!("/repositories/{repository}/repl/{call}")))
        .query(params)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn create_cluster(client: &Client, server: &Server, repository: &str, instance: &str) {
    let port = server.port.to_string();
    let (status, body) = call(
        client,
        server,
        repository,
        "createCluster",
        &[
            ("host", "127.0.0.1"),
            ("port", &port),
            ("instanceName", instance),
        ],
    )
    .await;
    assert_eq!(status, 204, "createCluster: {body}");
}

/// `growCluster` at `controlling`'s `repository` into repository `name` at `target`,
/// with `extra` parameters; the status and the body.
async fn grow(
    client: &Client,
    (controlling, repository): (&Server, &str),
    (target, name): (&Server, &str),
    instance: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let port = target.port.to_string();
    let mut params = vec![
        ("host", "127.0.0.1"),
        ("port", port.as_str()),
        ("name", name),
        ("user", common::USER),
        ("password", common::PASSWORD),
        ("instanceName", instance),
    ];
    params.extend_from_slice(extra);
    call(client, controlling, repository, "growCluster", &params).await
}

async fn status(client: &Client, server: &Server, repository: &str) -> Value {
    common::success_json(
        client
            .get(server.url(&format!("/repositories/{repository}/repl/status")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn member<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no instance {name} in {status}"))
}

/// Waits until every `(server, repository)` holds the same configuration and is
/// connected to every member not stopped.
async fn settle(client: &Client, instances: &[(&Server, &str)]) {
    let started = Instant::now();
    wait_for("the instances to settle", PATIENCE, async || {
        let mut versions = Vec::new();
        for (server, repository) in instances {
            let status = status(client, server, repository).await;
            let connected = status["instances"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["state"] == "self" || m["state"] == "connected");
            if !connected {
                return false;
            }
            versions.push(status["configVersion"].clone());
        }
        versions.windows(2).all(|w| w[0] == w[1])
    })
    .await;
    eprintln!("settled in {:?}", started.elapsed());
}

async fn update(client: &Client, server: &Server, repository: &str, update: &str) {
    common::success_text(
        client
            .post(server.url(&format!("/repositories/{repository}")))
            .form(&[("update", update)])
            .send()
            .await
            .unwrap(),
    )
    .await;
}

async fn insert(client: &Client, server: &Server, repository: &str, value: &str) {
    update(
        client,
        server,
        repository,
        &format!("INSERT DATA {{ <{EX}s> <{EX}p> \"{value}\" }}"),
    )
    .await;
}

async fn holds(client: &Client, server: &Server, repository: &str, value: &str) -> bool {
    let response = client
        .get(server.url(&format!("/repositories/{repository}")))
        .query(&[("query", format!("ASK {{ <{EX}s> <{EX}p> \"{value}\" }}"))])
        .header("accept", "application/sparql-results+json")
        .send()
        .await
        .unwrap();
    common::success_json(response).await["boolean"] == true
}

/// Waits until every one of `instances` holds `value`.
async fn everywhere(client: &Client, instances: &[(&Server, &str)], value: &str) {
    let started = Instant::now();
    for (server, repository) in instances {
        wait_for(
            &format!("{value} at {repository} on port {}", server.port),
            PATIENCE,
            async || holds(client, server, repository, value).await,
        )
        .await;
    }
    eprintln!("{value} everywhere in {:?}", started.elapsed());
}

/// A page of the web UI, signed in as the superuser.
async fn ui_page(server: &Server, path: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(server.url("/ui/login"))
        .header("origin", format!("http://127.0.0.1:{}", server.port))
        .form(&[("user", common::USER), ("password", common::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "sign-in");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    common::success_text(
        browser
            .get(server.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_of_one_cluster_on_one_server_replicate_both_ways() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    create_cluster(&client, &server, "alpha", "one").await;
    insert(&client, &server, "alpha", "before-grow").await;

    // Grown on the same server, under another name: the server pulls from itself.
    let (code, body) = grow(&client, (&server, "alpha"), (&server, "beta"), "two", &[]).await;
    assert_eq!(code, 204, "grow into beta: {body}");
    let both = [(&server, "alpha"), (&server, "beta")];
    settle(&client, &both).await;
    everywhere(&client, &both, "before-grow").await;
    insert(&client, &server, "alpha", "from-alpha").await;
    insert(&client, &server, "beta", "from-beta").await;
    everywhere(&client, &both, "from-alpha").await;
    everywhere(&client, &both, "from-beta").await;
    update(
        &client,
        &server,
        "beta",
        &format!("DELETE DATA {{ <{EX}s> <{EX}p> \"before-grow\" }}"),
    )
    .await;
    wait_for("the delete at beta to reach alpha", PATIENCE, async || {
        !holds(&client, &server, "alpha", "before-grow").await
    })
    .await;

    // Each member is shown with its own repository, wherever status is asked.
    for repository in ["alpha", "beta"] {
        let status = status(&client, &server, repository).await;
        assert_eq!(status["repository"], repository, "{status}");
        assert_eq!(member(&status, "one")["repository"], "alpha", "{status}");
        assert_eq!(member(&status, "two")["repository"], "beta", "{status}");
        assert_eq!(member(&status, "two")["address"], address(&server));
    }
    let text = common::success_text(
        client
            .get(server.url("/repositories/alpha/repl/status"))
            .query(&[("form", "text")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let row = text
        .lines()
        .find(|l| l.starts_with("| two "))
        .unwrap_or_else(|| panic!("no row for two:\n{text}"));
    assert!(
        row.contains("| beta ") && row.contains("| connected "),
        "{text}"
    );
    let metrics =
        common::success_text(client.get(server.url("/metrics")).send().await.unwrap()).await;
    assert!(
        metrics.contains(
            "quadmesh_replication_peer_connected{repository=\"alpha\",peer=\"two\",peer_repository=\"beta\"} 1"
        ),
        "{metrics}"
    );
    let page = ui_page(&server, "/ui/repositories/alpha/replication").await;
    assert!(
        page.contains("<th>Repository</th>") && page.contains("<code>beta</code>"),
        "{page}"
    );

    // A place a member holds is refused; so is a catalog quadmesh does not have.
    for (name, instance, extra, expected, says) in [
        (
            "beta",
            "three",
            vec![],
            409,
            "already holds repository 'beta'",
        ),
        (
            "alpha",
            "three",
            vec![],
            409,
            "already holds repository 'alpha'",
        ),
        ("gamma", "two", vec![], 409, "already in the cluster"),
        (
            "gamma",
            "three",
            vec![("catalog", "elsewhere")],
            400,
            "root catalog",
        ),
        ("bad/name", "three", vec![], 400, "bad/name"),
    ] {
        let (code, body) = grow(
            &client,
            (&server, "alpha"),
            (&server, name),
            instance,
            &extra,
        )
        .await;
        assert_eq!(
            code, expected,
            "grow into {name} as {instance} {extra:?}: {body}"
        );
        assert!(
            body.contains(says),
            "grow into {name} as {instance}: {body}"
        );
    }
    assert_eq!(
        status(&client, &server, "alpha").await["instances"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A third instance on the same server (the root catalog named as agraph-python may):
    // with three members every change needs a confirmation from one of the others, asked
    // under their own names.
    let (code, body) = grow(
        &client,
        (&server, "alpha"),
        (&server, "gamma"),
        "three",
        &[("catalog", "root")],
    )
    .await;
    assert_eq!(code, 204, "grow into gamma: {body}");
    let three = [(&server, "alpha"), (&server, "beta"), (&server, "gamma")];
    settle(&client, &three).await;
    everywhere(&client, &three, "from-beta").await;

    // Stop and start one of them: it is told under its own name, catches up after.
    let (code, body) = call(
        &client,
        &server,
        "alpha",
        "stop",
        &[("instanceName", "two")],
    )
    .await;
    assert_eq!(code, 204, "stop two: {body}");
    assert_eq!(status(&client, &server, "beta").await["stopped"], true);
    insert(&client, &server, "gamma", "while-two-stopped").await;
    everywhere(&client, &[(&server, "alpha")], "while-two-stopped").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!holds(&client, &server, "beta", "while-two-stopped").await);
    let (code, body) = call(
        &client,
        &server,
        "alpha",
        "start",
        &[("instanceName", "two")],
    )
    .await;
    assert_eq!(code, 204, "start two: {body}");
    everywhere(&client, &three, "while-two-stopped").await;
    settle(&client, &three).await;

    // The controlling role moves to the instance under another name, and back.
    let (code, body) = call(
        &client,
        &server,
        "alpha",
        "controllingInstance",
        &[("instanceName", "two")],
    )
    .await;
    assert_eq!(code, 204, "controllingInstance two: {body}");
    wait_for("alpha to see two controlling", PATIENCE, async || {
        member(&status(&client, &server, "alpha").await, "two")["role"] == "controlling"
    })
    .await;
    let (code, body) = call(
        &client,
        &server,
        "beta",
        "controllingInstance",
        &[("instanceName", "one")],
    )
    .await;
    assert_eq!(code, 204, "controllingInstance one at beta: {body}");
    wait_for("beta to see one controlling", PATIENCE, async || {
        member(&status(&client, &server, "beta").await, "one")["role"] == "controlling"
    })
    .await;

    // Removed with undo-repl, under its own name: it keeps its data as an ordinary
    // repository and takes writes; the others go on without it.
    let (code, body) = call(
        &client,
        &server,
        "alpha",
        "remove",
        &[("instanceName", "three"), ("undo-repl", "true")],
    )
    .await;
    assert_eq!(code, 204, "remove three: {body}");
    wait_for("gamma to be an ordinary repository", PATIENCE, async || {
        client
            .get(server.url("/repositories/gamma/repl/status"))
            .send()
            .await
            .unwrap()
            .status()
            == 404
    })
    .await;
    assert!(holds(&client, &server, "gamma", "while-two-stopped").await);
    insert(&client, &server, "gamma", "gamma-alone").await;
    insert(&client, &server, "beta", "after-remove").await;
    everywhere(&client, &both, "after-remove").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!holds(&client, &server, "alpha", "gamma-alone").await);
    assert!(!holds(&client, &server, "gamma", "after-remove").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grow_into_another_name_on_another_server() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start(&dir.path().join("a"));
    let mut b = Server::start(&dir.path().join("b"));
    let client = Client::default();
    create_cluster(&client, &a, "people", "a").await;
    insert(&client, &a, "people", "first").await;
    let (code, body) = grow(&client, (&a, "people"), (&b, "people-copy"), "b", &[]).await;
    assert_eq!(code, 204, "grow: {body}");
    let pair = [(&a, "people"), (&b, "people-copy")];
    settle(&client, &pair).await;
    everywhere(&client, &pair, "first").await;
    insert(&client, &b, "people-copy", "at-b").await;
    everywhere(&client, &pair, "at-b").await;
    let at_a = status(&client, &a, "people").await;
    assert_eq!(member(&at_a, "b")["repository"], "people-copy", "{at_a}");
    assert_eq!(member(&at_a, "b")["address"], address(&b), "{at_a}");
    // The CLI's table shows each member's repository.
    let output = std::process::Command::new(common::binary())
        .args(["repl", "status", &b.spec("people-copy")])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        table.contains("people-copy") && table.contains("| people "),
        "{table}"
    );

    // After a restart it pulls and is pulled from under its own name again.
    b.stop();
    insert(&client, &a, "people", "while-b-down").await;
    b.restart();
    let pair = [(&a, "people"), (&b, "people-copy")];
    everywhere(&client, &pair, "while-b-down").await;
    insert(&client, &b, "people-copy", "after-restart").await;
    everywhere(&client, &pair, "after-restart").await;

    // The instance under another name becomes the controlling one and grows the
    // cluster itself (the CLI's spelling: the new spec names the repository).
    let (code, body) = call(
        &client,
        &a,
        "people",
        "controllingInstance",
        &[("instanceName", "b")],
    )
    .await;
    assert_eq!(code, 204, "{body}");
    wait_for("b to hold the controlling role", PATIENCE, async || {
        member(&status(&client, &b, "people-copy").await, "b")["role"] == "controlling"
    })
    .await;
    let output = std::process::Command::new(common::binary())
        .args([
            "repl",
            "grow-cluster",
            &b.spec("people-copy"),
            &a.spec("people-third"),
            "c",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("as repository people-third"));
    let three = [(&a, "people"), (&b, "people-copy"), (&a, "people-third")];
    settle(&client, &three).await;
    everywhere(&client, &three, "after-restart").await;
    insert(&client, &a, "people-third", "at-c").await;
    everywhere(&client, &three, "at-c").await;
}

/// Takes the member repository names out of a repository's `cluster.json`, as the
/// release before them wrote it; returns how many members there were.
fn write_old_form(data_dir: &std::path::Path, repository: &str) -> usize {
    let path = data_dir
        .join("repositories")
        .join(repository)
        .join("cluster.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let members = state["config"]["members"].as_array_mut().unwrap();
    for m in members.iter_mut() {
        assert_eq!(m["repository"], repository, "{m}");
        m.as_object_mut().unwrap().remove("repository");
    }
    let n = members.len();
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_json_without_member_repository_names_still_loads_and_replicates() {
    let _turn = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = Server::start(&dir.path().join("a"));
    let mut b = Server::start(&dir.path().join("b"));
    let client = Client::default();
    create_cluster(&client, &a, "books", "a").await;
    let (code, body) = grow(&client, (&a, "books"), (&b, "books"), "b", &[]).await;
    assert_eq!(code, 204, "grow: {body}");
    let pair = [(&a, "books"), (&b, "books")];
    settle(&client, &pair).await;
    insert(&client, &a, "books", "before-upgrade").await;
    everywhere(&client, &pair, "before-upgrade").await;

    // Both stop cleanly; their cluster.json is put back in the old form.
    a.stop();
    b.stop();
    assert_eq!(write_old_form(&a.data_dir, "books"), 2);
    assert_eq!(write_old_form(&b.data_dir, "books"), 2);
    a.restart();
    b.restart();
    let pair = [(&a, "books"), (&b, "books")];
    settle(&client, &pair).await;
    let at_b = status(&client, &b, "books").await;
    assert_eq!(member(&at_b, "a")["repository"], "books", "{at_b}");
    assert_eq!(member(&at_b, "b")["repository"], "books", "{at_b}");
    insert(&client, &a, "books", "after-upgrade-at-a").await;
    insert(&client, &b, "books", "after-upgrade-at-b").await;
    everywhere(&client, &pair, "after-upgrade-at-a").await;
    everywhere(&client, &pair, "after-upgrade-at-b").await;

    // And the cluster grows into another name as any other.
    let (code, body) = grow(&client, (&a, "books"), (&b, "books-2"), "c", &[]).await;
    assert_eq!(code, 204, "grow: {body}");
    let three = [(&a, "books"), (&b, "books"), (&b, "books-2")];
    settle(&client, &three).await;
    everywhere(&client, &three, "after-upgrade-at-b").await;
    insert(&client, &b, "books-2", "at-c").await;
    everywhere(&client, &three, "at-c").await;
}
