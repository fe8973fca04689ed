//! `rate-limiting`: counts each request against per-window limits for whoever `limit_by` names, and
//! answers Kong's 429 once a limit is reached. Counters live in the node ([`counters::LocalCounters`]:
//! N nodes admit up to N× a limit) or on a shared Redis server ([`counters::RedisCounters`]: the limit
//! holds across the cluster). The answer tells the client where it stands: `RateLimit-Limit`,
//! `RateLimit-Remaining`, `RateLimit-Reset` for the window closest to its limit, and
//! `X-RateLimit-Limit-<Window>` / `X-RateLimit-Remaining-<Window>` for each.

pub mod counters;
mod headers;
pub mod windows;

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;
use shared::plugins::rate_limiting::{Config, LimitBy, Period, Policy, NAME};
use smallvec::SmallVec;
use tracing::warn;
use uuid::Uuid;

use super::exchange::Exchange;
use super::groups::Memberships;
use super::instance::{BuildCtx, Events};
use super::plugin::Plugin;
use super::refusal::Refusal;
use counters::{Counts, Identifier, LocalCounters, RedisCounters, Subject};
use headers::Limit;
use windows::{window, Window};

/// One configured instance.
pub struct RateLimiting {
    config: Config,
    limits: SmallVec<[Limit; 2]>,
    /// The plugin's Route and Service (nil when it has none), which every counter key holds.
    scope: (Uuid, Uuid),
    store: Store,
    status: StatusCode,
    events: Events,
    /// Consumer groups by name, for `limit_by: consumer-group`.
    memberships: Arc<Memberships>,
}

enum Store {
    Local(Arc<LocalCounters>),
    Redis(RedisCounters),
}

/// Builds an instance from its plugin entity.
pub fn build(p: &shared::Plugin, ctx: &BuildCtx) -> Result<Arc<dyn Plugin>, String> {
    let config = Config::parse(&p.config, ctx.state.as_ref())
        .map_err(|e| format!("invalid config: {}", e.summary()))?;
    let store = match config.policy {
        Policy::Local => Store::Local(ctx.traffic.local.clone()),
        Policy::Redis => Store::Redis(RedisCounters {
            server: ctx.traffic.redis.get(&config.redis)?,
        }),
    };
    let status = StatusCode::from_u16(config.error_code)
        .map_err(|_| format!("error_code {} is not a status", config.error_code))?;
    let instance = p.id.to_string();
    Ok(Arc::new(RateLimiting {
        limits: config.limits().map(|(p, n)| Limit::new(p, n)).collect(),
        scope: (
            p.route.map_or(Uuid::nil(), |r| r.id),
            p.service.map_or(Uuid::nil(), |s| s.id),
        ),
        store,
        status,
        events: Events::new(
            &ctx.metrics,
            NAME,
            &instance,
            &["admitted", "limited", "store_failed"],
        ),
        memberships: ctx.groups.clone(),
        config,
    }))
}

impl RateLimiting {
    /// Who the request is counted as (Kong's rules: without what `limit_by` names, the client's address).
    fn identifier(&self, ex: &Exchange) -> Identifier {
        let picked = match self.config.limit_by {
            LimitBy::Service => ex.service.as_ref().map(|s| Identifier::Id(s.id)),
            LimitBy::Consumer => ex
                .consumer
                .as_ref()
                .map(|c| Identifier::Id(c.id))
                .or_else(|| ex.credential.map(Identifier::Credential)),
            LimitBy::Credential => ex.credential.map(Identifier::Credential),
            LimitBy::Header => self
                .config
                .header_name
                .as_deref()
                .and_then(|h| ex.parts.headers.get(h))
                .and_then(|v| v.to_str().ok())
                .map(|v| Identifier::Text(v.into())),
            LimitBy::Path => self
                .config
                .path
                .as_deref()
                .filter(|p| *p == ex.parts.uri.path())
                .map(|p| Identifier::Text(p.into())),
            // The first of the request's consumer groups (a Consumer in none is counted by address).
            LimitBy::ConsumerGroup => ex
                .consumer_groups_in(&self.memberships)
                .and_then(|g| {
                    g.first()
                        .and_then(|n| self.memberships.consumer_group_id(n))
                })
                .map(Identifier::Id),
            LimitBy::Ip => None,
        };
        picked.unwrap_or(Identifier::Ip(ex.client_ip))
    }

    async fn count(
        &self,
        subject: &Subject,
        windows: &[(Period, Window)],
        delta: i64,
        now_ms: i64,
    ) -> Result<Counts, String> {
        match &self.store {
            Store::Local(local) => Ok(local.add(subject, windows, delta, now_ms)),
            Store::Redis(redis) => redis
                .add(subject, windows, delta, now_ms)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Takes a refused request's counts back, without holding up its answer.
    fn give_back(&self, subject: Subject, windows: SmallVec<[(Period, Window); 2]>, now_ms: i64) {
        match &self.store {
            Store::Local(local) => {
                local.add(&subject, &windows, -1, now_ms);
            }
            Store::Redis(redis) => {
                let counters = redis.clone();
                tokio::spawn(async move {
                    if let Err(e) = counters.add(&subject, &windows, -1, now_ms).await {
                        warn!(plugin = NAME, error = %e, "a refused request's count was not taken back");
                    }
                });
            }
        }
    }
}

#[async_trait::async_trait]
impl Plugin for RateLimiting {
    async fn access(&self, ex: &mut Exchange) -> Result<(), Refusal> {
        let now_ms = platform::clock::unix_ms();
        let subject = Subject {
            route: self.scope.0,
            service: self.scope.1,
            identifier: self.identifier(ex),
        };
        let windows: SmallVec<[(Period, Window); 2]> = self
            .limits
            .iter()
            .map(|l| (l.period, window(l.period, now_ms)))
            .collect();
        let counts = match self.count(&subject, &windows, 1, now_ms).await {
            Ok(c) => c,
            Err(e) => {
                self.events.add("store_failed");
                if self.config.fault_tolerant {
                    warn!(plugin = NAME, request_id = %ex.request_id, error = %e, "counter store failed; the request is let through (fault_tolerant)");
                    return Ok(());
                }
                warn!(plugin = NAME, request_id = %ex.request_id, error = %e, "counter store failed; the request is refused");
                return Err(Refusal::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The rate limiting counters are unavailable",
                    "counters_unavailable",
                ));
            }
        };
        let exceeded = self
            .limits
            .iter()
            .zip(&counts)
            .position(|(limit, count)| *count > limit.max);
        let fields = (!self.config.hide_client_headers)
            .then(|| headers::fields(&self.limits, &windows, &counts, exceeded, now_ms));
        if exceeded.is_none() {
            self.events.add("admitted");
            if let Some(fields) = fields {
                ex.answer_fields.extend(fields.answer);
            }
            return Ok(());
        }
        self.events.add("limited");
        self.give_back(subject, windows.clone(), now_ms);
        let mut refusal = Refusal::new(
            self.status,
            json!({ "message": self.config.error_message }),
            "rate_limited",
        );
        if let Some(fields) = fields {
            for (name, value) in fields.answer {
                refusal = refusal.with_field(name, value);
            }
            refusal = refusal.with_field(http::header::RETRY_AFTER, fields.reset);
        }
        Err(refusal)
    }
}
