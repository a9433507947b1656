use crate::error::{Result, StoreError};
use quadmesh_repl::{ClusterConfig, Promise};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// A repository's place in a replication cluster, kept in `cluster.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The newest configuration applied here; `None` for a standalone repository.
    pub config: Option<ClusterConfig>,
    /// Set once this instance learned it was removed: it replicates no more, and its
    /// origin id is never used in a cluster again.
    pub removed: bool,
    /// Set once this instance learned it was away from its cluster longer than the log is
    /// kept (the reason): the others no longer take its transactions, so it takes no
    /// more writes until it is removed and grown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<String>,
    /// The newest promotion this instance granted (saved before the grant is answered):
    /// it grants no other candidate that epoch and confirms no change of an older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised: Option<Promise>,
    /// Until when (wall clock, ms since the epoch) the controlling instance holds this
    /// instance's local writes while it removes it (`repl/hold`): kept here so that a
    /// restart in the middle of a removal does not take writes the removal would lose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for_removal_until_ms: Option<u64>,
}

impl ClusterState {
    pub const FILE: &'static str = "cluster.json";

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            return Ok(Self::default());
        }
        serde_json::from_slice(&fs::read(&path)?).map_err(|e| StoreError::Corrupt {
            what: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// Written atomically, readable by the owner only (it holds the cluster token).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!("{}.tmp", Self::FILE));
        let mut file = File::create(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(&serde_json::to_vec_pretty(self).expect("serialises"))?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(Self::FILE))?;
        Ok(())
    }

    /// Whether repository `name` takes local writes here: not once removed or expired.
    pub fn check_writable(&self, name: &str) -> Result<()> {
        if self.removed {
            return Err(StoreError::Removed(name.to_owned()));
        }
        if let Some(reason) = &self.expired {
            return Err(StoreError::Expired {
                repository: name.to_owned(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Whether the configuration held here removed `peer` and waits for nothing more
    /// from it (it is not handing over its own transactions): a pull stream from it is
    /// taken no further, and none of its transactions can come from it again.
    pub fn removed_for_good(&self, peer: quadmesh_repl::OriginId) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.removed.contains(&peer) && !c.is_handing_over(peer))
    }

    /// Whether other members exist, so that writes must be remembered in the register.
    pub fn replicated(&self) -> bool {
        !self.removed && self.config.as_ref().is_some_and(|c| c.members.len() > 1)
    }
}
