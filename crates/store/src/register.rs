//! The store's last-writer register: [`quadmesh_repl::Register`] over oxigraph quads,
//! with [`QuadPattern`]s as its range tombstones. The rules (and their property tests)
//! live in `quadmesh-repl`, where the simulation uses the same register.

use crate::pattern::QuadPattern;

pub use quadmesh_repl::LastWrite;

/// The per-quad last-writer register with range tombstones of one repository.
pub type Register = quadmesh_repl::Register<QuadPattern>;
