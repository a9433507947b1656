//! Sessions: AllegroGraph's dedicated transactions, on the main port.

use quadmesh_store::{PendingChanges, Repository};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Separates a session id's random part from the origin id of the instance holding it.
pub const OWNER_SEPARATOR: char = '-';

/// The origin id of the instance that holds session `id`, as the id says.
pub fn owner_of(id: &str) -> Option<quadmesh_repl::OriginId> {
    let (random, origin) = id.split_once(OWNER_SEPARATOR)?;
    if random.len() != 32 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(origin, 16)
        .ok()
        .map(quadmesh_repl::OriginId)
}

/// One open session: its repository, its uncommitted changes and its lifetime.
/// Every request to the session (a ping included) restarts the lifetime.
pub struct Session {
    pub id: String,
    pub repository: Arc<Repository>,
    pub pending: Mutex<PendingChanges>,
    auto_commit: AtomicBool,
    lifetime: Duration,
    deadline: Mutex<Instant>,
}

impl Session {
    pub fn auto_commit(&self) -> bool {
        self.auto_commit.load(Ordering::SeqCst)
    }

    pub fn set_auto_commit(&self, on: bool) {
        self.auto_commit.store(on, Ordering::SeqCst);
    }

    fn touch(&self) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now() + self.lifetime;
    }

    fn expired(&self, now: Instant) -> bool {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) <= now
    }
}

/// The open sessions of a server. Expired sessions are removed by [`SessionRegistry::reap`]
/// (and their pending changes dropped: an expired session is rolled back).
#[derive(Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionRegistry {
    pub fn open(
        &self,
        repository: Arc<Repository>,
        auto_commit: bool,
        lifetime: Duration,
    ) -> Arc<Session> {
        // The id names the instance that holds the session (its origin id for the
        // repository), so that any other instance of the cluster can forward to it.
        let id = format!(
            "{:032x}{OWNER_SEPARATOR}{:x}",
            rand::random::<u128>(),
            repository.origin().0
        );
        let session = Arc::new(Session {
            id: id.clone(),
            repository,
            pending: Mutex::new(PendingChanges::new()),
            auto_commit: AtomicBool::new(auto_commit),
            lifetime,
            deadline: Mutex::new(Instant::now() + lifetime),
        });
        self.lock().insert(id, session.clone());
        session
    }

    /// The session, if open; using it restarts its lifetime.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.lock().get(id).cloned()?;
        if session.expired(Instant::now()) {
            return None;
        }
        session.touch();
        Some(session)
    }

    pub fn close(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Removes expired sessions and says how many.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|id, s| {
            let keep = !s.expired(now);
            if !keep {
                tracing::info!(session = %id, repository = s.repository.name(), "session expired; rolled back");
            }
            keep
        });
        before - sessions.len()
    }

    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    /// Closes every session of a repository (when it is deleted).
    pub fn close_for_repository(&self, name: &str) {
        self.lock().retain(|_, s| s.repository.name() != name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
