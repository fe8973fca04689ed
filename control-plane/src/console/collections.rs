//! The entity collections the console shows, and how an entity is named and summarised in a list.

use serde_json::Value;

/// A collection of the Admin API the console lists and edits.
pub struct Collection {
    /// Its path in the Admin API (`services`).
    pub name: &'static str,
    /// Its heading (`Services`).
    pub title: &'static str,
    /// One of it (`service`).
    pub one: &'static str,
    /// List columns: heading and field.
    pub columns: &'static [(&'static str, &'static str)],
}

/// Every collection, in navigation order.
pub const ALL: &[Collection] = &[
    Collection {
        name: "services",
        title: "Services",
        one: "service",
        columns: &[
            ("Protocol", "protocol"),
            ("Host", "host"),
            ("Port", "port"),
            ("Path", "path"),
            ("Enabled", "enabled"),
        ],
    },
    Collection {
        name: "routes",
        title: "Routes",
        one: "route",
        columns: &[
            ("Service", "service"),
            ("Paths", "paths"),
            ("Hosts", "hosts"),
            ("Methods", "methods"),
        ],
    },
    Collection {
        name: "consumers",
        title: "Consumers",
        one: "consumer",
        columns: &[("Username", "username"), ("Custom id", "custom_id")],
    },
    Collection {
        name: "plugins",
        title: "Plugins",
        one: "plugin",
        columns: &[
            ("Service", "service"),
            ("Route", "route"),
            ("Consumer", "consumer"),
            ("Enabled", "enabled"),
        ],
    },
    Collection {
        name: "upstreams",
        title: "Upstreams",
        one: "upstream",
        columns: &[("Algorithm", "algorithm"), ("Slots", "slots")],
    },
    Collection {
        name: "certificates",
        title: "Certificates",
        one: "certificate",
        columns: &[("SNIs", "snis")],
    },
    Collection {
        name: "snis",
        title: "SNIs",
        one: "SNI",
        columns: &[("Certificate", "certificate")],
    },
    Collection {
        name: "ca_certificates",
        title: "CA certificates",
        one: "CA certificate",
        columns: &[("Digest", "cert_digest")],
    },
];

/// The collection named `name`.
pub fn named(name: &str) -> Option<&'static Collection> {
    ALL.iter().find(|c| c.name == name)
}

/// What a person calls an entity: its name, username or target, else its id.
pub fn label(entity: &Value) -> String {
    ["name", "username", "custom_id", "target"]
        .iter()
        .find_map(|k| entity[*k].as_str().filter(|s| !s.is_empty()))
        .or_else(|| entity["id"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// A field's value in a list cell: a reference as its id's first characters, a list joined.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Object(m) if m.contains_key("id") => m["id"]
            .as_str()
            .map(|id| id.chars().take(8).collect())
            .unwrap_or_default(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}
