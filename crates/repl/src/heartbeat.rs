use crate::frame::{Entry, EntryKind};
use crate::stamp::{HlcTime, OriginId};
use crate::version_vector::VersionVector;
use serde::{Deserialize, Serialize};

/// What a member says of itself on every pull stream it serves, after it has sent all
/// its transactions stamped before `clock`: its clock (a promise that its later
/// transactions are newer) and what it has applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub origin: OriginId,
    pub clock: HlcTime,
    pub version_vector: VersionVector,
    pub config_version: u64,
    /// The digest of the sender's content at `version_vector` (anti-entropy); absent
    /// from senders that keep none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<crate::digest::ContentDigest>,
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
