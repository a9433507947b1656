//! `x-repl-settings`: how many members must hold a commit before it is answered.

use crate::error::ApiError;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The committing instance alone.
    Min,
    /// More than half of the members.
    Quorum,
    /// Every member.
    Max,
    /// This many members, the committing one included.
    Count(usize),
}

/// Parsed `x-repl-settings`, e.g.
/// `durability=quorum distributedTransactionTimeout=5 transactionLatencyCount=3`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplSettings {
    pub durability: Durability,
    pub timeout: Duration,
    pub latency_count: Option<usize>,
    pub latency_timeout: Duration,
}

impl Default for ReplSettings {
    fn default() -> Self {
        ReplSettings {
            durability: Durability::Min,
            timeout: Duration::from_secs(10),
            latency_count: None,
            latency_timeout: Duration::from_secs(10),
        }
    }
}

fn seconds(name: &str, value: &str) -> Result<Duration, ApiError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "x-repl-settings: {name} must be a number of seconds, got '{value}'"
            ))
        })
}

impl ReplSettings {
    pub fn parse(header: &str) -> Result<Self, ApiError> {
        let mut settings = ReplSettings::default();
        for item in header.split_whitespace() {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                ApiError::BadRequest(format!("x-repl-settings: '{item}' is not NAME=VALUE"))
            })?;
            match key {
                "durability" => {
                    settings.durability = match value {
                        "min" => Durability::Min,
                        "quorum" => Durability::Quorum,
                        "max" => Durability::Max,
                        n => Durability::Count(n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "x-repl-settings: durability must be min, quorum, max or a count of at least 1, got '{n}'"
                            ))
                        })?),
                    }
                }
                "distributedTransactionTimeout" => settings.timeout = seconds(key, value)?,
                "transactionLatencyCount" => {
                    settings.latency_count = Some(value.parse().map_err(|_| {
                        ApiError::BadRequest(format!("x-repl-settings: transactionLatencyCount must be a count, got '{value}'"))
                    })?)
                }
                "transactionLatencyTimeout" => settings.latency_timeout = seconds(key, value)?,
                // Other AllegroGraph settings do not apply here; ignoring them keeps
                // scripts that send them working.
                _ => {}
            }
        }
        Ok(settings)
    }

    /// Members that must hold a commit, out of `members`.
    pub fn needed(&self, members: usize) -> usize {
        match self.durability {
            Durability::Min => 1,
            Durability::Quorum => members / 2 + 1,
            Durability::Max => members,
            Durability::Count(n) => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allegrograph_settings_parse() {
        let s = ReplSettings::parse("durability=quorum distributedTransactionTimeout=5 transactionLatencyCount=3 transactionLatencyTimeout=10").unwrap();
        assert_eq!(s.durability, Durability::Quorum);
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.latency_count, Some(3));
        assert_eq!(s.needed(3), 2);
        assert_eq!(ReplSettings::parse("durability=max").unwrap().needed(3), 3);
        assert_eq!(ReplSettings::parse("durability=2").unwrap().needed(3), 2);
    }

    #[test]
    fn bad_settings_are_refused_with_a_message() {
        assert!(ReplSettings::parse("durability=most")
            .unwrap_err()
            .to_string()
            .contains("durability"));
        assert!(ReplSettings::parse("durability=0").is_err());
        assert!(ReplSettings::parse("distributedTransactionTimeout=soon").is_err());
        assert!(ReplSettings::parse("garbage").is_err());
    }
}
