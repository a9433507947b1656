//! A repository's standing in its cluster, as far as local writes go.

use crate::error::Result;
use crate::repository::Repository;

impl Repository {
    /// Records that this instance was away from its cluster longer than the log is kept
    /// (`reason`: how it knows). From the moment this returns, local writes are refused
    /// (under the writer lock, so no commit after it is acknowledged), and the fact
    /// survives restarts: only removing the instance and growing it again undoes it.
    /// Says whether it was new.
    pub fn mark_expired(&self, reason: &str) -> Result<bool> {
        let mut writer = self.lock_writer();
        if writer.cluster.expired.is_some() || writer.cluster.removed {
            return Ok(false);
        }
        // Refused from now on even if recording it fails (then only until a restart).
        writer.cluster.expired = Some(reason.to_owned());
        self.publish_cluster(&writer);
        writer.cluster.save(self.dir())?;
        Ok(true)
    }
}
