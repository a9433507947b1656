//! Faults of one instance's disk, log and clock, with real server processes: every
//! acknowledged write holds on every instance, no sequence number is used twice, and the
//! instances converge once the fault is gone, or the instance refuses loudly.

mod common;

use common::cluster::Cluster;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Cluster tests run one at a time: each starts several processes on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const EX: &str = "http://example.org/";

fn triple(tag: &str, i: usize) -> String {
    format!("<{EX}{tag}{i}> <{EX}p> \"{i}\"")
}

/// A tmpfs mounted for the length of a test (unmounted when dropped).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // The instance's directory must be the tmpfs, or the disk never fills.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        if !mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(&*at.to_string_lossy()) && l.contains(" tmpfs "))
        {
            return Err(format!("{} is not a tmpfs after mount", at.display()));
        }
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until it is full, then frees
/// `leave` bytes (room for a few log frames, not for a store flush).
fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break,
        }
    }
    file.set_len(written.saturating_sub(leave)).unwrap();
    path
}

/// This instance's own sequence number as it reports itself, and as each running
/// instance reports it.
async fn own_seq(cluster: &Cluster, index: usize) -> Vec<u64> {
    let me = cluster.status(index).await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state"] == "self")
        .unwrap()["origin"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut seqs = Vec::new();
    for i in 0..cluster.instances.len() {
        let status = cluster.status(i).await;
        let own = status["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["state"] == "self")
            .unwrap()["versionVector"][&me]
            .as_u64()
            .unwrap_or(0);
        seqs.push(own);
    }
    seqs
}

fn present(export: &str, triple: &str) -> bool {
    export.lines().any(|l| l.starts_with(triple))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_answers_507_loses_nothing_and_converges_once_space_is_back() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // No quiet skip: without a disk that fills, this test checks nothing.
    let _tmpfs = Tmpfs::mount(&dir.path().join("node1"), "160m").unwrap_or_else(|e| {
        panic!(
            "cannot mount a tmpfs for the full disk: {e} (the test needs root, as \
             scripts/test and CI run it)"
        )
    });
    let cluster = Cluster::launch(dir.path(), 3, &["--checkpoint-interval", "1"]).await;
    cluster.form().await;
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut on_node1 = 0u64;
    for i in 0..10 {
        let t = triple("before", i);
        assert!(cluster
            .update(1, &format!("INSERT DATA {{ {t} }}"))
            .await
            .status()
            .is_success());
        acknowledged.push(t);
        on_node1 += 1;
    }
    cluster.converge(Duration::from_secs(20)).await;

    let filler = fill(&cluster.instances[1].data_dir, 96 << 10);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut full_message = None;
    for i in 0..300 {
        // Writes on the full instance, and on the others (which it must apply).
        let t = triple("full", i);
        let response = cluster.update(1, &format!("INSERT DATA {{ {t} }}")).await;
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        match status {
            200 | 204 => {
                acknowledged.push(t);
                on_node1 += 1;
            }
            507 => {
                full_message.get_or_insert(response.text().await.unwrap());
                refused.push(t);
            }
            other => panic!(
                "write {i} on the full instance answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
        let t = triple("other", i);
        assert!(cluster
            .update(i % 2 * 2, &format!("INSERT DATA {{ {t} }}"))
            .await
            .status()
            .is_success());
        acknowledged.push(t);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("answers on the full instance: {statuses:?}");
    let message = full_message.expect("the disk never filled: no write was refused with 507");
    assert!(message.contains("full"), "{message}");

    // Space comes back: the instance takes writes again by itself.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    let mut attempt = 0;
    while after < 20 {
        attempt += 1;
        let t = triple("after", attempt);
        let response = cluster.update(1, &format!("INSERT DATA {{ {t} }}")).await;
        if response.status().is_success() {
            acknowledged.push(t);
            on_node1 += 1;
            after += 1;
        } else {
            assert!(
                Instant::now() < deadline,
                "still refused 30 s after space came back: {} {}",
                response.status(),
                response.text().await.unwrap()
            );
            refused.push(t);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let took = cluster.converge(Duration::from_secs(60)).await;
    eprintln!(
        "{} writes acknowledged, {} refused; converged {took:?} after space came back",
        acknowledged.len(),
        refused.len()
    );
    for i in 0..3 {
        let export = cluster.export(i).await;
        for t in &acknowledged {
            assert!(present(&export, t), "instance {i} lacks acknowledged {t}");
        }
        for t in &refused {
            assert!(!present(&export, t), "instance {i} holds refused {t}");
        }
    }
    // Exactly one sequence number per acknowledged write, the same everywhere.
    assert_eq!(own_seq(&cluster, 1).await, vec![on_node1; 3]);
}

/// Where each frame of a log segment starts (the frame layout: a 38-byte header whose
/// bytes 30..34 are the payload length).
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 38 <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at + 30..at + 34].try_into().unwrap()) as usize;
        at += 38 + len;
    }
    starts
}

/// The newest log segment of a repository that holds anything.
fn last_segment(data_dir: &Path, repository: &str) -> PathBuf {
    let mut segments: Vec<PathBuf> =
        std::fs::read_dir(data_dir.join("repositories").join(repository).join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
            .collect();
    segments.sort();
    segments.pop().expect("a log segment")
}

/// A flipped bit inside one repository's log: that repository does not open and is
/// refused naming the file and the offset (nothing of its log is cut), while the
/// server starts and serves its other repositories; deleting it is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_bit_inside_a_log_takes_only_that_repository_out_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::Server::start(dir.path());
    let client = common::Client::default();
    for name in ["damaged", "healthy"] {
        let response = client
            .put(server.url(&format!("/repositories/{name}")))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    for i in 0..40 {
        for name in ["damaged", "healthy"] {
            let response = client
                .post(server.url(&format!("/repositories/{name}")))
                .form(&[("update", format!("INSERT DATA {{ {} }}", triple("t", i)))])
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    }
    server.kill();
    let segment = last_segment(dir.path(), "damaged");
    let mut bytes = std::fs::read(&segment).unwrap();
    let starts = frame_starts(&bytes);
    assert!(starts.len() >= 40, "{} frames", starts.len());
    let eleventh = starts[starts.len() - 30];
    bytes[eleventh + 38 + 5] ^= 0x08;
    std::fs::write(&segment, &bytes).unwrap();

    server.restart();
    assert_eq!(
        common::size(&client, &server, "healthy").await,
        40,
        "the undamaged repository is served"
    );
    let refused = client
        .get(server.url("/repositories/damaged/size"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let message = refused.text().await.unwrap();
    assert!(
        message.contains(&segment.display().to_string()),
        "the file is not named: {message}"
    );
    assert!(
        message.contains(&format!("offset {eleventh}")),
        "the offset is not named: {message}"
    );
    let written = client
        .post(server.url("/repositories/damaged"))
        .form(&[("update", "INSERT DATA { <http://e/s> <http://e/p> 1 }")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        written.status(),
        503,
        "a damaged repository takes no writes"
    );
    let listed: serde_json::Value = client
        .get(server.url("/repositories"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let damaged = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "damaged")
        .expect("the damaged repository is listed");
    assert_eq!(damaged["readable"], false);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("quadmesh_repository_unavailable{repository=\"damaged\"} 1"),
        "{metrics}"
    );
    // Nothing was cut.
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
    // Its name cannot be taken while it is there; deleting it is allowed.
    let taken = client
        .put(server.url("/repositories/damaged"))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 503);
    let deleted = client
        .delete(server.url("/repositories/damaged"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let made = client
        .put(server.url("/repositories/damaged"))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success());
    assert_eq!(common::size(&client, &server, "damaged").await, 0);
}

/// Issue 25, case 2: one bit flipped in frame 11 of 40 of a member's log. The server
/// starts and serves its other repositories; the damaged repository takes no local
/// writes (503 `log_healing`) and is not ready while no member can give back what the
/// damage took; once the members are reachable the frame is fetched back, checked and
/// put back, writes are taken again, every acknowledged write holds on every instance,
/// and the next start finds the log whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_bit_inside_a_members_log_is_healed_from_the_peers_frames() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    let other = cluster.instances[1].url("/repositories/other");
    assert!(cluster
        .client
        .put(other.clone())
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    for i in 0..3 {
        let response = cluster
            .client
            .post(other.clone())
            .form(&[(
                "update",
                format!("INSERT DATA {{ {} }}", triple("other", i)),
            )])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let t = triple("before", i);
        let response = cluster
            .update(i % 3, &format!("INSERT DATA {{ {t} }}"))
            .await;
        assert!(response.status().is_success(), "{}", response.status());
        acknowledged.push(t);
    }
    cluster.converge(Duration::from_secs(30)).await;
    // Killed (a clean stop would checkpoint and truncate the log everyone holds), so
    // the damage lies after the last checkpoint: the replay stops at it, and what
    // follows waits in the log until the hole is filled.
    cluster.instances[1].kill();
    let segment = last_segment(&cluster.instances[1].data_dir, Cluster::REPO);
    let mut bytes = std::fs::read(&segment).unwrap();
    let starts = frame_starts(&bytes);
    assert!(starts.len() >= 40, "{} frames", starts.len());
    let damaged_at = starts[starts.len() - 30];
    bytes[damaged_at + 38 + 5] ^= 0x08;
    std::fs::write(&segment, &bytes).unwrap();

    // Back, but cut off from both members: nobody can give back what the damage took.
    cluster.cut(1, 0);
    cluster.cut(1, 2);
    cluster.instances[1].start(false);
    let size = common::success_text(
        cluster
            .client
            .get(cluster.instances[1].url("/repositories/other/size"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(size.trim(), "3", "the server's other repository is served");
    let refused = cluster
        .update(1, "INSERT DATA { <http://e/refused> <http://e/p> 1 }")
        .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("x-quadmesh-error")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("log_healing".to_owned())
    );
    let message = refused.text().await.unwrap();
    assert!(
        message.contains(&format!("offset {damaged_at}")),
        "{message}"
    );
    let ready = cluster
        .client
        .get(cluster.instances[1].url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let status = cluster.status(1).await;
    let healing = &status["logHealing"];
    assert_eq!(healing["holes"][0]["offset"], damaged_at as u64, "{status}");
    assert_eq!(healing["missing"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(healing["replayPaused"], true, "{status}");
    assert!(cluster.metrics(1).await.contains(&format!(
        "quadmesh_replication_log_holes{{repository=\"{}\"}} 1",
        Cluster::REPO
    )));
    // Reads go on meanwhile (the store holds every write).
    let export = cluster.export(1).await;
    for t in &acknowledged {
        assert!(present(&export, t), "instance 1 lacks {t} while healing");
    }

    cluster.heal(1, 0);
    cluster.heal(1, 2);
    common::wait_for("the log to heal", Duration::from_secs(30), async || {
        cluster.status(1).await["logHealing"].is_null()
    })
    .await;
    assert_eq!(cluster.status(1).await["logFramesPutBack"], 1);
    let metrics = cluster.metrics(1).await;
    assert!(
        metrics.contains(&format!(
            "quadmesh_replication_log_frames_put_back_total{{repository=\"{}\"}} 1",
            Cluster::REPO
        )),
        "{metrics}"
    );
    // Writes everywhere again (instance 1's clock fence may first need a fresh sample
    // of its peers' clocks: a 503 then is refused, not acknowledged, and tried again).
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..6 {
        let t = triple("after", i);
        loop {
            let response = cluster
                .update(i % 3, &format!("INSERT DATA {{ {t} }}"))
                .await;
            match response.status().as_u16() {
                200 | 204 => break,
                503 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("{other}: {}", response.text().await.unwrap()),
            }
        }
        acknowledged.push(t);
    }
    cluster.converge(Duration::from_secs(30)).await;
    for i in 0..3 {
        let export = cluster.export(i).await;
        for t in &acknowledged {
            assert!(present(&export, t), "instance {i} lacks acknowledged {t}");
        }
        assert!(!export.contains("http://e/refused"));
    }
    // The damaged segment was kept aside as it was; the log is whole again.
    let kept: Vec<PathBuf> = std::fs::read_dir(segment.parent().unwrap().join("damaged"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(std::fs::read(&kept[0]).unwrap().starts_with(&bytes));
    cluster.instances[1].stop();
    cluster.instances[1].start(false);
    common::wait_for("instance 1 to be up", Duration::from_secs(20), async || {
        cluster
            .client
            .get(cluster.instances[1].url("/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(cluster.status(1).await["logHealing"].is_null());
    assert!(cluster
        .update(1, "INSERT DATA { <http://e/last> <http://e/p> 1 }")
        .await
        .status()
        .is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_log_tail_is_fetched_back_from_peers_and_no_sequence_number_is_reused() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let t = triple("before", i);
        assert!(cluster
            .update(1, &format!("INSERT DATA {{ {t} }}"))
            .await
            .status()
            .is_success());
        acknowledged.push(t);
    }
    cluster.converge(Duration::from_secs(20)).await;
    // A power loss without fsync: the end of the last (replicated) frame is gone.
    cluster.instances[1].kill();
    let segment = last_segment(&cluster.instances[1].data_dir, Cluster::REPO);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    // It comes back cut off from its peers: it cannot learn how far its own
    // transactions went, so it must not take local writes.
    cluster.cut(1, 0);
    cluster.cut(1, 2);
    cluster.instances[1].start(false);
    let mut refused = Vec::new();
    for i in 0..10 {
        let t = triple("cut", i);
        let response = cluster.update(1, &format!("INSERT DATA {{ {t} }}")).await;
        assert_eq!(
            response.status(),
            503,
            "a local write was taken before any peer spoke: {}",
            response.text().await.unwrap()
        );
        refused.push(t);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = cluster
        .client
        .get(cluster.instances[1].url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    cluster.heal(1, 0);
    cluster.heal(1, 2);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    let mut waited = 0;
    while after < 5 {
        let t = triple("after", after);
        let response = cluster.update(1, &format!("INSERT DATA {{ {t} }}")).await;
        match response.status().as_u16() {
            200 | 204 => {
                acknowledged.push(t);
                after += 1;
            }
            503 => {
                assert!(Instant::now() < deadline, "local writes never resumed");
                waited += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    eprintln!("{waited} writes refused with 503 before the peers confirmed");
    let took = cluster.converge(Duration::from_secs(60)).await;
    eprintln!("converged {took:?} after the restart");
    for i in 0..3 {
        let export = cluster.export(i).await;
        for t in &acknowledged {
            assert!(present(&export, t), "instance {i} lacks acknowledged {t}");
        }
        for t in &refused {
            assert!(!present(&export, t), "instance {i} holds refused {t}");
        }
    }
    assert_eq!(own_seq(&cluster, 1).await, vec![10; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clock_stepped_back_across_a_restart_never_makes_stamps_go_backwards() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    // Instances 1 and 2 run 12 s ahead (a majority, so the clock fence lets them
    // write): instance 0 holds their transactions for that long, a window wide enough
    // to look at on a busy machine.
    for i in [1, 2] {
        cluster.instances[i].stop();
        cluster.instances[i].extra = vec!["--clock-offset-ms".into(), "12000".into()];
        cluster.instances[i].start(false);
    }
    let t = triple("ahead", 0);
    common::wait_for(
        "instance 1, 12 s ahead with instance 2, to take a write",
        Duration::from_secs(30),
        async || {
            cluster
                .update(1, &format!("INSERT DATA {{ {t} }}"))
                .await
                .status()
                .is_success()
        },
    )
    .await;
    // Instance 0 holds their transactions until its clock catches up, and shows it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ahead = loop {
        let status = cluster.status(0).await;
        if let Some(ms) = status["peerClockAheadMs"].as_u64() {
            break ms;
        }
        assert!(
            Instant::now() < deadline,
            "no peer clock shown ahead: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("peerClockAheadMs at instance 0: {ahead}");
    assert!(ahead > 1000, "{ahead}");
    let metrics = cluster.metrics(0).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("quadmesh_clock_peer_refusals_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Restarted (a crash) with a correct clock, it deletes what it wrote. Its clock
    // counts on from the time it issued (12 s ahead of its physical time), so the
    // fence refuses its writes until its physical clock has caught up: had the stamps
    // gone back with the clock, the delete would be taken at once, stamped before the
    // insert, and lose to it.
    cluster.instances[1].kill();
    cluster.instances[1].extra.clear();
    cluster.instances[1].start(false);
    let restarted = Instant::now();
    common::wait_for(
        "instance 1, its clock stepped back, to take a write",
        Duration::from_secs(40),
        async || {
            cluster
                .update(1, &format!("DELETE DATA {{ {t} }}"))
                .await
                .status()
                .is_success()
        },
    )
    .await;
    eprintln!(
        "the delete was taken {:?} after the restart",
        restarted.elapsed()
    );
    let took = cluster.converge(Duration::from_secs(30)).await;
    eprintln!("converged {took:?} after the restart");
    for i in 0..3 {
        assert!(
            !present(&cluster.export(i).await, &t),
            "instance {i} still holds what was deleted after it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_frames_lost_without_fsync_are_fetched_back_and_no_sequence_number_is_reused() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &["--no-fsync"]).await;
    cluster.form().await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let t = triple("before", i);
        assert!(cluster
            .update(1, &format!("INSERT DATA {{ {t} }}"))
            .await
            .status()
            .is_success());
        acknowledged.push(t);
    }
    cluster.converge(Duration::from_secs(20)).await;
    // A power loss without fsync can take whole frames (the page cache never reached
    // the disk), leaving no torn tail to notice: the last two frames are gone.
    cluster.instances[1].kill();
    let segment = last_segment(&cluster.instances[1].data_dir, Cluster::REPO);
    let bytes = std::fs::read(&segment).unwrap();
    let starts = frame_starts(&bytes);
    let cut_at = starts[starts.len() - 2];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(cut_at as u64)
        .unwrap();
    // Cut off from its peers, it cannot learn how far its own transactions went.
    cluster.cut(1, 0);
    cluster.cut(1, 2);
    cluster.instances[1].start(false);
    let t = triple("cut", 0);
    let response = cluster.update(1, &format!("INSERT DATA {{ {t} }}")).await;
    assert_eq!(
        response.status(),
        503,
        "a local write was taken before any peer spoke: {}",
        response.text().await.unwrap()
    );
    cluster.heal(1, 0);
    cluster.heal(1, 2);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    while after < 5 {
        let t = triple("after", after);
        let response = cluster.update(1, &format!("INSERT DATA {{ {t} }}")).await;
        match response.status().as_u16() {
            200 | 204 => {
                acknowledged.push(t);
                after += 1;
            }
            503 => {
                assert!(Instant::now() < deadline, "local writes never resumed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    cluster.converge(Duration::from_secs(30)).await;
    for i in 0..3 {
        let export = cluster.export(i).await;
        for t in &acknowledged {
            assert!(present(&export, t), "instance {i} lacks acknowledged {t}");
        }
    }
    assert_eq!(own_seq(&cluster, 1).await, vec![10; 3]);

    // A clean stop syncs the log: the next start takes local writes at once.
    cluster.instances[1].stop();
    cluster.instances[1].start(false);
    let response = cluster
        .update(1, &format!("INSERT DATA {{ {} }}", triple("clean", 0)))
        .await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

/// The simulation's seeds 17773 and 18568, with processes: the controlling instance
/// loses its log's tail while a member is down for good. It must not wait for that
/// member for ever (nothing could then change the cluster), nor resume before a
/// majority answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controlling_instance_with_a_lost_tail_resumes_once_a_majority_answered_and_the_rest_expired(
) {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &["--log-retention", "4"]).await;
    cluster.form().await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let t = triple("before", i);
        let response = cluster.update(0, &format!("INSERT DATA {{ {t} }}")).await;
        assert!(response.status().is_success());
        acknowledged.push(t);
    }
    cluster.converge(Duration::from_secs(20)).await;
    // A member goes away for good, and the controlling instance loses its tail.
    cluster.instances[2].kill();
    cluster.instances[0].kill();
    let segment = last_segment(&cluster.instances[0].data_dir, Cluster::REPO);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    cluster.instances[0].start(false);
    let started = Instant::now();
    let mut refused = 0;
    let mut after = 0;
    while after < 5 {
        let t = triple("after", after);
        let response = cluster.update(0, &format!("INSERT DATA {{ {t} }}")).await;
        match response.status().as_u16() {
            200 | 204 => {
                // Never before the absent member was expired (4 s without it).
                assert!(
                    started.elapsed() >= Duration::from_secs(3),
                    "local writes resumed {:?} after the restart, before the absent member expired",
                    started.elapsed()
                );
                acknowledged.push(t);
                after += 1;
            }
            503 => {
                assert!(
                    started.elapsed() < Duration::from_secs(40),
                    "local writes never resumed: {}",
                    response.text().await.unwrap()
                );
                refused += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(
        refused > 0,
        "no write was refused while the members were asked"
    );
    eprintln!(
        "{refused} writes refused; local writes resumed {:?} after the restart",
        started.elapsed()
    );
    // The member that answered holds everything acknowledged, and the controlling
    // instance's sequence numbers went on from where its peers had them.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let export = cluster.export(1).await;
        if acknowledged.iter().all(|t| present(&export, t)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance 1 lacks acknowledged writes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let export = cluster.export(0).await;
    for t in &acknowledged {
        assert!(present(&export, t), "the controlling instance lacks {t}");
    }
}

/// Issue 25, case 1: one instance's clock 20 s ahead (the allowed offset is 500 ms).
/// Seen before the clock fence: it was ready, acknowledged an insert of T, and that
/// insert beat a delete of T acknowledged elsewhere later in real time, so T came back.
/// Now the instance refuses local writes (503 `clock_fenced`, naming the offset) and is
/// not ready while its clock is off, and takes writes again once it is fixed; whatever
/// it acknowledged, the later delete holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clock_far_ahead_is_fenced_and_never_undoes_a_later_delete() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::launch(dir.path(), 3, &[]).await;
    cluster.form().await;
    cluster.instances[2].stop();
    cluster.instances[2]
        .extra
        .push("--clock-offset-ms=20000".into());
    cluster.instances[2].start(false);
    let t = triple("skewed", 0);
    // The skewed instance: its insert of T is refused, or (were there no fence)
    // acknowledged; either way the later delete must hold.
    let skewed = cluster.update(2, &format!("INSERT DATA {{ {t} }}")).await;
    let skewed_status = skewed.status();
    let code = skewed
        .headers()
        .get("x-quadmesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = skewed.text().await.unwrap();
    assert_eq!(skewed_status, 503, "{text}");
    assert_eq!(code.as_deref(), Some("clock_fenced"), "{text}");
    assert!(text.contains("ms off a member's clock"), "{text}");
    let ready = cluster
        .client
        .get(cluster.instances[2].url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let why = ready.text().await.unwrap();
    assert!(why.contains("maximum offset"), "{why}");
    let status = cluster.status(2).await;
    assert!(status["clockFenced"].is_string(), "{status}");
    let offset = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|m| m["clockOffsetMs"].as_i64())
        .unwrap_or_else(|| panic!("no clock offset measured: {status}"));
    assert!((19_000..21_000).contains(&offset), "{status}");
    let metrics = cluster.metrics(2).await;
    assert!(
        metrics.contains("quadmesh_replication_clock_fenced{repository=\"shared\"} 1"),
        "{metrics}"
    );
    // The others agree with each other: they take writes. T inserted, then deleted,
    // both acknowledged, after the skewed instance's attempt.
    let insert = cluster.update(0, &format!("INSERT DATA {{ {t} }}")).await;
    assert!(insert.status().is_success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delete = cluster.update(1, &format!("DELETE DATA {{ {t} }}")).await;
    assert!(delete.status().is_success());
    // The clock is fixed: the instance takes writes again (once its hybrid clock no
    // longer counts on from a time it issued while ahead).
    cluster.instances[2].stop();
    cluster.instances[2].extra.pop();
    cluster.instances[2].start(false);
    let after = triple("fixed", 0);
    common::wait_for(
        "the instance with its clock fixed to take writes",
        Duration::from_secs(60),
        async || {
            cluster
                .update(2, &format!("INSERT DATA {{ {after} }}"))
                .await
                .status()
                .is_success()
        },
    )
    .await;
    cluster.converge(Duration::from_secs(30)).await;
    for i in 0..3 {
        let export = cluster.export(i).await;
        assert!(!present(&export, &t), "node{i} holds T again:\n{export}");
        assert!(present(&export, &after), "node{i} lacks a write:\n{export}");
    }
}
