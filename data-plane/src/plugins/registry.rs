//! Every plugin this build can run, with its version and Kong's priority, in execution order.

use std::sync::Arc;

use super::instance::BuildCtx;
use super::plugin::Plugin;
use super::{acl, cors, oauth2_introspection, openid_connect, rate_limiting};

/// Builds one instance from a plugin entity.
pub type Factory = fn(&shared::Plugin, &BuildCtx) -> Result<Arc<dyn Plugin>, String>;

/// A plugin this node can run.
pub struct Registered {
    pub name: &'static str,
    pub version: &'static str,
    /// Kong's priority: plugins run from the highest to the lowest in every phase.
    pub priority: u32,
    pub build: Factory,
}

/// Every plugin, in execution order (Kong's priorities, highest first; a test keeps it sorted).
pub fn registry() -> &'static [Registered] {
    &[
        Registered {
            name: shared::plugins::cors::NAME,
            version: shared::plugins::cors::VERSION,
            priority: 2000,
            build: cors::build,
        },
        Registered {
            name: shared::plugins::oauth2_introspection::NAME,
            version: shared::plugins::oauth2_introspection::VERSION,
            priority: 1700,
            build: oauth2_introspection::build,
        },
        Registered {
            name: shared::plugins::openid_connect::NAME,
            version: shared::plugins::openid_connect::VERSION,
            priority: 1050,
            build: openid_connect::build,
        },
        Registered {
            name: shared::plugins::acl::NAME,
            version: shared::plugins::acl::VERSION,
            priority: 950,
            build: acl::build,
        },
        Registered {
            name: shared::plugins::rate_limiting::NAME,
            version: shared::plugins::rate_limiting::VERSION,
            priority: 910,
            build: rate_limiting::build,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_runs_plugins_by_kong_priority_highest_first() {
        let priorities: Vec<u32> = registry().iter().map(|r| r.priority).collect();
        let mut sorted = priorities.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(priorities, sorted);
        let mut names: Vec<&str> = registry().iter().map(|r| r.name).collect();
        names.dedup();
        assert_eq!(names.len(), registry().len(), "each plugin once");
    }
}
