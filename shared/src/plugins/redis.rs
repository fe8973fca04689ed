//! The `redis` config group of plugins that keep state on a Redis server (Kong's `redis` record:
//! host, port, timeout, username, password, database, ssl, ssl_verify, server_name, and `prefix` for
//! session storage), read from the record or from Kong's older flat spellings (`redis_host`,
//! `session_redis_host`, …), which fill the record.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::schema::{FieldErrors, Fields};

/// The record's field that holds a secret, as a dotted path from the plugin's config.
pub const PASSWORD_PATH: &str = "redis.password";

/// Milliseconds for connecting and for each command when the config names none (Kong's default).
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

/// Where and how to reach a Redis server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Redis {
    /// Required by the plugins that use Redis; `None` when the config does not use it.
    pub host: Option<String>,
    pub port: u16,
    /// Milliseconds for connecting and for each round trip.
    pub timeout: u64,
    /// Redis 6 ACL user; none sends `AUTH password` alone.
    pub username: Option<String>,
    /// A secret: redacted on read.
    pub password: Option<String>,
    pub database: i64,
    pub ssl: bool,
    /// Verify the server's certificate (Kong's default: no).
    pub ssl_verify: bool,
    /// The name sent in SNI and checked in the certificate: the host (a different name is refused).
    pub server_name: Option<String>,
    /// What keys start with (session storage only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// How a plugin spells its `redis` record: the prefix of its flat shorthands (`redis_`, `session_redis_`)
/// and whether the record takes a key `prefix`.
#[derive(Debug, Clone, Copy)]
pub struct Spelling {
    pub shorthand: &'static str,
    pub prefix: bool,
}

/// `rate-limiting`'s spelling.
pub const COUNTERS: Spelling = Spelling {
    shorthand: "redis_",
    prefix: false,
};

/// `openid-connect`'s spelling (session storage).
pub const SESSIONS: Spelling = Spelling {
    shorthand: "session_redis_",
    prefix: true,
};

/// The record's fields Kong still accepts flat, after the plugin's shorthand prefix.
const SHORTHANDS: [&str; 10] = [
    "host",
    "port",
    "timeout",
    "username",
    "password",
    "database",
    "ssl",
    "ssl_verify",
    "server_name",
    "prefix",
];

/// Reads the `redis` record of the config `f` reads, with the flat shorthands merged into it (a field of
/// the record wins over its shorthand).
pub fn read(f: &mut Fields<'_>, spelling: Spelling) -> Redis {
    let mut record = match f.raw("redis") {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            f.error("redis", "expected a record");
            Map::new()
        }
        None => Map::new(),
    };
    for field in SHORTHANDS {
        if field == "prefix" && !spelling.prefix {
            continue;
        }
        if let Some(v) = f.raw(&format!("{}{field}", spelling.shorthand)) {
            record.entry(field).or_insert_with(|| v.clone());
        }
    }
    f.shape("redis", || record_shape(spelling));
    let record = Value::Object(record);
    let mut inner = match Fields::new(&record, &f.path("redis")) {
        Ok(inner) => inner,
        Err(e) => {
            f.errors.merge_under("", e);
            return Redis::default();
        }
    };
    let mut redis = read_fields(&mut inner);
    if spelling.prefix {
        redis.prefix = inner.opt_string("prefix").filter(|p| !p.is_empty());
    }
    let errors: FieldErrors = inner.finish();
    f.errors.merge_under("", errors);
    redis
}

fn read_fields(f: &mut Fields<'_>) -> Redis {
    let host = f.opt_string("host").filter(|h| !h.is_empty());
    if let Some(h) = &host {
        if crate::entity::validate_host_name(h).is_err() || h.contains('*') {
            f.error("host", "invalid hostname");
        }
    }
    let port = f.int_or("port", 0, 65535, 6379) as u16;
    let timeout = f.int_or("timeout", 0, i32::MAX as i64, DEFAULT_TIMEOUT_MS as i64) as u64;
    let username = f.opt_string("username").filter(|s| !s.is_empty());
    let password = f.opt_string("password").filter(|s| !s.is_empty());
    let database = f.int_or("database", 0, i32::MAX as i64, 0);
    let ssl = f.bool_or("ssl", false);
    let ssl_verify = f.bool_or("ssl_verify", false);
    let server_name = f.opt_string("server_name").filter(|s| !s.is_empty());
    if let Some(name) = &server_name {
        if crate::entity::validate_host_name(name).is_err() || name.contains('*') {
            f.error("server_name", "invalid SNI");
        } else if host.as_ref().is_some_and(|h| !h.eq_ignore_ascii_case(name)) {
            // The connection sends the host it connects to as SNI and checks the certificate against it.
            f.error(
                "server_name",
                "must be the host itself: the name sent in SNI and checked in the certificate is 'host'",
            );
        }
    }
    Redis {
        host,
        port,
        timeout,
        username,
        password,
        database,
        ssl,
        ssl_verify,
        server_name,
        prefix: None,
    }
}

impl Default for Redis {
    fn default() -> Redis {
        Redis {
            host: None,
            port: 6379,
            timeout: DEFAULT_TIMEOUT_MS,
            username: None,
            password: None,
            database: 0,
            ssl: false,
            ssl_verify: false,
            server_name: None,
            prefix: None,
        }
    }
}

/// Kong's description of the record, for `/schemas/plugins/{name}`.
fn record_shape(spelling: Spelling) -> Value {
    let mut shape = json!({
        "type": "record",
        "fields": [
            {"host": {"type": "string"}},
            {"port": {"type": "integer", "default": 6379, "between": [0, 65535]}},
            {"timeout": {"type": "integer", "default": DEFAULT_TIMEOUT_MS, "between": [0, i32::MAX]}},
            {"username": {"type": "string"}},
            {"password": {"type": "string", "encrypted": true}},
            {"database": {"type": "integer", "default": 0}},
            {"ssl": {"type": "boolean", "default": false}},
            {"ssl_verify": {"type": "boolean", "default": false}},
            {"server_name": {"type": "string"}},
        ]
    });
    if spelling.prefix {
        if let Some(fields) = shape["fields"].as_array_mut() {
            fields.push(json!({"prefix": {"type": "string", "default": "sessions"}}));
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> (Redis, FieldErrors) {
        let mut f = Fields::new(&v, "").unwrap();
        let r = read(&mut f, COUNTERS);
        (r, f.finish())
    }

    #[test]
    fn the_record_has_kong_defaults() {
        let (r, e) = parse(json!({"redis": {"host": "cache.internal"}}));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r.host.as_deref(), Some("cache.internal"));
        assert_eq!((r.port, r.timeout, r.database), (6379, 2000, 0));
        assert!(!r.ssl && !r.ssl_verify);
    }

    #[test]
    fn flat_spellings_fill_the_record_and_the_record_wins() {
        let (r, e) = parse(json!({
            "redis_host": "a.internal", "redis_port": 7000, "redis_password": "pw",
            "redis": {"port": 7001}
        }));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r.host.as_deref(), Some("a.internal"));
        assert_eq!(r.port, 7001);
        assert_eq!(r.password.as_deref(), Some("pw"));
    }

    #[test]
    fn session_storage_spells_its_shorthands_apart_and_takes_a_prefix() {
        let v = json!({"session_redis_host": "s.internal", "redis": {"prefix": "gw"}});
        let mut f = Fields::new(&v, "").unwrap();
        let r = read(&mut f, SESSIONS);
        assert!(f.finish().is_empty());
        assert_eq!(
            (r.host.as_deref(), r.prefix.as_deref()),
            (Some("s.internal"), Some("gw"))
        );
        let (_, e) = parse(json!({"redis": {"prefix": "gw"}}));
        assert!(
            e.contains("redis.prefix"),
            "rate-limiting keys take no prefix: {e:?}"
        );
    }

    #[test]
    fn errors_name_the_field_inside_the_record() {
        let (_, e) = parse(json!({"redis": {"port": 70000, "host": "bad host", "colour": 1}}));
        for field in ["redis.port", "redis.host", "redis.colour"] {
            assert!(e.contains(field), "{field} missing in {e:?}");
        }
        let (_, e) = parse(json!({"redis": {"host": "10.0.0.7", "server_name": "cache.internal"}}));
        assert!(e.contains("redis.server_name"), "{e:?}");
        let (_, e) = parse(json!({"redis": 5}));
        assert!(e.contains("redis"), "{e:?}");
    }
}
