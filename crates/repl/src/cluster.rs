use crate::stamp::{HlcTime, OriginId};
use serde::{Deserialize, Serialize};

/// One instance of a cluster: a repository (`repository`) on a server (`address`).
/// Instances of one cluster may hold it under different names, and one server may hold
/// several of them (each under its own name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The instance name users see (`instanceName`); unique in the cluster.
    pub name: String,
    /// The origin id of its writes; never reused.
    pub origin: OriginId,
    /// `host:port` where the others reach it; the host is resolved at every connection.
    pub address: String,
    /// The name of its repository on that server (in the root catalog): the others pull
    /// from and call it under this name. Configurations written before members had one
    /// hold every member under the cluster's name ([`ClusterConfig::repository`]):
    /// read without it, it is filled in from there (empty only while being read).
    #[serde(default)]
    pub repository: String,
    pub controlling: bool,
    /// When the configuration that added it was stamped: until it sends anything, it
    /// counts as having promised no write older than this.
    pub added_at: HlcTime,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    #[error("an instance named '{0}' is already in the cluster")]
    NameTaken(String),
    #[error("instance '{name}' already holds repository '{repository}' at {address}: give the new instance another repository name or server")]
    PlaceTaken {
        name: String,
        address: String,
        repository: String,
    },
    #[error("no instance named '{0}' is in the cluster")]
    UnknownInstance(String),
    #[error("'{0}' is the controlling instance and cannot be removed")]
    RemovingControlling(String),
    #[error("the origin id {0} was used before")]
    OriginReused(OriginId),
    #[error("repository '{0}' is already in a replication cluster")]
    AlreadyInCluster(String),
    #[error("repository '{0}' is not in a replication cluster")]
    NotInCluster(String),
    #[error("only the controlling instance ({0}) can change the cluster")]
    NotControlling(String),
    #[error("'{0}' is not the controlling instance of the cluster")]
    NotTheControlling(String),
    #[error("the cluster configuration changed meanwhile ({0}): try again")]
    ChangedMeanwhile(String),
    #[error("instance '{name}' {detail}; removing it would discard them: repeat with force=true (quadmesh repl remove --force) to remove it anyway")]
    Unreplicated { name: String, detail: String },
    #[error("'{0}' is the controlling instance and cannot be stopped: move the role first (controllingInstance)")]
    StoppingControlling(String),
    #[error("instance '{0}' is already stopped")]
    AlreadyStopped(String),
    #[error("instance '{0}' is not stopped")]
    NotStopped(String),
    #[error("no instance of origin {0} is handing over what it holds")]
    NotHandingOver(OriginId),
    #[error("durability {durability} cannot be met: the cluster has {members} instance{}", if *members == 1 { "" } else { "s" })]
    DurabilityUnmet {
        durability: Durability,
        members: usize,
    },
}

/// How many members must hold a commit before it is answered (AllegroGraph's
/// `durability`): written `min`, `quorum`, `max` or a count of at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Durability {
    /// The committing instance alone.
    Min,
    /// More than half of the members.
    Quorum,
    /// Every member.
    Max,
    /// This many members, the committing one included.
    Count(usize),
}

impl Durability {
    /// Members that must hold a commit, out of `members`.
    pub fn needed(self, members: usize) -> usize {
        match self {
            Durability::Min => 1,
            Durability::Quorum => members / 2 + 1,
            Durability::Max => members,
            Durability::Count(n) => n,
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Ok(match value {
            "min" => Durability::Min,
            "quorum" => Durability::Quorum,
            "max" => Durability::Max,
            n => Durability::Count(n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("durability must be min, quorum, max or a count of at least 1, got '{n}'")
            })?),
        })
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::Min => f.write_str("min"),
            Durability::Quorum => f.write_str("quorum"),
            Durability::Max => f.write_str("max"),
            Durability::Count(n) => write!(f, "{n}"),
        }
    }
}

impl From<Durability> for String {
    fn from(d: Durability) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for Durability {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

/// The cluster's defaults for commits that name no `x-repl-settings` (AllegroGraph's
/// `repl/settings`); each one unset keeps quadmesh's built-in default. Times in
/// milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed_transaction_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_latency_count: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_latency_timeout_ms: Option<u64>,
}

impl CommitDefaults {
    pub fn is_empty(&self) -> bool {
        *self == CommitDefaults::default()
    }

    /// These defaults with every value `other` sets taken from it.
    pub fn merged(&self, other: &CommitDefaults) -> CommitDefaults {
        CommitDefaults {
            durability: other.durability.or(self.durability),
            distributed_transaction_timeout_ms: other
                .distributed_transaction_timeout_ms
                .or(self.distributed_transaction_timeout_ms),
            transaction_latency_count: other
                .transaction_latency_count
                .or(self.transaction_latency_count),
            transaction_latency_timeout_ms: other
                .transaction_latency_timeout_ms
                .or(self.transaction_latency_timeout_ms),
        }
    }
}

/// The configuration of a replication cluster of one repository.
///
/// Rules it keeps: it changes only at the controlling instance of its epoch, each change
/// raising `version` by one, or by a promotion, which starts a newer epoch (see
/// `promotion.rs` for who may make either); an instance applies a configuration only if
/// it is newer (epoch first, then version) than the one it has; member names and origin
/// ids are unique, and the ids of removed members are remembered so that none is ever
/// reused; no two members hold the same repository at the same address.
///
/// Read from JSON (`cluster.json`, configuration log entries, snapshots), a member
/// without a repository name — written before members had one — holds it under the
/// cluster's name, as every member then did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ClusterConfig {
    pub cluster_id: String,
    /// The cluster's name: the repository it was created from. Members may hold it
    /// under other names ([`Member::repository`]).
    pub repository: String,
    /// Authenticates instance-to-instance calls. Never a user password.
    pub token: String,
    pub version: u64,
    /// The controlling instance's term: raised by each promotion (0 before any).
    #[serde(default)]
    pub epoch: u64,
    pub members: Vec<Member>,
    pub removed: Vec<OriginId>,
    /// Members stopped by an operator (`repl/stop`): nobody pulls from them and they
    /// pull from nobody until started again; they stay members, and catch up then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<OriginId>,
    /// Defaults for commits without `x-repl-settings` (`repl/settings`).
    #[serde(default, skip_serializing_if = "CommitDefaults::is_empty")]
    pub settings: CommitDefaults,
    /// The members of the configuration this one was made of (empty: the first one,
    /// or one written before this was kept). A change of this configuration is made
    /// only once it is in force by that configuration's change quorum too: when the
    /// number of members changed, a change quorum of this one alone need not meet a
    /// promotion quorum of that one (see `membership_engine.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub made_of: Vec<OriginId>,
    /// Members removed (by force) while they may have held transactions of their own
    /// that no remaining member had: until each hands them over — or the controlling
    /// instance stops waiting — the members pull its own transactions from it when it
    /// is heard again, and keep the frontier at its last known promise, so that what it
    /// hands over, stamped as it was acknowledged, cannot undo newer writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handing_over: Vec<HandOver>,
}

/// A member removed before it could hand over what only it held (see
/// [`ClusterConfig::handing_over`]).
///
/// Rules it keeps: `promised` is a lower bound of the stamp of every transaction the
/// member may still hand over (its last promise known to the instance that removed
/// it, or the time it was added): no transaction it wrote later can be stamped below
/// it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandOver {
    pub member: Member,
    pub promised: HlcTime,
    /// When it was removed (the removal's commit time).
    pub removed_at: HlcTime,
}

impl Serialize for ClusterConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ClusterConfig::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ClusterConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut config = ClusterConfig::deserialize(deserializer)?;
        for member in &mut config.members {
            if member.repository.is_empty() {
                member.repository = config.repository.clone();
            }
        }
        Ok(config)
    }
}

impl ClusterConfig {
    pub fn new(cluster_id: String, repository: String, token: String, first: Member) -> Self {
        ClusterConfig {
            cluster_id,
            repository,
            token,
            version: 1,
            epoch: 0,
            members: vec![first],
            removed: Vec::new(),
            stopped: Vec::new(),
            settings: CommitDefaults::default(),
            made_of: Vec::new(),
            handing_over: Vec::new(),
        }
    }

    /// The next version of this configuration, to be changed: made of this one.
    fn next(&self) -> Self {
        let mut next = self.clone();
        next.version += 1;
        next.made_of = self.origins();
        next
    }

    /// Whether member `origin` is stopped (`repl/stop`).
    pub fn is_stopped(&self, origin: OriginId) -> bool {
        self.stopped.contains(&origin)
    }

    /// Whether this configuration has replication running between `a` and `b`: both
    /// are members and neither is stopped.
    pub fn replicates_between(&self, a: OriginId, b: OriginId) -> bool {
        self.is_member(a) && self.is_member(b) && !self.is_stopped(a) && !self.is_stopped(b)
    }

    /// Member `name` stopped (`stopped`) or started again. The controlling instance is
    /// never stopped (it makes every change, and the others learn changes from it).
    pub fn with_stopped(&self, name: &str, stopped: bool) -> Result<Self, MembershipError> {
        let member = self
            .member_named(name)
            .ok_or_else(|| MembershipError::UnknownInstance(name.to_owned()))?;
        if stopped && member.controlling {
            return Err(MembershipError::StoppingControlling(name.to_owned()));
        }
        let origin = member.origin;
        match (stopped, self.is_stopped(origin)) {
            (true, true) => return Err(MembershipError::AlreadyStopped(name.to_owned())),
            (false, false) => return Err(MembershipError::NotStopped(name.to_owned())),
            _ => {}
        }
        let mut next = self.next();
        if stopped {
            next.stopped.push(origin);
        } else {
            next.stopped.retain(|o| *o != origin);
        }
        Ok(next)
    }

    /// The cluster's commit defaults with every value `settings` sets replaced.
    /// The next configuration with `settings` merged into the defaults; refused when
    /// it sets a durability no configuration of this size can meet (a commit would
    /// wait for members that do not exist).
    pub fn with_settings(&self, settings: &CommitDefaults) -> Result<Self, MembershipError> {
        let members = self.members.len();
        if let Some(durability) = settings.durability {
            if durability.needed(members) > members {
                return Err(MembershipError::DurabilityUnmet {
                    durability,
                    members,
                });
            }
        }
        let mut next = self.next();
        next.settings = self.settings.merged(settings);
        Ok(next)
    }

    pub fn member(&self, origin: OriginId) -> Option<&Member> {
        self.members.iter().find(|m| m.origin == origin)
    }

    pub fn member_named(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn controlling(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.controlling)
    }

    /// The members' origin ids.
    pub fn origins(&self) -> Vec<OriginId> {
        self.members.iter().map(|m| m.origin).collect()
    }

    pub fn is_member(&self, origin: OriginId) -> bool {
        self.member(origin).is_some()
    }

    /// The member holding repository `repository` at `address`, if one does.
    pub fn member_at(&self, address: &str, repository: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.address == address && m.repository == repository)
    }

    pub fn with_member(&self, member: Member) -> Result<Self, MembershipError> {
        if self.member_named(&member.name).is_some() {
            return Err(MembershipError::NameTaken(member.name));
        }
        if let Some(there) = self.member_at(&member.address, &member.repository) {
            return Err(MembershipError::PlaceTaken {
                name: there.name.clone(),
                address: member.address,
                repository: member.repository,
            });
        }
        if self.is_member(member.origin) || self.removed.contains(&member.origin) {
            return Err(MembershipError::OriginReused(member.origin));
        }
        let mut next = self.next();
        next.members.push(member);
        Ok(next)
    }

    pub fn without_member(&self, name: &str) -> Result<(Self, Member), MembershipError> {
        let member = self
            .member_named(name)
            .ok_or_else(|| MembershipError::UnknownInstance(name.to_owned()))?
            .clone();
        if member.controlling {
            return Err(MembershipError::RemovingControlling(name.to_owned()));
        }
        let mut next = self.next();
        next.members.retain(|m| m.name != name);
        next.stopped.retain(|o| *o != member.origin);
        next.removed.push(member.origin);
        Ok((next, member))
    }

    /// Member `name` removed while it may hold transactions of its own no remaining
    /// member has (by force, unheard): it goes on the hand-over list with `promised`
    /// (the lowest stamp it may still hand over) and the removal's time.
    pub fn without_member_handing_over(
        &self,
        name: &str,
        promised: HlcTime,
        removed_at: HlcTime,
    ) -> Result<(Self, Member), MembershipError> {
        let (mut next, member) = self.without_member(name)?;
        next.handing_over.push(HandOver {
            member: member.clone(),
            promised: promised.max(member.added_at),
            removed_at,
        });
        Ok((next, member))
    }

    /// The member of origin `origin` handed over what it held, or the controlling
    /// instance stopped waiting for it: off the hand-over list.
    pub fn with_hand_over_ended(&self, origin: OriginId) -> Result<Self, MembershipError> {
        if !self.is_handing_over(origin) {
            return Err(MembershipError::NotHandingOver(origin));
        }
        let mut next = self.next();
        next.handing_over.retain(|h| h.member.origin != origin);
        Ok(next)
    }

    /// Whether removed member `origin` is still to hand over what it holds.
    pub fn is_handing_over(&self, origin: OriginId) -> bool {
        self.handing_over_member(origin).is_some()
    }

    /// The removed member `origin` that is still to hand over what it holds.
    pub fn handing_over_member(&self, origin: OriginId) -> Option<&Member> {
        self.handing_over
            .iter()
            .map(|h| &h.member)
            .find(|m| m.origin == origin)
    }

    /// The controlling role moves to member `to` (made by the controlling instance, which
    /// stops being it once this configuration is in force: one instance changes the
    /// configuration at any version).
    pub fn with_controlling_moved(&self, to: &str) -> Result<Self, MembershipError> {
        let Some(target) = self.member_named(to).map(|m| m.origin) else {
            return Err(MembershipError::UnknownInstance(to.to_owned()));
        };
        let mut next = self.next();
        for member in &mut next.members {
            member.controlling = member.name == to;
        }
        // The controlling instance is never stopped: the others learn every change
        // from its log, which nobody pulls from a stopped member. A stopped member given
        // the role (moved or promoted) is started.
        next.stopped.retain(|o| *o != target);
        Ok(next)
    }

    /// The controlling instance `name` comes back under a new origin id (it lost its
    /// data and was made again from a member's snapshot): its old origin id is retired
    /// like a removed member's, and the new one takes its place and its role. Only that
    /// instance, started as the controlling one under that name, makes this change, so
    /// the rule that one instance changes the configuration holds.
    pub fn with_controlling_reincarnated(
        &self,
        name: &str,
        origin: OriginId,
        address: String,
        added_at: HlcTime,
    ) -> Result<Self, MembershipError> {
        let old = self
            .member_named(name)
            .filter(|m| m.controlling)
            .ok_or_else(|| MembershipError::NotTheControlling(name.to_owned()))?
            .clone();
        if self.is_member(origin) || self.removed.contains(&origin) {
            return Err(MembershipError::OriginReused(origin));
        }
        let mut next = self.next();
        next.removed.push(old.origin);
        for member in &mut next.members {
            if member.name == name {
                *member = Member {
                    name: name.to_owned(),
                    origin,
                    address: address.clone(),
                    repository: old.repository.clone(),
                    controlling: true,
                    added_at,
                };
            }
        }
        Ok(next)
    }

    /// Member `to` is promoted to controlling instance of the new `epoch` (it made this
    /// change itself, once a majority granted it the epoch: see `promotion.rs`).
    pub fn with_promoted(&self, to: &str, epoch: u64) -> Result<Self, MembershipError> {
        let mut next = self.with_controlling_moved(to)?;
        next.epoch = epoch;
        Ok(next)
    }
}

/// Members and configurations the unit tests of this crate build on.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::version_vector::VersionVector;

    /// Member `name` with origin id `origin`, at `name:10035`, holding `r`.
    pub(crate) fn member(name: &str, origin: u64, controlling: bool) -> Member {
        Member {
            name: name.into(),
            origin: OriginId(origin),
            address: format!("{name}:10035"),
            repository: "r".into(),
            controlling,
            added_at: HlcTime(origin),
        }
    }

    /// A version vector of `(origin, sequence number)` pairs.
    pub(crate) fn vv(pairs: &[(u64, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for &(origin, seq) in pairs {
            v.advance(OriginId(origin), seq);
        }
        v
    }

    /// a (1, controlling), b (2), c (3).
    pub(crate) fn three() -> ClusterConfig {
        ClusterConfig::new("c".into(), "r".into(), "t".into(), member("a", 1, true))
            .with_member(member("b", 2, false))
            .unwrap()
            .with_member(member("c", 3, false))
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::member;
    use super::*;

    fn config() -> ClusterConfig {
        ClusterConfig::new("c".into(), "r".into(), "t".into(), member("a", 1, true))
    }

    #[test]
    fn growing_and_removing_raise_the_version() {
        let grown = config().with_member(member("b", 2, false)).unwrap();
        assert_eq!((grown.version, grown.members.len()), (2, 2));
        let (shrunk, removed) = grown.without_member("b").unwrap();
        assert_eq!(
            (shrunk.version, shrunk.members.len(), removed.origin),
            (3, 1, OriginId(2))
        );
    }

    #[test]
    fn a_stopped_member_given_the_role_is_started() {
        let grown = config()
            .with_member(member("b", 2, false))
            .unwrap()
            .with_member(member("c", 3, false))
            .unwrap();
        let stopped = grown
            .with_stopped("b", true)
            .unwrap()
            .with_stopped("c", true)
            .unwrap();
        let moved = stopped.with_controlling_moved("b").unwrap();
        assert!(
            !moved.is_stopped(OriginId(2)),
            "a controlling instance nobody pulls"
        );
        assert_eq!(moved.controlling().map(|m| m.origin), Some(OriginId(2)));
        assert!(
            moved.is_stopped(OriginId(3)),
            "another stopped member stays stopped"
        );
        let promoted = stopped.with_promoted("c", 2).unwrap();
        assert!(!promoted.is_stopped(OriginId(3)));
        assert!(promoted.is_stopped(OriginId(2)));
    }

    #[test]
    fn names_are_unique_and_removed_ids_never_come_back() {
        let grown = config().with_member(member("b", 2, false)).unwrap();
        assert_eq!(
            grown.with_member(member("b", 3, false)),
            Err(MembershipError::NameTaken("b".into()))
        );
        let (shrunk, _) = grown.without_member("b").unwrap();
        assert_eq!(
            shrunk.with_member(member("b2", 2, false)),
            Err(MembershipError::OriginReused(OriginId(2)))
        );
        assert!(shrunk.with_member(member("b", 4, false)).is_ok());
    }

    #[test]
    fn unknown_and_controlling_instances_cannot_be_removed() {
        assert_eq!(
            config().without_member("x").unwrap_err(),
            MembershipError::UnknownInstance("x".into())
        );
        assert_eq!(
            config().without_member("a").unwrap_err(),
            MembershipError::RemovingControlling("a".into())
        );
    }

    #[test]
    fn the_controlling_instance_comes_back_under_a_new_origin() {
        let grown = config().with_member(member("b", 2, false)).unwrap();
        let back = grown
            .with_controlling_reincarnated("a", OriginId(9), "a:10035".into(), HlcTime(9))
            .unwrap();
        assert_eq!(back.version, grown.version + 1);
        assert_eq!(back.controlling().unwrap().origin, OriginId(9));
        assert!(back.removed.contains(&OriginId(1)));
        assert!(!back.is_member(OriginId(1)));
        assert_eq!(back.members.len(), 2);
        assert_eq!(
            grown.with_controlling_reincarnated("b", OriginId(10), "b:1".into(), HlcTime(9)),
            Err(MembershipError::NotTheControlling("b".into()))
        );
        assert_eq!(
            back.with_controlling_reincarnated("a", OriginId(1), "a:1".into(), HlcTime(9)),
            Err(MembershipError::OriginReused(OriginId(1)))
        );
    }

    #[test]
    fn the_controlling_role_moves_to_a_member() {
        let grown = config().with_member(member("b", 2, false)).unwrap();
        let moved = grown.with_controlling_moved("b").unwrap();
        assert_eq!(moved.version, grown.version + 1);
        assert_eq!(moved.controlling().unwrap().name, "b");
        assert_eq!(moved.members.iter().filter(|m| m.controlling).count(), 1);
        assert_eq!(
            grown.with_controlling_moved("x"),
            Err(MembershipError::UnknownInstance("x".into()))
        );
    }

    #[test]
    fn members_stop_and_start_and_the_controlling_one_never_stops() {
        let grown = config().with_member(member("b", 2, false)).unwrap();
        let stopped = grown.with_stopped("b", true).unwrap();
        assert_eq!(stopped.version, grown.version + 1);
        assert!(stopped.is_stopped(OriginId(2)));
        assert!(!stopped.replicates_between(OriginId(1), OriginId(2)));
        assert_eq!(
            stopped.with_stopped("b", true),
            Err(MembershipError::AlreadyStopped("b".into()))
        );
        assert_eq!(
            grown.with_stopped("a", true),
            Err(MembershipError::StoppingControlling("a".into()))
        );
        let started = stopped.with_stopped("b", false).unwrap();
        assert!(started.replicates_between(OriginId(1), OriginId(2)));
        assert_eq!(
            started.with_stopped("b", false),
            Err(MembershipError::NotStopped("b".into()))
        );
        let (removed, _) = stopped.without_member("b").unwrap();
        assert!(removed.stopped.is_empty());
    }

    #[test]
    fn settings_merge_and_old_configurations_read() {
        let c = config()
            .with_settings(&CommitDefaults {
                durability: Some(Durability::Quorum),
                ..Default::default()
            })
            .unwrap();
        let c = c
            .with_settings(&CommitDefaults {
                transaction_latency_count: Some(3),
                ..Default::default()
            })
            .unwrap();
        // A durability no configuration of this size can meet is refused.
        let members = c.members.len();
        assert_eq!(
            c.with_settings(&CommitDefaults {
                durability: Some(Durability::Count(members + 1)),
                ..Default::default()
            }),
            Err(MembershipError::DurabilityUnmet {
                durability: Durability::Count(members + 1),
                members
            })
        );
        assert_eq!(c.settings.durability, Some(Durability::Quorum));
        assert_eq!(c.settings.transaction_latency_count, Some(3));
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"durability\":\"quorum\""), "{json}");
        let back: ClusterConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        // A configuration written before these fields existed reads as before.
        let old = serde_json::to_value(config()).unwrap();
        assert!(old.get("stopped").is_none() && old.get("settings").is_none());
        let read: ClusterConfig = serde_json::from_value(old).unwrap();
        assert_eq!(read, config());
        assert_eq!("3".parse::<Durability>(), Ok(Durability::Count(3)));
        assert!("0".parse::<Durability>().is_err());
    }

    #[test]
    fn members_hold_the_cluster_under_their_own_names_several_per_server() {
        let mut second = member("b", 2, false);
        second.address = "a:10035".into();
        second.repository = "r2".into();
        let grown = config().with_member(second).unwrap();
        assert_eq!(grown.member_at("a:10035", "r2").unwrap().name, "b");
        assert_eq!(grown.member_at("a:10035", "r").unwrap().name, "a");
        let mut again = member("c", 3, false);
        again.address = "a:10035".into();
        again.repository = "r2".into();
        assert_eq!(
            grown.with_member(again),
            Err(MembershipError::PlaceTaken {
                name: "b".into(),
                address: "a:10035".into(),
                repository: "r2".into()
            })
        );
        // Round trip keeps each member's name.
        let json = serde_json::to_string(&grown).unwrap();
        let back: ClusterConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, grown);
        // Re-made under a new origin, the controlling member keeps its repository.
        let back = grown
            .with_controlling_reincarnated("a", OriginId(9), "a:10035".into(), HlcTime(9))
            .unwrap();
        assert_eq!(back.controlling().unwrap().repository, "r");
    }

    #[test]
    fn configurations_without_member_repositories_read_as_the_clusters_name() {
        // As the release before member repository names wrote them (cluster.json, a
        // configuration log entry, a snapshot).
        let old = r#"{"cluster_id":"c","repository":"people","token":"t","version":3,"epoch":0,
            "members":[{"name":"a","origin":1,"address":"a:10035","controlling":true,"added_at":1},
                       {"name":"b","origin":2,"address":"b:10035","controlling":false,"added_at":2}],
            "removed":[]}"#;
        let read: ClusterConfig = serde_json::from_str(old).unwrap();
        assert!(read.members.iter().all(|m| m.repository == "people"));
        assert_eq!(read.member_at("b:10035", "people").unwrap().name, "b");
        // Written again, it says so for every member.
        let written = serde_json::to_value(&read).unwrap();
        assert_eq!(written["members"][1]["repository"], "people");
    }

    #[test]
    fn quorums_of_one_two_and_three() {
        let mut c = config();
        assert_eq!((c.promotion_quorum(), c.change_quorum()), (1, 1));
        c = c.with_member(member("b", 2, false)).unwrap();
        assert_eq!((c.promotion_quorum(), c.change_quorum()), (2, 1));
        c = c.with_member(member("c", 3, false)).unwrap();
        assert_eq!((c.promotion_quorum(), c.change_quorum()), (2, 2));
    }
}
