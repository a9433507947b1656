//! Membership changes at the controlling instance: grow (with its snapshot hand-over
//! and, when that fails, its undo), remove (holding the member's writes first, or by
//! force with a hand-over), stop and start, the commit defaults, moving the role, and
//! making a new cluster. The server's `cluster_ops` is their door (parameters, audit).
//!
//! Rules it keeps:
//! - membership changes are made only at the controlling instance
//!   ([`controlling_node`]), as configuration transactions of the repository, written
//!   only once a change quorum of members can confirm a change of the configuration they
//!   hold, and answered only once it confirmed the new one (`promotion`): an instance
//!   that a promotion replaced cannot change the membership any more;
//! - every membership change — grow, its undo, remove, stop, start, settings, moving
//!   the role — is sequenced by the engine of `quadmesh_repl` (`Proposer`, through
//!   `change_config`): consent of the configuration held, which must be in force (a
//!   change quorum of the configuration it was made of holds it), the commit, the
//!   confirmations; the role moves only to a member that confirms both;
//! - a grow that cannot hand its snapshot over undoes the membership it added, waiting
//!   for the same confirmations as every other membership change;
//! - a member that may hold transactions no other member has is removed only by force,
//!   and then waited for to hand them over when it is heard again (`hand_over`), unless
//!   its data is known to be gone (`hand-over=false`).

use crate::error::{blocking, ClusterError, ClusterResult};
use crate::promotion::{change_by_engine, ChangeFailed};
use crate::{snapshot_transfer, Node, Replication, ORIGIN_HEADER, TOKEN_HEADER};
use quadmesh_repl::{
    Change, ClusterConfig, CommitDefaults, HlcTime, Member, MembershipError, OriginId,
    Unreplicated, VersionVector,
};
use quadmesh_store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to grow a cluster by one instance.
#[derive(Clone, Debug)]
pub struct GrowRequest {
    /// The new member's name.
    pub instance: String,
    /// `host:port` of the server that receives the snapshot.
    pub address: String,
    /// The new instance's repository name on that server (none: the name it has at the
    /// controlling instance). Any name that server has no repository under: several
    /// instances of one cluster may live on one server, each under its own name.
    pub target_name: Option<String>,
    /// Credentials for that server.
    pub user: String,
    pub password: String,
}

/// How `remove` goes about it (AllegroGraph's `force`, `timeout`, `undo-repl`).
#[derive(Clone, Copy, Debug)]
pub struct RemoveOptions {
    /// Remove it even if it may hold transactions no other member has.
    pub force: bool,
    /// How long the removed instance is given to show what it holds (a member just
    /// grown may not have been heard from yet) and to hear of its removal.
    pub timeout: Duration,
    /// The removed instance keeps its data as an ordinary repository (it must be told
    /// within `timeout`, or the answer says it was not).
    pub undo_repl: bool,
    /// Removed by force, it hands over what it acknowledged and no remaining member has
    /// when it is heard again (the cluster waits for it up to the log's retention);
    /// `false` when its data is known to be gone.
    pub hand_over: bool,
}

impl Default for RemoveOptions {
    fn default() -> Self {
        RemoveOptions {
            force: false,
            timeout: Duration::from_secs(8),
            undo_repl: false,
            hand_over: true,
        }
    }
}

/// Changes the configuration of repository `name`'s cluster at its controlling
/// instance with `change`, sequenced by the engine (`quadmesh_repl::Proposer`, run by
/// `promotion::change_by_engine`): once a change quorum can confirm the
/// configuration held (and it is in force), then waits for the confirmations of the
/// new one. Returns the new configuration, or why not and whether it was made.
async fn change_config(node: &Arc<Node>, change: Change) -> Result<ClusterConfig, ChangeFailed> {
    change_by_engine(node, change).await
}

/// Stops replication to and from `instance` (at the controlling instance): it stays a
/// member, takes no transactions from the others and gives them none until started
/// again, when it catches up both ways. The instance is given `timeout` to learn it;
/// if it does not, the stop is undone (503) unless `force`, which keeps it: it stops
/// as soon as it hears of it.
pub async fn stop(
    replication: &Replication,
    name: &str,
    instance: &str,
    force: bool,
    timeout: Duration,
) -> ClusterResult<()> {
    let node = controlling_node(replication, name)?;
    let config = change_config(
        &node,
        Change::Stop {
            name: instance.to_owned(),
            stopped: true,
        },
    )
    .await?;
    let member = config
        .member_named(instance)
        .cloned()
        .ok_or_else(|| StoreError::from(MembershipError::UnknownInstance(instance.into())))?;
    let position = config.position();
    match wait_until_member_has(&node, &member, (position.epoch, position.version), timeout).await {
        Ok(()) => {
            tracing::info!(repository = %name, %instance, "stopped replication to and from an instance");
            Ok(())
        }
        Err(why) if force => {
            tracing::warn!(repository = %name, %instance, %why, "stopped an instance that could not be told (force): it stops once it hears of it");
            Ok(())
        }
        Err(why) => {
            let undone = change_config(
                &node,
                Change::Stop {
                    name: instance.to_owned(),
                    stopped: false,
                },
            )
            .await;
            Err(ClusterError::Unavailable(format!(
                "instance '{instance}' could not be told within {:.0} s that it is stopped ({why}); {}; force=true stops it anyway (it stops once it hears of it)",
                timeout.as_secs_f64(),
                match undone {
                    Ok(_) => "the stop was undone".to_owned(),
                    Err(e) => format!("undoing the stop failed too ({e}): start it with repl/start"),
                }
            )))
        }
    }
}

/// Starts replication to and from a stopped `instance` again (at the controlling
/// instance): it catches up with what the others wrote meanwhile, and they with
/// what it wrote. It learns of it within a second (it asks), or when it comes back.
pub async fn start(replication: &Replication, name: &str, instance: &str) -> ClusterResult<()> {
    let node = controlling_node(replication, name)?;
    change_config(
        &node,
        Change::Stop {
            name: instance.to_owned(),
            stopped: false,
        },
    )
    .await?;
    tracing::info!(repository = %name, %instance, "started replication to and from an instance again");
    Ok(())
}

/// Sets the cluster's defaults for commits without `x-repl-settings` (at the
/// controlling instance; they travel with the configuration to every member). A
/// durability no configuration of this size can meet is refused (409).
pub async fn set_commit_defaults(
    replication: &Replication,
    name: &str,
    settings: CommitDefaults,
) -> ClusterResult<()> {
    let node = controlling_node(replication, name)?;
    let members = node.config().members.len();
    if let Some(durability) = settings.durability {
        let needed = durability.needed(members);
        if needed > members {
            return Err(ClusterError::Conflict(format!(
                "durability {durability} cannot be met: the cluster has {members} instance{}",
                if members == 1 { "" } else { "s" }
            )));
        }
    }
    change_config(&node, Change::Settings(settings)).await?;
    Ok(())
}

/// Waits until `member`, asked at its address, holds a configuration at `position` or
/// newer, for at most `timeout`; the last reason it did not, otherwise.
async fn wait_until_member_has(
    node: &Arc<Node>,
    member: &Member,
    position: (u64, u64),
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let why = match crate::removal::membership_of(
            node,
            member,
            member.origin,
            left.clamp(Duration::from_millis(100), Duration::from_secs(5)),
        )
        .await
        {
            Ok(m) if m.position() >= position => return Ok(()),
            Ok(m) => format!("it holds configuration {} of epoch {}", m.version, m.epoch),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() + Duration::from_millis(100) >= deadline {
            return Err(why);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Moves the controlling role of repository `name`'s cluster to `instance` (at the
/// current controlling instance): from then on only it grows and removes.
pub async fn set_controlling(
    replication: &Replication,
    name: &str,
    instance: &str,
) -> ClusterResult<()> {
    let node = controlling_node(replication, name)?;
    // The engine hands the role only to a member that confirms the configuration held
    // and the one naming it, and never to one this instance knows expired (409).
    change_config(
        &node,
        Change::MoveControlling {
            to: instance.to_owned(),
        },
    )
    .await?;
    tracing::info!(target: "quadmesh::audit", repository = %name, %instance, "the controlling role moved");
    Ok(())
}

/// Makes repository `name` of this server the controlling instance of a new cluster.
pub async fn create_cluster_here(
    replication: &Replication,
    name: &str,
    instance: &str,
    address: &str,
) -> ClusterResult<()> {
    let (catalog, name, instance, address) = (
        replication.catalog().clone(),
        name.to_owned(),
        instance.to_owned(),
        address.to_owned(),
    );
    let repository = blocking(move || {
        let repository = match catalog.get(&name) {
            Ok(r) => r,
            Err(StoreError::RepositoryNotFound(_)) => catalog.create(&name)?,
            Err(e) => return Err(e.into()),
        };
        let origin = repository.origin();
        repository.commit_config(|current, time| {
            if current.is_some() {
                return Err(MembershipError::AlreadyInCluster(name.clone()).into());
            }
            Ok(ClusterConfig::new(
                random_hex(8),
                name.clone(),
                random_hex(32),
                Member {
                    name: instance.clone(),
                    origin,
                    address: address.clone(),
                    repository: name.clone(),
                    controlling: true,
                    added_at: time,
                },
            ))
        })?;
        tracing::info!(repository = %name, instance = %instance, %address, "created a replication cluster");
        Ok(repository)
    })
    .await?;
    replication.ensure(repository);
    Ok(())
}

/// The node of a repository whose controlling instance this is.
pub fn controlling_node(replication: &Replication, name: &str) -> ClusterResult<Arc<Node>> {
    let node = replication
        .get(name)
        .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name.to_owned())))?;
    let config = node.config();
    let controlling = config.controlling().cloned();
    match controlling {
        Some(c) if c.origin == node.repository().origin() => Ok(node),
        Some(c) => Err(StoreError::from(MembershipError::NotControlling(format!(
            "{}: repository {} at {}",
            c.name, c.repository, c.address
        )))
        .into()),
        None => Err(ClusterError::Internal(
            "the cluster has no controlling instance".into(),
        )),
    }
}

/// Grows the cluster of repository `name` (at its controlling instance) by one
/// instance: adds the member, hands a snapshot to the new server, which then pulls
/// from the snapshot's cut.
pub async fn grow(
    replication: &Replication,
    name: &str,
    request: GrowRequest,
) -> ClusterResult<()> {
    let GrowRequest {
        instance,
        address,
        target_name,
        user,
        password,
    } = request;
    let name = name.to_owned();
    // The new instance's repository on its server: any name (several instances of one
    // cluster may share a server, each under its own name).
    let target_name = target_name.unwrap_or_else(|| name.clone());
    let node = controlling_node(replication, &name)?;
    let known = node.config();
    if known.member_named(&instance).is_some() {
        return Err(StoreError::from(MembershipError::NameTaken(instance)).into());
    }
    if let Some(there) = known.member_at(&address, &target_name) {
        return Err(StoreError::from(MembershipError::PlaceTaken {
            name: there.name.clone(),
            address,
            repository: target_name,
        })
        .into());
    }
    let repository = node.repository().clone();
    let origin = OriginId(rand::random::<u64>() >> 1);
    let scratch = replication.catalog().scratch_dir()?;
    // In force before the new instance gets anything (the engine: consent of the
    // configuration held, the commit, the confirmations); one that was added but never
    // got its snapshot is taken out again below.
    let added = change_config(
        &node,
        Change::Grow(Member {
            name: instance.clone(),
            origin,
            address: address.clone(),
            repository: target_name.clone(),
            controlling: false,
            added_at: HlcTime::ZERO,
        }),
    )
    .await;
    let repo = repository.clone();
    let dir = scratch.clone();
    let taken = match added {
        Err(ChangeFailed { error, made: None }) => {
            // Nothing was written: nothing to undo.
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            return Err(error);
        }
        Err(ChangeFailed {
            error: ClusterError::Unavailable(why),
            made: Some(_),
        }) => Err(ClusterError::Unavailable(format!(
            "{why}; the new member is taken out again and got nothing"
        ))),
        Err(ChangeFailed { error, .. }) => Err(error),
        Ok(_) => {
            blocking(move || {
                let started = std::time::Instant::now();
                let snapshot_state = repo.snapshot(&dir.join("store"))?;
                tracing::info!(
                    millis = started.elapsed().as_millis() as u64,
                    "snapshot taken for a new instance"
                );
                Ok(snapshot_state)
            })
            .await
        }
    };
    let pushed = match taken {
        Ok(snapshot_state) => {
            // Packed as it is sent; the scratch directory goes when the packing ends.
            let body = snapshot_transfer::pack_stream(
                scratch.clone(),
                scratch.join("store"),
                snapshot_state,
            );
            push_snapshot(
                replication,
                &address,
                &target_name,
                &instance,
                origin,
                &user,
                &password,
                reqwest::Body::wrap_stream(body),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    if let Err(error) = pushed {
        // Undo the membership: an instance that never got its snapshot is not a member.
        if let Err(undo) = undo_grow(&node, &instance).await {
            tracing::error!(repository = %name, %instance, error = %undo, "could not undo a failed grow");
            return Err(ClusterError::Unavailable(format!(
                "{error}; and the new member '{instance}' could not be taken out again ({undo}): remove it (repl remove) once the cluster can confirm the change"
            )));
        }
        return Err(error);
    }
    let maintained = node.clone();
    blocking(move || {
        maintained.maintain();
        Ok(())
    })
    .await?;
    tracing::info!(repository = %name, %instance, %address, instance_repository = %target_name, "grew the cluster");
    Ok(())
}

/// Takes a member added by a grow that failed out again, as any membership change:
/// only once a change quorum can confirm, and answered once it confirmed.
async fn undo_grow(node: &Arc<Node>, instance: &str) -> ClusterResult<()> {
    change_config(
        node,
        Change::UndoGrow {
            name: instance.to_owned(),
        },
    )
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn push_snapshot(
    replication: &Replication,
    address: &str,
    repository: &str,
    instance: &str,
    origin: OriginId,
    user: &str,
    password: &str,
    body: reqwest::Body,
) -> ClusterResult<()> {
    let url = replication
        .http()
        .url(address, &format!("/repositories/{repository}/repl/install"));
    let response = replication
        .http()
        .put(&url)
        .query(&[
            ("instanceName", instance),
            ("origin", &origin.0.to_string()),
        ])
        .basic_auth(user, Some(password))
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ClusterError::Upstream(format!(
                "cannot reach the new instance at {address}: {}",
                crate::peer_http::describe(&e)
            ))
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(ClusterError::Upstream(format!(
            "the new instance at {address} refused the snapshot: {status}: {}",
            text.trim()
        )));
    }
    Ok(())
}

/// Removes `instance` from the cluster of repository `name` (at its controlling
/// instance). Refused when it may hold transactions no remaining member has — it holds
/// some by its last report, or it cannot be heard from now, so nobody can tell —
/// unless `force`: removing it discards them.
pub async fn remove(
    replication: &Replication,
    name: &str,
    instance: &str,
    options: RemoveOptions,
) -> ClusterResult<()> {
    let force = options.force;
    let (name, instance) = (name.to_owned(), instance.to_owned());
    let node = controlling_node(replication, &name)?;
    let repository = node.repository().clone();
    let mut held = None;
    if let Some(leaving) = node.config().member_named(&instance).cloned() {
        let verdict = if force {
            let repo = repository.clone();
            let local = blocking(move || Ok(repo.version_vector())).await?;
            let fresh_ms = crate::STALL_AFTER.as_millis() as u64;
            node.view()
                .unreplicated(leaving.origin, &local, crate::now_ms(), fresh_ms)
        } else {
            // Its last report may predate its latest writes: it is asked to stop
            // acknowledging writes and say what it holds then, and is given `timeout`
            // for the others to hold all of it.
            match hold_writes(replication, &node, &leaving, options.timeout + HOLD_MARGIN).await {
                Err(why) => Unreplicated::Unknown(why),
                Ok(declared) => {
                    held = Some(leaving.clone());
                    let deadline = tokio::time::Instant::now() + options.timeout;
                    loop {
                        let repo = repository.clone();
                        let local = blocking(move || Ok(repo.version_vector())).await?;
                        let verdict =
                            node.view()
                                .unreplicated_declared(leaving.origin, &declared, &local);
                        if verdict == Unreplicated::Nothing
                            || tokio::time::Instant::now() >= deadline
                        {
                            break verdict;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        let detail = match verdict {
            Unreplicated::Nothing => None,
            Unreplicated::Transactions(n) => Some(format!(
                "holds {n} transaction{} no other member has yet",
                if n == 1 { "" } else { "s" }
            )),
            Unreplicated::Unknown(why) => Some(format!(
                "cannot be asked what it holds ({why}): it may hold acknowledged writes no other member has"
            )),
        };
        if let Some(detail) = detail {
            if !force {
                if let Some(member) = &held {
                    release_writes(replication, &node, member).await;
                }
                return Err(StoreError::from(MembershipError::Unreplicated {
                    name: instance,
                    detail,
                })
                .into());
            }
            tracing::warn!(repository = %name, %instance, %detail, "removing an instance by force");
        }
    }
    let removed = node
        .config()
        .member_named(&instance)
        .cloned()
        .ok_or_else(|| StoreError::from(MembershipError::UnknownInstance(instance.clone())))?;
    // Removed by force, it may have acknowledged writes no remaining member has (cut
    // off, or since its last report): the cluster waits for it to hand them over when
    // it is heard again (`hand_over`), unless it keeps its data apart
    // (undo-repl) or the operator says its data is gone.
    let forced = force
        .then(|| {
            node.view()
                .forced_removal(&instance, options.hand_over && !options.undo_repl)
        })
        .flatten();
    let change = forced.unwrap_or_else(|| Change::Remove {
        name: instance.clone(),
    });
    let config = match change_config(&node, change).await {
        Ok(config) => config,
        Err(failed) => {
            // Not written: it takes writes again. Written but not confirmed, the removal
            // may still take effect (enough members may hold it): it stays held until
            // the hold ends, or a write it took meanwhile would go with it (the
            // simulation's seed 162802).
            if let (Some(member), None) = (&held, &failed.made) {
                release_writes(replication, &node, member).await;
            }
            return Err(failed.error);
        }
    };
    // Tell it at once (it would also learn on its next pull); it may be gone already.
    let url = replication.http().repl_url(&removed, "removed");
    let told = replication
        .http()
        .put(&url)
        .query(&[(
            "undo-repl",
            if options.undo_repl { "true" } else { "false" },
        )])
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, repository.origin().0.to_string())
        // It asks us back before it believes it.
        .timeout(options.timeout)
        .send()
        .await;
    let told = match told {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!(
            "it answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default().trim()
        )),
        Err(e) => Err(crate::peer_http::describe(&e)),
    };
    let maintained = node.clone();
    blocking(move || {
        maintained.maintain();
        Ok(())
    })
    .await?;
    tracing::info!(repository = %name, %instance, told = told.is_ok(), "removed an instance from the cluster");
    match told {
        Err(why) if options.undo_repl => Err(ClusterError::Upstream(format!(
            "instance '{instance}' was removed from the cluster, but it could not be told within {:.0} s to keep its data as an ordinary repository (undo-repl): {why}; it takes no writes until deleted there",
            options.timeout.as_secs_f64()
        ))),
        _ => Ok(()),
    }
}

/// How much longer than the removal's `timeout` a member holds its writes: the
/// confirmations and the notice of its removal come after the wait.
const HOLD_MARGIN: Duration = Duration::from_secs(30);

/// Asks `member` to acknowledge no local write for `hold` and say what it holds then
/// (`repl/hold`); the reason it could not, otherwise.
async fn hold_writes(
    replication: &Replication,
    node: &Node,
    member: &Member,
    hold: Duration,
) -> Result<VersionVector, String> {
    let config = node.config();
    let url = replication.http().repl_url(member, "hold");
    let response = replication
        .http()
        .put(&url)
        .query(&[("seconds", hold.as_secs().to_string())])
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, node.repository().origin().0.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| crate::peer_http::describe(&e))?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(format!("it answered {status}: {}", text.trim()));
    }
    response
        .json::<quadmesh_repl::wire::RemovalHold>()
        .await
        .map(|hold| hold.version_vector)
        .map_err(|e| format!("its answer is not a version vector: {e}"))
}

/// Lets a member that was held for a removal that did not happen take writes again
/// (best effort: the hold also ends by itself).
async fn release_writes(replication: &Replication, node: &Node, member: &Member) {
    if let Err(why) = hold_writes(replication, node, member, Duration::ZERO).await {
        tracing::warn!(instance = %member.name, %why,
            "could not release a member's writes after a removal that did not happen; they resume when the hold ends");
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
