//! Config schema of `rate-limiting` (Kong's field set). Kong's `cluster` policy keeps counters in the
//! database, which data planes do not have: it is refused, and `redis` is the cluster-wide policy.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redis::{self, Redis};
use crate::entity::Resolver;
use crate::http_syntax;
use crate::keyword::Keyword;
use crate::schema::{FieldErrors, Fields};

/// The plugin's name.
pub const NAME: &str = "rate-limiting";
/// The schema version this release speaks.
pub const VERSION: &str = "1.0.0";
/// Fields that hold secrets.
pub const SECRET_FIELDS: &[&str] = &[redis::PASSWORD_PATH];

crate::keywords! {
    /// A window a limit counts requests in, shortest first. Windows start at calendar boundaries (UTC).
    pub enum Period { Second = "second", Minute = "minute", Hour = "hour", Day = "day", Month = "month", Year = "year" }
}

crate::keywords! {
    /// What requests are counted together.
    pub enum LimitBy {
        Consumer = "consumer",
        Credential = "credential",
        Ip = "ip",
        Service = "service",
        Header = "header",
        Path = "path",
        ConsumerGroup = "consumer-group",
    }
}

crate::keywords! {
    /// Where counters live: `local` in each node's memory (N nodes admit up to N× the limit), `redis` on
    /// one Redis server every node shares.
    pub enum Policy { Local = "local", Redis = "redis" }
}

/// A validated `rate-limiting` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub second: Option<u64>,
    pub minute: Option<u64>,
    pub hour: Option<u64>,
    pub day: Option<u64>,
    pub month: Option<u64>,
    pub year: Option<u64>,
    pub limit_by: LimitBy,
    pub header_name: Option<String>,
    pub path: Option<String>,
    pub policy: Policy,
    /// When the counter store fails: let the request through (and log) when true, else answer 503.
    pub fault_tolerant: bool,
    pub redis: Redis,
    pub hide_client_headers: bool,
    pub error_code: u16,
    pub error_message: String,
    /// `-1`: every request counts at once (the only mode this release has).
    pub sync_rate: i64,
}

impl Config {
    /// Validates a raw config, filling in defaults.
    pub fn parse(v: &Value, _resolver: &dyn Resolver) -> Result<Config, FieldErrors> {
        let mut f = Fields::new(v, "")?;
        let limit =
            |f: &mut Fields<'_>, p: Period| f.opt_int(p.as_str(), 1, i64::MAX).map(|n| n as u64);
        let second = limit(&mut f, Period::Second);
        let minute = limit(&mut f, Period::Minute);
        let hour = limit(&mut f, Period::Hour);
        let day = limit(&mut f, Period::Day);
        let month = limit(&mut f, Period::Month);
        let year = limit(&mut f, Period::Year);
        let limit_by = f.opt_keyword("limit_by").unwrap_or(LimitBy::Consumer);
        let header_name = f.opt_string("header_name").filter(|s| !s.is_empty());
        if let Some(h) = &header_name {
            f.check(
                "header_name",
                h,
                http_syntax::is_header_name,
                http_syntax::INVALID_HEADER_NAME,
            );
        }
        let path = f.opt_string("path").filter(|s| !s.is_empty());
        if path.as_deref().is_some_and(|p| !p.starts_with('/')) {
            f.error("path", "should start with: /");
        }
        let policy = match f.opt_string("policy").as_deref() {
            None | Some("local") => Policy::Local,
            Some("redis") => Policy::Redis,
            Some("cluster") => {
                f.error("policy", "the cluster policy needs a database on every node; data planes have none: use redis for limits shared by every node");
                Policy::Local
            }
            Some(_) => {
                f.error("policy", "expected one of: local, redis");
                Policy::Local
            }
        };
        f.shape(
            "policy",
            || serde_json::json!({"type": "string", "default": "local", "one_of": ["local", "redis"]}),
        );
        let fault_tolerant = f.bool_or("fault_tolerant", true);
        let redis = redis::read(&mut f, redis::COUNTERS);
        let hide_client_headers = f.bool_or("hide_client_headers", false);
        let error_code = f.int_or("error_code", 100, 599, 429) as u16;
        let error_message = f
            .opt_string("error_message")
            .unwrap_or_else(|| "API rate limit exceeded".to_string());
        let sync_rate = f.int_or("sync_rate", -1, -1, -1);

        let limits = [second, minute, hour, day, month, year];
        if limits.iter().all(Option::is_none) {
            f.error(
                crate::schema::ENTITY,
                "at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'",
            );
        }
        check_periods_order(&mut f, &limits);
        if policy == Policy::Redis && redis.host.is_none() {
            f.error("redis.host", "required field missing");
        }
        if limit_by == LimitBy::Header && header_name.is_none() {
            f.error("header_name", "required field missing");
        }
        if limit_by == LimitBy::Path && path.is_none() {
            f.error("path", "required field missing");
        }
        f.finish().into_result(Config {
            second,
            minute,
            hour,
            day,
            month,
            year,
            limit_by,
            header_name,
            path,
            policy,
            fault_tolerant,
            redis,
            hide_client_headers,
            error_code,
            error_message,
            sync_rate,
        })
    }

    /// The configured limits, shortest window first.
    pub fn limits(&self) -> impl Iterator<Item = (Period, u64)> + '_ {
        [
            (Period::Second, self.second),
            (Period::Minute, self.minute),
            (Period::Hour, self.hour),
            (Period::Day, self.day),
            (Period::Month, self.month),
            (Period::Year, self.year),
        ]
        .into_iter()
        .filter_map(|(p, l)| Some((p, l?)))
    }
}

/// A longer window may not allow fewer requests than a shorter one (Kong's rule and wording).
fn check_periods_order(f: &mut Fields<'_>, limits: &[Option<u64>; 6]) {
    for (i, lower) in Period::ALL.iter().enumerate() {
        let Some(v1) = limits[i] else { continue };
        for (j, upper) in Period::ALL.iter().enumerate().skip(i + 1) {
            if let Some(v2) = limits[j].filter(|v2| *v2 < v1) {
                f.error(
                    crate::schema::ENTITY,
                    format!(
                        "The limit for {upper}({v2}.0) cannot be lower than the limit for {lower}({v1}.0)"
                    ),
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::describe::NoEntities as Nothing;
    use serde_json::json;

    #[test]
    fn defaults_are_kong_s() {
        let c = Config::parse(&json!({"minute": 100}), &Nothing).unwrap();
        assert_eq!(c.limit_by, LimitBy::Consumer);
        assert_eq!(c.policy, Policy::Local);
        assert!(c.fault_tolerant && !c.hide_client_headers);
        assert_eq!(
            (c.error_code, c.error_message.as_str()),
            (429, "API rate limit exceeded")
        );
        assert_eq!(c.limits().collect::<Vec<_>>(), [(Period::Minute, 100)]);
        assert_eq!(c.sync_rate, -1);
    }

    #[test]
    fn a_config_needs_a_limit_and_longer_windows_allow_more() {
        let e = Config::parse(&json!({}), &Nothing).unwrap_err();
        assert!(e.get("@entity").unwrap().starts_with("at least one of"));
        let e = Config::parse(&json!({"second": 10, "hour": 5}), &Nothing).unwrap_err();
        assert_eq!(
            e.get("@entity"),
            Some("The limit for hour(5.0) cannot be lower than the limit for second(10.0)")
        );
    }

    #[test]
    fn conditional_fields_are_required() {
        let e = Config::parse(&json!({"minute": 1, "policy": "redis"}), &Nothing).unwrap_err();
        assert!(e.contains("redis.host"), "{e:?}");
        let e = Config::parse(&json!({"minute": 1, "limit_by": "header"}), &Nothing).unwrap_err();
        assert!(e.contains("header_name"), "{e:?}");
        let e = Config::parse(&json!({"minute": 1, "limit_by": "path"}), &Nothing).unwrap_err();
        assert!(e.contains("path"), "{e:?}");
        let e = Config::parse(&json!({"minute": 1, "policy": "cluster"}), &Nothing).unwrap_err();
        assert!(e.get("policy").unwrap().contains("use redis"));
        let e = Config::parse(&json!({"minute": 1, "sync_rate": 10}), &Nothing).unwrap_err();
        assert!(e.contains("sync_rate"), "{e:?}");
    }

    #[test]
    fn the_redis_policy_reads_the_redis_record() {
        let c = Config::parse(
            &json!({"minute": 1, "policy": "redis", "redis": {"host": "r.internal", "password": "pw"}}),
            &Nothing,
        )
        .unwrap();
        assert_eq!(c.redis.host.as_deref(), Some("r.internal"));
        assert_eq!(c.redis.password.as_deref(), Some("pw"));
    }
}
