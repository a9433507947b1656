//! Slowing down password guessing: a client address with repeated failed sign-ins
//! (Basic or the UI form) must wait longer and longer before it may try again.
//!
//! The client address is the connection's: behind a load balancer that does not keep
//! it, every client shares the balancer's address (`X-Forwarded-For` is not trusted:
//! a guesser would set it). A client already signed in is not held back — its header
//! is in `Auth`'s verified cache, which only the right password puts there.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before any wait (typos, a client probing its configuration).
const FREE_FAILURES: u32 = 5;
/// The longest wait imposed.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A client with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most.
const MAX_CLIENTS: usize = 10_000;

/// Failed sign-ins per client address.
///
/// Rules it keeps: after `FREE_FAILURES` failures, each further failure makes the
/// address wait 1 s, 2 s, 4 s … (at most `MAX_WAIT`) before its next attempt is even
/// checked; an address with no failure for `FORGET_AFTER`, or a success, starts afresh;
/// at most `MAX_CLIENTS` addresses are kept (the longest quiet go first).
#[derive(Default)]
pub struct SignInThrottle(Mutex<HashMap<IpAddr, Failures>>);

struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl SignInThrottle {
    /// `Err(wait)` while `client` must wait before trying again.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let failures = self.lock();
        match failures.get(&client).and_then(|f| f.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= MAX_CLIENTS && !failures.contains_key(&client) {
            failures.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if failures.len() >= MAX_CLIENTS {
                if let Some(quietest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(ip, _)| *ip)
                {
                    failures.remove(&quietest);
                }
            }
        }
        let entry = failures.entry(client).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: None,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count > FREE_FAILURES {
            let doublings = (entry.count - FREE_FAILURES - 1).min(16);
            let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
            entry.blocked_until = Some(now + wait);
        }
    }

    pub fn succeeded(&self, client: IpAddr) {
        self.lock().remove(&client);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_the_free_failures_and_a_success_forgets() {
        let throttle = SignInThrottle::default();
        let guesser = IpAddr::from([10, 0, 0, 1]);
        let other = IpAddr::from([10, 0, 0, 2]);
        for _ in 0..FREE_FAILURES {
            throttle.failed(guesser);
            assert!(throttle.check(guesser).is_ok());
        }
        throttle.failed(guesser);
        let first = throttle.check(guesser).unwrap_err();
        assert!(first <= Duration::from_secs(1));
        throttle.failed(guesser);
        let second = throttle.check(guesser).unwrap_err();
        assert!(second > Duration::from_secs(1) && second <= Duration::from_secs(2));
        assert!(throttle.check(other).is_ok(), "others are not held back");
        throttle.succeeded(guesser);
        assert!(throttle.check(guesser).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = SignInThrottle::default();
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            throttle.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert!(throttle.lock().len() <= MAX_CLIENTS);
    }
}
