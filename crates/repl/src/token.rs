//! Causal tokens: what a client carries from one instance to the next so that a request
//! sees every write the client has seen acknowledged, whichever instance answers it.

use crate::stamp::{HlcTime, OriginId};
use crate::version_vector::VersionVector;
use std::fmt;

/// What a client has seen acknowledged: the transactions (per origin, up to a sequence
/// number) and the newest stamp time among them.
///
/// Rules it keeps:
/// - the text form is small, opaque to clients and made only of URL- and header-safe
///   characters (`q1.` + hexadecimal fields separated by `.`, `-`);
/// - [`CausalToken::join`] is the pointwise maximum, so a client may keep only the
///   newest token it got, or join several, and lose nothing;
/// - an instance honours a token by (a) taking `time` into its clock before it stamps
///   anything, so its next write is ordered after everything the token names, and (b)
///   holding reads until its version vector covers `seen`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CausalToken {
    pub time: HlcTime,
    pub seen: VersionVector,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid causal token '{0}': pass back a token exactly as a quadmesh response gave it")]
pub struct TokenError(String);

const PREFIX: &str = "q1.";
/// Tokens naming more origins than this are refused: no cluster has that many.
const MAX_ORIGINS: usize = 1024;

impl CausalToken {
    /// The token of one committed transaction.
    pub fn of_commit(origin: OriginId, seq: u64, time: HlcTime) -> Self {
        let mut seen = VersionVector::new();
        seen.advance(origin, seq);
        CausalToken { time, seen }
    }

    pub fn join(&mut self, other: &CausalToken) {
        self.time = self.time.max(other.time);
        self.seen.join(&other.seen);
    }

    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let invalid = || TokenError(text.chars().take(100).collect());
        let body = text.trim().strip_prefix(PREFIX).ok_or_else(invalid)?;
        let mut fields = body.split('.');
        let time = fields
            .next()
            .and_then(|t| u64::from_str_radix(t, 16).ok())
            .ok_or_else(invalid)?;
        let mut seen = VersionVector::new();
        for (count, field) in fields.enumerate() {
            if count >= MAX_ORIGINS {
                return Err(invalid());
            }
            let (origin, seq) = field.split_once('-').ok_or_else(invalid)?;
            let origin = u64::from_str_radix(origin, 16).map_err(|_| invalid())?;
            let seq = u64::from_str_radix(seq, 16).map_err(|_| invalid())?;
            seen.advance(OriginId(origin), seq);
        }
        Ok(CausalToken {
            time: HlcTime(time),
            seen,
        })
    }
}

impl fmt::Display for CausalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:x}", self.time.0)?;
        for (origin, seq) in self.seen.iter() {
            write!(f, ".{:x}-{seq:x}", origin.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_through_its_text() {
        let mut token = CausalToken::of_commit(OriginId(0x7fff_0000_1234), 42, HlcTime(99 << 16));
        token.join(&CausalToken::of_commit(OriginId(7), 3, HlcTime(5)));
        let text = token.to_string();
        assert!(text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
        assert_eq!(CausalToken::parse(&text).unwrap(), token);
    }

    #[test]
    fn join_keeps_the_newest_of_each() {
        let mut a = CausalToken::of_commit(OriginId(1), 5, HlcTime(10));
        let b = CausalToken::of_commit(OriginId(1), 3, HlcTime(20));
        a.join(&b);
        assert_eq!(a.seen.get(OriginId(1)), 5);
        assert_eq!(a.time, HlcTime(20));
    }

    #[test]
    fn garbage_is_refused() {
        for text in ["", "q1.", "q2.10", "q1.zz", "q1.10.5", "q1.10.5-x", "hello"] {
            assert!(CausalToken::parse(text).is_err(), "{text}");
        }
    }
}
