//! The content digest of a repository, kept as its store changes, with the digests it
//! had at recent version vectors (what peers compare theirs with).

use oxigraph::model::{Literal, Quad, Term};
use quadmesh_repl::{ContentDigest, VersionVector};
use std::collections::VecDeque;

/// How many recent (version vector, digest) pairs are kept for comparison.
const RECENT: usize = 256;

/// Rules it keeps:
/// - `current` is the digest of exactly the quads in the store after the last applied
///   log entry (every path that changes the store reports each quad whose presence
///   changes, once);
/// - `recent` holds `current` as it was after each of the last [`RECENT`] entries,
///   labelled with the version vector then; two instances at the same version vector
///   applied the same transactions and must agree.
#[derive(Debug, Default)]
pub struct DigestBook {
    current: ContentDigest,
    recent: VecDeque<(VersionVector, ContentDigest)>,
}

/// What a peer's digest says when compared with ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestCheck {
    Agrees,
    /// Same version vector, different content: one of us diverged.
    Differs {
        ours: ContentDigest,
    },
    /// We were never (recently) at that version vector: nothing to compare.
    Unknown,
}

impl DigestBook {
    pub fn new(current: ContentDigest) -> Self {
        DigestBook {
            current,
            recent: VecDeque::new(),
        }
    }

    /// A repair made the store whole: `digest` is what it now holds, at
    /// `version_vector`. Digests kept before are not compared any more.
    pub fn repaired(&mut self, digest: ContentDigest, version_vector: &VersionVector) {
        self.current = digest;
        self.recent.clear();
        self.record(version_vector);
    }

    pub fn current(&self) -> ContentDigest {
        self.current
    }

    /// Corrects the digest by what a scrub found: the store held `scanned` when the
    /// book said `booked`; the difference is damage the write path never saw, and stays
    /// in the digest (so that peers see it) until the contents agree again.
    pub fn correct(&mut self, booked: ContentDigest, scanned: ContentDigest) {
        self.current.count = self
            .current
            .count
            .wrapping_add(scanned.count.wrapping_sub(booked.count));
        self.current.sum = self
            .current
            .sum
            .wrapping_add(scanned.sum.wrapping_sub(booked.sum));
        // Earlier digests were kept without the damage: compare none of them.
        self.recent.clear();
    }

    /// Takes a digest computed ahead of a commit, once the commit went through.
    pub fn set_current(&mut self, digest: ContentDigest) {
        self.current = digest;
    }

    /// Quads became present whose digest (see [`digest_key`]) is `digest`.
    pub fn added(&mut self, digest: ContentDigest) {
        self.current.count = self.current.count.wrapping_add(digest.count);
        self.current.sum = self.current.sum.wrapping_add(digest.sum);
    }

    /// Notes the digest after an entry took the repository to `version_vector`.
    pub fn record(&mut self, version_vector: &VersionVector) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent
            .push_back((version_vector.clone(), self.current));
    }

    /// The digest kept for `version_vector`, if it is among the recent ones.
    pub fn at(&self, version_vector: &VersionVector) -> Option<ContentDigest> {
        self.recent
            .iter()
            .rev()
            .find(|(v, _)| v == version_vector)
            .map(|(_, digest)| *digest)
    }

    pub fn check(&self, version_vector: &VersionVector, theirs: &ContentDigest) -> DigestCheck {
        match self.recent.iter().rev().find(|(v, _)| v == version_vector) {
            Some((_, ours)) if ours == theirs => DigestCheck::Agrees,
            Some((_, ours)) => DigestCheck::Differs { ours: *ours },
            None => DigestCheck::Unknown,
        }
    }
}

/// The digest of every quad in `quads` (a full scan: on open after a crash).
pub fn digest_of(
    quads: impl Iterator<Item = crate::error::Result<Quad>>,
) -> crate::error::Result<ContentDigest> {
    let mut digest = ContentDigest::default();
    for quad in quads {
        digest.insert(digest_key(&quad?).as_bytes());
    }
    Ok(digest)
}

/// What the content digest hashes for a quad: its N-Quads form, with a typed literal in
/// the canonical form the store keeps it in. oxigraph stores `"5.40"^^xsd:decimal` as the
/// decimal 5.4 and `"05"^^xsd:int` as the integer 5, and reads them back so; hashing the
/// quads as written would make the write path's digest and a scan of the store differ on
/// ordinary data (a false "damaged store").
pub fn digest_key(quad: &Quad) -> String {
    match &quad.object {
        Term::Literal(literal) => match canonical(literal) {
            Some(object) => Quad::new(
                quad.subject.clone(),
                quad.predicate.clone(),
                object,
                quad.graph_name.clone(),
            )
            .to_string(),
            None => quad.to_string(),
        },
        _ => quad.to_string(),
    }
}

/// The term as the store gives it back (a literal in its canonical form).
pub(crate) fn canonical_term(term: Term) -> Term {
    match &term {
        Term::Literal(literal) => canonical(literal).map_or(term, Term::Literal),
        _ => term,
    }
}

/// The literal as the store gives it back, when that differs: the XSD types oxigraph
/// encodes natively (`storage/numeric_encoder.rs`), parsed and written out again; an
/// invalid lexical form is kept as it is, as the store keeps it.
fn canonical(literal: &Literal) -> Option<Literal> {
    use oxsdatatypes::{
        Boolean, Date, DateTime, DayTimeDuration, Decimal, Double, Duration, Float, GDay, GMonth,
        GMonthDay, GYear, GYearMonth, Integer, Time, YearMonthDuration,
    };
    const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
    let value = literal.value();
    let local = literal.datatype().as_str().strip_prefix(XSD)?;
    let canonical: Literal = match local {
        "boolean" => value.parse::<Boolean>().ok()?.into(),
        "float" => value.parse::<Float>().ok()?.into(),
        "double" => value.parse::<Double>().ok()?.into(),
        "integer" | "byte" | "short" | "int" | "long" | "unsignedByte" | "unsignedShort"
        | "unsignedInt" | "unsignedLong" | "positiveInteger" | "negativeInteger"
        | "nonPositiveInteger" | "nonNegativeInteger" => value.parse::<Integer>().ok()?.into(),
        "decimal" => value.parse::<Decimal>().ok()?.into(),
        "dateTime" | "dateTimeStamp" => value.parse::<DateTime>().ok()?.into(),
        "time" => value.parse::<Time>().ok()?.into(),
        "date" => value.parse::<Date>().ok()?.into(),
        "gYearMonth" => value.parse::<GYearMonth>().ok()?.into(),
        "gYear" => value.parse::<GYear>().ok()?.into(),
        "gMonthDay" => value.parse::<GMonthDay>().ok()?.into(),
        "gDay" => value.parse::<GDay>().ok()?.into(),
        "gMonth" => value.parse::<GMonth>().ok()?.into(),
        "duration" => value.parse::<Duration>().ok()?.into(),
        "yearMonthDuration" => value.parse::<YearMonthDuration>().ok()?.into(),
        "dayTimeDuration" => value.parse::<DayTimeDuration>().ok()?.into(),
        _ => return None,
    };
    (canonical != *literal).then_some(canonical)
}
