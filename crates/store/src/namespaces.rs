use crate::error::{Result, StoreError};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Namespace prefixes of one repository, kept in `namespaces.json` beside its store.
/// They are a convenience of the server, not data: they are not replicated.
pub struct Namespaces {
    path: PathBuf,
    map: Mutex<BTreeMap<String, String>>,
}

impl Namespaces {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("namespaces.json");
        let map = if path.exists() {
            serde_json::from_slice(&fs::read(&path)?).map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                detail: e.to_string(),
            })?
        } else {
            DEFAULT_NAMESPACES
                .iter()
                .map(|(p, n)| (p.to_string(), n.to_string()))
                .collect()
        };
        Ok(Namespaces {
            path,
            map: Mutex::new(map),
        })
    }

    pub fn list(&self) -> BTreeMap<String, String> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(prefix)
            .cloned()
    }

    pub fn set(&self, prefix: &str, namespace: &str) -> Result<()> {
        if !prefix
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(StoreError::InvalidTerm(format!("prefix '{prefix}'")));
        }
        oxigraph::model::NamedNode::new(namespace)
            .map_err(|e| StoreError::InvalidTerm(format!("namespace <{namespace}>: {e}")))?;
        self.update(|map| {
            map.insert(prefix.to_owned(), namespace.to_owned());
        })
    }

    pub fn remove(&self, prefix: &str) -> Result<bool> {
        let mut removed = false;
        self.update(|map| removed = map.remove(prefix).is_some())?;
        Ok(removed)
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<()> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = map.clone();
        change(&mut next);
        let tmp = self.path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&next).expect("serialises"))?;
        fs::rename(&tmp, &self.path)?;
        *map = next;
        Ok(())
    }
}
