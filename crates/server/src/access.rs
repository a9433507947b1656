//! Users, roles and what they may do, in AllegroGraph's terms: read and write access per
//! catalog and repository (`*` for all; quadmesh has the root catalog `/` only), and the
//! permissions `super`, `eval`, `session` and `replication`.
//!
//! They are kept as records of a last-writer-wins [`Book`]: one key per fact (a user and
//! its password hash; each permission, role membership and access bit of a user or a
//! role), so that concurrent changes of different facts never undo each other and
//! concurrent changes of one fact are decided by the newest stamp, everywhere alike.
//! This instance's book (`<data-dir>/access-book.json`) is what requests are checked
//! against; `access_sync.rs` keeps it and every replicated repository's book in step.
//!
//! The superuser given at start (`auth.rs`) is not in the book: it is every instance's
//! own, and always has every permission.

use crate::error::{ApiError, ApiResult};
use quadmesh_repl::{HybridClock, OriginId, Stamp};
use quadmesh_store::{Book, BookKind, BookRecord};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The user whose grants apply to requests without credentials, if it exists.
pub const ANONYMOUS: &str = "anonymous";
/// The only catalog quadmesh has.
pub const ROOT_CATALOG: &str = "/";

/// AllegroGraph's permission flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    Super,
    Eval,
    Session,
    Replication,
}

impl Permission {
    pub const ALL: [Permission; 4] = [
        Permission::Super,
        Permission::Eval,
        Permission::Session,
        Permission::Replication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Super => "super",
            Permission::Eval => "eval",
            Permission::Session => "session",
            Permission::Replication => "replication",
        }
    }

    pub fn parse(text: &str) -> ApiResult<Self> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown permission '{text}': use super, eval, session or replication"
                ))
            })
    }
}

/// Read or write, on a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

impl Need {
    fn as_str(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Write => "write",
        }
    }
}

/// Whose records: a user's or a role's.
#[derive(Clone, Copy, Debug)]
pub enum Principal<'a> {
    User(&'a str),
    Role(&'a str),
}

impl Principal<'_> {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::Role(_) => "role",
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Principal::User(n) | Principal::Role(n) => n,
        }
    }

    fn key(&self, rest: &[&str]) -> String {
        let mut parts = vec![self.tag(), self.name()];
        parts.extend_from_slice(rest);
        key(&parts)
    }
}

impl std::fmt::Display for Principal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.tag(), self.name())
    }
}

/// Keys join their parts with a tab, which no name may hold.
fn key(parts: &[&str]) -> String {
    parts.join("\t")
}

/// One access entry as AllegroGraph lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub catalog: String,
    pub repository: String,
    pub read: bool,
    pub write: bool,
}

impl Grant {
    pub fn to_json(&self) -> Value {
        json!({
            "read": self.read,
            "write": self.write,
            "catalog": self.catalog,
            "repository": self.repository,
        })
    }

    fn covers(&self, repository: &str, need: Need) -> bool {
        let catalog = self.catalog == "*" || self.catalog == ROOT_CATALOG;
        let repository = self.repository == "*" || self.repository == repository;
        let bit = match need {
            Need::Read => self.read || self.write,
            Need::Write => self.write,
        };
        catalog && repository && bit
    }
}

/// Refuses a user or role name that cannot be one: empty, too long, or with ':' (Basic
/// authentication splits on it), '/', or control characters.
pub fn check_name(what: &str, name: &str) -> ApiResult<()> {
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c == ':' || c == '/' || c.is_control())
    {
        return Err(ApiError::BadRequest(format!(
            "invalid {what} name '{}': use 1 to 64 characters, without ':', '/' or control characters",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// The deployment's users and roles as this instance knows them.
///
/// Rules it keeps:
/// - every change is a set of records stamped once (a clock reading, and this
///   instance's book origin), each stamp newer than the record it replaces, so a change
///   made here after another always wins over it;
/// - `generation` grows whenever the book takes a record: credentials verified before
///   are checked again (a deleted user or changed password is refused at once).
pub struct Access {
    book: Book,
    clock: Arc<HybridClock>,
    /// Breaks ties between stamps of different instances with the same clock reading.
    origin: OriginId,
    generation: AtomicU64,
}

impl Access {
    /// Opens the book in `data_dir`. Blocking.
    pub fn open(
        data_dir: &Path,
        clock: Arc<HybridClock>,
        sync: bool,
    ) -> quadmesh_store::Result<Self> {
        let book = Book::open(data_dir, BookKind::Access, sync, || Ok(BTreeMap::new()))?;
        Ok(Access {
            book,
            clock,
            origin: OriginId(rand::random::<u64>() >> 1),
            generation: AtomicU64::new(0),
        })
    }

    pub fn book(&self) -> &Book {
        &self.book
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Takes records from elsewhere (a repository's book); returns how many were newer.
    /// Blocking (writes the file).
    pub fn merge(&self, records: &BTreeMap<String, BookRecord>) -> quadmesh_store::Result<usize> {
        let taken = self.book.merge(records)?;
        if taken > 0 {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(taken)
    }

    /// A stamp for a change: newer than the clock has seen and than every record it
    /// replaces.
    fn stamp(&self, replaces: &[&str]) -> ApiResult<Stamp> {
        let mut time = self
            .clock
            .now()
            .map_err(|e| ApiError::Unavailable(format!("the clock refuses a reading: {e}")))?;
        let records = self.book.records();
        for key in replaces {
            if let Some(kept) = records.get(*key) {
                if kept.time >= time {
                    time = quadmesh_repl::HlcTime(kept.time.0 + 1);
                }
            }
        }
        Ok(Stamp::new(time, self.origin))
    }

    /// Records setting each key to its value (none: deleted), stamped as one change.
    pub fn change(
        &self,
        changes: BTreeMap<String, Option<Value>>,
    ) -> ApiResult<BTreeMap<String, BookRecord>> {
        let keys: Vec<&str> = changes.keys().map(String::as_str).collect();
        let stamp = self.stamp(&keys)?;
        Ok(changes
            .into_iter()
            .map(|(k, v)| (k, BookRecord::new(v, stamp)))
            .collect())
    }

    fn present(&self, key: &str) -> bool {
        self.book.get(key).is_some()
    }

    /// The keys present under a prefix of parts (each key split back into its parts).
    fn present_under(&self, parts: &[&str]) -> Vec<Vec<String>> {
        let prefix = format!("{}\t", key(parts));
        self.book
            .present_under(&prefix)
            .into_iter()
            .map(|rest| rest.split('\t').map(str::to_owned).collect())
            .collect()
    }

    // ---- reading ----

    pub fn user_exists(&self, name: &str) -> bool {
        self.present(&key(&["user", name]))
    }

    pub fn role_exists(&self, name: &str) -> bool {
        self.present(&key(&["role", name]))
    }

    /// The argon2 hash of a user's password (none for `anonymous`, or an unknown user).
    pub fn password_hash(&self, name: &str) -> Option<String> {
        self.book
            .get(&key(&["user", name]))
            .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_owned))
    }

    pub fn users(&self) -> Vec<String> {
        self.book.present(|k, _| {
            k.strip_prefix("user\t")
                .filter(|r| !r.contains('\t'))
                .map(str::to_owned)
        })
    }

    pub fn roles(&self) -> Vec<String> {
        self.book.present(|k, _| {
            k.strip_prefix("role\t")
                .filter(|r| !r.contains('\t'))
                .map(str::to_owned)
        })
    }

    /// The roles a user has (that exist).
    pub fn user_roles(&self, user: &str) -> Vec<String> {
        self.present_under(&["user", user, "role"])
            .into_iter()
            .filter_map(|parts| parts.into_iter().next())
            .filter(|role| self.role_exists(role))
            .collect()
    }

    pub fn permissions(&self, who: Principal<'_>) -> BTreeSet<Permission> {
        self.present_under(&[who.tag(), who.name(), "permission"])
            .into_iter()
            .filter_map(|parts| Permission::parse(parts.first()?).ok())
            .collect()
    }

    pub fn grants(&self, who: Principal<'_>) -> Vec<Grant> {
        let mut grants: BTreeMap<(String, String), Grant> = BTreeMap::new();
        for parts in self.present_under(&[who.tag(), who.name(), "access"]) {
            let [catalog, repository, bit] = parts.as_slice() else {
                continue;
            };
            let grant = grants
                .entry((catalog.clone(), repository.clone()))
                .or_insert_with(|| Grant {
                    catalog: catalog.clone(),
                    repository: repository.clone(),
                    read: false,
                    write: false,
                });
            match bit.as_str() {
                "read" => grant.read = true,
                "write" => grant.write = true,
                _ => {}
            }
        }
        grants.into_values().collect()
    }

    /// A user's own permissions and those of its roles.
    pub fn effective_permissions(&self, user: &str) -> BTreeSet<Permission> {
        let mut all = self.permissions(Principal::User(user));
        for role in self.user_roles(user) {
            all.extend(self.permissions(Principal::Role(&role)));
        }
        all
    }

    /// A user's own grants and those of its roles.
    pub fn effective_grants(&self, user: &str) -> Vec<Grant> {
        let mut all: BTreeSet<Grant> = self.grants(Principal::User(user)).into_iter().collect();
        for role in self.user_roles(user) {
            all.extend(self.grants(Principal::Role(&role)));
        }
        all.into_iter().collect()
    }

    // ---- changing: each returns the records to write, or refuses ----

    pub fn put_user(
        &self,
        name: &str,
        hash: Option<String>,
    ) -> ApiResult<BTreeMap<String, BookRecord>> {
        let mut changes = BTreeMap::from([(key(&["user", name]), Some(json!({ "hash": hash })))]);
        if !self.user_exists(name) {
            // As AllegroGraph 7.4 and later: a new user may open sessions.
            changes.insert(
                key(&["user", name, "permission", Permission::Session.as_str()]),
                Some(Value::Bool(true)),
            );
        }
        self.change(changes)
    }

    /// Deletes a user and every record of it.
    pub fn delete_user(&self, name: &str) -> ApiResult<BTreeMap<String, BookRecord>> {
        let mut changes = BTreeMap::from([(key(&["user", name]), None)]);
        for parts in self.present_under(&["user", name]) {
            let mut all = vec!["user", name];
            all.extend(parts.iter().map(String::as_str));
            changes.insert(key(&all), None);
        }
        self.change(changes)
    }

    pub fn put_role(&self, name: &str) -> ApiResult<BTreeMap<String, BookRecord>> {
        self.change(BTreeMap::from([(key(&["role", name]), Some(json!({})))]))
    }

    /// Deletes a role, its records, and every user's membership of it.
    pub fn delete_role(&self, name: &str) -> ApiResult<BTreeMap<String, BookRecord>> {
        let mut changes = BTreeMap::from([(key(&["role", name]), None)]);
        for parts in self.present_under(&["role", name]) {
            let mut all = vec!["role", name];
            all.extend(parts.iter().map(String::as_str));
            changes.insert(key(&all), None);
        }
        for user in self.users() {
            let membership = key(&["user", &user, "role", name]);
            if self.present(&membership) {
                changes.insert(membership, None);
            }
        }
        self.change(changes)
    }

    pub fn set_permission(
        &self,
        who: Principal<'_>,
        permission: Permission,
        on: bool,
    ) -> ApiResult<BTreeMap<String, BookRecord>> {
        let k = who.key(&["permission", permission.as_str()]);
        self.change(BTreeMap::from([(k, on.then_some(Value::Bool(true)))]))
    }

    pub fn set_user_role(
        &self,
        user: &str,
        role: &str,
        on: bool,
    ) -> ApiResult<BTreeMap<String, BookRecord>> {
        let k = key(&["user", user, "role", role]);
        self.change(BTreeMap::from([(k, on.then_some(Value::Bool(true)))]))
    }

    /// Grants (`on`) or revokes the asked bits on one catalog and repository.
    pub fn set_access(
        &self,
        who: Principal<'_>,
        catalog: &str,
        repository: &str,
        read: bool,
        write: bool,
        on: bool,
    ) -> ApiResult<BTreeMap<String, BookRecord>> {
        let mut changes = BTreeMap::new();
        for (bit, asked) in [(Need::Read, read), (Need::Write, write)] {
            if asked {
                changes.insert(
                    who.key(&["access", catalog, repository, bit.as_str()]),
                    on.then_some(Value::Bool(true)),
                );
            }
        }
        if changes.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.change(changes)
    }
}

/// Who a request runs as, and what it may do (put in the request by `authenticate`).
#[derive(Clone)]
pub struct Rights {
    pub user: String,
    /// The superuser given at start.
    pub superuser: bool,
    pub access: Arc<Access>,
}

impl Rights {
    pub fn is_super(&self) -> bool {
        self.superuser
            || self
                .access
                .effective_permissions(&self.user)
                .contains(&Permission::Super)
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.is_super()
            || self
                .access
                .effective_permissions(&self.user)
                .contains(&permission)
    }

    pub fn can(&self, repository: &str, need: Need) -> bool {
        self.is_super()
            || self
                .access
                .effective_grants(&self.user)
                .iter()
                .any(|g| g.covers(repository, need))
    }

    /// Refuses (403, naming what is missing) unless the request may `need` `repository`.
    pub fn require(&self, repository: &str, need: Need) -> ApiResult<()> {
        if self.can(repository, need) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "user '{}' lacks {} access to repository '{repository}'",
            self.user,
            need.as_str()
        )))
    }

    pub fn require_permission(&self, permission: Permission) -> ApiResult<()> {
        if self.has(permission) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "user '{}' lacks the {} permission",
            self.user,
            permission.as_str()
        )))
    }

    pub fn require_super(&self) -> ApiResult<()> {
        self.require_permission(Permission::Super)
    }
}
