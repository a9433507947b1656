//! Anti-entropy: every heartbeat carries the sender's content digest at its version
//! vector; the receiver compares it with its own digest when it was at that same
//! version vector. Equal version vectors mean the same transactions were applied, so
//! different digests prove that contents diverged, whatever the lag says.

use quadmesh_repl::{ContentDigest, OriginId, VersionVector};
use quadmesh_store::DigestCheck;
use std::collections::HashMap;
use std::sync::Mutex;

pub use quadmesh_repl::wire::PeerComparison;

/// What this instance knows of its contents against each peer's.
///
/// Rules it keeps: a comparison is recorded only at a version vector both sides
/// were at (never guessed from lag); the newest comparison with a peer replaces the
/// older one, so a divergence stays reported until contents agree again.
#[derive(Debug, Default)]
pub struct AntiEntropy {
    peers: Mutex<HashMap<OriginId, PeerComparison>>,
    checks: Mutex<(u64, u64)>,
}

impl AntiEntropy {
    pub fn record(
        &self,
        peer: OriginId,
        version_vector: &VersionVector,
        check: DigestCheck,
        theirs: ContentDigest,
        now_ms: u64,
    ) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        match check {
            DigestCheck::Unknown => {}
            DigestCheck::Agrees => {
                checks.0 += 1;
                peers.insert(peer, PeerComparison::Agrees { at_ms: now_ms });
            }
            DigestCheck::Differs { ours } => {
                checks.1 += 1;
                let since_ms = match peers.get(&peer) {
                    Some(PeerComparison::Differs { since_ms, .. }) => *since_ms,
                    _ => {
                        tracing::error!(
                            peer = %peer,
                            ours = %ours,
                            theirs = %theirs,
                            "contents differ from a peer's at the same version vector: replicas diverged"
                        );
                        now_ms
                    }
                };
                peers.insert(
                    peer,
                    PeerComparison::Differs {
                        since_ms,
                        version_vector: version_vector
                            .iter()
                            .map(|(o, s)| (o.to_string(), s))
                            .collect(),
                        ours: ours.to_string(),
                        theirs: theirs.to_string(),
                    },
                );
            }
        }
    }

    pub fn comparison(&self, peer: OriginId) -> Option<PeerComparison> {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned()
    }

    /// Forgets every comparison (this instance's contents were just repaired): the
    /// next heartbeats at a common version vector say where it stands.
    pub fn forget(&self) {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Peers whose contents were last seen to differ from ours.
    pub fn divergent(&self) -> Vec<OriginId> {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, c)| matches!(c, PeerComparison::Differs { .. }))
            .map(|(o, _)| *o)
            .collect()
    }

    /// Comparisons made: (agreeing, differing).
    pub fn checks(&self) -> (u64, u64) {
        *self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this instance is the odd one out among the peers it compared with that
    /// are among `members` (`quadmesh_repl::in_minority` decides).
    pub fn in_minority(&self, members: impl Fn(OriginId) -> bool) -> bool {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        quadmesh_repl::in_minority(
            peers
                .iter()
                .filter(|(o, _)| members(**o))
                .map(|(_, comparison)| comparison),
        )
    }
}
