//! The `--dns-resolver` flag both planes take: the name servers that resolve Target host names, as
//! `ip[:port]` entries separated by commas (port 53 when left out; IPv6 addresses in brackets when a
//! port follows). Without the flag each plane uses the system's configuration (`/etc/resolv.conf` and
//! the hosts file).

use std::net::{IpAddr, SocketAddr};

/// The name servers to ask, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nameservers(pub Vec<SocketAddr>);

impl std::str::FromStr for Nameservers {
    type Err = String;

    fn from_str(s: &str) -> Result<Nameservers, String> {
        let mut out = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let addr = entry
                .parse::<SocketAddr>()
                .or_else(|_| entry.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    format!("'{entry}' is not a name server address (expected ip or ip:port)")
                })?;
            out.push(addr);
        }
        if out.is_empty() {
            return Err("no name server given".into());
        }
        Ok(Nameservers(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_take_a_port_or_default_to_53() {
        let n: Nameservers = "10.0.0.2, 127.0.0.1:5353,[::1]:54,::2".parse().unwrap();
        let want: Vec<SocketAddr> = ["10.0.0.2:53", "127.0.0.1:5353", "[::1]:54", "[::2]:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(n.0, want);
    }

    #[test]
    fn bad_entries_are_named() {
        let err = "10.0.0.2,dns.example".parse::<Nameservers>().unwrap_err();
        assert!(err.contains("'dns.example'"), "{err}");
        assert!(" , ".parse::<Nameservers>().is_err());
    }
}
