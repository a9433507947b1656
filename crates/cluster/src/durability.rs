//! `x-repl-settings`: how many members must hold a commit before it is answered.

use crate::error::ClusterError;
use std::time::Duration;

use quadmesh_repl::CommitDefaults;
pub use quadmesh_repl::Durability;

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

fn seconds(name: &str, value: &str) -> Result<Duration, ClusterError> {
    seconds_value(value)
        .map_err(|why| ClusterError::Invalid(format!("x-repl-settings: {name} {why}")))
}

/// A non-negative number of seconds, or why not.
fn seconds_value(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("must be a number of seconds, got '{value}'"))
}

/// The names `repl/settings` takes, as AllegroGraph spells them.
pub const SETTING_NAMES: [&str; 4] = [
    "durability",
    "distributedTransactionTimeout",
    "transactionLatencyCount",
    "transactionLatencyTimeout",
];

/// One `repl/settings` parameter into `defaults`; a bad value is an error naming it.
pub fn set_default(
    defaults: &mut CommitDefaults,
    name: &str,
    value: &str,
) -> Result<(), ClusterError> {
    let bad = |why: String| ClusterError::Invalid(format!("parameter '{name}' {why}"));
    match name {
        "durability" => {
            defaults.durability = Some(value.parse().map_err(|e: String| {
                ClusterError::Invalid(format!("parameter 'durability': {e}"))
            })?)
        }
        "distributedTransactionTimeout" => {
            defaults.distributed_transaction_timeout_ms =
                Some(seconds_value(value).map_err(bad)?.as_millis() as u64)
        }
        "transactionLatencyCount" => {
            defaults.transaction_latency_count = Some(value.parse().map_err(|_| {
                ClusterError::Invalid(format!(
                    "parameter 'transactionLatencyCount' must be a count, got '{value}'"
                ))
            })?)
        }
        "transactionLatencyTimeout" => {
            defaults.transaction_latency_timeout_ms =
                Some(seconds_value(value).map_err(bad)?.as_millis() as u64)
        }
        other => {
            return Err(ClusterError::Invalid(format!(
                "unknown parameter '{other}': repl/settings takes {}",
                SETTING_NAMES.join(", ")
            )))
        }
    }
    Ok(())
}

impl ReplSettings {
    /// quadmesh's defaults with the cluster's (`repl/settings`) in force over them.
    pub fn from_defaults(defaults: &CommitDefaults) -> Self {
        let builtin = ReplSettings::default();
        ReplSettings {
            durability: defaults.durability.unwrap_or(builtin.durability),
            timeout: defaults
                .distributed_transaction_timeout_ms
                .map_or(builtin.timeout, Duration::from_millis),
            latency_count: defaults.transaction_latency_count.or(builtin.latency_count),
            latency_timeout: defaults
                .transaction_latency_timeout_ms
                .map_or(builtin.latency_timeout, Duration::from_millis),
        }
    }

    /// The settings shown by `repl/status`, as AllegroGraph names them (seconds).
    pub fn describe(&self) -> quadmesh_repl::wire::CommitSettingsView {
        quadmesh_repl::wire::CommitSettingsView {
            durability: self.durability.to_string(),
            distributed_transaction_timeout: self.timeout.as_secs_f64(),
            transaction_latency_count: self.latency_count.map(|c| c as u64),
            transaction_latency_timeout: self.latency_timeout.as_secs_f64(),
        }
    }

    pub fn parse(header: &str) -> Result<Self, ClusterError> {
        Self::parse_over(header, ReplSettings::default())
    }

    /// `x-repl-settings` over `base` (the cluster's defaults): what the header names
    /// wins, the rest stays.
    pub fn parse_over(header: &str, base: ReplSettings) -> Result<Self, ClusterError> {
        let mut settings = base;
        for item in header.split_whitespace() {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                ClusterError::Invalid(format!("x-repl-settings: '{item}' is not NAME=VALUE"))
            })?;
            match key {
                "durability" => {
                    settings.durability = value
                        .parse()
                        .map_err(|e| ClusterError::Invalid(format!("x-repl-settings: {e}")))?
                }
                "distributedTransactionTimeout" => settings.timeout = seconds(key, value)?,
                "transactionLatencyCount" => {
                    settings.latency_count = Some(value.parse().map_err(|_| {
                        ClusterError::Invalid(format!("x-repl-settings: transactionLatencyCount must be a count, got '{value}'"))
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
        self.durability.needed(members)
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
    fn the_header_wins_over_the_cluster_defaults() {
        let mut defaults = CommitDefaults::default();
        set_default(&mut defaults, "durability", "quorum").unwrap();
        set_default(&mut defaults, "distributedTransactionTimeout", "2.5").unwrap();
        let base = ReplSettings::from_defaults(&defaults);
        assert_eq!(base.durability, Durability::Quorum);
        assert_eq!(base.timeout, Duration::from_millis(2500));
        let s = ReplSettings::parse_over("durability=max", base).unwrap();
        assert_eq!(
            (s.durability, s.timeout),
            (Durability::Max, Duration::from_millis(2500))
        );
        assert!(set_default(&mut defaults, "durability", "most").is_err());
        assert!(set_default(&mut defaults, "transactionLatencyCount", "-1").is_err());
        assert!(set_default(&mut defaults, "colour", "blue")
            .unwrap_err()
            .to_string()
            .contains("colour"));
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
