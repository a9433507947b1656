//! Replication logic of quadmesh, free of I/O.
//!
//! This crate owns the notions every instance of a cluster must agree on: who an
//! origin is, how a write is stamped ([`Stamp`], from a [`HybridClock`]), and what an
//! instance has received ([`VersionVector`]). It never touches the disk, the network or
//! a clock it was not handed; everything here is testable with plain values.

mod clock;
pub mod frame;
mod stamp;
mod version_vector;

pub use clock::{ClockError, HybridClock, PhysicalClock, SystemClock};
pub use frame::{Entry, EntryKind, FrameError};
pub use stamp::{HlcTime, OriginId, Stamp};
pub use version_vector::VersionVector;
