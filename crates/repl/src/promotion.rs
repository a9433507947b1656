//! Who may change a cluster's configuration: the controlling instance of the newest
//! epoch, and only with enough members confirming (a small consensus, like Raft's vote
//! per term, with Flexible Paxos's two quorum sizes).
//!
//! - Configurations are ordered by [`ConfigPosition`]: epoch first, then version. A
//!   promotion starts a new epoch; the controlling instance's own changes (grow,
//!   remove, moving the role) keep its epoch and raise the version.
//! - A **promotion** of member P to epoch `e` takes effect only when a
//!   [`promotion quorum`](ClusterConfig::promotion_quorum) (a strict majority) of the
//!   members of P's configuration grant it ([`decide_vote`]). A member grants at most
//!   one candidate per epoch, only to an epoch above every one it knows, and only to a
//!   candidate whose configuration is at least as new as its own; it records the
//!   [`Promise`] before it answers.
//! - A **change** made by the controlling instance at epoch `e` (configuration
//!   `(e, v+1)`) is in force only once a [`change quorum`](ClusterConfig::change_quorum)
//!   of the members of `(e, v)` — `n - majority + 1`, counting the controlling instance
//!   itself — hold it and promised no higher epoch ([`decide_confirmation`]).
//!
//! Why two instances never both change the configuration: a promotion quorum and a
//! change quorum of the same configuration always share a member (their sizes add up to
//! more than `n`). If a change `(e, v+1)` was confirmed, that shared member holds it
//! and so refuses any candidate still at `(e, v)` (behind); if the promotion was
//! granted first, the shared member promised a higher epoch and refuses to confirm the
//! change. Either way one of the two fails. Two candidates for one epoch cannot both
//! win (each member grants one per epoch, two majorities meet); a candidate of a higher
//! epoch supersedes one of a lower epoch, whose changes then find a member that
//! promised the higher epoch in every change quorum.

use crate::cluster::ClusterConfig;
use crate::stamp::OriginId;
use serde::{Deserialize, Serialize};

/// Where a configuration stands: a newer epoch wins whatever the versions.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ConfigPosition {
    pub epoch: u64,
    pub version: u64,
}

impl std::fmt::Display for ConfigPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "epoch {} version {}", self.epoch, self.version)
    }
}

/// A member's promise: it granted `candidate` the controlling role for `epoch`, and from
/// then on confirms no change of an older epoch. Kept across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    pub epoch: u64,
    pub candidate: OriginId,
}

/// A candidate's request for a member's vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteRequest {
    /// The epoch the candidate would control.
    pub epoch: u64,
    pub candidate: OriginId,
    /// The newest configuration the candidate holds.
    pub position: ConfigPosition,
}

/// Why a member did not grant a vote or confirm a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "camelCase")]
pub enum ConsentRefusal {
    #[error("it already granted epoch {epoch} to another candidate (origin {candidate})")]
    PromisedOther { epoch: u64, candidate: OriginId },
    #[error("it knows epoch {known} already; a candidate must ask for a newer one")]
    StaleEpoch { known: u64 },
    #[error("its configuration ({ours}) is newer than the candidate's: the candidate must catch up first")]
    CandidateBehind { ours: ConfigPosition },
    #[error("the candidate (origin {candidate}) is not a member of its configuration")]
    NotAMember { candidate: OriginId },
    #[error("it promised epoch {promised} to another instance, so it confirms no change of epoch {epoch}")]
    Promised { promised: u64, epoch: u64 },
    #[error("it holds a configuration of a newer epoch ({ours})")]
    Superseded { ours: ConfigPosition },
    #[error("it does not hold that configuration yet (it holds {ours})")]
    NotYet { ours: ConfigPosition },
}

impl ClusterConfig {
    pub fn position(&self) -> ConfigPosition {
        ConfigPosition {
            epoch: self.epoch,
            version: self.version,
        }
    }

    /// Whether this configuration replaces `other` (a newer epoch, or a newer version of
    /// the same epoch).
    pub fn supersedes(&self, other: &ClusterConfig) -> bool {
        self.position() > other.position()
    }

    /// Grants a promotion needs: a strict majority of the members.
    pub fn promotion_quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// Confirmations a change of this configuration needs (the controlling instance
    /// counts itself): enough to meet every promotion quorum, `n - majority + 1`. One
    /// in a cluster of two (a promotion there needs both), two in three, three in five.
    pub fn change_quorum(&self) -> usize {
        self.members.len() - self.promotion_quorum() + 1
    }

    /// The change quorum of the configuration this one was made of, when known: that
    /// many of its members (among this one's) must hold this configuration before it
    /// is changed (`made_of`).
    pub fn made_of_change_quorum(&self) -> Option<usize> {
        let n = self.made_of.len();
        (n > 0).then(|| n - (n / 2 + 1) + 1)
    }
}

/// Whether a member holding `config` and `promised` grants `request`; the promise to
/// record when it does. Granting the same candidate the same epoch again is allowed
/// (a retried request), anything else only once per epoch.
pub fn decide_vote(
    config: &ClusterConfig,
    promised: Option<Promise>,
    request: &VoteRequest,
) -> Result<Promise, ConsentRefusal> {
    let promise = Promise {
        epoch: request.epoch,
        candidate: request.candidate,
    };
    if promised == Some(promise) {
        return Ok(promise);
    }
    if !config.is_member(request.candidate) && request.position <= config.position() {
        return Err(ConsentRefusal::NotAMember {
            candidate: request.candidate,
        });
    }
    let known = config
        .epoch
        .max(promised.map(|p| p.epoch).unwrap_or_default());
    if let Some(p) = promised.filter(|p| p.epoch == request.epoch) {
        return Err(ConsentRefusal::PromisedOther {
            epoch: p.epoch,
            candidate: p.candidate,
        });
    }
    if request.epoch <= known {
        return Err(ConsentRefusal::StaleEpoch { known });
    }
    if request.position < config.position() {
        return Err(ConsentRefusal::CandidateBehind {
            ours: config.position(),
        });
    }
    Ok(promise)
}

/// Whether a member holding `config` and `promised` confirms the change that made
/// configuration `wanted` (it holds that configuration or a later one of the same
/// epoch, and promised no newer epoch). `NotYet` may change by waiting (the
/// configuration is still on its way); the others will not.
pub fn decide_confirmation(
    config: &ClusterConfig,
    promised: Option<Promise>,
    wanted: ConfigPosition,
) -> Result<(), ConsentRefusal> {
    if let Some(p) = promised.filter(|p| p.epoch > wanted.epoch) {
        return Err(ConsentRefusal::Promised {
            promised: p.epoch,
            epoch: wanted.epoch,
        });
    }
    let ours = config.position();
    if ours.epoch > wanted.epoch {
        return Err(ConsentRefusal::Superseded { ours });
    }
    if ours < wanted {
        return Err(ConsentRefusal::NotYet { ours });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::{member, three};

    fn vote(epoch: u64, candidate: u64, config: &ClusterConfig) -> VoteRequest {
        VoteRequest {
            epoch,
            candidate: OriginId(candidate),
            position: config.position(),
        }
    }

    #[test]
    fn quorums_always_meet() {
        let mut config =
            ClusterConfig::new("c".into(), "r".into(), "t".into(), member("a", 1, true));
        for n in 1..=9u64 {
            if n > 1 {
                config = config
                    .with_member(member(&format!("m{n}"), n, false))
                    .unwrap();
            }
            let len = config.members.len();
            assert!(config.promotion_quorum() * 2 > len, "majority of {len}");
            assert!(
                config.promotion_quorum() + config.change_quorum() > len,
                "quorums of {len} meet"
            );
            assert!(config.change_quorum() >= 1);
        }
        assert_eq!(three().change_quorum(), 2);
    }

    #[test]
    fn a_newer_epoch_supersedes_any_version() {
        let old = three();
        let mut promoted = old.with_promoted("b", 1).unwrap();
        assert!(promoted.supersedes(&old));
        let mut grown = old.with_member(member("d", 4, false)).unwrap();
        grown = grown.with_member(member("e", 5, false)).unwrap();
        assert!(promoted.supersedes(&grown), "epoch first");
        promoted.version = 1;
        assert!(promoted.supersedes(&grown));
    }

    #[test]
    fn one_grant_per_epoch_recorded_and_repeatable() {
        let config = three();
        let first = decide_vote(&config, None, &vote(1, 2, &config)).unwrap();
        assert_eq!(
            first,
            Promise {
                epoch: 1,
                candidate: OriginId(2)
            }
        );
        assert_eq!(
            decide_vote(&config, Some(first), &vote(1, 2, &config)),
            Ok(first)
        );
        assert_eq!(
            decide_vote(&config, Some(first), &vote(1, 3, &config)),
            Err(ConsentRefusal::PromisedOther {
                epoch: 1,
                candidate: OriginId(2)
            })
        );
        assert!(decide_vote(&config, Some(first), &vote(2, 3, &config)).is_ok());
    }

    #[test]
    fn a_candidate_behind_or_of_an_old_epoch_is_refused() {
        let config = three();
        let older = config.without_member("c").unwrap().0;
        let behind = VoteRequest {
            epoch: 1,
            candidate: OriginId(2),
            position: ConfigPosition {
                epoch: 0,
                version: 2,
            },
        };
        assert_eq!(
            decide_vote(&config, None, &behind),
            Err(ConsentRefusal::CandidateBehind {
                ours: config.position()
            })
        );
        let promoted = config.with_promoted("b", 3).unwrap();
        assert_eq!(
            decide_vote(&promoted, None, &vote(2, 3, &promoted)),
            Err(ConsentRefusal::StaleEpoch { known: 3 })
        );
        assert_eq!(
            decide_vote(&config, None, &vote(1, 9, &config)),
            Err(ConsentRefusal::NotAMember {
                candidate: OriginId(9)
            })
        );
        let _ = older;
    }

    #[test]
    fn a_member_that_promised_confirms_no_change_of_the_old_epoch() {
        let config = three();
        let grown = config.with_member(member("d", 4, false)).unwrap();
        assert_eq!(decide_confirmation(&grown, None, grown.position()), Ok(()));
        assert_eq!(
            decide_confirmation(&config, None, grown.position()),
            Err(ConsentRefusal::NotYet {
                ours: config.position()
            })
        );
        let promise = Promise {
            epoch: 1,
            candidate: OriginId(2),
        };
        assert_eq!(
            decide_confirmation(&grown, Some(promise), grown.position()),
            Err(ConsentRefusal::Promised {
                promised: 1,
                epoch: 0
            })
        );
        let promoted = config.with_promoted("b", 1).unwrap();
        assert_eq!(
            decide_confirmation(&promoted, None, grown.position()),
            Err(ConsentRefusal::Superseded {
                ours: promoted.position()
            })
        );
        // The promoted instance's own changes are confirmed by those that promised it.
        let next = promoted.with_member(member("d", 4, false)).unwrap();
        assert_eq!(
            decide_confirmation(&next, Some(promise), next.position()),
            Ok(())
        );
    }

    #[test]
    fn refusals_travel_as_json_with_a_code() {
        let refusals = [
            ConsentRefusal::PromisedOther {
                epoch: 2,
                candidate: OriginId(7),
            },
            ConsentRefusal::StaleEpoch { known: 3 },
            ConsentRefusal::NotAMember {
                candidate: OriginId(9),
            },
            ConsentRefusal::NotYet {
                ours: ConfigPosition {
                    epoch: 1,
                    version: 4,
                },
            },
        ];
        for refusal in refusals {
            let json = serde_json::to_string(&refusal).unwrap();
            assert!(json.contains("\"code\""), "{json}");
            assert_eq!(
                serde_json::from_str::<ConsentRefusal>(&json).unwrap(),
                refusal
            );
        }
    }

    /// Every interleaving of one change by the old controlling instance and one
    /// promotion, each needing its quorum of three members, lets at most one succeed.
    #[test]
    fn a_change_and_a_promotion_never_both_succeed() {
        let base = three();
        let change = base.with_member(member("d", 4, false)).unwrap();
        // Each member: does it see the change's configuration before it is asked to
        // vote (`holds`), and is it asked to vote before it is asked to confirm?
        for holds in 0..8u8 {
            for vote_first in 0..8u8 {
                let mut configs = [base.clone(), base.clone(), base.clone()];
                let mut promises: [Option<Promise>; 3] = [None; 3];
                let mut votes = 0;
                let mut confirms = 0;
                for i in 0..3 {
                    let candidate = VoteRequest {
                        epoch: 1,
                        candidate: OriginId(2),
                        position: base.position(),
                    };
                    let ask_vote = |config: &ClusterConfig, promised: &mut Option<Promise>| {
                        decide_vote(config, *promised, &candidate)
                            .map(|p| *promised = Some(p))
                            .is_ok()
                    };
                    if holds & (1 << i) != 0 {
                        configs[i] = change.clone();
                    }
                    if vote_first & (1 << i) != 0 {
                        votes += ask_vote(&configs[i], &mut promises[i]) as usize;
                        confirms += decide_confirmation(&configs[i], promises[i], change.position())
                            .is_ok() as usize;
                    } else {
                        confirms += decide_confirmation(&configs[i], promises[i], change.position())
                            .is_ok() as usize;
                        votes += ask_vote(&configs[i], &mut promises[i]) as usize;
                    }
                }
                assert!(
                    !(votes >= base.promotion_quorum() && confirms >= base.change_quorum()),
                    "holds {holds:03b}, vote first {vote_first:03b}: {votes} votes and {confirms} confirmations"
                );
            }
        }
    }
}
