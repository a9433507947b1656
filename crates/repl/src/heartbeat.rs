use crate::frame::{Entry, EntryKind};
use crate::stamp::{HlcTime, OriginId};
use crate::version_vector::VersionVector;
use serde::{Deserialize, Serialize};

/// What a member says of itself on every pull stream it serves, after it has sent all
/// its transactions stamped before `clock`: its clock (a promise that its later
/// transactions are newer) and what it has applied.
///
/// JSON inside a frame. Fields it does not know are ignored, so heartbeats of older
/// senders (which also carried an unused `config_version`) still read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub origin: OriginId,
    pub clock: HlcTime,
    pub version_vector: VersionVector,
    /// The digest of the sender's content at `version_vector` (anti-entropy); absent
    /// from senders that keep none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<crate::digest::ContentDigest>,
    /// The configuration the sender held when it took `version_vector` (read together,
    /// under its writer lock; a configuration is durable before it is held, and so is
    /// everything logged before it). A member removed by a configuration stops holding
    /// the frontier only once every member was heard under that one or a newer one
    /// ([`crate::ClusterView::on_heartbeat_under`]). Absent from older senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<crate::promotion::ConfigPosition>,
}

impl Heartbeat {
    pub fn to_entry(&self) -> Entry {
        Entry {
            kind: EntryKind::Heartbeat,
            origin: self.origin,
            seq: 0,
            time: self.clock,
            payload: serde_json::to_vec(self).expect("a heartbeat serialises"),
        }
    }

    pub fn from_entry(entry: &Entry) -> Option<Self> {
        if entry.kind != EntryKind::Heartbeat {
            return None;
        }
        serde_json::from_slice(&entry.payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_round_trips_and_one_from_an_older_sender_still_reads() {
        let mut version_vector = VersionVector::new();
        version_vector.advance(OriginId(3), 7);
        let heartbeat = Heartbeat {
            origin: OriginId(3),
            clock: HlcTime(99),
            version_vector,
            digest: None,
            config: Some(crate::promotion::ConfigPosition {
                epoch: 2,
                version: 5,
            }),
        };
        assert_eq!(
            Heartbeat::from_entry(&heartbeat.to_entry()),
            Some(heartbeat.clone())
        );
        let mut older = heartbeat.to_entry();
        older.payload =
            br#"{"origin":3,"clock":99,"version_vector":{"3":7},"config_version":4}"#.to_vec();
        let from_older = Heartbeat {
            config: None,
            ..heartbeat
        };
        assert_eq!(Heartbeat::from_entry(&older), Some(from_older));
    }
}
