//! Whether this instance really was removed from its cluster.
//!
//! The cluster token proves only that a caller belongs to the cluster; every member
//! holds it. Being told "you were removed" (`PUT …/repl/removed`) would otherwise let
//! any member stop another from taking writes. So the claim is checked, not trusted:
//! it must come from the controlling member named in our own configuration, and that
//! member, asked back at the address in our configuration (not the caller's), must say
//! that its configuration lists us as removed. Only the controlling instance changes
//! the configuration, and only at an operator's request, so a member holding the token
//! cannot make this true.

use super::{Node, ORIGIN_HEADER, TOKEN_HEADER};
use quadmesh_repl::{ClusterConfig, Member, MemberWord, OriginId, RemovalWords, VersionVector};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long the controlling instance is given to confirm a removal.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// What the controlling instance's configuration says of one member
/// (`GET …/repl/membership?origin=N`, with the cluster token).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub cluster_id: String,
    pub version: u64,
    pub removed: bool,
    /// The answering configuration's epoch (absent from older releases: 0).
    #[serde(default)]
    pub epoch: u64,
    /// Whether that member is stopped (`repl/stop`) in it.
    #[serde(default)]
    pub stopped: bool,
    /// How many of that member's own transactions the answering instance holds
    /// (absent from older releases: 0), so that an expired member knows when what it
    /// acknowledged was handed over.
    #[serde(default)]
    pub held: u64,
    /// Whether that member was removed before it could hand over what only it held,
    /// and is still to (the configuration's `handing_over`).
    #[serde(default)]
    pub handing_over: bool,
    /// The answering instance's configuration and what it held when it answered, for a
    /// stopped member, which pulls from nobody and takes newer configurations told this
    /// way (`quadmesh_repl::told_config_in_order`). Absent from older releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ClusterConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_vector: Option<VersionVector>,
}

impl Membership {
    /// What `config` says of member `origin`, at an instance that holds `held` of its
    /// transactions.
    pub fn of(config: &ClusterConfig, origin: OriginId, held: u64) -> Self {
        Membership {
            cluster_id: config.cluster_id.clone(),
            version: config.version,
            removed: config.removed.contains(&origin),
            epoch: config.epoch,
            stopped: config.is_stopped(origin),
            held,
            handing_over: config.is_handing_over(origin),
            config: None,
            version_vector: None,
        }
    }

    /// The answering configuration's position: epoch, then version.
    pub fn position(&self) -> (u64, u64) {
        (self.epoch, self.version)
    }
}

/// Why a "you were removed" call was not believed.
#[derive(Debug, thiserror::Error)]
pub enum RemovalRefused {
    #[error("only the controlling instance of the cluster may say that this instance was removed")]
    NotFromControlling,
    #[error("the controlling instance does not list this instance as removed")]
    NotRemoved,
    #[error("cannot confirm the removal with the controlling instance: {0}")]
    CannotConfirm(String),
    /// The server asked holds no copy of the repository at all (`not_replicated`).
    #[error("the server asked holds no copy of the repository")]
    NoCopyThere,
}

impl From<quadmesh_repl::RemovalDoubt> for RemovalRefused {
    fn from(doubt: quadmesh_repl::RemovalDoubt) -> Self {
        use quadmesh_repl::RemovalDoubt as D;
        match doubt {
            D::NoControlling | D::NotFromControlling => RemovalRefused::NotFromControlling,
            D::NotRemoved => RemovalRefused::NotRemoved,
            D::CannotConfirm(why) => RemovalRefused::CannotConfirm(why),
        }
    }
}

/// Whether a notice that this instance was removed (`repl/removed`) from `caller` is
/// believed: the engine's rules (`quadmesh_repl::notice_to_confirm`, then
/// `notice_confirmed` over the controlling member's word, asked back at the address
/// our configuration gives).
pub async fn confirm_removed(node: &Node, caller: Option<OriginId>) -> Result<(), RemovalRefused> {
    let config = node.config();
    let controlling = quadmesh_repl::notice_to_confirm(&config, caller)?.clone();
    let word = match membership_at(node, &controlling).await {
        Ok(membership) => MemberWord::Said {
            same_cluster: membership.cluster_id == config.cluster_id,
            removed: membership.removed,
        },
        Err(RemovalRefused::NoCopyThere) => return Err(RemovalRefused::NoCopyThere),
        Err(RemovalRefused::CannotConfirm(why)) => MemberWord::NoAnswer(why),
        Err(e) => MemberWord::NoAnswer(e.to_string()),
    };
    Ok(quadmesh_repl::notice_confirmed(&word)?)
}

/// What the other members of our configuration, each asked at its configured address
/// (all at once), say of our membership: what the pull engine needs to judge a peer's
/// claim that this instance was removed (`quadmesh_repl::removal_believed`).
pub async fn removal_words(node: &Node) -> RemovalWords {
    let config = node.config();
    let ours = node.repository().origin();
    let asked = config.members.iter().filter(|m| m.origin != ours);
    let mut words = futures::future::join_all(asked.map(|member| async {
        let word = match membership_at(node, member).await {
            Ok(membership) => MemberWord::Said {
                same_cluster: membership.cluster_id == config.cluster_id,
                removed: membership.removed,
            },
            Err(e) => MemberWord::NoAnswer(e.to_string()),
        };
        (member.origin, word)
    }))
    .await;
    // This instance says no.
    words.push((
        ours,
        MemberWord::Said {
            same_cluster: true,
            removed: false,
        },
    ));
    RemovalWords {
        members: config.members.len(),
        controlling: config.controlling().map(|m| m.origin),
        words,
    }
}

/// What `member` (asked at its configured address, under its repository name) says of
/// our membership.
pub(crate) async fn membership_at(
    node: &Node,
    member: &Member,
) -> Result<Membership, RemovalRefused> {
    membership_of(node, member, node.repository().origin(), CONFIRM_TIMEOUT).await
}

/// What `member` (asked at its configured address, under its repository name) says of
/// member `about`, asked within `timeout`.
pub async fn membership_of(
    node: &Node,
    member: &Member,
    about: OriginId,
    timeout: Duration,
) -> Result<Membership, RemovalRefused> {
    let config = node.config();
    let ours = node.repository().origin();
    let url = node.http().repl_url(member, "membership");
    let response = node
        .http()
        .get(&url)
        .query(&[("origin", about.0.to_string())])
        .header(TOKEN_HEADER, &config.token)
        .header(ORIGIN_HEADER, ours.0.to_string())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| RemovalRefused::CannotConfirm(e.without_url().to_string()))?;
    let code = response
        .headers()
        .get(quadmesh_repl::wire::ERROR_CODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(quadmesh_repl::wire::ErrorCode::parse);
    if code == Some(quadmesh_repl::wire::ErrorCode::NotReplicated) {
        return Err(RemovalRefused::NoCopyThere);
    }
    if !response.status().is_success() {
        return Err(RemovalRefused::CannotConfirm(format!(
            "it answered {}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| RemovalRefused::CannotConfirm(e.without_url().to_string()))
}
