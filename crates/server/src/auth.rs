//! The superuser and HTTP Basic authentication.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// The superuser as recorded in the data directory: the password only as a hash.
#[derive(Serialize, Deserialize)]
struct Superuser {
    user: String,
    password_hash: String,
}

/// Checks credentials against the recorded superuser.
///
/// A verified `Authorization` header is remembered (in memory only) so that the
/// deliberately slow password hash runs once per client, not once per request.
pub struct Auth {
    user: String,
    password_hash: String,
    verified: Mutex<HashSet<String>>,
}

const FILE: &str = "superuser.json";

impl Auth {
    /// Loads the superuser from `data_dir`, recording it first when `credentials` are
    /// given. Given credentials that differ from the recorded ones replace them, so a
    /// rotated secret takes effect on restart.
    pub fn init(data_dir: &Path, credentials: Option<(String, String)>) -> Result<Self, AuthError> {
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
                        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
                            .map_err(|e| AuthError::Hash(e.to_string()))?;
                        let password_hash = Argon2::default()
                            .hash_password(password.as_bytes(), &salt)
                            .map_err(|e| AuthError::Hash(e.to_string()))?
                            .to_string();
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
        Ok(Auth {
            user: superuser.user,
            password_hash: superuser.password_hash,
            verified: Mutex::new(HashSet::new()),
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether a user name and password are the superuser's (the UI's sign-in form).
    pub fn check_credentials(&self, user: &str, password: &str) -> bool {
        user == self.user && verify(&self.password_hash, password)
    }

    /// Whether an `Authorization` header value carries the superuser's credentials.
    pub fn check_header(&self, header: &str) -> bool {
        if self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(header)
        {
            return true;
        }
        let Some(encoded) = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        if user != self.user || !verify(&self.password_hash, password) {
            return false;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() > 10_000 {
            verified.clear();
        }
        verified.insert(header.to_owned());
        true
    }
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
