//! Signed-in browsers of the web UI (a leaf: the server's state holds it).

use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "quadmesh_ui";
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Signed-in browsers: cookie token → expiry. In memory: a restart signs everyone out.
#[derive(Default)]
pub struct UiLogins(Mutex<HashMap<String, Instant>>);

impl UiLogins {
    pub(super) fn open(&self) -> String {
        let token: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let mut logins = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        logins.retain(|_, expiry| *expiry > now);
        logins.insert(token.clone(), now + LOGIN_LIFETIME);
        token
    }

    /// Whether the request carries a live sign-in cookie.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        let Some(token) = cookie(headers) else {
            return false;
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    pub(super) fn close(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&token);
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}
