//! Point-in-time backups with real processes: a full backup and incremental ones taken
//! under continuous writes, restored up to a time, hold every write acknowledged before
//! that time and none stamped after it; the whole chain restores the source; a chain
//! with a missing or damaged link is refused and creates nothing.

mod common;

use common::{binary, success_text, Client, Server};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn cli(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run quadmesh")
}

fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One write: its subject, when it was sent and when it was acknowledged (ms).
struct Write {
    subject: String,
    sent_ms: u64,
    acknowledged_ms: Option<u64>,
}

async fn subjects(client: &Client, server: &Server, repository: &str) -> Vec<String> {
    // An error page must not read as rows (its first line skipped as a header).
    let text = success_text(
        client
            .get(server.url(&format!("/repositories/{repository}")))
            .query(&[("query", "SELECT ?s WHERE { ?s ?p ?o }")])
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut subjects: Vec<String> = text.lines().skip(1).map(str::to_owned).collect();
    subjects.sort();
    subjects
}

async fn status_of(client: &Client, server: &Server, repository: &str) -> u16 {
    client
        .get(server.url(&format!("/repositories/{repository}/size")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_point_in_time_restore_holds_exactly_what_was_stamped_by_then() {
    let dir = tempfile::tempdir().unwrap();
    let source = Server::start(&dir.path().join("source"));
    let target = Server::start(&dir.path().join("target"));
    let client = Client::default();
    assert!(client
        .put(source.url("/repositories/src"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let response = client
        .post(source.url("/repositories/src/statements"))
        .header("content-type", "application/n-triples")
        .body(common::ntriples(500))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let archive = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (full, first, second) = (
        archive("full.tar"),
        archive("inc1.tar"),
        archive("inc2.tar"),
    );
    let spec = source.spec("src");
    succeeded(&cli(&["backup", &spec, &full]));

    // One writer, one triple at a time, noting when each was sent and acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = source.url("/repositories/src/statements");
        tokio::spawn(async move {
            let client = Client::default();
            let mut writes = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let subject = format!("http://example.org/w{i}");
                let sent_ms = now_ms();
                let response = client
                    .post(url.clone())
                    .header("content-type", "application/n-triples")
                    .body(format!("<{subject}> <http://example.org/p> \"{i}\" .\n"))
                    .send()
                    .await;
                let acknowledged_ms = response.is_ok_and(|r| r.status().is_success()).then(now_ms);
                writes.push(Write {
                    subject,
                    sent_ms,
                    acknowledged_ms,
                });
                i += 1;
            }
            writes
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    succeeded(&cli(&["backup", &spec, &first, "--since", &full]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let until = now_ms();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let writes = writer.await.unwrap();
    succeeded(&cli(&["backup", &spec, &second, "--since", &first]));

    // Up to `until`: every write acknowledged before it, none sent in a later millisecond.
    let until_text = until.to_string();
    let said = succeeded(&cli(&[
        "restore",
        &full,
        &first,
        &second,
        &target.spec("as_of"),
        "--until",
        &until_text,
    ]));
    let restored = subjects(&client, &target, "as_of").await;
    let held = |subject: &str| restored.binary_search(&subject.to_owned()).is_ok();
    let before: Vec<&Write> = writes
        .iter()
        .filter(|w| w.acknowledged_ms.is_some_and(|t| t < until))
        .collect();
    let after: Vec<&Write> = writes.iter().filter(|w| w.sent_ms > until).collect();
    assert!(
        before.len() > 20 && after.len() > 20,
        "too few writes around the time: {} before, {} after",
        before.len(),
        after.len()
    );
    for write in &before {
        assert!(
            held(&write.subject),
            "{} acknowledged before the time is missing ({said})",
            write.subject
        );
    }
    for write in &after {
        assert!(
            !held(&write.subject),
            "{} sent after the time was restored ({said})",
            write.subject
        );
    }
    assert!(
        held("http://example.org/s499"),
        "the full backup's contents are there"
    );

    // The whole chain: the source as of the last incremental backup (writes stopped).
    succeeded(&cli(&[
        "restore",
        &full,
        &first,
        &second,
        &target.spec("all"),
    ]));
    assert_eq!(
        subjects(&client, &target, "all").await,
        subjects(&client, &source, "src").await
    );

    // A missing link: refused, named, nothing created.
    let output = cli(&["restore", &full, &second, &target.spec("broken")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("the backup chain is broken"), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    assert_eq!(status_of(&client, &target, "broken").await, 404);
    // A damaged link: refused, nothing created.
    let bytes = std::fs::read(&first).unwrap();
    let cut = archive("inc1-cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let output = cli(&["restore", &full, &cut, &second, &target.spec("damaged")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("archive 2 is not a usable incremental backup"),
        "{stderr}"
    );
    assert_eq!(status_of(&client, &target, "damaged").await, 404);
    // A time before the full backup: refused, nothing created.
    let output = cli(&[
        "restore",
        &full,
        &target.spec("early"),
        "--until",
        "2020-01-01T00:00:00Z",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("restore from an older full backup"),
        "{stderr}"
    );
    assert_eq!(status_of(&client, &target, "early").await, 404);
    // An incremental backup from a backup of another repository: refused.
    assert!(client
        .put(source.url("/repositories/other"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(client
        .post(source.url("/repositories/other/statements"))
        .header("content-type", "application/n-triples")
        .body(common::ntriples(3))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let output = cli(&[
        "backup",
        &source.spec("other"),
        &archive("x.tar"),
        "--since",
        &second,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("not one of this repository"), "{stderr}");
    assert!(!dir.path().join("x.tar").exists());
}

/// Writes one triple at a time to `url` until told to stop.
fn timed_writer(
    url: String,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Write>> {
    tokio::spawn(async move {
        let client = Client::default();
        let mut writes = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let subject = format!("http://example.org/{tag}{i}");
            let sent_ms = now_ms();
            let response = client
                .post(url.clone())
                .header("content-type", "application/n-triples")
                .body(format!("<{subject}> <http://example.org/p> \"{i}\" .\n"))
                .send()
                .await;
            let acknowledged_ms = response.is_ok_and(|r| r.status().is_success()).then(now_ms);
            writes.push(Write {
                subject,
                sent_ms,
                acknowledged_ms,
            });
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        writes
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_member_backs_up_every_origin_and_restores_up_to_a_time() {
    use common::cluster::Cluster;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(&dir.path().join("cluster"), 3, &[]).await;
    cluster.form_first(2).await;
    let target = Server::start(&dir.path().join("target"));
    let client = Client::default();
    let member = &cluster.instances[1];
    let spec = format!(
        "{}:{}@{}:{}/{}",
        common::USER,
        common::PASSWORD,
        member.ip,
        member.port,
        Cluster::REPO
    );
    let archive = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (full, increment) = (archive("full.tar"), archive("inc.tar"));
    succeeded(&cli(&["backup", &spec, &full]));
    // Writes on both members; the cluster grows meanwhile, so the log holds a
    // configuration entry of the controlling origin between its data entries.
    let stop = Arc::new(AtomicBool::new(false));
    let writers = [
        timed_writer(
            cluster.instances[0].repo_url("/statements"),
            "a",
            stop.clone(),
        ),
        timed_writer(
            cluster.instances[1].repo_url("/statements"),
            "b",
            stop.clone(),
        ),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.grow(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let until = now_ms();
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::SeqCst);
    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(writer.await.unwrap());
    }
    cluster.converge(Duration::from_secs(30)).await;
    succeeded(&cli(&["backup", &spec, &increment, "--since", &full]));

    let until_text = until.to_string();
    succeeded(&cli(&[
        "restore",
        &full,
        &increment,
        &target.spec("as_of"),
        "--until",
        &until_text,
    ]));
    let restored = subjects(&client, &target, "as_of").await;
    let held = |subject: &str| restored.binary_search(&subject.to_owned()).is_ok();
    let before: Vec<&Write> = writes
        .iter()
        .filter(|w| w.acknowledged_ms.is_some_and(|t| t < until))
        .collect();
    let after: Vec<&Write> = writes.iter().filter(|w| w.sent_ms > until).collect();
    for origin in ["http://example.org/a", "http://example.org/b"] {
        assert!(
            before
                .iter()
                .filter(|w| w.subject.starts_with(origin))
                .count()
                > 10,
            "too few writes of {origin} before the time"
        );
    }
    assert!(after.len() > 10, "too few writes after the time");
    for write in &before {
        assert!(
            held(&write.subject),
            "{} acknowledged before the time is missing",
            write.subject
        );
    }
    for write in &after {
        assert!(
            !held(&write.subject),
            "{} sent after the time was restored",
            write.subject
        );
    }
    // The restored repository is in no cluster, and the whole chain is the member.
    assert_eq!(
        client
            .get(target.url("/repositories/as_of/repl/status"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    succeeded(&cli(&["restore", &full, &increment, &target.spec("all")]));
    assert_eq!(subjects(&client, &target, "all").await, {
        let text = cluster.export(1).await;
        let mut subjects: Vec<String> = text
            .lines()
            .map(|l| {
                l.split(' ')
                    .next()
                    .unwrap()
                    .trim_matches(['<', '>'])
                    .to_owned()
            })
            .collect();
        subjects.sort();
        subjects
    });
}
