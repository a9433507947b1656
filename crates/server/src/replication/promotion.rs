//! Asking the members for consent (the rules are `quadmesh_repl::promotion`'s): votes
//! for promoting this instance when the controlling instance is gone for good, and
//! confirmations of a change the controlling instance makes, before and after it makes
//! it.
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
use crate::error::{blocking, ApiError, ApiResult};
use quadmesh_repl::{
    Change, ClusterConfig, CommitError, ConfigPosition, ConsentRefusal, Member, MembershipError,
    OriginId, ProposalError, Proposer, ProposerCommand, ProposerEvent, Question, VoteRequest,
    Withheld,
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

fn tally(answers: &[Answer]) -> (usize, String) {
    let granted = answers.iter().filter(|(_, a)| a.is_ok()).count();
    let refusals = answers
        .iter()
        .filter_map(|(name, a)| a.as_ref().err().map(|why| format!("{name}: {why}")))
        .collect::<Vec<_>>()
        .join("; ");
    (granted, refusals)
}

/// The newest epoch a refusal names: a candidate must ask for a later one.
fn epoch_named(answers: &[Answer]) -> Option<u64> {
    answers
        .iter()
        .filter_map(|(_, a)| match a {
            Err(Withheld::Refused(ConsentRefusal::StaleEpoch { known })) => Some(*known),
            Err(Withheld::Refused(ConsentRefusal::PromisedOther { epoch, .. })) => Some(*epoch),
            _ => None,
        })
        .max()
}

/// Asks every member of `base` but this one, at once: `PUT …/repl/{what}` with `query`;
/// returns once `enough` consented (the others' answers are not waited for) or all
/// answered.
async fn ask_members(
    node: &Arc<Node>,
    base: &ClusterConfig,
    what: &str,
    query: Vec<(&'static str, String)>,
    authorization: Option<&str>,
    enough: usize,
) -> Vec<Answer> {
    if enough == 0 {
        return Vec::new();
    }
    let local = node.repository().origin();
    let asks = base
        .members
        .iter()
        .filter(|m| m.origin != local)
        .map(|m| ask_member(node, base, m, what, &query, authorization));
    let mut pending: futures::stream::FuturesUnordered<_> = asks.collect();
    let mut answers = Vec::new();
    while let Some(answer) = futures::StreamExt::next(&mut pending).await {
        answers.push(answer);
        if answers.iter().filter(|(_, a)| a.is_ok()).count() >= enough {
            break;
        }
    }
    answers
}

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
/// force.
pub async fn change_by_engine(node: &Arc<Node>, change: Change) -> ApiResult<ClusterConfig> {
    let repository = node.repository().clone();
    let cluster = {
        let repository = repository.clone();
        blocking(move || Ok(repository.cluster())).await?
    };
    let name = repository.name().to_owned();
    if cluster.removed {
        // It may not know the configuration that removed it (a removed member's pulls
        // are refused), so it must not go by the one it holds.
        return Err(StoreError::Removed(name).into());
    }
    let base = cluster
        .config
        .ok_or_else(|| StoreError::from(MembershipError::NotInCluster(name)))?;
    let own_name = base
        .member(repository.origin())
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let started = tokio::time::Instant::now();
    let now = move || started.elapsed().as_millis() as u64;
    let (mut proposer, commands) =
        Proposer::change(repository.origin(), base.clone(), change, now());
    let mut queue: std::collections::VecDeque<ProposerCommand> = commands.into();
    let mut pending = futures::stream::FuturesUnordered::new();
    // The store's own error when a commit fails, answered as it is (its status code).
    let mut commit_error: Option<StoreError> = None;
    loop {
        while let Some(command) = queue.pop_front() {
            let event = match command {
                ProposerCommand::Ask { to, question } if to == repository.origin() => {
                    let Question::Confirm(wanted) = question else {
                        unreachable!("a change asks for no votes")
                    };
                    let answer = match confirm_here(node, wanted).await {
                        Ok(Consent { refusal: None, .. }) => Ok(()),
                        Ok(Consent {
                            refusal: Some(r), ..
                        }) => Err(Withheld::Refused(r)),
                        Err(e) => Err(Withheld::Failed(e.to_string())),
                    };
                    ProposerEvent::Answer {
                        from: to,
                        question,
                        answer,
                    }
                }
                ProposerCommand::Ask { to, question } => {
                    let (Question::Confirm(wanted), Some(member)) = (question, base.member(to))
                    else {
                        continue;
                    };
                    let query = vec![
                        ("epoch", wanted.epoch.to_string()),
                        ("version", wanted.version.to_string()),
                    ];
                    let ask = ask_member(node, &base, member, "confirm", &query, None);
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
                    return outcome.map_err(|e| match e {
                        ProposalError::Membership(e) => StoreError::from(e).into(),
                        ProposalError::Commit(e) => commit_error
                            .take()
                            .map_or_else(|| ApiError::Internal(e.to_string()), Into::into),
                        ProposalError::Superseded(refusal) => {
                            // It granted (or holds) a newer epoch: another member
                            // controls the cluster now.
                            StoreError::from(MembershipError::NotControlling(format!(
                                "another member: {own_name} {refusal}"
                            )))
                            .into()
                        }
                        ProposalError::NotAMember => ApiError::Conflict(
                            "this instance is no longer a member of its cluster".into(),
                        ),
                        e => ApiError::Unavailable(e.to_string()),
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
pub async fn confirm_here(node: &Arc<Node>, wanted: ConfigPosition) -> ApiResult<Consent> {
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

/// Requires a change quorum of `base`'s members (this instance included) to hold
/// configuration `wanted` and to have promised no newer epoch. Asked with
/// `wanted = base.position()` before a change (nothing is written when too few can
/// consent), and with the new configuration's position after it: only then is the
/// change in force.
pub async fn require_confirmations(
    node: &Arc<Node>,
    base: &ClusterConfig,
    wanted: ConfigPosition,
) -> ApiResult<()> {
    let own_name = base
        .member(node.repository().origin())
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let own = confirm_here(node, wanted).await?;
    if let Some(refusal @ (ConsentRefusal::Promised { .. } | ConsentRefusal::Superseded { .. })) =
        &own.refusal
    {
        // It granted (or holds) a newer epoch: another member controls the cluster now.
        return Err(StoreError::from(MembershipError::NotControlling(format!(
            "another member: {own_name} {refusal}"
        )))
        .into());
    }
    let mut answers: Vec<Answer> = vec![(
        format!("{own_name} (this instance)"),
        own.refusal.map_or(Ok(()), |r| Err(Withheld::Refused(r))),
    )];
    let needed = base.change_quorum();
    let enough = needed.saturating_sub(answers.iter().filter(|(_, a)| a.is_ok()).count());
    answers.extend(
        ask_members(
            node,
            base,
            "confirm",
            vec![
                ("epoch", wanted.epoch.to_string()),
                ("version", wanted.version.to_string()),
            ],
            None,
            enough,
        )
        .await,
    );
    let (confirmed, refusals) = tally(&answers);
    if confirmed >= needed {
        return Ok(());
    }
    let when = if wanted == base.position() {
        "cannot be made now: nothing was changed"
    } else {
        "was made here but is not confirmed: it takes effect only if enough members receive it before another member is promoted (see repl status)"
    };
    Err(ApiError::Unavailable(format!(
        "the configuration change {when}; it needs {needed} of the {} members of {} to confirm it, {confirmed} did ({refusals})",
        base.members.len(),
        base.position()
    )))
}

/// Promotes this instance to controlling instance of a new epoch, if a majority of the
/// members of its configuration grant it (`authorization`: the operator's credentials,
/// which every member checks; the cluster token alone promotes nobody). Returns the new
/// configuration.
pub async fn promote(node: &Arc<Node>, authorization: &str) -> ApiResult<ClusterConfig> {
    let repository = node.repository().clone();
    let local = repository.origin();
    let cluster = {
        let repository = repository.clone();
        blocking(move || Ok(repository.cluster())).await?
    };
    if cluster.removed {
        return Err(StoreError::Removed(repository.name().to_owned()).into());
    }
    let base = cluster.config.ok_or_else(|| {
        StoreError::from(MembershipError::NotInCluster(repository.name().to_owned()))
    })?;
    let own = base.member(local).cloned().ok_or_else(|| {
        ApiError::Conflict("this instance is no longer a member of its cluster".into())
    })?;
    let promised = cluster.promised.map(|p| p.epoch).unwrap_or_default();
    if own.controlling && promised <= base.epoch {
        return Err(ApiError::Conflict(format!(
            "'{}' is the controlling instance already",
            own.name
        )));
    }
    let mut epoch = base.epoch.max(promised) + 1;
    // A member that knows a newer epoch (a failed attempt elsewhere) says so: ask again
    // above it, a few times at most.
    let mut attempts = 0;
    let (request, granted) = loop {
        attempts += 1;
        let request = VoteRequest {
            epoch,
            candidate: local,
            position: base.position(),
        };
        let own_vote = {
            let repository = repository.clone();
            blocking(move || Ok(repository.grant_vote(&request)?)).await?
        };
        let mut answers: Vec<Answer> = vec![(
            format!("{} (this instance)", own.name),
            own_vote.map(|_| ()).map_err(Withheld::Refused),
        )];
        let needed = base.promotion_quorum();
        let enough = needed.saturating_sub(answers.iter().filter(|(_, a)| a.is_ok()).count());
        answers.extend(
            ask_members(
                node,
                &base,
                "vote",
                vec![
                    ("epoch", request.epoch.to_string()),
                    ("candidate", local.0.to_string()),
                    ("configEpoch", base.epoch.to_string()),
                    ("configVersion", base.version.to_string()),
                ],
                Some(authorization),
                enough,
            )
            .await,
        );
        let (granted, refusals) = tally(&answers);
        if granted >= needed {
            break (request, granted);
        }
        tracing::warn!(repository = %base.repository, epoch, granted, needed, %refusals, "a promotion was not granted");
        match epoch_named(&answers) {
            Some(known) if known >= epoch && attempts < 3 => epoch = known + 1,
            _ => {
                return Err(ApiError::Unavailable(format!(
                    "the promotion of '{}' to epoch {epoch} needs {needed} of the {} members of {} to grant it, {granted} did ({refusals}); nothing was changed",
                    own.name,
                    base.members.len(),
                    base.position()
                )))
            }
        }
    };
    let (name, from) = (own.name.clone(), base.position());
    let config = blocking(move || {
        let config = repository.commit_config(|current, _| {
            let current =
                current.ok_or_else(|| MembershipError::NotInCluster(repository.name().into()))?;
            if current.position() != from {
                return Err(MembershipError::ChangedMeanwhile(format!(
                    "{from} became {} during the promotion",
                    current.position()
                ))
                .into());
            }
            Ok(current.with_promoted(&name, request.epoch)?)
        })?;
        Ok(config)
    })
    .await?;
    let maintained = node.clone();
    blocking(move || {
        maintained.maintain();
        Ok(())
    })
    .await?;
    tracing::warn!(target: "quadmesh::audit", repository = %config.repository, instance = %own.name,
        epoch = config.epoch, version = config.version, granted, "promoted to controlling instance");
    Ok(config)
}

/// Parses a vote request from its query parameters.
pub fn vote_request(
    epoch: Option<u64>,
    candidate: Option<u64>,
    config_epoch: Option<u64>,
    config_version: Option<u64>,
) -> ApiResult<VoteRequest> {
    let missing = |name: &str| ApiError::BadRequest(format!("parameter '{name}' is required"));
    Ok(VoteRequest {
        epoch: epoch.ok_or_else(|| missing("epoch"))?,
        candidate: OriginId(candidate.ok_or_else(|| missing("candidate"))?),
        position: ConfigPosition {
            epoch: config_epoch.ok_or_else(|| missing("configEpoch"))?,
            version: config_version.ok_or_else(|| missing("configVersion"))?,
        },
    })
}
