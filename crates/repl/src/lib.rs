//! Replication logic of quadmesh, free of I/O.
//!
//! This crate owns the notions every instance of a cluster must agree on: who an
//! origin is, how a write is stamped ([`Stamp`], from a [`HybridClock`]), and what an
//! instance has received ([`VersionVector`]). It never touches the disk, the network or
//! a clock it was not handed; everything here is testable with plain values.

mod admission;
mod clock;
mod clock_fence;
mod cluster;
mod digest;
pub mod frame;
mod grow_sequence;
mod hand_over;
mod heartbeat;
pub mod log_heal;
mod lost_tail;
mod maintenance;
pub mod membership_engine;
mod promotion;
pub mod pull;
mod recovery;
mod refusal;
mod register;
mod removal_belief;
mod removal_sequence;
mod repair_plan;
mod serve;
mod stamp;
mod stop_sequence;
mod token;
mod version_vector;
mod view;
pub mod wire;

pub use admission::{admission, Admission};
pub use clock::{ClockError, HybridClock, PhysicalClock, Refusals, SystemClock};
pub use clock_fence::{ClockFence, ClockSample, FenceVerdict, OwnClock};
pub use cluster::{ClusterConfig, CommitDefaults, Durability, HandOver, Member, MembershipError};
pub use digest::ContentDigest;
pub use frame::{Entry, EntryKind, FrameError};
pub use grow_sequence::{GrowCommand, GrowEnd, GrowEvent, GrowSequence};
pub use hand_over::{decide_hand_over, HandOverDecision, HandOverEnd, RemovedAnswer};
pub use heartbeat::Heartbeat;
pub use lost_tail::AwaitingPeers;
pub use maintenance::{
    maintain, pull_membership, pulled_peers, refuses_writes_when_expired, started_by, stopped_here,
    told_config_in_order, Maintenance, PullStanding,
};
pub use membership_engine::{
    Acceptor, AcceptorCommand, Change, CommitError, ProposalError, Proposer, ProposerCommand,
    ProposerEvent, Question, Withheld,
};
pub use promotion::{
    decide_confirmation, decide_vote, ConfigPosition, ConsentRefusal, Promise, VoteRequest,
};
pub use pull::{PullCommand, PullEvent, PullFailure, Puller};
pub use recovery::{
    judge_answer, search_over, snapshot_is_ours, FoundAnswer, RecoveryVerdict, LOOK_FOR_MS,
};
pub use refusal::{admit_puller, OwnStanding, PeerRefusal, RefusalCode, StreamCursor};
pub use register::{LastWrite, RangePattern, Register, Saved};
pub use removal_belief::{
    notice_confirmed, notice_to_confirm, removal_believed, MemberWord, RemovalDoubt, RemovalWords,
};
pub use removal_sequence::{
    RemovalCommand, RemovalEvent, RemovalRequest, RemovalSequence, HOLD_ANSWER_WITHIN_MS,
    HOLD_LOOK_EVERY_MS, HOLD_MARGIN_MS,
};
pub use repair_plan::{in_minority, repair_cause, repair_sources, RepairCause};
pub use serve::{ServeCommand, ServeEvent, StreamServer, SEND_TIMEOUT_MS};
pub use stamp::{HlcTime, OriginId, Stamp};
pub use stop_sequence::{
    StopCommand, StopEnd, StopEvent, StopSequence, STOP_ASK_AGAIN_MS, STOP_ASK_WITHIN_MS,
};
pub use token::{CausalToken, TokenError};
pub use version_vector::VersionVector;
pub use view::{ClusterView, PeerProgress, Unreplicated};
