//! What a cluster keeps beside its quads, with real processes: namespaces replicate
//! like data (issue 13).

mod common;

use common::cluster::Cluster;
use common::PATIENCE;
use std::time::{Duration, Instant};

/// Cluster tests run one at a time: each starts several processes on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What `ex:x` means to a query on instance `index` without a PREFIX line: the IRI, or
/// the error status and message.
async fn expand(cluster: &Cluster, index: usize, prefix: &str) -> Result<String, String> {
    let response = cluster
        .client
        .get(cluster.instances[index].repo_url(""))
        .query(&[(
            "query",
            format!("SELECT ?v WHERE {{ BIND({prefix}:x AS ?v) }}"),
        )])
        .header("accept", "application/sparql-results+json")
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status != 200 {
        return Err(format!("{status}: {}", response.text().await.unwrap()));
    }
    let json: serde_json::Value = response.json().await.unwrap();
    Ok(json["results"]["bindings"][0]["v"]["value"]
        .as_str()
        .unwrap()
        .to_owned())
}

async fn put_namespace(cluster: &Cluster, index: usize, prefix: &str, namespace: &str) {
    let response = cluster
        .client
        .put(cluster.instances[index].repo_url(&format!("/namespaces/{prefix}")))
        .body(namespace.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

async fn delete_namespace(cluster: &Cluster, index: usize, prefix: &str) {
    let response = cluster
        .client
        .delete(cluster.instances[index].repo_url(&format!("/namespaces/{prefix}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

/// Waits until `ex:x` expands to `expected` (none: the prefix is unknown) on each of
/// `instances`; returns how long that took.
async fn until_expands(
    cluster: &Cluster,
    instances: &[usize],
    prefix: &str,
    expected: Option<&str>,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    'wait: loop {
        let mut seen = Vec::new();
        for &i in instances {
            let got = expand(cluster, i, prefix).await;
            let ok = match (&got, expected) {
                (Ok(iri), Some(namespace)) => *iri == format!("{namespace}x"),
                (Err(message), None) => message.contains("400"),
                _ => false,
            };
            seen.push(got);
            if !ok {
                assert!(
                    started.elapsed() < within,
                    "{prefix}: not {expected:?} everywhere within {within:?}: {seen:?}"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue 'wait;
            }
        }
        return started.elapsed();
    }
}

async fn listed(cluster: &Cluster, index: usize) -> Vec<(String, String)> {
    let list = common::success_json(
        cluster
            .client
            .get(cluster.instances[index].repo_url("/namespaces"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    list.as_array()
        .unwrap_or_else(|| panic!("namespaces are not a list: {list}"))
        .iter()
        .map(|n| {
            (
                n["prefix"].as_str().unwrap().to_owned(),
                n["namespace"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespaces_replicate_like_data() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form_first(2).await;

    // Set on one instance: usable without a PREFIX line on the other soon.
    assert!(expand(&cluster, 1, "ex").await.is_err());
    put_namespace(&cluster, 0, "ex", "http://example.org/one#").await;
    let took = until_expands(
        &cluster,
        &[0, 1],
        "ex",
        Some("http://example.org/one#"),
        PATIENCE,
    )
    .await;
    eprintln!("a namespace set on node0 was usable on node1 after {took:?}");

    // A copy grown afterwards has it.
    cluster.grow(2).await;
    cluster.settle(3).await;
    assert_eq!(
        expand(&cluster, 2, "ex").await.as_deref(),
        Ok("http://example.org/one#x")
    );

    // Deleted on another instance: gone everywhere, in queries and listings.
    delete_namespace(&cluster, 2, "ex").await;
    until_expands(&cluster, &[0, 1, 2], "ex", None, PATIENCE).await;
    for i in 0..3 {
        assert!(!listed(&cluster, i).await.iter().any(|(p, _)| p == "ex"));
    }

    // Concurrent sets of one prefix, made on both sides of a partition, end with one
    // value everywhere: the newer stamp's (node2's, set clearly later).
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        cluster.cut(a, b);
    }
    put_namespace(&cluster, 0, "c", "http://example.org/older#").await;
    put_namespace(&cluster, 1, "d", "http://example.org/d-older#").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    put_namespace(&cluster, 2, "c", "http://example.org/newer#").await;
    assert_eq!(
        expand(&cluster, 0, "c").await.as_deref(),
        Ok("http://example.org/older#x"),
        "the partition let node2's set through"
    );
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        cluster.heal(a, b);
    }
    cluster.converge(Duration::from_secs(20)).await;
    until_expands(
        &cluster,
        &[0, 1, 2],
        "c",
        Some("http://example.org/newer#"),
        PATIENCE,
    )
    .await;

    // A delete is not undone by an older set arriving after it.
    until_expands(
        &cluster,
        &[0, 1, 2],
        "d",
        Some("http://example.org/d-older#"),
        PATIENCE,
    )
    .await;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        cluster.cut(a, b);
    }
    put_namespace(&cluster, 0, "d", "http://example.org/d-set-before#").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    delete_namespace(&cluster, 1, "d").await;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        cluster.heal(a, b);
    }
    cluster.converge(Duration::from_secs(20)).await;
    until_expands(&cluster, &[0, 1, 2], "d", None, PATIENCE).await;
    let lists: Vec<_> = all_lists(&cluster).await;
    assert!(
        lists.windows(2).all(|w| w[0] == w[1]),
        "listings differ: {lists:?}"
    );

    // Restarts keep them: a clean stop, and a kill (the log replays over the book).
    cluster.instances[1].stop();
    cluster.instances[1].start(false);
    cluster.instances[2].kill();
    cluster.instances[2].start(false);
    for i in 1..3 {
        assert_eq!(
            expand(&cluster, i, "c").await.as_deref(),
            Ok("http://example.org/newer#x")
        );
        assert!(expand(&cluster, i, "d").await.is_err());
    }
    assert_eq!(all_lists(&cluster).await[1], lists[0]);
    assert_eq!(all_lists(&cluster).await[2], lists[0]);

    // And they still replicate after the restarts.
    put_namespace(&cluster, 1, "after", "http://example.org/after#").await;
    until_expands(
        &cluster,
        &[0, 1, 2],
        "after",
        Some("http://example.org/after#"),
        PATIENCE,
    )
    .await;
}

async fn all_lists(cluster: &Cluster) -> Vec<Vec<(String, String)>> {
    let mut lists = Vec::new();
    for i in 0..cluster.instances.len() {
        lists.push(listed(cluster, i).await);
    }
    lists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_namespaces_are_refused_and_change_nothing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 1, &[]).await;
    let create = cluster
        .client
        .put(cluster.instances[0].repo_url(""))
        .send()
        .await
        .unwrap();
    assert!(create.status().is_success());
    let before = listed(&cluster, 0).await;
    for (prefix, namespace) in [("ex", "not an iri"), ("e%20x", "http://example.org/")] {
        let response = cluster
            .client
            .put(cluster.instances[0].repo_url(&format!("/namespaces/{prefix}")))
            .body(namespace)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{prefix} {namespace}");
    }
    let missing = cluster
        .client
        .delete(cluster.instances[0].repo_url("/namespaces/nothere"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(listed(&cluster, 0).await, before);
    // The defaults come back with reset=true after a clear.
    let clear = cluster
        .client
        .delete(cluster.instances[0].repo_url("/namespaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(clear.status(), 204);
    assert!(listed(&cluster, 0).await.is_empty());
    let reset = cluster
        .client
        .delete(cluster.instances[0].repo_url("/namespaces?reset=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(listed(&cluster, 0).await, before);
}

/// The status of `GET /repositories/shared/size` on instance `index` as `user`.
async fn size_as(cluster: &Cluster, index: usize, user: (&str, &str)) -> u16 {
    reqwest::Client::new()
        .get(cluster.instances[index].repo_url("/size"))
        .basic_auth(user.0, Some(user.1))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `size_as` answers `status` on each of `instances`; returns how long.
async fn until_status(
    cluster: &Cluster,
    instances: &[usize],
    user: (&str, &str),
    status: u16,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    'wait: loop {
        for &i in instances {
            let got = size_as(cluster, i, user).await;
            if got != status {
                assert!(
                    started.elapsed() < within,
                    "{} on node{i}: {got}, not {status} within {within:?}",
                    user.0
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue 'wait;
            }
        }
        return started.elapsed();
    }
}

async fn admin(cluster: &Cluster, index: usize, method: reqwest::Method, path: &str) {
    let response = cluster
        .client
        .http
        .request(method.clone(), cluster.instances[index].url(path))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(
        status,
        204,
        "{method} {path}: {}",
        response.text().await.unwrap()
    );
}

async fn effective_access(cluster: &Cluster, index: usize, user: &str) -> serde_json::Value {
    common::success_json(
        cluster
            .client
            .get(cluster.instances[index].url(&format!("/users/{user}/effectiveAccess")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_and_grants_are_cluster_wide() {
    use reqwest::Method;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form_first(2).await;
    let alice = ("alice", "alice-secret");

    // Created on one instance: signs in on the other soon, with its grant.
    assert_eq!(size_as(&cluster, 1, alice).await, 401);
    admin(
        &cluster,
        0,
        Method::PUT,
        "/users/alice?password=alice-secret",
    )
    .await;
    admin(
        &cluster,
        0,
        Method::PUT,
        "/users/alice/access?read=true&repository=shared",
    )
    .await;
    let took = until_status(&cluster, &[0, 1], alice, 200, PATIENCE).await;
    eprintln!("a user created on node0 signed in on node1 after {took:?}");

    // A copy grown afterwards knows it.
    cluster.grow(2).await;
    cluster.settle(3).await;
    until_status(&cluster, &[2], alice, 200, PATIENCE).await;

    // Revoked on another instance: refused everywhere soon.
    admin(
        &cluster,
        2,
        Method::DELETE,
        "/users/alice/access?read=true&repository=shared",
    )
    .await;
    until_status(&cluster, &[0, 1, 2], alice, 403, PATIENCE).await;
    admin(&cluster, 1, Method::DELETE, "/users/alice").await;
    until_status(&cluster, &[0, 1, 2], alice, 401, PATIENCE).await;

    // Concurrent grant changes on both sides of a partition agree once it heals: per
    // grant, the newer change wins everywhere.
    let bob = ("bob", "bob-secret");
    admin(&cluster, 0, Method::PUT, "/users/bob?password=bob-secret").await;
    admin(&cluster, 0, Method::PUT, "/users/bob/access?read=true").await;
    until_status(&cluster, &[0, 1, 2], bob, 200, PATIENCE).await;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        cluster.cut(a, b);
    }
    admin(&cluster, 0, Method::PUT, "/users/bob/access?write=true").await;
    admin(
        &cluster,
        1,
        Method::PUT,
        "/users/bob/access?read=true&repository=shared",
    )
    .await;
    admin(&cluster, 2, Method::DELETE, "/users/bob/access?read=true").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    admin(&cluster, 1, Method::DELETE, "/users/bob/access?write=true").await;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        cluster.heal(a, b);
    }
    let expected = serde_json::json!([
        {"read": true, "write": false, "catalog": "*", "repository": "shared"}
    ]);
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        for i in 0..3 {
            seen.push(effective_access(&cluster, i, "bob").await);
        }
        if seen.iter().all(|s| *s == expected) {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "grants did not agree within {PATIENCE:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_status(&cluster, &[0, 1, 2], bob, 200, PATIENCE).await;

    // Restarts keep them.
    cluster.instances[1].stop();
    cluster.instances[1].start(false);
    cluster.instances[2].kill();
    cluster.instances[2].start(false);
    until_status(&cluster, &[1, 2], bob, 200, PATIENCE).await;
    assert_eq!(size_as(&cluster, 1, alice).await, 401);
    assert_eq!(effective_access(&cluster, 2, "bob").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_carries_namespaces() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 1, &[]).await;
    let node = &cluster.instances[0];
    let created = cluster.client.put(node.repo_url("")).send().await.unwrap();
    assert!(created.status().is_success());
    put_namespace(&cluster, 0, "ex", "http://example.org/backed#").await;
    delete_namespace(&cluster, 0, "foaf").await;
    let archive = cluster
        .client
        .get(node.repo_url("/backup"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let restored = cluster
        .client
        .put(node.url("/repositories/restored/restore"))
        .body(archive)
        .send()
        .await
        .unwrap();
    assert!(
        restored.status().is_success(),
        "{}",
        restored.text().await.unwrap()
    );
    let namespaces = |repository: &'static str| {
        let client = &cluster.client;
        let url = node.url(&format!("/repositories/{repository}/namespaces"));
        async move {
            let list: Vec<serde_json::Value> =
                client.get(url).send().await.unwrap().json().await.unwrap();
            list
        }
    };
    let original = namespaces("shared").await;
    assert!(original.iter().any(|n| n["prefix"] == "ex"));
    assert!(!original.iter().any(|n| n["prefix"] == "foaf"));
    assert_eq!(namespaces("restored").await, original);
}

/// What instance `index` answers at `path` under the repository, as JSON.
async fn metadata_json(cluster: &Cluster, index: usize, path: &str) -> serde_json::Value {
    let response = cluster
        .client
        .get(cluster.instances[index].repo_url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn settings_and_attribute_definitions_replicate_like_data() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form_first(2).await;
    let defined = cluster
        .client
        .post(cluster.instances[0].repo_url("/attributes/definitions"))
        .query(&[("name", "level"), ("allowed-values", "low")])
        .send()
        .await
        .unwrap();
    assert_eq!(defined.status(), 204);
    let set = cluster
        .client
        .put(cluster.instances[1].repo_url("/defaultDatasetBehavior"))
        .query(&[("value", "rdf")])
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    let started = Instant::now();
    let expected_definitions = serde_json::json!([{
        "name": "level", "ordered": false, "minimum-number": 0, "maximum-number": null,
        "allowed-values": ["low"],
    }]);
    loop {
        let mut all = true;
        for i in 0..2 {
            all &=
                metadata_json(&cluster, i, "/attributes/definitions").await == expected_definitions;
            all &= metadata_json(&cluster, i, "/defaultDatasetBehavior").await
                ["defaultDatasetBehavior"]
                == "rdf";
        }
        if all {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the metadata did not reach both instances"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "settings and definitions were on both instances after {:?}",
        started.elapsed()
    );
    // A copy grown afterwards has them (the snapshot carries the book).
    cluster.grow(2).await;
    cluster.settle(3).await;
    assert_eq!(
        metadata_json(&cluster, 2, "/attributes/definitions").await,
        expected_definitions
    );
    assert_eq!(
        metadata_json(&cluster, 2, "/defaultDatasetBehavior").await["defaultDatasetBehavior"],
        "rdf"
    );
}
