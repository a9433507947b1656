//! Anti-entropy's decisions: whether an instance is the odd one out among the peers it
//! compared contents with, whether it must repair itself, and from whom. The cluster
//! runtime compares, fetches and repairs; it asks here what to do.
//!
//! Rules it keeps:
//! - an instance repairs only when it knows it is wrong: its own scrub found damage, or
//!   more of the members it compared with differ from it than agree with it, counting
//!   itself on the agreeing side (with two that disagree, neither can tell which is
//!   right: both report it, neither repairs);
//! - a removed instance never repairs (it takes nothing from the cluster any more);
//! - when it is the odd one out, it repairs only from members that differ from it
//!   (the majority); after a scrub finding, from those first, then any other member;
//!   never from itself.

use crate::cluster::Member;
use crate::wire::PeerComparison;
use crate::OriginId;

/// Why an instance repairs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairCause {
    /// Its own scrub found the store differing from its write path's digest.
    Scrub,
    /// Most peers' contents differ from its own at a common version vector.
    Minority,
}

/// Whether this instance is the odd one out, from its last comparison with each member
/// it compared with.
pub fn in_minority<'a>(comparisons: impl IntoIterator<Item = &'a PeerComparison>) -> bool {
    let (mut agreeing, mut differing) = (0u64, 0u64);
    for comparison in comparisons {
        match comparison {
            PeerComparison::Agrees { .. } => agreeing += 1,
            PeerComparison::Differs { .. } => differing += 1,
        }
    }
    differing > agreeing + 1
}

/// Whether, and why, an instance must repair itself.
pub fn repair_cause(removed: bool, knows_damage: bool, in_minority: bool) -> Option<RepairCause> {
    if removed {
        None
    } else if knows_damage {
        Some(RepairCause::Scrub)
    } else if in_minority {
        Some(RepairCause::Minority)
    } else {
        None
    }
}

/// The members to repair from, in the order to try them.
pub fn repair_sources(
    members: &[Member],
    ours: OriginId,
    differing: &[OriginId],
    cause: RepairCause,
) -> Vec<Member> {
    let mut sources: Vec<Member> = members
        .iter()
        .filter(|m| m.origin != ours)
        .cloned()
        .collect();
    sources.sort_by_key(|m| !differing.contains(&m.origin));
    if cause == RepairCause::Minority {
        sources.retain(|m| differing.contains(&m.origin));
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HlcTime;

    fn agrees() -> PeerComparison {
        PeerComparison::Agrees { at_ms: 0 }
    }

    fn differs() -> PeerComparison {
        PeerComparison::Differs {
            since_ms: 0,
            version_vector: Default::default(),
            ours: String::new(),
            theirs: String::new(),
        }
    }

    fn member(origin: u64) -> Member {
        Member {
            name: format!("m{origin}"),
            origin: OriginId(origin),
            address: format!("h{origin}:1"),
            repository: "r".into(),
            controlling: origin == 1,
            added_at: HlcTime::ZERO,
        }
    }

    #[test]
    fn the_odd_one_out_is_outvoted_counting_itself() {
        assert!(!in_minority(&[]));
        // Two that disagree: neither can tell which is right.
        assert!(!in_minority(&[differs()]));
        assert!(in_minority(&[differs(), differs()]));
        assert!(!in_minority(&[differs(), differs(), agrees()]));
        assert!(in_minority(&[differs(), differs(), differs(), agrees()]));
    }

    #[test]
    fn only_a_member_that_knows_it_is_wrong_repairs() {
        assert_eq!(repair_cause(false, false, false), None);
        assert_eq!(repair_cause(false, true, true), Some(RepairCause::Scrub));
        assert_eq!(
            repair_cause(false, false, true),
            Some(RepairCause::Minority)
        );
        assert_eq!(repair_cause(true, true, true), None);
    }

    #[test]
    fn sources_are_the_differing_members_first_and_never_this_one() {
        let members = [member(1), member(2), member(3), member(4)];
        let origins = |sources: Vec<Member>| sources.iter().map(|m| m.origin.0).collect::<Vec<_>>();
        let differing = [OriginId(4), OriginId(3)];
        assert_eq!(
            origins(repair_sources(
                &members,
                OriginId(2),
                &differing,
                RepairCause::Scrub
            )),
            [3, 4, 1]
        );
        assert_eq!(
            origins(repair_sources(
                &members,
                OriginId(2),
                &differing,
                RepairCause::Minority
            )),
            [3, 4]
        );
    }
}
