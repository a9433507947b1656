//! A repository's standing in its cluster, as far as local writes go.

use crate::error::{Result, StoreError};
use crate::repository::Repository;
use quadmesh_repl::{
    decide_confirmation, decide_vote, ConfigPosition, ConsentRefusal, MembershipError, Promise,
    VoteRequest,
};

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

impl Repository {
    /// Answers a candidate's request for this instance's vote (see
    /// `quadmesh_repl::decide_vote`). A grant is saved in `cluster.json` before this
    /// returns, under the writer lock, so it is decided against the configuration held
    /// at that moment and survives a crash right after the answer. The outer error is a
    /// failure to decide or to save (nothing granted); the inner one a refusal.
    pub fn grant_vote(&self, request: &VoteRequest) -> Result<Result<Promise, ConsentRefusal>> {
        let mut writer = self.lock_writer();
        let Some(config) = writer.cluster.config.as_ref() else {
            return Err(StoreError::from(MembershipError::NotInCluster(
                self.name().to_owned(),
            )));
        };
        let promise = match decide_vote(config, writer.cluster.promised, request) {
            Ok(promise) => promise,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if writer.cluster.promised != Some(promise) {
            let mut next = writer.cluster.clone();
            next.promised = Some(promise);
            next.save(self.dir())?;
            writer.cluster = next;
        }
        Ok(Ok(promise))
    }

    /// Whether this instance confirms the change that made configuration `wanted` (it
    /// holds it, and promised no newer epoch; see `quadmesh_repl::decide_confirmation`).
    /// Decided under the writer lock, so against the same state votes are.
    pub fn confirm_change(&self, wanted: ConfigPosition) -> Result<Result<(), ConsentRefusal>> {
        let writer = self.lock_writer();
        let Some(config) = writer.cluster.config.as_ref() else {
            return Err(StoreError::from(MembershipError::NotInCluster(
                self.name().to_owned(),
            )));
        };
        Ok(decide_confirmation(config, writer.cluster.promised, wanted))
    }
}
