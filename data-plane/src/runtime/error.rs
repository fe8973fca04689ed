//! Why a snapshot or a delta is refused: the reason a node sends back in its NACK and logs with a
//! `kind` label. Whatever the reason, the configuration that was live stays live.

use uuid::Uuid;

/// Why an update cannot become the live configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("snapshot is {size} bytes, larger than this node's limit of {limit} bytes (--max-config-bytes)")]
    TooLarge { size: usize, limit: usize },
    /// The bytes do not decode, or the changes do not apply to a consistent state.
    #[error("{0}")]
    Undecodable(String),
    #[error("delta from version {base_version} ({base_hash}), but this node runs version {version} ({hash})")]
    OutOfOrder {
        base_version: u64,
        base_hash: String,
        version: u64,
        hash: String,
    },
    #[error("delta from version {base_version}, but this node runs no config")]
    NoBase { base_version: u64 },
    #[error("diverged: the config after the delta hashes to {actual}, the control plane's to {expected}")]
    Diverged { actual: String, expected: String },
    /// An entity of the state cannot be prepared for the request path (a route's pattern, a service's
    /// host, a certificate, a target's address); the reason names it.
    #[error("{reason}")]
    Unusable { kind: &'static str, reason: String },
    #[error("plugin '{name}' ({id}) is not supported by this node")]
    PluginUnsupported { name: String, id: Uuid },
    #[error("plugin '{name}' ({id}) is not enabled on this node")]
    PluginNotEnabled { name: String, id: Uuid },
    #[error("plugin '{name}' ({id}): {reason}")]
    PluginConfig {
        name: String,
        id: Uuid,
        reason: String,
    },
}

impl BuildError {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BuildError::TooLarge { .. } => "too_large",
            BuildError::Undecodable(_) => "undecodable",
            BuildError::OutOfOrder { .. } | BuildError::NoBase { .. } => "out_of_order",
            BuildError::Diverged { .. } => "diverged",
            BuildError::Unusable { kind, .. } => kind,
            BuildError::PluginUnsupported { .. } => "plugin_unsupported",
            BuildError::PluginNotEnabled { .. } => "plugin_not_enabled",
            BuildError::PluginConfig { .. } => "plugin_config",
        }
    }

    /// An entity of `kind` that cannot be used, for `reason`.
    pub fn unusable(kind: &'static str) -> impl FnOnce(String) -> BuildError {
        move |reason| BuildError::Unusable { kind, reason }
    }
}
