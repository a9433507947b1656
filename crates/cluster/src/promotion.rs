//! Asking the members for consent (the rules are `quadmesh_repl::promotion`'s, the
//! sequencing `quadmesh_repl::membership_engine`'s): votes for promoting this instance
//! when the controlling instance is gone for good, and confirmations of a change the
//! controlling instance makes, before and after it makes it. Both run the engine's
//! `Proposer` ([`run_proposer`]); this module only carries out its commands.
//!
//! Rules it keeps:
//! - this instance's own vote or confirmation is decided by its repository like any
//!   other member's (so a controlling instance that granted a newer epoch stops
//!   changing the configuration at once);
//! - a promotion is committed only with a strict majority of grants of the
//!   configuration it started from, and only if that configuration is still the one
//!   held when it is committed;
//! - a member that does not answer within [`ASK_WITHIN`] counts as refusing.

use super::{Node, ORIGIN_HEADER, TOKEN_HEADER};
use crate::error::{blocking, ClusterError, ClusterResult};
use quadmesh_repl::{
    Change, ClusterConfig, CommitError, ConfigPosition, ConsentRefusal, Member, MembershipError,
    OriginId, Promise, ProposalError, Proposer, ProposerCommand, ProposerEvent, Question,
    VoteRequest, Withheld,
};
use quadmesh_store::StoreError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a member has to answer a vote or a confirmation.
pub const ASK_WITHIN: Duration = Duration::from_secs(6);
/// How long a member waits for a configuration to arrive before it answers `NotYet`.
pub const AWAIT_CONFIG: Duration = Duration::from_secs(3);

/// A member's answer to `PUT …/repl/vote` or `PUT …/repl/confirm` (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    pub granted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<ConsentRefusal>,
}

impl Consent {
    pub fn of(result: Result<(), ConsentRefusal>) -> Self {
        Consent {
            granted: result.is_ok(),
            refusal: result.err(),
        }
    }
}

/// One member's part in a count: its name and why it did not consent, if it did not.
type Answer = (String, Result<(), Withheld>);

/// Asks member `m` of `base`: `PUT …/repl/{what}` with `query`; its name and answer.
fn ask_member(
    node: &Arc<Node>,
    base: &ClusterConfig,
    m: &Member,
    what: &str,
    query: &[(&'static str, String)],
    authorization: Option<&str>,
) -> impl std::future::Future<Output = Answer> {
    let local = node.repository().origin();
    let url = node.http().repl_url(m, what);
    let mut request = node
        .http()
        .put(&url)
        .query(query)
        .header(TOKEN_HEADER, &base.token)
        .header(ORIGIN_HEADER, local.0.to_string())
        .timeout(ASK_WITHIN);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let name = m.name.clone();
    async move {
        let answer =
            match request.send().await {
                Err(e) => Err(Withheld::Failed(format!("no answer ({})", e.without_url()))),
                Ok(response) if !response.status().is_success() => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    Err(Withheld::Failed(format!("{status}: {}", text.trim())))
                }
                Ok(response) => match response.json::<Consent>().await {
                    Ok(Consent { granted: true, .. }) => Ok(()),
                    Ok(Consent { refusal, .. }) => Err(refusal
                        .map_or_else(|| Withheld::Failed("refused".into()), Withheld::Refused)),
                    Err(e) => Err(Withheld::Failed(format!(
                        "unreadable answer ({})",
                        e.without_url()
                    ))),
                },
            };
        (name, answer)
    }
}

/// Makes `change` of the configuration this (controlling) instance holds, sequenced by
/// the engine's [`Proposer`] (`quadmesh_repl::membership_engine`): consent of the
/// configuration held, the commit, then the confirmations of the new one. This
/// function only carries out its commands: it asks this instance through its
/// repository and the others over HTTP (`repl/confirm`), commits through
/// `commit_config`, and wakes the engine at its deadline. Returns the configuration in
/// force; otherwise the error, with the configuration committed if the change was made
/// but not confirmed (a caller that must undo what it made needs to know which).
pub async fn change_by_engine(
    node: &Arc<Node>,
    change: Change,
) -> Result<ClusterConfig, ChangeFailed> {
    let mut made = None;
    change_by_engine_inner(node, change, &mut made)
        .await
        .map_err(|error| ChangeFailed { error, made })
}

/// A configuration change that did not take effect.
#[derive(Debug)]
pub struct ChangeFailed {
    /// Why, as answered to the client.
    pub error: ClusterError,
    /// The configuration committed, if the change was made (not confirmed: it takes
    /// effect only if enough members receive it before another member is promoted).
    pub made: Option<ClusterConfig>,
}

impl std::fmt::Display for ChangeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<ChangeFailed> for ClusterError {
    fn from(failed: ChangeFailed) -> Self {
        failed.error
    }
}

async fn change_by_engine_inner(
    node: &Arc<Node>,
    change: Change,
    made: &mut Option<ClusterConfig>,
) -> ClusterResult<ClusterConfig> {
    let _one_at_a_time = node.proposing.lock().await;
    let (base, _) = held_config(node).await?;
    let started = tokio::time::Instant::now();
    // The engine refuses to hand the role to a member this instance knows expired.
    let expired = node.view().expired_members();
    let (proposer, commands) =
        Proposer::change_knowing_expired(node.repository().origin(), base, change, &expired, 0);
    run_proposer(node, started, proposer, commands, None, made).await
}

/// The configuration this instance holds and the epoch it promised, unless it was
/// removed (it may not know the configuration that removed it: a removed member's
/// pulls are refused, so it must not go by the one it holds) or is in no cluster.
async fn held_config(node: &Arc<Node>) -> ClusterResult<(ClusterConfig, Option<Promise>)> {
    let repository = node.repository().clone();
    let cluster = {
        let repository = repository.clone();
        blocking(move || Ok(repository.cluster())).await?
    };
    let name = repository.name().to_owned();
    if cluster.removed {
        return Err(StoreError::Removed(name).into());
    }
    let base = cluster
        .config
        .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name)))?;
    Ok((base, cluster.promised))
}

/// Carries out a [`Proposer`]'s commands until it reports: asks this instance through
/// its repository (`confirm_change`, `grant_vote`) and the other members over HTTP
/// (`repl/confirm`, `repl/vote` with the operator's `authorization`), commits through
/// `commit_config` against the position the engine names, and wakes the engine at its
/// deadline. Its time is milliseconds since `started`. Sets `made` to what it committed
/// (in force or not).
async fn run_proposer(
    node: &Arc<Node>,
    started: tokio::time::Instant,
    mut proposer: Proposer,
    commands: Vec<ProposerCommand>,
    authorization: Option<&str>,
    made: &mut Option<ClusterConfig>,
) -> ClusterResult<ClusterConfig> {
    let repository = node.repository().clone();
    let base = proposer.base().clone();
    let own_name = base
        .member(repository.origin())
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let now = move || started.elapsed().as_millis() as u64;
    let mut queue: std::collections::VecDeque<ProposerCommand> = commands.into();
    let mut pending = futures::stream::FuturesUnordered::new();
    // The store's own error when a commit fails, answered as it is (its status code).
    let mut commit_error: Option<StoreError> = None;
    loop {
        while let Some(command) = queue.pop_front() {
            let event = match command {
                ProposerCommand::Ask { to, question } if to == repository.origin() => {
                    let answer = match question {
                        Question::Confirm(wanted) => match confirm_here(node, wanted).await {
                            Ok(Consent { refusal: None, .. }) => Ok(()),
                            Ok(Consent {
                                refusal: Some(r), ..
                            }) => Err(Withheld::Refused(r)),
                            Err(e) => Err(Withheld::Failed(e.to_string())),
                        },
                        Question::Vote(request) => {
                            let repository = repository.clone();
                            match blocking(move || Ok(repository.grant_vote(&request)?)).await {
                                Ok(Ok(_)) => Ok(()),
                                Ok(Err(refusal)) => Err(Withheld::Refused(refusal)),
                                Err(e) => Err(Withheld::Failed(e.to_string())),
                            }
                        }
                    };
                    ProposerEvent::Answer {
                        from: to,
                        question,
                        answer,
                    }
                }
                ProposerCommand::Ask { to, question } => {
                    let Some(member) = base.member(to) else {
                        continue;
                    };
                    let (what, query) = match question {
                        Question::Confirm(wanted) => (
                            "confirm",
                            vec![
                                ("epoch", wanted.epoch.to_string()),
                                ("version", wanted.version.to_string()),
                            ],
                        ),
                        Question::Vote(request) => (
                            "vote",
                            vec![
                                ("epoch", request.epoch.to_string()),
                                ("candidate", request.candidate.0.to_string()),
                                ("configEpoch", request.position.epoch.to_string()),
                                ("configVersion", request.position.version.to_string()),
                            ],
                        ),
                    };
                    let ask = ask_member(node, &base, member, what, &query, authorization);
                    pending.push(async move { (to, question, ask.await.1) });
                    continue;
                }
                ProposerCommand::Commit { base: at, change } => {
                    let (repository, maintained) = (repository.clone(), node.clone());
                    let committed = blocking(move || {
                        let config = repository.commit_config(|current, time| {
                            let current = current.ok_or_else(|| {
                                MembershipError::NotInCluster(repository.name().to_owned())
                            })?;
                            if current.position() != at {
                                return Err(MembershipError::ChangedMeanwhile(format!(
                                    "{at} became {}",
                                    current.position()
                                ))
                                .into());
                            }
                            Ok(change.apply(current, time)?)
                        });
                        match config {
                            Ok(config) => {
                                maintained.maintain();
                                Ok(Ok(config))
                            }
                            Err(e) => Ok(Err(e)),
                        }
                    })
                    .await?;
                    match committed {
                        Ok(config) => ProposerEvent::Committed(config),
                        Err(StoreError::Membership(e)) => ProposerEvent::CommitFailed(e.into()),
                        Err(e) => {
                            let event = ProposerEvent::CommitFailed(CommitError::NotWritable(
                                e.to_string(),
                            ));
                            commit_error = Some(e);
                            event
                        }
                    }
                }
                ProposerCommand::Report(outcome) => {
                    *made = proposer.made().cloned();
                    return outcome.map_err(|e| match e {
                        ProposalError::Membership(e) => StoreError::from(e).into(),
                        ProposalError::Commit(e) => commit_error
                            .take()
                            .map_or_else(|| ClusterError::Internal(e.to_string()), Into::into),
                        ProposalError::Superseded(refusal) => {
                            // It granted (or holds) a newer epoch: another member
                            // controls the cluster now.
                            StoreError::from(MembershipError::NotControlling(format!(
                                "another member: {own_name} {refusal}"
                            )))
                            .into()
                        }
                        ProposalError::NotAMember => ClusterError::Conflict(
                            "this instance is no longer a member of its cluster".into(),
                        ),
                        e @ (ProposalError::AlreadyControlling(_)
                        | ProposalError::TargetExpired(_)) => ClusterError::Conflict(e.to_string()),
                        e => ClusterError::Unavailable(e.to_string()),
                    });
                }
            };
            queue.extend(proposer.handle(now(), event));
        }
        let deadline = proposer
            .deadline()
            .map(|d| started + Duration::from_millis(d));
        tokio::select! {
            Some((from, question, answer)) = futures::StreamExt::next(&mut pending), if !pending.is_empty() => {
                queue.extend(proposer.handle(now(), ProposerEvent::Answer { from, question, answer }));
            }
            _ = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                queue.extend(proposer.handle(now(), ProposerEvent::Tick));
            }
        }
    }
}

/// This instance's confirmation of `wanted`, waiting up to [`AWAIT_CONFIG`] for it to
/// arrive (a member asked just after the change was made may not hold it yet).
pub async fn confirm_here(node: &Arc<Node>, wanted: ConfigPosition) -> ClusterResult<Consent> {
    let deadline = tokio::time::Instant::now() + AWAIT_CONFIG;
    let mut appended = node.repository().subscribe();
    loop {
        let repository = node.repository().clone();
        let decided = blocking(move || Ok(repository.confirm_change(wanted)?)).await?;
        match decided {
            Err(ConsentRefusal::NotYet { .. }) if tokio::time::Instant::now() < deadline => {
                // A configuration arrives as a log entry.
                let _ = tokio::time::timeout_at(deadline, appended.changed()).await;
            }
            decided => return Ok(Consent::of(decided)),
        }
    }
}

/// Promotes this instance to controlling instance of a new epoch, if a majority of the
/// members of its configuration grant it (`authorization`: the operator's credentials,
/// which every member checks; the cluster token alone promotes nobody). Returns the new
/// configuration.
pub async fn promote(node: &Arc<Node>, authorization: &str) -> ClusterResult<ClusterConfig> {
    let _one_at_a_time = node.proposing.lock().await;
    let (base, promised) = held_config(node).await?;
    let started = tokio::time::Instant::now();
    let (proposer, commands) = Proposer::promote(node.repository().origin(), base, promised, 0);
    let config = run_proposer(
        node,
        started,
        proposer,
        commands,
        Some(authorization),
        &mut None,
    )
    .await?;
    let name = config
        .controlling()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    tracing::warn!(target: "quadmesh::audit", repository = %config.repository, instance = %name,
        epoch = config.epoch, version = config.version, "promoted to controlling instance");
    Ok(config)
}

/// Parses a vote request from its query parameters.
pub fn vote_request(
    epoch: Option<u64>,
    candidate: Option<u64>,
    config_epoch: Option<u64>,
    config_version: Option<u64>,
) -> ClusterResult<VoteRequest> {
    let missing = |name: &str| ClusterError::Invalid(format!("parameter '{name}' is required"));
    Ok(VoteRequest {
        epoch: epoch.ok_or_else(|| missing("epoch"))?,
        candidate: OriginId(candidate.ok_or_else(|| missing("candidate"))?),
        position: ConfigPosition {
            epoch: config_epoch.ok_or_else(|| missing("configEpoch"))?,
            version: config_version.ok_or_else(|| missing("configVersion"))?,
        },
    })
}
