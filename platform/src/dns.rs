//! The DNS stub resolver both planes use for Target host names: the `--dns-resolver` name servers, or
//! the system's configuration; the hosts file either way. Lookups are bounded (2 s, two attempts) and
//! the resolver keeps no cache of its own (the data plane keeps one that follows the records' TTL).

use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use shared::dns::Nameservers;
use tracing::warn;

/// A resolver asking `servers` (UDP, then TCP for truncated answers), or, without them, the name
/// servers of `/etc/resolv.conf` (only the hosts file when the system has no DNS configuration).
pub fn resolver(servers: Option<&Nameservers>) -> TokioResolver {
    let with = |group: NameServerConfigGroup| {
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], group),
            TokioConnectionProvider::default(),
        )
    };
    let mut builder = match servers {
        Some(list) => {
            let mut group = NameServerConfigGroup::new();
            for addr in &list.0 {
                group.push(NameServerConfig::new(*addr, Protocol::Udp));
                group.push(NameServerConfig::new(*addr, Protocol::Tcp));
            }
            with(group)
        }
        None => TokioResolver::builder_tokio().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the system's DNS configuration; only the hosts file resolves Target names (give --dns-resolver)");
            with(NameServerConfigGroup::new())
        }),
    };
    // The system's options (ndots, search) stay; lookups are bounded.
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.cache_size = 0;
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hosts_file_resolves_without_a_name_server() {
        let r = resolver(Some(&"127.0.0.1:9".parse().unwrap()));
        let found = r.lookup_ip("localhost").await.unwrap();
        let ips: Vec<std::net::IpAddr> = found.iter().collect();
        assert!(ips.contains(&"127.0.0.1".parse().unwrap()), "{ips:?}");
    }
}
