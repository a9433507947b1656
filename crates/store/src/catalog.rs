use crate::error::{Result, StoreError};
use crate::repository::{Repository, RepositoryOptions};
use crate::snapshot::SnapshotState;
use quadmesh_repl::HybridClock;
use quadmesh_repl::OriginId;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The repositories of one server, each a directory under `<data>/repositories/`.
///
/// Rules it keeps: a name maps to at most one open repository; a repository that is
/// deleted is first taken out of the catalog, then moved aside, then removed, so a
/// crash midway never leaves a half-deleted repository under its name; a repository
/// whose data is damaged (a log damaged inside, a corrupt file) does not open and is
/// kept as *unavailable* with the reason — every request for it is refused with that
/// reason, its name cannot be taken by a new repository, deleting it is allowed — while
/// the others are served.
pub struct Catalog {
    root: PathBuf,
    clock: Arc<HybridClock>,
    options: RepositoryOptions,
    repositories: RwLock<BTreeMap<String, Arc<Repository>>>,
    unavailable: RwLock<BTreeMap<String, String>>,
}

pub fn validate_repository_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidRepositoryName(name.to_owned()))
    }
}

impl Catalog {
    pub fn open(
        data_dir: &Path,
        clock: Arc<HybridClock>,
        options: RepositoryOptions,
    ) -> Result<Self> {
        let root = data_dir.join("repositories");
        fs::create_dir_all(&root)?;
        let mut repositories = BTreeMap::new();
        let mut unavailable = BTreeMap::new();
        for entry in fs::read_dir(&root)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                // Left over from an interrupted delete.
                fs::remove_dir_all(entry.path())?;
                continue;
            }
            if validate_repository_name(&name).is_err()
                || !entry.path().join("identity.json").exists()
            {
                continue;
            }
            match Repository::open(&name, &entry.path(), clock.clone(), options, false) {
                Ok(repository) => {
                    tracing::info!(repository = %name, "opened repository");
                    repositories.insert(name, Arc::new(repository));
                }
                // Damage confined to this repository's files: the others are served.
                Err(e @ (StoreError::LogDamaged { .. } | StoreError::Corrupt { .. })) => {
                    tracing::error!(repository = %name, error = %e,
                        "REPOSITORY NOT AVAILABLE: it could not be opened; the server's other repositories are served");
                    unavailable.insert(name, e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Catalog {
            root,
            clock,
            options,
            repositories: RwLock::new(repositories),
            unavailable: RwLock::new(unavailable),
        })
    }

    pub fn get(&self, name: &str) -> Result<Arc<Repository>> {
        if let Some(reason) = self.unavailable_reason(name) {
            return Err(StoreError::RepositoryUnavailable {
                name: name.to_owned(),
                reason,
            });
        }
        self.repositories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::RepositoryNotFound(name.to_owned()))
    }

    fn unavailable_reason(&self, name: &str) -> Option<String> {
        self.unavailable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Repositories on this server that could not be opened, with the reason.
    pub fn unavailable(&self) -> BTreeMap<String, String> {
        self.unavailable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn list(&self) -> Vec<Arc<Repository>> {
        self.repositories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn create(&self, name: &str) -> Result<Arc<Repository>> {
        self.add(name, |dir| {
            Repository::open(name, dir, self.clock.clone(), self.options, true)
        })
    }

    /// Makes a repository from a snapshot (see [`Repository::install`]); an existing
    /// repository of that name is an error.
    pub fn install(
        &self,
        name: &str,
        store_snapshot: &Path,
        state: SnapshotState,
        origin: OriginId,
    ) -> Result<Arc<Repository>> {
        self.add(name, |dir| {
            Repository::install(
                name,
                dir,
                store_snapshot,
                state,
                origin,
                self.clock.clone(),
                self.options,
            )
        })
    }

    /// Adds a new repository made by `make` in its directory, under the catalog lock.
    fn add(
        &self,
        name: &str,
        make: impl FnOnce(&Path) -> Result<Repository>,
    ) -> Result<Arc<Repository>> {
        validate_repository_name(name)?;
        let mut repositories = self.repositories.write().unwrap_or_else(|e| e.into_inner());
        if repositories.contains_key(name) {
            return Err(StoreError::RepositoryExists(name.to_owned()));
        }
        if let Some(reason) = self.unavailable_reason(name) {
            return Err(StoreError::RepositoryUnavailable {
                name: name.to_owned(),
                reason: format!("{reason} (delete it before making a repository of that name)"),
            });
        }
        let dir = self.root.join(name);
        if dir.exists() {
            // Not in the catalog, so not a complete repository: an interrupted create.
            fs::remove_dir_all(&dir)?;
        }
        let repository = Arc::new(make(&dir)?);
        repositories.insert(name.to_owned(), repository.clone());
        Ok(repository)
    }

    /// A directory for temporary work (snapshots in transit), on the same file system
    /// as the repositories so that moving into place is a rename.
    pub fn scratch_dir(&self) -> Result<PathBuf> {
        let dir = self
            .root
            .join(format!(".scratch-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    pub fn clock(&self) -> &Arc<HybridClock> {
        &self.clock
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        // A damaged repository that did not open goes the same way, files and all.
        let damaged = self
            .unavailable
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if damaged.is_some() {
            let aside = self
                .root
                .join(format!(".deleted-{name}-{:x}", rand::random::<u32>()));
            fs::rename(self.root.join(name), &aside)?;
            fs::remove_dir_all(&aside)?;
            return Ok(());
        }
        let repository = self
            .repositories
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| StoreError::RepositoryNotFound(name.to_owned()))?;
        let dir = repository.dir().to_owned();
        drop(repository);
        let aside = self
            .root
            .join(format!(".deleted-{name}-{:x}", rand::random::<u32>()));
        fs::rename(&dir, &aside)?;
        fs::remove_dir_all(&aside)?;
        Ok(())
    }

    /// Stops every repository cleanly (at shutdown): see [`Repository::close`].
    pub fn close_all(&self) -> Result<()> {
        for repository in self.list() {
            repository.close()?;
        }
        Ok(())
    }

    /// Checkpoints every repository (now and then).
    pub fn checkpoint_all(&self) -> Result<()> {
        for repository in self.list() {
            repository.checkpoint()?;
        }
        Ok(())
    }
}
