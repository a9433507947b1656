//! The superuser, the users of the deployment (`access.rs`), and HTTP Basic
//! authentication.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2sMac256;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use crate::access::Access;
use crate::secrets::constant_time_eq;

pub use crate::auth_error::AuthError;

/// The superuser as recorded in the data directory: the password only as a hash.
#[derive(Serialize, Deserialize)]
struct Superuser {
    user: String,
    password_hash: String,
}

/// Checks credentials against the recorded superuser and the users of the access book.
///
/// Rules it keeps:
/// - the password hash (argon2, deliberately slow) runs on a blocking thread, at most
///   `HASHING_AT_ONCE` at a time, never on the async workers: requests with wrong
///   passwords cannot stall others;
/// - an unknown user name costs the same work as a known one (its password is checked
///   against a hash of a random password), and names and secrets are compared in
///   constant time: timing tells nothing of which names exist;
/// - a verified `Authorization` header is remembered for `VERIFIED_LIFETIME` by a keyed
///   hash (the key is drawn at start and never leaves memory), never in clear, in at
///   most `VERIFIED_MAX` entries, and only while the access book has not changed since
///   (its generation): a deleted user or a changed password is refused at once; the
///   superuser's password changes only at start, which begins with an empty cache.
pub struct Auth {
    user: String,
    password_hash: Arc<str>,
    /// A hash of a random password, with the same parameters: checked for unknown users.
    dummy_hash: Arc<str>,
    verified: VerifiedCache,
    hashing: Arc<Semaphore>,
    /// Password hashes checked since start (`/metrics`): one per attempt, known user or not.
    checks: AtomicU64,
    access: Arc<Access>,
}

/// How long a verified header is taken without hashing again.
const VERIFIED_LIFETIME: Duration = Duration::from_secs(60);
/// Verified headers remembered at most.
const VERIFIED_MAX: usize = 10_000;

/// Password hashes run at once: fewer than the cores, so that hashing for clients
/// with wrong passwords leaves a core to everything else.
fn hashing_at_once() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

const FILE: &str = "superuser.json";

impl Auth {
    /// Loads the superuser from `data_dir`, recording it first when `credentials` are
    /// given. Given credentials that differ from the recorded ones replace them, so a
    /// rotated secret takes effect on restart. Hashes: call it on a blocking thread.
    pub fn init(
        data_dir: &Path,
        credentials: Option<(String, String)>,
        access: Arc<Access>,
    ) -> Result<Self, AuthError> {
        let path = data_dir.join(FILE);
        let io = |e: std::io::Error| AuthError::Io {
            path: path.clone(),
            detail: e.to_string(),
        };
        let recorded: Option<Superuser> = if path.exists() {
            let bytes = fs::read(&path).map_err(io)?;
            Some(serde_json::from_slice(&bytes).map_err(|e| AuthError::Io {
                path: path.clone(),
                detail: e.to_string(),
            })?)
        } else {
            None
        };
        let superuser = match (recorded, credentials) {
            (None, None) => return Err(AuthError::NoSuperuser(path)),
            (Some(recorded), None) => recorded,
            (recorded, Some((user, password))) => {
                if user.is_empty() || user.contains(':') {
                    return Err(AuthError::InvalidUser);
                }
                if password.is_empty() {
                    return Err(AuthError::EmptyPassword);
                }
                match recorded {
                    Some(r) if r.user == user && verify(&r.password_hash, &password) => r,
                    _ => {
                        let password_hash = hash(&password)?;
                        let superuser = Superuser {
                            user,
                            password_hash,
                        };
                        fs::create_dir_all(data_dir).map_err(io)?;
                        let tmp = path.with_extension("json.tmp");
                        fs::write(
                            &tmp,
                            serde_json::to_vec_pretty(&superuser).expect("serialises"),
                        )
                        .map_err(io)?;
                        set_owner_only(&tmp);
                        fs::rename(&tmp, &path).map_err(io)?;
                        tracing::info!(user = %superuser.user, "recorded the superuser");
                        superuser
                    }
                }
            }
        };
        let random: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        Ok(Auth {
            user: superuser.user,
            password_hash: superuser.password_hash.into(),
            dummy_hash: hash(&random)?.into(),
            verified: VerifiedCache::new(),
            hashing: Arc::new(Semaphore::new(hashing_at_once())),
            checks: AtomicU64::new(0),
            access,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether a name is the superuser given at start.
    pub fn is_superuser(&self, user: &str) -> bool {
        constant_time_eq(user.as_bytes(), self.user.as_bytes())
    }

    /// Whether a user name and password are the superuser's or a user's of the access
    /// book (Basic authentication, the UI's sign-in form).
    pub async fn check_credentials(&self, user: &str, password: &str) -> bool {
        let stored: Option<Arc<str>> = if self.is_superuser(user) {
            Some(self.password_hash.clone())
        } else {
            self.access.password_hash(user).map(Into::into)
        };
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_owned();
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        self.checks.fetch_add(1, Ordering::Relaxed);
        let matches = tokio::task::spawn_blocking(move || verify(&hash, &password))
            .await
            .unwrap_or(false);
        known && matches
    }

    /// Password hashes checked since start.
    pub fn password_checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Hashes a new password, on the bounded blocking pool.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(move || hash(&password))
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))?
    }

    /// Whether an `Authorization` header was verified within `VERIFIED_LIFETIME`, with
    /// the access book as it is now.
    pub fn is_verified(&self, header: &str) -> bool {
        self.verified.contains(header, self.access.generation())
    }

    /// The user whose credentials an `Authorization` header value carries, if they are
    /// right.
    pub async fn check_header(&self, header: &str) -> Option<String> {
        let (user, password) = basic_credentials(header)?;
        let generation = self.access.generation();
        if self.verified.contains(header, generation) {
            return Some(user);
        }
        if !self.check_credentials(&user, &password).await {
            return None;
        }
        self.verified.insert(header, generation);
        Some(user)
    }
}

/// The user name and password of a Basic `Authorization` header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The user name a Basic `Authorization` header claims (for the audit log; never the
/// password).
pub fn claimed_user(header: &str) -> Option<String> {
    basic_credentials(header).map(|(user, _)| user)
}

/// Verified headers, by a keyed hash, with their expiry and the access book's
/// generation when verified (see `Auth`'s rules).
struct VerifiedCache {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (Instant, u64)>>,
}

impl VerifiedCache {
    fn new() -> Self {
        VerifiedCache {
            key: rand::random(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, header: &str) -> [u8; 32] {
        let mut mac =
            <Blake2sMac256 as KeyInit>::new_from_slice(&self.key).expect("a 32-byte key fits");
        mac.update(header.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn contains(&self, header: &str, generation: u64) -> bool {
        let digest = self.digest(header);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&digest) {
            Some((expiry, verified_at))
                if *expiry > Instant::now() && *verified_at == generation =>
            {
                true
            }
            Some(_) => {
                entries.remove(&digest);
                false
            }
            None => false,
        }
    }

    fn insert(&self, header: &str, generation: u64) {
        let digest = self.digest(header);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= VERIFIED_MAX {
            entries.retain(|_, (expiry, _)| *expiry > now);
            if entries.len() >= VERIFIED_MAX {
                entries.clear();
            }
        }
        entries.insert(digest, (now + VERIFIED_LIFETIME, generation));
    }
}

fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .to_string())
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn set_owner_only(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
    }
}
