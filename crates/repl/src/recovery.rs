//! The decisions of a controlling instance that starts without data (first start, or
//! its volume was lost): it must never fork its cluster. The cluster runtime
//! (`controlling_recovery.rs`) asks `--peers` and downloads a member's snapshot; what an
//! answer and a snapshot mean is decided here.
//!
//! Rules it keeps:
//! - a member is believed only when its cluster names this instance as its controlling
//!   member: a cluster controlled by another name is reported, and the role is not
//!   taken (no second cluster, no stolen one);
//! - an instance that answered without the cluster (none there, or it was removed) is
//!   passed over; one that did not answer keeps the search going, up to its time limit
//!   ([`search_over`]);
//! - a snapshot is taken only if it is of the cluster found and places this instance in
//!   this repository (members may hold the cluster under other names; ours is ours).

use crate::cluster::ClusterConfig;

/// What one address said when asked for its cluster of the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoundAnswer {
    /// A member of cluster `cluster`, named `name` there, whose controlling member is
    /// `controlling`.
    Member {
        cluster: String,
        name: String,
        controlling: Option<String>,
        /// It knows it was removed from that cluster.
        removed: bool,
    },
    /// Answered, but holds no cluster of the repository (or was removed from it).
    NoCluster,
    /// Did not answer.
    Silent,
}

/// What to do with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryVerdict {
    /// The cluster this instance controls: re-grow from that member and take the
    /// controlling member's place back.
    TakeBack,
    /// A cluster controlled by another instance: neither take it nor make a second one.
    ControlledByAnother,
    /// Nothing here; `answered` says whether the address answered at all (a silent one
    /// keeps the search going).
    LookFurther { answered: bool },
}

/// What `answer` means to this instance, named `instance`.
pub fn judge_answer(answer: &FoundAnswer, instance: &str) -> RecoveryVerdict {
    match answer {
        // Removed from it: it holds no cluster to be taken back from (its data may be
        // older than the cluster's, and its configuration is not the cluster's).
        FoundAnswer::Member { removed: true, .. } => {
            RecoveryVerdict::LookFurther { answered: true }
        }
        FoundAnswer::Member { controlling, .. } if controlling.as_deref() == Some(instance) => {
            RecoveryVerdict::TakeBack
        }
        FoundAnswer::Member { .. } => RecoveryVerdict::ControlledByAnother,
        FoundAnswer::NoCluster => RecoveryVerdict::LookFurther { answered: true },
        FoundAnswer::Silent => RecoveryVerdict::LookFurther { answered: false },
    }
}

/// How long a controlling instance started without data looks for its cluster at
/// `--peers` before it makes a new one (ms).
pub const LOOK_FOR_MS: u64 = 10_000;

/// Whether the search for the cluster is over without one found, `elapsed_ms` after it
/// began, `all_answered` saying whether every address asked in the last round answered
/// (without the cluster): then a new cluster may be made. A silent address keeps it
/// going for up to [`LOOK_FOR_MS`] — a member that is restarting must not be taken for
/// none (that would fork the cluster).
pub fn search_over(all_answered: bool, elapsed_ms: u64) -> bool {
    all_answered || elapsed_ms >= LOOK_FOR_MS
}

/// Whether a snapshot whose configuration is `config` may be installed as this
/// instance (`instance`, holding repository `repository`) of cluster `cluster`.
pub fn snapshot_is_ours(
    config: &ClusterConfig,
    cluster: &str,
    instance: &str,
    repository: &str,
) -> bool {
    config.cluster_id == cluster
        && config
            .member_named(instance)
            .is_some_and(|m| m.repository == repository)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::three;

    #[test]
    fn only_a_cluster_naming_this_instance_controlling_is_taken_back() {
        let member = |controlling: Option<&str>| FoundAnswer::Member {
            cluster: "c".into(),
            name: "m".into(),
            controlling: controlling.map(str::to_owned),
            removed: false,
        };
        let removed = FoundAnswer::Member {
            cluster: "c".into(),
            name: "m".into(),
            controlling: Some("a".into()),
            removed: true,
        };
        assert_eq!(
            judge_answer(&removed, "a"),
            RecoveryVerdict::LookFurther { answered: true }
        );
        assert_eq!(
            judge_answer(&member(Some("a")), "a"),
            RecoveryVerdict::TakeBack
        );
        assert_eq!(
            judge_answer(&member(Some("b")), "a"),
            RecoveryVerdict::ControlledByAnother
        );
        assert_eq!(
            judge_answer(&member(None), "a"),
            RecoveryVerdict::ControlledByAnother
        );
        assert_eq!(
            judge_answer(&FoundAnswer::NoCluster, "a"),
            RecoveryVerdict::LookFurther { answered: true }
        );
        assert_eq!(
            judge_answer(&FoundAnswer::Silent, "a"),
            RecoveryVerdict::LookFurther { answered: false }
        );
    }

    #[test]
    fn the_search_ends_when_every_address_answered_or_its_time_is_up() {
        assert!(search_over(true, 0));
        assert!(!search_over(false, LOOK_FOR_MS - 1));
        assert!(search_over(false, LOOK_FOR_MS));
    }

    #[test]
    fn a_snapshot_is_taken_only_for_this_instance_in_this_repository() {
        let config = three();
        let ours = config.members[0].clone();
        let cluster = config.cluster_id.clone();
        assert!(snapshot_is_ours(
            &config,
            &cluster,
            &ours.name,
            &ours.repository
        ));
        assert!(!snapshot_is_ours(
            &config,
            "another",
            &ours.name,
            &ours.repository
        ));
        assert!(!snapshot_is_ours(
            &config,
            &cluster,
            &ours.name,
            "elsewhere"
        ));
        assert!(!snapshot_is_ours(
            &config,
            &cluster,
            "nobody",
            &ours.repository
        ));
    }
}
