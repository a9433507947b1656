//! Whether this instance serves traffic (`/ready`), set by the roles and recovery.

/// Whether this instance serves traffic yet, and if not, why.
#[derive(Clone, Debug)]
pub enum Readiness {
    Ready,
    NotReady(String),
}
