//! The control planes a node may talk to: `--control-plane host:port[,host:port…]`, where each host may be
//! a DNS name with several addresses. Every connection attempt takes the next address in turn, so a node
//! whose control plane is gone reaches another one on its next attempt, within its backoff, with the
//! identity it already has (any control plane of the cluster accepts it).

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Result};
use tracing::warn;

/// One `host:port` entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    host: String,
    port: u16,
}

/// One address to connect to, with the name its certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub addr: SocketAddr,
    /// The host as written (a DNS name or an IP address), checked against the server certificate.
    pub server_name: String,
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.server_name == self.addr.ip().to_string() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{} ({})", self.server_name, self.addr)
        }
    }
}

/// The parsed `--control-plane` list.
#[derive(Debug, Clone)]
pub struct ControlPlanes {
    entries: Vec<Entry>,
}

impl ControlPlanes {
    /// Parses `host:port[,host:port…]` (IPv6 addresses in brackets).
    pub fn parse(list: &str) -> Result<ControlPlanes> {
        let mut entries = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (host, port) = item
                .rsplit_once(':')
                .ok_or_else(|| anyhow!("--control-plane entry '{item}' must be host:port"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow!("--control-plane entry '{item}': '{port}' is not a port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                bail!("--control-plane entry '{item}' has no host");
            }
            entries.push(Entry {
                host: host.to_string(),
                port,
            });
        }
        if entries.is_empty() {
            bail!("--control-plane names no address");
        }
        Ok(ControlPlanes { entries })
    }

    /// Every address to try, in list order (each name's addresses as the resolver gives them). A name
    /// that does not resolve now is skipped; an error only when nothing resolves.
    pub async fn candidates(&self) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        let mut failures = Vec::new();
        for e in &self.entries {
            match tokio::net::lookup_host((e.host.as_str(), e.port)).await {
                Ok(addrs) => out.extend(addrs.map(|addr| Candidate {
                    addr,
                    server_name: e.host.clone(),
                })),
                Err(err) => {
                    warn!(host = %e.host, error = %err, "cannot resolve a control plane address");
                    failures.push(format!("{}:{}: {err}", e.host, e.port));
                }
            }
        }
        if out.is_empty() {
            bail!(
                "no control plane address resolves ({})",
                failures.join("; ")
            );
        }
        Ok(out)
    }

    /// The address for connection attempt number `attempt`: attempts go round the list.
    pub async fn pick(&self, attempt: usize) -> Result<Candidate> {
        let all = self.candidates().await?;
        Ok(all[attempt % all.len()].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_refuses_bad_entries() {
        let cps = ControlPlanes::parse("cp-a:8005, [::1]:9000,10.0.0.7:8005").unwrap();
        assert_eq!(
            cps.entries,
            vec![
                Entry {
                    host: "cp-a".into(),
                    port: 8005
                },
                Entry {
                    host: "::1".into(),
                    port: 9000
                },
                Entry {
                    host: "10.0.0.7".into(),
                    port: 8005
                },
            ]
        );
        for bad in ["", "cp-a", "cp-a:http", ":8005", "cp-a:70000"] {
            assert!(ControlPlanes::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn attempts_go_round_every_address() {
        let cps = ControlPlanes::parse("127.0.0.1:1,127.0.0.2:2").unwrap();
        let mut picks = Vec::new();
        for attempt in 0..4 {
            picks.push(cps.pick(attempt).await.unwrap().to_string());
        }
        assert_eq!(
            picks,
            ["127.0.0.1:1", "127.0.0.2:2", "127.0.0.1:1", "127.0.0.2:2"]
        );
    }
}
