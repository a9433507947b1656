//! Whether to believe a peer that says this instance was removed from the cluster.
//!
//! The cluster token proves only that a caller belongs to the cluster; every member
//! holds it, and any server answering at a member's address could refuse a pull as
//! "removed". Believing it makes this instance stop taking writes and pulling for
//! good, so the claim is checked: the runtime asks the members of the configuration
//! this instance holds, each at its configured address, what their configuration says
//! of this instance (`repl/membership`), and hands the answers here
//! ([`PullEvent::RemovalWords`](crate::PullEvent)). Nothing here asks or reads a clock.

use crate::cluster::{ClusterConfig, Member};
use crate::stamp::OriginId;

/// What one member said of this instance, or that it could not be asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberWord {
    /// Not reached, or no usable answer (the reason, for status).
    NoAnswer(String),
    /// It answered.
    Said {
        /// Its cluster id is the one of the configuration this instance holds.
        same_cluster: bool,
        /// Its configuration lists this instance as removed.
        removed: bool,
    },
}

impl MemberWord {
    fn says_removed(&self) -> bool {
        matches!(
            self,
            MemberWord::Said {
                same_cluster: true,
                removed: true
            }
        )
    }
}

/// The answers gathered for one check, against the configuration this instance holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovalWords {
    /// How many members that configuration has (this instance among them).
    pub members: usize,
    /// The controlling member it names, if any.
    pub controlling: Option<OriginId>,
    /// The word of each member: the others' answers, and this instance's own (it is
    /// not asked: it says no), so that a configuration naming it as controlling reads
    /// as the controlling instance not listing it.
    pub words: Vec<(OriginId, MemberWord)>,
}

/// Why the claim was not believed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemovalDoubt {
    #[error("the configuration held here names no controlling instance")]
    NoControlling,
    #[error("the controlling instance does not list this instance as removed")]
    NotRemoved,
    #[error("cannot ask the controlling instance: {0}")]
    CannotConfirm(String),
    #[error("only the controlling instance of the cluster may say that this instance was removed")]
    NotFromControlling,
}

/// Whom to ask back before believing a notice that this instance was removed
/// (`repl/removed`) from `caller`: the controlling member of the configuration held
/// here, at the address that configuration gives (not the caller's).
///
/// Rules it keeps: a notice is considered only from the controlling member of the
/// configuration held here (every member holds the cluster token; only the controlling
/// instance changes the configuration, and only at an operator's request); it is
/// believed only once that member, asked back, says so ([`notice_confirmed`]).
pub fn notice_to_confirm(
    config: &ClusterConfig,
    caller: Option<OriginId>,
) -> Result<&Member, RemovalDoubt> {
    let controlling = config.controlling().ok_or(RemovalDoubt::NoControlling)?;
    if caller != Some(controlling.origin) {
        return Err(RemovalDoubt::NotFromControlling);
    }
    Ok(controlling)
}

/// Whether the controlling member's word, asked back ([`notice_to_confirm`]), confirms
/// a notice of removal: it lists this instance as removed, in the same cluster.
pub fn notice_confirmed(word: &MemberWord) -> Result<(), RemovalDoubt> {
    match word {
        MemberWord::NoAnswer(why) => Err(RemovalDoubt::CannotConfirm(why.clone())),
        word if word.says_removed() => Ok(()),
        MemberWord::Said { .. } => Err(RemovalDoubt::NotRemoved),
    }
}

/// Whether the removal is confirmed.
///
/// Rules it keeps:
/// - believed when the controlling member of the configuration held here says, of the
///   same cluster, that it lists this instance as removed (only the controlling
///   instance changes the configuration, and only at an operator's request);
/// - or else when a strict majority of that configuration's members, this instance
///   counted as saying no, say so: a promotion this instance missed moved the role
///   elsewhere, and its configuration still names the old holder (perhaps itself);
/// - an answer of another cluster, or from no one, never counts: one impostor at one
///   member's address is never a majority.
pub fn removal_believed(words: &RemovalWords) -> Result<(), RemovalDoubt> {
    let of_controlling = words
        .controlling
        .and_then(|c| words.words.iter().find(|(o, _)| *o == c))
        .map(|(_, word)| word);
    if of_controlling.is_some_and(MemberWord::says_removed) {
        return Ok(());
    }
    let saying_removed = words
        .words
        .iter()
        .filter(|(_, word)| word.says_removed())
        .count();
    if saying_removed * 2 > words.members {
        return Ok(());
    }
    Err(match of_controlling {
        _ if words.controlling.is_none() => RemovalDoubt::NoControlling,
        Some(MemberWord::NoAnswer(why)) => RemovalDoubt::CannotConfirm(why.clone()),
        None => RemovalDoubt::CannotConfirm("not asked".into()),
        Some(MemberWord::Said { .. }) => RemovalDoubt::NotRemoved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOVED: MemberWord = MemberWord::Said {
        same_cluster: true,
        removed: true,
    };
    const MEMBER: MemberWord = MemberWord::Said {
        same_cluster: true,
        removed: false,
    };
    const STRANGER: MemberWord = MemberWord::Said {
        same_cluster: false,
        removed: true,
    };

    fn words(members: usize, controlling: u64, words: &[(u64, MemberWord)]) -> RemovalWords {
        RemovalWords {
            members,
            controlling: Some(OriginId(controlling)),
            words: words
                .iter()
                .map(|(o, w)| (OriginId(*o), w.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_notice_of_removal_is_believed_only_from_the_controlling_member_and_once_it_says_so() {
        let config = crate::cluster::fixtures::three();
        assert_eq!(
            notice_to_confirm(&config, Some(OriginId(1))).unwrap().name,
            "a"
        );
        for caller in [Some(OriginId(2)), Some(OriginId(9)), None] {
            assert_eq!(
                notice_to_confirm(&config, caller),
                Err(RemovalDoubt::NotFromControlling)
            );
        }
        assert_eq!(notice_confirmed(&REMOVED), Ok(()));
        assert_eq!(notice_confirmed(&MEMBER), Err(RemovalDoubt::NotRemoved));
        // A server of another cluster at the controlling member's address.
        assert_eq!(notice_confirmed(&STRANGER), Err(RemovalDoubt::NotRemoved));
        assert!(matches!(
            notice_confirmed(&MemberWord::NoAnswer("timed out".into())),
            Err(RemovalDoubt::CannotConfirm(_))
        ));
    }

    #[test]
    fn the_controlling_instance_alone_confirms_it() {
        let no = MemberWord::NoAnswer("down".into());
        assert_eq!(
            removal_believed(&words(5, 1, &[(1, REMOVED), (2, no)])),
            Ok(())
        );
    }

    #[test]
    fn a_strict_majority_of_the_members_confirms_it_without_the_controlling_instance() {
        // Five members, this instance says no: three others are a majority, two not.
        let down = || MemberWord::NoAnswer("down".into());
        let three = words(
            5,
            1,
            &[(1, down()), (2, REMOVED), (3, REMOVED), (4, REMOVED)],
        );
        assert_eq!(removal_believed(&three), Ok(()));
        let two = words(
            5,
            1,
            &[(1, down()), (2, REMOVED), (3, REMOVED), (4, MEMBER)],
        );
        assert_eq!(
            removal_believed(&two),
            Err(RemovalDoubt::CannotConfirm("down".into()))
        );
    }

    #[test]
    fn an_instance_its_configuration_names_as_controlling_is_its_own_no() {
        // This instance (1) controls by its configuration and says no; two of three
        // members are not a majority of five.
        let us = words(5, 1, &[(1, MEMBER), (2, REMOVED), (3, REMOVED)]);
        assert_eq!(removal_believed(&us), Err(RemovalDoubt::NotRemoved));
    }

    #[test]
    fn another_clusters_answers_never_count() {
        let impostors = words(3, 1, &[(1, STRANGER), (2, STRANGER)]);
        assert_eq!(removal_believed(&impostors), Err(RemovalDoubt::NotRemoved));
    }

    #[test]
    fn a_configuration_without_a_controlling_instance_needs_a_majority() {
        let mut none = words(3, 1, &[(2, REMOVED)]);
        none.controlling = None;
        assert_eq!(removal_believed(&none), Err(RemovalDoubt::NoControlling));
        none.words.push((OriginId(3), REMOVED));
        assert_eq!(removal_believed(&none), Ok(()));
    }
}
