use crate::stamp::{HlcTime, OriginId};
use serde::{Deserialize, Serialize};

/// One instance of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The instance name users see (`instanceName`); unique in the cluster.
    pub name: String,
    /// The origin id of its writes; never reused.
    pub origin: OriginId,
    /// `host:port` where the others reach it; the host is resolved at every connection.
    pub address: String,
    pub controlling: bool,
    /// When the configuration that added it was stamped: until it sends anything, it
    /// counts as having promised no write older than this.
    pub added_at: HlcTime,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    #[error("an instance named '{0}' is already in the cluster")]
    NameTaken(String),
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
    #[error("instance '{name}' {detail}; removing it would discard them: repeat with force=true (quadmesh repl remove --force) to remove it anyway")]
    Unreplicated { name: String, detail: String },
}

/// The configuration of a replication cluster of one repository.
///
/// Rules it keeps: it changes only at the controlling instance, each change raising
/// `version` by one; an instance applies a configuration only if its version is newer
/// than the one it has; member names and origin ids are unique, and the ids of removed
/// members are remembered so that none is ever reused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub cluster_id: String,
    pub repository: String,
    /// Authenticates instance-to-instance calls. Never a user password.
    pub token: String,
    pub version: u64,
    pub members: Vec<Member>,
    pub removed: Vec<OriginId>,
}

impl ClusterConfig {
    pub fn new(cluster_id: String, repository: String, token: String, first: Member) -> Self {
        ClusterConfig {
            cluster_id,
            repository,
            token,
            version: 1,
            members: vec![first],
            removed: Vec::new(),
        }
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

    pub fn with_member(&self, member: Member) -> Result<Self, MembershipError> {
        if self.member_named(&member.name).is_some() {
            return Err(MembershipError::NameTaken(member.name));
        }
        if self.is_member(member.origin) || self.removed.contains(&member.origin) {
            return Err(MembershipError::OriginReused(member.origin));
        }
        let mut next = self.clone();
        next.version += 1;
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
        let mut next = self.clone();
        next.version += 1;
        next.members.retain(|m| m.name != name);
        next.removed.push(member.origin);
        Ok((next, member))
    }

    /// The controlling role moves to member `to` (made by the controlling instance, which
    /// stops being it once this configuration is in force: one instance changes the
    /// configuration at any version).
    pub fn with_controlling_moved(&self, to: &str) -> Result<Self, MembershipError> {
        if self.member_named(to).is_none() {
            return Err(MembershipError::UnknownInstance(to.to_owned()));
        }
        let mut next = self.clone();
        next.version += 1;
        for member in &mut next.members {
            member.controlling = member.name == to;
        }
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
        let mut next = self.clone();
        next.version += 1;
        next.removed.push(old.origin);
        for member in &mut next.members {
            if member.name == name {
                *member = Member {
                    name: name.to_owned(),
                    origin,
                    address: address.clone(),
                    controlling: true,
                    added_at,
                };
            }
        }
        Ok(next)
    }

    /// Votes needed for `quorum`: more than half of the members.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, origin: u64, controlling: bool) -> Member {
        Member {
            name: name.into(),
            origin: OriginId(origin),
            address: format!("{name}:10035"),
            controlling,
            added_at: HlcTime(origin),
        }
    }

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
    fn quorum_is_more_than_half() {
        let mut c = config();
        assert_eq!(c.quorum(), 1);
        c = c.with_member(member("b", 2, false)).unwrap();
        assert_eq!(c.quorum(), 2);
        c = c.with_member(member("c", 3, false)).unwrap();
        assert_eq!(c.quorum(), 2);
    }
}
