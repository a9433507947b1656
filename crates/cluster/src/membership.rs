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
//! - the sequences of a grow (add, hand the snapshot over, undo), of a stop (tell the
//!   member, undo unless forced) and of a removal (hold the member's writes, wait for
//!   the others to hold what it declared, change, release) are decided by
//!   `quadmesh_repl::GrowSequence`, `StopSequence` and `RemovalSequence`, which the
//!   simulation runs too: this module only carries their commands out (HTTP, the
//!   snapshot, the proposer) and words the answer;
//! - a member that may hold transactions no other member has is removed only by force,
//!   and then waited for to hand them over when it is heard again (`hand_over`), unless
//!   its data is known to be gone (`hand-over=false`).

use crate::error::{blocking, ClusterError, ClusterResult};
use crate::promotion::{change_by_engine, ChangeFailed};
use crate::removal::RemovalRefused;
use crate::{snapshot_transfer, Node, Replication, ORIGIN_HEADER, TOKEN_HEADER};
use quadmesh_repl::{
    Change, ClusterConfig, CommitDefaults, ConfigPosition, GrowCommand, GrowEnd, GrowEvent,
    GrowSequence, HlcTime, Member, MembershipError, OriginId, RemovalCommand, RemovalEvent,
    RemovalRequest, RemovalSequence, StopCommand, StopEnd, StopEvent, StopSequence, VersionVector,
};
use quadmesh_store::{Repository, StoreError};
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

/// Whether a change reported `outcome` was made (committed), in force or not.
fn change_made(outcome: &Result<ClusterConfig, ChangeFailed>) -> bool {
    outcome.as_ref().map_or_else(|f| f.made.is_some(), |_| true)
}

/// Sleeps until a sequence's `deadline` (this machine's clock, ms), at most a second
/// (it is looked at again then), at least a millisecond.
async fn sleep_until(deadline: Option<u64>) {
    let wait = deadline.map_or(0, |d| d.saturating_sub(crate::now_ms()));
    tokio::time::sleep(Duration::from_millis(wait.clamp(1, 1_000))).await;
}

/// Stops replication to and from `instance` (at the controlling instance), in the
/// sequence of `quadmesh_repl::StopSequence`: it stays a member, takes no transactions
/// from the others and gives them none until started again, when it catches up both
/// ways. The instance is given `timeout` to learn it; if it does not, the stop is
/// undone (503) unless `force`, which keeps it: it stops as soon as it hears of it.
pub async fn stop(
    replication: &Replication,
    name: &str,
    instance: &str,
    force: bool,
    timeout: Duration,
) -> ClusterResult<()> {
    let node = controlling_node(replication, name)?;
    let member = node
        .config()
        .member_named(instance)
        .cloned()
        .ok_or_else(|| StoreError::from(MembershipError::UnknownInstance(instance.into())))?;
    let (mut sequence, mut commands) =
        StopSequence::start(instance, force, timeout.as_millis() as u64);
    let mut failure = None;
    loop {
        let mut events = Vec::new();
        for command in std::mem::take(&mut commands) {
            match command {
                StopCommand::Propose(change) => {
                    let outcome = change_config(&node, change).await;
                    events.push(StopEvent::Reported {
                        in_force: outcome.as_ref().ok().map(|c| c.position()),
                    });
                    if let Err(failed) = outcome {
                        failure.get_or_insert(failed.error);
                    }
                }
                StopCommand::AskMember { within_ms } => {
                    let within = Duration::from_millis(within_ms);
                    let answer =
                        crate::removal::membership_of(&node, &member, member.origin, within)
                            .await
                            .map(|m| {
                                let (epoch, version) = m.position();
                                ConfigPosition { epoch, version }
                            })
                            .map_err(|e| match e {
                                RemovalRefused::CannotConfirm(why) => why,
                                other => other.to_string(),
                            });
                    events.push(StopEvent::MemberHolds(answer));
                }
                StopCommand::Finished(end) => {
                    return stop_finished(name, instance, end, failure, timeout)
                }
            }
        }
        if events.is_empty() {
            sleep_until(sequence.deadline()).await;
            events.push(StopEvent::Tick);
        }
        for event in events {
            commands.extend(sequence.handle(crate::now_ms(), event));
        }
    }
}

/// The answer to a stop of `instance` that ended `end`.
fn stop_finished(
    name: &str,
    instance: &str,
    end: StopEnd,
    failure: Option<ClusterError>,
    timeout: Duration,
) -> ClusterResult<()> {
    match end {
        StopEnd::Stopped => {
            tracing::info!(repository = %name, %instance, "stopped replication to and from an instance");
            Ok(())
        }
        StopEnd::KeptUntold(why) => {
            tracing::warn!(repository = %name, %instance, %why, "stopped an instance that could not be told (force): it stops once it hears of it");
            Ok(())
        }
        StopEnd::NotMade => Err(failure
            .unwrap_or_else(|| ClusterError::Internal("a stop failed, saying nothing".into()))),
        StopEnd::Undone { why, undone } => Err(ClusterError::Unavailable(format!(
            "instance '{instance}' could not be told within {:.0} s that it is stopped ({why}); {}; force=true stops it anyway (it stops once it hears of it)",
            timeout.as_secs_f64(),
            match (undone, failure) {
                (true, _) => "the stop was undone".to_owned(),
                (false, Some(e)) => format!("undoing the stop failed too ({e}): start it with repl/start"),
                (false, None) => "undoing the stop failed too: start it with repl/start".to_owned(),
            }
        ))),
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
/// durability no configuration of this size can meet is refused (409, by the
/// configuration's own rule: `ClusterConfig::with_settings`).
pub async fn set_commit_defaults(
    replication: &Replication,
    name: &str,
    settings: CommitDefaults,
) -> ClusterResult<()> {
    let node = controlling_node(replication, name)?;
    change_config(&node, Change::Settings(settings)).await?;
    Ok(())
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
/// instance, in the sequence of `quadmesh_repl::GrowSequence`: adds the member, hands a
/// snapshot to the new server once that is in force (it then pulls from the snapshot's
/// cut), and takes the member out again when either fails.
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
    let node = controlling_node(replication, name)?;
    let member = Member {
        name: instance.clone(),
        origin: OriginId(rand::random::<u64>() >> 1),
        address,
        // The new instance's repository on its server: any name (several instances of
        // one cluster may share a server, each under its own name).
        repository: target_name.unwrap_or_else(|| name.to_owned()),
        controlling: false,
        added_at: HlcTime::ZERO,
    };
    let (mut sequence, mut commands) =
        GrowSequence::start(&node.config(), member).map_err(StoreError::from)?;
    // The first thing that went wrong: what the answer says.
    let mut failure: Option<ClusterError> = None;
    loop {
        let mut events = Vec::new();
        for command in std::mem::take(&mut commands) {
            match command {
                GrowCommand::Propose(change) => {
                    let undoing = matches!(change, Change::UndoGrow { .. });
                    let outcome = change_config(&node, change).await;
                    events.push(GrowEvent::Reported {
                        in_force: outcome.is_ok(),
                        made: change_made(&outcome),
                    });
                    if let Err(ChangeFailed { error, .. }) = outcome {
                        failure = Some(match failure.take() {
                            Some(first) if undoing => {
                                tracing::error!(repository = %name, %instance, %error, "could not undo a failed grow");
                                ClusterError::Unavailable(format!(
                                    "{first}; and the new member '{instance}' could not be taken out again ({error}): remove it (repl remove) once the cluster can confirm the change"
                                ))
                            }
                            Some(first) => first,
                            None => error,
                        });
                    }
                }
                GrowCommand::HandOverSnapshot => {
                    let handed =
                        hand_over_snapshot(replication, &node, sequence.member(), &user, &password)
                            .await;
                    events.push(GrowEvent::HandedOver {
                        taken: handed.is_ok(),
                    });
                    if let Err(e) = handed {
                        failure.get_or_insert(e);
                    }
                }
                GrowCommand::Finished(end) => {
                    return grow_finished(&node, sequence.member(), end, failure).await;
                }
            }
        }
        for event in events {
            commands.extend(sequence.handle(event));
        }
    }
}

/// The answer to a grow of `member` that ended `end` (`failure`: the first thing that
/// went wrong).
async fn grow_finished(
    node: &Arc<Node>,
    member: &Member,
    end: GrowEnd,
    failure: Option<ClusterError>,
) -> ClusterResult<()> {
    let failure = || {
        failure.unwrap_or_else(|| ClusterError::Internal("a grow failed, saying nothing".into()))
    };
    match end {
        GrowEnd::Grown => {
            let maintained = node.clone();
            blocking(move || {
                maintained.maintain();
                Ok(())
            })
            .await?;
            tracing::info!(repository = %node.repository().name(), instance = %member.name, address = %member.address, instance_repository = %member.repository, "grew the cluster");
            Ok(())
        }
        GrowEnd::Undone => Err(match failure() {
            ClusterError::Unavailable(why) => ClusterError::Unavailable(format!(
                "{why}; the new member is taken out again and got nothing"
            )),
            other => other,
        }),
        GrowEnd::NotMade | GrowEnd::UndoFailed => Err(failure()),
    }
}

/// Takes a snapshot of `node`'s repository and hands it to `member`'s server (packed as
/// it is sent; the scratch directory goes when the hand-over ends).
async fn hand_over_snapshot(
    replication: &Replication,
    node: &Arc<Node>,
    member: &Member,
    user: &str,
    password: &str,
) -> ClusterResult<()> {
    let scratch = replication.catalog().scratch_dir()?;
    let repo = node.repository().clone();
    let dir = scratch.clone();
    let taken = blocking(move || {
        let started = std::time::Instant::now();
        let snapshot_state = repo.snapshot(&dir.join("store"))?;
        tracing::info!(
            millis = started.elapsed().as_millis() as u64,
            "snapshot taken for a new instance"
        );
        Ok(snapshot_state)
    })
    .await;
    let pushed = match taken {
        Ok(snapshot_state) => {
            let body = snapshot_transfer::pack_stream(
                scratch.clone(),
                scratch.join("store"),
                snapshot_state,
            );
            push_snapshot(
                replication,
                &member.address,
                &member.repository,
                &member.name,
                member.origin,
                user,
                password,
                reqwest::Body::wrap_stream(body),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    pushed
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
/// instance), in the sequence of `quadmesh_repl::RemovalSequence`. Refused when it may
/// hold transactions no remaining member has — it declares some the others do not hold
/// within `timeout`, or it cannot be asked, so nobody can tell — unless `force`:
/// removing it then discards them (or waits for it to hand them over).
pub async fn remove(
    replication: &Replication,
    name: &str,
    instance: &str,
    options: RemoveOptions,
) -> ClusterResult<()> {
    let node = controlling_node(replication, name)?;
    let repository = node.repository().clone();
    let request = RemovalRequest {
        force: options.force,
        timeout_ms: options.timeout.as_millis() as u64,
        // Removed by force, it may have acknowledged writes no remaining member has
        // (cut off, or since its last report): the cluster waits for it to hand them
        // over when it is heard again (`hand_over`), unless it keeps its data apart
        // (undo-repl) or the operator says its data is gone.
        hand_over: options.hand_over && !options.undo_repl,
    };
    let local = local_version_vector(&repository).await?;
    let (mut sequence, mut commands) =
        RemovalSequence::start(instance, request, &node.view(), &local, crate::now_ms())
            .map_err(StoreError::from)?;
    let mut changed = None;
    loop {
        let mut events = Vec::new();
        for command in std::mem::take(&mut commands) {
            match command {
                RemovalCommand::Hold { hold_ms: 0 } => {
                    release_writes(replication, &node, sequence.member()).await
                }
                RemovalCommand::Hold { hold_ms } => {
                    let hold = Duration::from_millis(hold_ms);
                    let answer = hold_writes(replication, &node, sequence.member(), hold).await;
                    events.push(RemovalEvent::Held(answer));
                }
                RemovalCommand::ForcedDespite(detail) => {
                    tracing::warn!(repository = %name, %instance, %detail, "removing an instance by force");
                }
                RemovalCommand::Propose(change) => {
                    let outcome = change_config(&node, change).await;
                    events.push(RemovalEvent::Reported {
                        in_force: outcome.is_ok(),
                        made: change_made(&outcome),
                    });
                    changed = Some(outcome);
                }
                RemovalCommand::Refuse(why) => return Err(StoreError::from(why).into()),
                RemovalCommand::Finished => {
                    let config = match changed {
                        Some(Ok(config)) => config,
                        Some(Err(failed)) => return Err(failed.error),
                        None => {
                            return Err(ClusterError::Internal(
                                "a removal finished without a change".into(),
                            ))
                        }
                    };
                    let removed = sequence.member().clone();
                    return removed_told(replication, &node, &removed, &config, options).await;
                }
            }
        }
        if events.is_empty() {
            // Waiting: the others catch up with what the member declared.
            sleep_until(sequence.deadline()).await;
            events.push(RemovalEvent::Tick);
        }
        let local = local_version_vector(&repository).await?;
        for event in events {
            let view = node.view();
            commands.extend(sequence.handle(crate::now_ms(), event, &view, &local));
        }
    }
}

/// What this instance's repository holds.
async fn local_version_vector(repository: &Arc<Repository>) -> ClusterResult<VersionVector> {
    let repository = repository.clone();
    blocking(move || Ok(repository.version_vector())).await
}

/// After the change removing `removed` (now `config`): tells it at once (it would also
/// learn on its next pull; it may be gone already), and with `undo-repl` that it keeps
/// its data as an ordinary repository, which must reach it.
async fn removed_told(
    replication: &Replication,
    node: &Arc<Node>,
    removed: &Member,
    config: &ClusterConfig,
    options: RemoveOptions,
) -> ClusterResult<()> {
    let url = replication.http().repl_url(removed, "removed");
    let told = replication
        .http()
        .put(&url)
        .query(&[(
            "undo-repl",
            if options.undo_repl { "true" } else { "false" },
        )])
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, node.repository().origin().0.to_string())
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
    let instance = &removed.name;
    tracing::info!(repository = %node.repository().name(), %instance, told = told.is_ok(), "removed an instance from the cluster");
    match told {
        Err(why) if options.undo_repl => Err(ClusterError::Upstream(format!(
            "instance '{instance}' was removed from the cluster, but it could not be told within {:.0} s to keep its data as an ordinary repository (undo-repl): {why}; it takes no writes until deleted there",
            options.timeout.as_secs_f64()
        ))),
        _ => Ok(()),
    }
}

/// Asks `member` to acknowledge no local write for `hold` and say what it holds then
/// (`repl/hold`; whole seconds: a hold shorter than one is a release); the reason it
/// could not, otherwise.
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
        .timeout(Duration::from_millis(quadmesh_repl::HOLD_ANSWER_WITHIN_MS))
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
