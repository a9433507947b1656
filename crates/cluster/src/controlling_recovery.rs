//! The controlling role never forks its cluster: a controlling instance that starts
//! without data (first start, or its volume was lost) first asks `--peers` for members
//! of an existing cluster of its repository, and when one answers, re-grows itself from
//! that member's snapshot under a new origin id and takes its own place back as the
//! controlling member. Only when no member answers does it create a new cluster.
//!
//! Rules it keeps (what an answer and a snapshot mean is decided in `quadmesh_repl`:
//! `judge_answer`, `snapshot_is_ours`):
//! - a member is believed only when its cluster names this instance as its
//!   controlling member; a cluster controlled by another name is reported and the role
//!   is not taken (no second cluster, no stolen one);
//! - members are asked for the repository under this instance's own name (`--peers`
//!   names servers, not repositories): the built-in roles hold a cluster under one name
//!   everywhere; a member holding it under another name is not found this way;
//! - the old origin id is retired (as a removed member's), so no sequence number of the
//!   lost incarnation is reused; what only it held is gone with its volume, and the log
//!   says so;
//! - the configuration change is made here, by the controlling instance itself, so one
//!   instance still changes the configuration; it keeps the epoch of the configuration
//!   it re-grew from, so a promotion made meanwhile (a newer epoch) supersedes it
//!   wherever both arrive (it is not confirmed by other members: it changes no
//!   membership but its own origin id).

use crate::snapshot_transfer::{download, unpack};
use crate::Replication;
use quadmesh_repl::{
    judge_answer, search_over, snapshot_is_ours, FoundAnswer, OriginId, RecoveryVerdict,
};
use quadmesh_store::StoreError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one member has to answer the question.
const ASK_WITHIN: Duration = Duration::from_secs(3);

/// A member of the existing cluster, as found.
#[derive(Clone, Debug)]
pub struct FoundMember {
    /// The address it answered at.
    pub address: std::net::SocketAddr,
    pub cluster: String,
    pub name: String,
}

/// Looks for a member of an existing cluster of `repository` at `peers`. `Ok(None)`
/// when none answered within `quadmesh_repl::LOOK_FOR_MS` (or every address that answered holds no
/// such cluster, or there are no peers); an error when the cluster found is controlled
/// by another instance.
pub async fn find_cluster(
    replication: &Replication,
    credentials: Option<&(String, String)>,
    repository: &str,
    instance: &str,
    peers: &[String],
) -> Result<Option<FoundMember>, String> {
    if peers.is_empty() {
        tracing::info!(repository, "no --peers to ask for an existing cluster");
        return Ok(None);
    }
    let Some((user, password)) = credentials else {
        return Err(
            "the controlling role needs the superuser credentials to ask --peers for an existing cluster"
                .into(),
        );
    };
    let started = Instant::now();
    loop {
        let mut all_answered = true;
        let mut addresses = Vec::new();
        for peer in peers {
            match tokio::net::lookup_host(peer.as_str()).await {
                Ok(found) => addresses.extend(found),
                Err(e) => tracing::debug!(peer, error = %e, "a peer does not resolve"),
            }
        }
        for address in addresses {
            let answer = ask(replication, address, repository, user, password).await;
            let verdict = judge_answer(&answer, instance);
            if let RecoveryVerdict::LookFurther { answered } = verdict {
                all_answered &= answered;
                continue;
            }
            // Judged a member's answer.
            let FoundAnswer::Member {
                cluster,
                name,
                controlling,
                ..
            } = answer
            else {
                continue;
            };
            if verdict == RecoveryVerdict::ControlledByAnother {
                return Err(format!(
                    "the member {name} at {address} belongs to cluster {cluster} of repository '{repository}', whose controlling instance is {}, not this instance ('{instance}'): not creating a second cluster nor taking that one; start this instance under the controlling instance's name, or point --peers elsewhere",
                    controlling.as_deref().unwrap_or("unknown")
                ));
            }
            tracing::warn!(repository, %address, member = %name, %cluster,
                "found the cluster this instance controls at a member");
            return Ok(Some(FoundMember {
                address,
                cluster,
                name,
            }));
        }
        if search_over(all_answered, started.elapsed().as_millis() as u64) {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn ask(
    replication: &Replication,
    address: std::net::SocketAddr,
    repository: &str,
    user: &str,
    password: &str,
) -> FoundAnswer {
    let url = replication.http().url(
        &address.to_string(),
        &format!("/repositories/{repository}/repl/status"),
    );
    let response = replication
        .http()
        .get(&url)
        .basic_auth(user, Some(password))
        .timeout(ASK_WITHIN)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(_) => return FoundAnswer::Silent,
    };
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return FoundAnswer::NoCluster;
    }
    if !response.status().is_success() {
        tracing::warn!(%address, status = %response.status(), "a peer did not say whether it holds the cluster");
        return FoundAnswer::Silent;
    }
    let Ok(status) = response.json::<quadmesh_repl::wire::ClusterStatus>().await else {
        return FoundAnswer::Silent;
    };
    let controlling = status.controlling().map(|i| i.name.clone());
    FoundAnswer::Member {
        cluster: status.cluster,
        name: status.instance,
        controlling,
        removed: status.removed,
    }
}

/// Re-grows this (controlling) instance from `member`'s snapshot under a new origin id,
/// and takes the controlling member's place in the configuration.
pub async fn regrow_from(
    replication: &Arc<Replication>,
    (user, password): &(String, String),
    repository: &str,
    instance: &str,
    advertise: &str,
    member: &FoundMember,
) -> Result<(), String> {
    let scratch = replication
        .catalog()
        .scratch_dir()
        .map_err(|e| e.to_string())?;
    let result = async {
        let url = replication.http().url(
            &member.address.to_string(),
            &format!("/repositories/{repository}/repl/snapshot"),
        );
        let response = replication.http()
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot fetch a snapshot from {}: {}",
                    member.address,
                    crate::peer_http::describe(&e)
                )
            })?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(format!(
                "{} gave no snapshot: {status}: {}",
                member.address,
                text.trim()
            ));
        }
        let archive = scratch.join("snapshot.tar");
        download(response, &archive)
            .await
            .map_err(|e| format!("the snapshot from {} broke off: {e}", member.address))?;
        let (replication, dir, name, cluster) = (
            replication.clone(),
            scratch.clone(),
            repository.to_owned(),
            member.cluster.clone(),
        );
        let (instance, advertise) = (instance.to_owned(), advertise.to_owned());
        tokio::task::spawn_blocking(move || {
            let (store, snapshot_state) =
                unpack(&archive, &dir.join("unpacked")).map_err(|e| e.to_string())?;
            let config = snapshot_state
                .config
                .clone()
                .ok_or("the member's snapshot holds no cluster")?;
            // This instance's place in that cluster must be this repository (members
            // may hold the cluster under other names, but this one is ours).
            if !snapshot_is_ours(&config, &cluster, &instance, &name) {
                return Err(format!(
                    "the member's snapshot is of another cluster, or places instance '{instance}' elsewhere than repository '{name}'"
                ));
            }
            let lost = config
                .member_named(&instance)
                .map(|m| (m.origin, snapshot_state.version_vector.get(m.origin)));
            let origin = OriginId(rand::random::<u64>() >> 1);
            let repository = replication
                .catalog()
                .install(&name, &store, snapshot_state, origin)
                .map_err(|e| e.to_string())?;
            repository
                .commit_config(|current, time| {
                    let current = current.ok_or_else(|| {
                        StoreError::from(quadmesh_repl::MembershipError::NotInCluster(
                            name.clone(),
                        ))
                    })?;
                    Ok(current.with_controlling_reincarnated(&instance, origin, advertise, time)?)
                })
                .map_err(|e| e.to_string())?;
            if let Some((old, seq)) = lost {
                tracing::warn!(repository = %name, old_origin = %old, new_origin = %origin,
                    held_by_the_member = seq,
                    "re-grown as the controlling instance under a new origin id; transactions of the lost incarnation that no member held are gone with its data");
            }
            replication.ensure(repository);
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    result
}
