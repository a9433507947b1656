//! Name resolution for peers: at every connection attempt, never cached, so an instance
//! that comes back at another address is found at once.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Resolves through the system resolver, after an optional hosts file
/// (`QUADMESH_HOSTS_FILE`, lines of `ADDRESS NAME...`) read afresh every time; tests use
/// it to move an instance to another address under the same name.
#[derive(Clone, Debug, Default)]
pub struct PeerResolver {
    hosts_file: Option<PathBuf>,
}

impl PeerResolver {
    pub fn from_env() -> Self {
        PeerResolver {
            hosts_file: std::env::var_os("QUADMESH_HOSTS_FILE").map(PathBuf::from),
        }
    }
}

fn from_hosts_file(path: &PathBuf, name: &str) -> Option<Vec<SocketAddr>> {
    let text = std::fs::read_to_string(path).ok()?;
    let addrs: Vec<SocketAddr> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('#').next()?.split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            fields
                .any(|n| n.eq_ignore_ascii_case(name))
                .then_some(SocketAddr::new(ip, 0))
        })
        .collect();
    (!addrs.is_empty()).then_some(addrs)
}

impl Resolve for PeerResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let hosts_file = self.hosts_file.clone();
        Box::pin(async move {
            if let Some(addrs) = hosts_file
                .as_ref()
                .and_then(|p| from_hosts_file(p, name.as_str()))
            {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
