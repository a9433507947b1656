//! Why the server's credentials cannot be set up (a leaf: `error.rs` maps it, `auth.rs`
//! returns it).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no superuser is recorded in {0} yet: give one with --user and --password (or QUADMESH_USER with QUADMESH_PASSWORD or QUADMESH_PASSWORD_FILE)")]
    NoSuperuser(PathBuf),
    #[error("the superuser name must not be empty or contain ':'")]
    InvalidUser,
    #[error("the superuser password must not be empty")]
    EmptyPassword,
    #[error("cannot read or write {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("password hashing failed: {0}")]
    Hash(String),
}
