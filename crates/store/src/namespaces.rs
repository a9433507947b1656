use crate::book::{Book, BookKind, BookRecord};
use crate::error::{Result, StoreError};
use quadmesh_repl::{HlcTime, OriginId, Stamp};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// The prefixes every repository starts with, as AllegroGraph's.
pub const DEFAULT_NAMESPACES: &[(&str, &str)] = &[
    ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("owl", "http://www.w3.org/2002/07/owl#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("fn", "http://www.w3.org/2005/xpath-functions#"),
    ("dc", "http://purl.org/dc/elements/1.1/"),
    ("dcterms", "http://purl.org/dc/terms/"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("skos", "http://www.w3.org/2004/02/skos/core#"),
];

/// The file in which namespaces were kept before they replicated.
const UNREPLICATED_FILE: &str = "namespaces.json";

/// The stamp of what a repository had before any change of its own: older than every
/// stamped write.
const ORIGINAL: Stamp = Stamp {
    time: HlcTime::ZERO,
    origin: OriginId(0),
};

/// Namespace prefixes of one repository: a [`Book`] (per prefix, the newest stamped
/// set or delete wins), changed only through the repository's write path
/// (`Repository::commit_namespaces`), so that they replicate like data.
///
/// Rules it keeps:
/// - a prefix must be letters, digits, '-', '_' or '.', a namespace an absolute IRI
///   ([`check_namespace`]), before anything is logged;
/// - a repository starts with [`DEFAULT_NAMESPACES`] at the oldest stamp; one made
///   before namespaces replicated starts with its `namespaces.json` at that stamp.
pub struct Namespaces {
    book: Book,
}

impl Namespaces {
    pub(crate) fn open(dir: &Path, sync: bool) -> Result<Self> {
        let book = Book::open(dir, BookKind::Namespaces, sync, || {
            let unreplicated = dir.join(UNREPLICATED_FILE);
            let map: BTreeMap<String, String> = if unreplicated.exists() {
                serde_json::from_slice(&fs::read(&unreplicated)?).map_err(|e| {
                    StoreError::Corrupt {
                        what: unreplicated.display().to_string(),
                        detail: e.to_string(),
                    }
                })?
            } else {
                DEFAULT_NAMESPACES
                    .iter()
                    .map(|(p, n)| (p.to_string(), n.to_string()))
                    .collect()
            };
            let mut records: BTreeMap<String, BookRecord> = map
                .into_iter()
                .map(|(p, n)| (p, BookRecord::new(Some(n.into()), ORIGINAL)))
                .collect();
            // A default the old file lacks was deleted there.
            for (prefix, _) in DEFAULT_NAMESPACES {
                records
                    .entry(prefix.to_string())
                    .or_insert_with(|| BookRecord::new(None, ORIGINAL));
            }
            Ok(records)
        })?;
        Ok(Namespaces { book })
    }

    pub(crate) fn book(&self) -> &Book {
        &self.book
    }

    pub fn list(&self) -> BTreeMap<String, String> {
        self.book
            .present(|prefix, value| Some((prefix.to_owned(), value.as_str()?.to_owned())))
            .into_iter()
            .collect()
    }

    /// The prefixes every query and update knows without a PREFIX line: the standard
    /// ones, overridden by the repository's (as AllegroGraph does).
    pub fn for_queries(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = DEFAULT_NAMESPACES
            .iter()
            .map(|(p, n)| (p.to_string(), n.to_string()))
            .collect();
        all.extend(self.list());
        all.into_iter().collect()
    }

    pub fn get(&self, prefix: &str) -> Option<String> {
        self.book
            .get(prefix)
            .and_then(|v| v.as_str().map(str::to_owned))
    }
}

/// Refuses a prefix or namespace AllegroGraph would not take.
pub fn check_namespace(prefix: &str, namespace: Option<&str>) -> Result<()> {
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(StoreError::InvalidTerm(format!("prefix '{prefix}'")));
    }
    if let Some(namespace) = namespace {
        oxigraph::model::NamedNode::new(namespace)
            .map_err(|e| StoreError::InvalidTerm(format!("namespace <{namespace}>: {e}")))?;
    }
    Ok(())
}
