//! Why an instance refuses a peer's replication call, and what a pull stream serves.

use crate::cluster::ClusterConfig;
use crate::stamp::OriginId;
use crate::version_vector::VersionVector;
use serde::{Deserialize, Serialize};

/// Why an instance refuses a peer's replication call: the JSON body of such a refusal,
/// matched on `code`, never on the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRefusal {
    pub code: RefusalCode,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The caller was removed from the cluster.
    Removed,
    /// The caller is not (or not yet, as far as this instance knows) a member.
    NotAMember,
    /// The caller was away longer than the log is kept: this instance takes nothing
    /// more from it and gives it nothing more; it must be removed and grown again.
    Expired,
    /// What the caller lacks is no longer in this instance's log.
    LogTruncated,
    /// This instance knows its own store is damaged: it gives no repair snapshot.
    Damaged,
}

impl PeerRefusal {
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        PeerRefusal {
            code,
            message: message.into(),
        }
    }
}

/// What an instance serving a pull stream knows of its own place in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnStanding {
    /// A member, as far as it knows.
    Member,
    /// It knows it was away longer than the log is kept (expired).
    Expired,
    /// It knows it was removed.
    Removed,
}

/// Whether `caller` may pull from this instance, whose configuration is `config`, whose
/// view has (`expired`) or has not expired the caller, and which stands as `own`.
///
/// Rules it keeps:
/// - a removed member is told so (it then stops for good), an unknown one only that it
///   is not a member (it may be one in a configuration this instance has not seen yet);
/// - an expired member is told so, and gets nothing more: what it lacks may be gone
///   from the log;
/// - except by an instance that knows it was expired itself: it was the one away, and
///   hands its transactions over to whoever pulls, as long as both are members (the
///   members keep the frontier at its promise until it is removed, so what it sends
///   cannot undo newer writes);
/// - an instance that knows it was removed serves any caller with the cluster's token
///   (members it never knew included): it hands over its own transactions only (see
///   [`StreamCursor::own_only`]) — the members keep the frontier at its promise while
///   it is on the hand-over list (`ClusterConfig::handing_over`).
pub fn admit_puller(
    config: &ClusterConfig,
    caller: OriginId,
    expired: bool,
    own: OwnStanding,
) -> Result<(), PeerRefusal> {
    if own == OwnStanding::Removed {
        return Ok(());
    }
    if !config.is_member(caller) {
        return Err(if config.removed.contains(&caller) {
            PeerRefusal::new(
                RefusalCode::Removed,
                format!("instance {caller} was removed from the cluster"),
            )
        } else {
            PeerRefusal::new(
                RefusalCode::NotAMember,
                format!("instance {caller} is not a member of the cluster"),
            )
        });
    }
    if expired && own != OwnStanding::Expired {
        let who = config
            .member(caller)
            .map_or_else(|| caller.to_string(), |m| m.name.clone());
        return Err(PeerRefusal::new(
            RefusalCode::Expired,
            format!(
                "{who} was away longer than the log is kept: it must be removed and grown again"
            ),
        ));
    }
    Ok(())
}

/// What one pull stream still has to send to the peer that opened it.
///
/// Rules it keeps:
/// - each transaction the peer lacks is sent once, in log order (which is per-origin
///   sequence order);
/// - the peer's own transactions are sent back only up to what this instance held of
///   them when the stream opened: those the peer lost in a crash (its log's torn tail),
///   never an echo of the ones it writes meanwhile.
#[derive(Clone, Debug)]
pub struct StreamCursor {
    peer: OriginId,
    lost_by_peer: u64,
    sent: VersionVector,
    /// Only this origin's transactions go out (a removed instance handing over its own).
    only: Option<OriginId>,
}

impl StreamCursor {
    /// A stream for `peer`, which has `theirs`, served by an instance that has `ours`.
    pub fn new(peer: OriginId, theirs: VersionVector, ours: &VersionVector) -> Self {
        StreamCursor {
            peer,
            lost_by_peer: ours.get(peer),
            sent: theirs,
            only: None,
        }
    }

    /// The same stream carrying `origin`'s transactions only: a removed instance hands
    /// over its own, and relays nothing (what it holds of others' the members have, or
    /// it may be older than they can still take).
    pub fn own_only(mut self, origin: OriginId) -> Self {
        self.only = Some(origin);
        self
    }

    /// Whether transaction `seq` of `origin` goes out on this stream.
    pub fn wants(&self, origin: OriginId, seq: u64) -> bool {
        self.only.is_none_or(|only| only == origin)
            && (origin != self.peer || seq <= self.lost_by_peer)
            && !self.sent.covers(origin, seq)
    }

    /// Transaction `seq` of `origin` went out.
    pub fn sent(&mut self, origin: OriginId, seq: u64) {
        self.sent.advance(origin, seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Member;
    use crate::stamp::HlcTime;

    fn config() -> ClusterConfig {
        let member = |name: &str, origin| Member {
            name: name.into(),
            origin: OriginId(origin),
            address: String::new(),
            repository: name.into(),
            controlling: origin == 1,
            added_at: HlcTime(0),
        };
        ClusterConfig::new("c".into(), "r".into(), "t".into(), member("a", 1))
            .with_member(member("b", 2))
            .unwrap()
            .with_member(member("c", 3))
            .unwrap()
            .without_member("c")
            .unwrap()
            .0
    }

    #[test]
    fn removed_unknown_and_expired_callers_are_refused_with_their_code() {
        let config = config();
        let member = OwnStanding::Member;
        assert_eq!(admit_puller(&config, OriginId(2), false, member), Ok(()));
        let code = |caller, expired| {
            admit_puller(&config, OriginId(caller), expired, member)
                .unwrap_err()
                .code
        };
        assert_eq!(code(3, false), RefusalCode::Removed);
        assert_eq!(code(9, false), RefusalCode::NotAMember);
        assert_eq!(code(2, true), RefusalCode::Expired);
        // An instance that knows it was expired itself hands its transactions over to
        // any member, even one it expired; never to a removed or unknown one.
        let expired = OwnStanding::Expired;
        assert_eq!(admit_puller(&config, OriginId(2), true, expired), Ok(()));
        assert_eq!(
            admit_puller(&config, OriginId(3), false, expired)
                .unwrap_err()
                .code,
            RefusalCode::Removed
        );
        // One that knows it was removed hands its own over to any caller.
        for caller in [2, 3, 9] {
            let removed = OwnStanding::Removed;
            assert_eq!(
                admit_puller(&config, OriginId(caller), true, removed),
                Ok(())
            );
        }
    }

    #[test]
    fn a_removed_instance_hands_over_its_own_transactions_only() {
        let mut ours = VersionVector::new();
        ours.advance(OriginId(1), 5);
        ours.advance(OriginId(3), 7);
        let mut theirs = VersionVector::new();
        theirs.advance(OriginId(3), 4);
        let cursor = StreamCursor::new(OriginId(2), theirs, &ours).own_only(OriginId(3));
        assert!(!cursor.wants(OriginId(1), 1), "nothing of others'");
        assert!(!cursor.wants(OriginId(3), 4));
        assert!(cursor.wants(OriginId(3), 5) && cursor.wants(OriginId(3), 7));
    }

    #[test]
    fn a_stream_sends_what_the_peer_lacks_and_its_own_lost_transactions_only() {
        let mut ours = VersionVector::new();
        ours.advance(OriginId(1), 5);
        ours.advance(OriginId(2), 3);
        let mut theirs = VersionVector::new();
        theirs.advance(OriginId(1), 4);
        theirs.advance(OriginId(2), 1);
        let mut cursor = StreamCursor::new(OriginId(2), theirs, &ours);
        assert!(!cursor.wants(OriginId(1), 4));
        assert!(cursor.wants(OriginId(1), 5));
        cursor.sent(OriginId(1), 5);
        assert!(!cursor.wants(OriginId(1), 5), "sent once");
        // Its own 2 and 3, which it lost; not 4, which it wrote after asking.
        assert!(cursor.wants(OriginId(2), 2) && cursor.wants(OriginId(2), 3));
        assert!(!cursor.wants(OriginId(2), 4));
    }
}
