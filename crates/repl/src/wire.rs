//! The messages instances and the CLI exchange as JSON, defined once: the server that
//! answers, the peers that ask it and the CLI all read and write these types, so that a
//! field renamed on one side is a compile error on the other, and refusals are matched
//! by an enum, never by text.
//!
//! Rules they keep: the JSON is exactly what `repl/status` and refusals have always
//! carried (field names, string values), so scripts, the UI and older peers read it as
//! before.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Header naming, for a program, why a request was refused ([`ErrorCode`]).
pub const ERROR_CODE_HEADER: &str = "x-quadmesh-error";

/// Why a request was refused, for a program to act on (the `x-quadmesh-error` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NameTaken,
    PlaceTaken,
    UnknownInstance,
    RemovingControlling,
    OriginReused,
    AlreadyInCluster,
    NotInCluster,
    NotControlling,
    NotTheControlling,
    Unreplicated,
    ChangedMeanwhile,
    StoppingControlling,
    AlreadyStopped,
    NotStopped,
    NotHandingOver,
    DurabilityUnmet,
    Removed,
    Expired,
    Leaving,
    ClockFenced,
    LogHealing,
    /// The server holds no repository of that name at all (asked by a peer).
    NotReplicated,
}

impl ErrorCode {
    const ALL: [ErrorCode; 22] = [
        ErrorCode::NameTaken,
        ErrorCode::PlaceTaken,
        ErrorCode::UnknownInstance,
        ErrorCode::RemovingControlling,
        ErrorCode::OriginReused,
        ErrorCode::AlreadyInCluster,
        ErrorCode::NotInCluster,
        ErrorCode::NotControlling,
        ErrorCode::NotTheControlling,
        ErrorCode::Unreplicated,
        ErrorCode::ChangedMeanwhile,
        ErrorCode::StoppingControlling,
        ErrorCode::AlreadyStopped,
        ErrorCode::NotStopped,
        ErrorCode::NotHandingOver,
        ErrorCode::DurabilityUnmet,
        ErrorCode::Removed,
        ErrorCode::Expired,
        ErrorCode::Leaving,
        ErrorCode::ClockFenced,
        ErrorCode::LogHealing,
        ErrorCode::NotReplicated,
    ];

    /// The code as the header carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::PlaceTaken => "place_taken",
            ErrorCode::UnknownInstance => "unknown_instance",
            ErrorCode::RemovingControlling => "removing_controlling",
            ErrorCode::OriginReused => "origin_reused",
            ErrorCode::AlreadyInCluster => "already_in_cluster",
            ErrorCode::NotInCluster => "not_in_cluster",
            ErrorCode::NotControlling => "not_controlling",
            ErrorCode::NotTheControlling => "not_the_controlling",
            ErrorCode::Unreplicated => "unreplicated",
            ErrorCode::ChangedMeanwhile => "changed_meanwhile",
            ErrorCode::StoppingControlling => "stopping_controlling",
            ErrorCode::AlreadyStopped => "already_stopped",
            ErrorCode::NotStopped => "not_stopped",
            ErrorCode::NotHandingOver => "not_handing_over",
            ErrorCode::DurabilityUnmet => "durability_unmet",
            ErrorCode::Removed => "removed",
            ErrorCode::Expired => "expired",
            ErrorCode::Leaving => "leaving",
            ErrorCode::ClockFenced => "clock_fenced",
            ErrorCode::LogHealing => "log_healing",
            ErrorCode::NotReplicated => "not_replicated",
        }
    }

    /// The code a header carries, if it is one of ours.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Controlling,
    Copy,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Controlling => "controlling",
            Role::Copy => "copy",
        })
    }
}

/// What the answering instance sees of a member's replication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// The answering instance itself (`self`).
    Myself,
    /// The answering instance itself, removed from the cluster (`removed`).
    Removed,
    /// Stopped by an operator (`repl/stop`).
    Stopped,
    /// The answering instance is stopped, so it replicates with nobody.
    NotReplicating,
    /// A stream from it is open and something arrived lately.
    Connected,
    /// No stream from it, with the reason when one is known.
    Disconnected(Option<String>),
    /// What the pull engine shows of it otherwise (a refusal, a hold), in words.
    Problem(String),
}

impl PeerState {
    const NOT_REPLICATING: &'static str = "not replicating: this instance is stopped";

    /// The first word, for a class in a page.
    pub fn class(&self) -> String {
        self.to_string()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_owned()
    }
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerState::Myself => f.write_str("self"),
            PeerState::Removed => f.write_str("removed"),
            PeerState::Stopped => f.write_str("stopped"),
            PeerState::NotReplicating => f.write_str(Self::NOT_REPLICATING),
            PeerState::Connected => f.write_str("connected"),
            PeerState::Disconnected(None) => f.write_str("disconnected"),
            PeerState::Disconnected(Some(why)) => write!(f, "disconnected: {why}"),
            PeerState::Problem(text) => f.write_str(text),
        }
    }
}

impl From<&str> for PeerState {
    fn from(text: &str) -> Self {
        match text {
            "self" => PeerState::Myself,
            "removed" => PeerState::Removed,
            "stopped" => PeerState::Stopped,
            PeerState::NOT_REPLICATING => PeerState::NotReplicating,
            "connected" => PeerState::Connected,
            "disconnected" => PeerState::Disconnected(None),
            other => match other.strip_prefix("disconnected: ") {
                Some(why) => PeerState::Disconnected(Some(why.to_owned())),
                None => PeerState::Problem(other.to_owned()),
            },
        }
    }
}

impl Serialize for PeerState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(PeerState::from(text.as_str()))
    }
}

/// The last comparison of a peer's contents with ours at a common version vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum PeerComparison {
    /// Contents agreed at a common version vector, at `at_ms`.
    Agrees { at_ms: u64 },
    /// Contents differed at a common version vector, first seen at `since_ms`.
    Differs {
        since_ms: u64,
        version_vector: HashMap<String, u64>,
        ours: String,
        theirs: String,
    },
}

/// One member as `repl/status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub name: String,
    pub address: String,
    /// Its repository's name on that server (instances of a cluster may hold it under
    /// different names).
    pub repository: String,
    pub role: Role,
    pub state: PeerState,
    /// Whether it is stopped (`repl/stop`): nothing replicates to or from it until it
    /// is started again.
    #[serde(default)]
    pub stopped: bool,
    pub origin: String,
    pub version_vector: HashMap<String, u64>,
    pub lag_transactions: u64,
    pub lag_ms: u64,
    /// Set while it does not keep up: the oldest transaction it lacks is older than the
    /// server's falling-behind bound (absent for itself and for members keeping up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<String>,
    /// Milliseconds since this instance last heard from it (0 for itself).
    pub last_contact_ms_ago: Option<u64>,
    /// The answering instance's physical clock minus this member's (ms), by a clock
    /// probe that still counts for the clock fence (none yet, or for itself: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
    /// The last comparison of its contents with ours at a common version vector
    /// (none yet, or for itself: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<PeerComparison>,
}

/// `repl/status`: a repository's cluster as the answering instance sees it.
/// The commit settings a commit without `x-repl-settings` gets, as AllegroGraph names
/// them (times in seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitSettingsView {
    /// `min`, `quorum`, `max` or a number of instances.
    pub durability: String,
    pub distributed_transaction_timeout: f64,
    /// None: not set.
    pub transaction_latency_count: Option<u64>,
    pub transaction_latency_timeout: f64,
}

/// What `repl/promote` answers: the configuration the promotion put in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promoted {
    pub epoch: u64,
    pub config_version: u64,
    /// The controlling instance's name (the promoted one).
    pub controlling: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub cluster: String,
    pub repository: String,
    pub config_version: u64,
    /// The controlling instance's epoch (raised by each promotion).
    pub config_epoch: u64,
    /// The instance that answered.
    pub instance: String,
    pub removed: bool,
    /// Whether the answering instance is stopped (`repl/stop`).
    #[serde(default)]
    pub stopped: bool,
    /// What commits without `x-repl-settings` get (`repl/settings`, else quadmesh's
    /// defaults), as AllegroGraph names them (times in seconds).
    #[serde(default)]
    pub settings: Option<CommitSettingsView>,
    /// Why this instance refuses writes to the repository, when it does (it was away
    /// longer than the log is kept, or removed).
    pub writes_refused: Option<String>,
    /// Last-writer register entries kept by the answering instance.
    pub register_entries: usize,
    /// Range tombstones (deletes by pattern) kept by the answering instance.
    pub register_tombstones: usize,
    /// Transactions in the answering instance's log.
    pub log_entries: usize,
    /// Whether the answering instance's contents were last seen to differ from a
    /// peer's at the same version vector (see `contents` of each instance), or its
    /// own store was found damaged.
    pub diverged: bool,
    /// Whether a scrub found the answering instance's store differing from what its
    /// write path put there, not yet repaired (repairs run without an operator).
    pub store_damaged: bool,
    /// Whether the answering instance's replication log was found damaged inside and is
    /// not healed yet: where, and the transactions it fetches back from the members
    /// (it takes no local writes and serves no streams meanwhile).
    #[serde(default)]
    pub log_healing: Option<LogHealingView>,
    /// Transactions put back into the answering instance's log from the members since
    /// it started.
    #[serde(default)]
    pub log_frames_put_back: u64,
    /// How far ahead of ours a peer clock was when last refused (in the last 5 s), and
    /// how many peer clock readings were refused since the start.
    pub peer_clock_ahead_ms: Option<u64>,
    pub peer_clock_refusals: u64,
    /// Why the clock fence refuses local writes at the answering instance (its clock is
    /// not known to be within the maximum offset of a majority of the members), if it
    /// does; also in `writesRefused`.
    #[serde(default)]
    pub clock_fenced: Option<String>,
    /// The maximum clock offset between members (ms).
    pub max_clock_offset_ms: u64,
    /// The members that do not keep up with this instance's transactions (see each
    /// instance's `behind`).
    #[serde(default)]
    pub replicas_behind: Vec<String>,
    /// Members removed (by force) before they could hand over what only they held: the
    /// cluster pulls their own transactions from them when they are heard again, and
    /// holds its frontier for them, until they did or the log's retention of their
    /// removal passed.
    #[serde(default)]
    pub handing_over: Vec<HandOverView>,
    pub instances: Vec<InstanceStatus>,
}

/// A removed member still to hand over what only it held, as status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandOverView {
    pub name: String,
    pub address: String,
    /// Its own transactions held by the answering instance.
    pub held: u64,
    /// When it was removed (ms since the epoch).
    pub removed_at_ms: u64,
}

impl ClusterStatus {
    /// The controlling member, as this status names it.
    pub fn controlling(&self) -> Option<&InstanceStatus> {
        self.instances.iter().find(|i| i.role == Role::Controlling)
    }
}

/// A damaged log's healing, as status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogHealingView {
    /// Each damaged span: file, offset and length in bytes.
    pub holes: Vec<LogHoleView>,
    /// The transactions to fetch back, as `origin/seq`.
    pub missing: Vec<String>,
    /// Whether transactions after the damage wait in the log to be applied.
    pub replay_paused: bool,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHoleView {
    pub file: String,
    pub offset: u64,
    pub bytes: u64,
}

/// What `PUT /repositories/NAME/repl/hold?seconds=N` answers (the controlling
/// instance asks a member it is about to remove): the member's version vector, taken
/// once it stopped acknowledging local writes for the time asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovalHold {
    pub version_vector: crate::VersionVector,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_reads_back_and_unknown_text_is_none() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("not a code"), None);
    }

    #[test]
    fn peer_states_keep_their_words_both_ways() {
        for text in [
            "self",
            "removed",
            "stopped",
            "not replicating: this instance is stopped",
            "connected",
            "disconnected",
            "disconnected: no frame for 2.1 s",
            "held: the peer's clock is 9000 ms ahead",
        ] {
            let state = PeerState::from(text);
            assert_eq!(state.to_string(), text);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<PeerState>(&json).unwrap(), state);
        }
        assert_eq!(
            PeerState::from("disconnected: 409: healing").class(),
            "disconnected"
        );
        assert!(matches!(PeerState::from("connected"), PeerState::Connected));
    }

    #[test]
    fn a_status_reads_back_as_written_and_names_its_controlling_member() {
        let json = serde_json::json!({
            "cluster": "c", "repository": "r", "configVersion": 3, "configEpoch": 1,
            "instance": "a", "removed": false, "stopped": false,
            "settings": {"durability": "min", "distributedTransactionTimeout": 10.0,
                "transactionLatencyCount": null, "transactionLatencyTimeout": 10.0},
            "writesRefused": null,
            "registerEntries": 0, "registerTombstones": 0, "logEntries": 4,
            "diverged": false, "storeDamaged": false, "logHealing": null,
            "logFramesPutBack": 0, "peerClockAheadMs": null, "peerClockRefusals": 0,
            "clockFenced": null, "maxClockOffsetMs": 500, "replicasBehind": [],
            "handingOver": [],
            "instances": [
                {"name": "a", "address": "a:1", "repository": "r", "role": "controlling",
                 "state": "self", "stopped": false, "origin": "1", "versionVector": {"1": 4},
                 "lagTransactions": 0, "lagMs": 0, "lastContactMsAgo": 0},
                {"name": "b", "address": "b:1", "repository": "s", "role": "copy",
                 "state": "disconnected: no frame for 2.5 s", "stopped": false, "origin": "2",
                 "versionVector": {}, "lagTransactions": 4, "lagMs": 0,
                 "lastContactMsAgo": null,
                 "contents": {"result": "agrees", "at_ms": 7}}
            ]
        });
        let status: ClusterStatus = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(status.controlling().unwrap().name, "a");
        assert_eq!(
            status.instances[1].contents,
            Some(PeerComparison::Agrees { at_ms: 7 })
        );
        assert_eq!(serde_json::to_value(&status).unwrap(), json);
    }
}
