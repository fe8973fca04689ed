//! `acl`: after authentication (Kong's priority 950), lets a request through only when the groups of
//! whoever called are allowed. The groups are the authenticated Consumer's ACL groups, or the groups an
//! auth plugin found in the token (authenticated groups) when no Consumer was authenticated by a
//! credential (none, or the anonymous one) or when `always_use_authenticated_groups` says so. With
//! `include_consumer_groups`, the request's consumer groups count too: those a token's
//! `consumer_groups_claim` named, else the Consumer's. Nobody known: 401; a credential without groups, or
//! groups not allowed: 403 `You cannot consume this service`. The groups go upstream in
//! `X-Consumer-Groups` (a Consumer's) or `X-Authenticated-Groups` (a token's).

use std::sync::Arc;

use http::{HeaderName, StatusCode};
use shared::plugins::acl::{Config, Rule};

use super::exchange::Exchange;
use super::groups::{Groups, Memberships};
use super::instance::BuildCtx;
use super::plugin::Plugin;
use super::refusal::Refusal;

static CONSUMER_GROUPS: HeaderName = HeaderName::from_static("x-consumer-groups");
static AUTHENTICATED_GROUPS: HeaderName = HeaderName::from_static("x-authenticated-groups");

/// One configured instance.
pub struct Acl {
    rule: Rule,
    listed: Vec<String>,
    hide_groups_header: bool,
    always_use_authenticated_groups: bool,
    include_consumer_groups: bool,
    memberships: Arc<Memberships>,
}

/// Builds an instance from its plugin entity.
pub fn build(p: &shared::Plugin, ctx: &BuildCtx) -> Result<Arc<dyn Plugin>, String> {
    let config = Config::parse(&p.config, ctx.state.as_ref())
        .map_err(|e| format!("invalid config: {}", e.summary()))?;
    let (rule, listed) = config.rule();
    Ok(Arc::new(Acl {
        rule,
        listed: listed.to_vec(),
        hide_groups_header: config.hide_groups_header,
        always_use_authenticated_groups: config.always_use_authenticated_groups,
        include_consumer_groups: config.include_consumer_groups,
        memberships: ctx.groups.clone(),
    }))
}

/// Whose groups decide a request.
enum Whose {
    Consumer(Arc<Groups>),
    Token(Arc<Groups>),
}

impl Acl {
    /// The groups that decide `ex`, or the refusal when there are none to decide with.
    fn groups(&self, ex: &Exchange) -> Result<Whose, Refusal> {
        let by_credential = ex.credential.is_some();
        let token = ex.authenticated_groups.clone();
        let consumer_groups = self
            .include_consumer_groups
            .then(|| ex.consumer_groups_in(&self.memberships))
            .flatten();
        let Some(consumer) = &ex.consumer else {
            return token
                .map(Whose::Token)
                .or(consumer_groups.map(Whose::Consumer))
                .ok_or_else(|| refused(by_credential));
        };
        if !by_credential || self.always_use_authenticated_groups {
            if let Some(groups) = token {
                return Ok(Whose::Token(groups));
            }
        }
        let acl = self.memberships.acl_of(&consumer.id);
        let all = match (acl, consumer_groups) {
            (Some(acl), Some(more)) => Some(Arc::new(acl.with(&more))),
            (acl, more) => acl.cloned().or(more),
        };
        match all {
            Some(groups) => Ok(Whose::Consumer(groups)),
            // Nobody is in a denied group when there are no groups.
            None if self.rule == Rule::Deny => Ok(Whose::Consumer(Arc::new(Groups::new([])))),
            None => Err(refused(by_credential)),
        }
    }
}

/// 403 when a credential was shown (someone is known but not allowed), else 401 (nobody is known).
fn refused(by_credential: bool) -> Refusal {
    match by_credential {
        true => forbidden(),
        false => Refusal::message(StatusCode::UNAUTHORIZED, "Unauthorized", "acl_unauthorized"),
    }
}

fn forbidden() -> Refusal {
    Refusal::message(
        StatusCode::FORBIDDEN,
        "You cannot consume this service",
        "acl_forbidden",
    )
}

#[async_trait::async_trait]
impl Plugin for Acl {
    async fn access(&self, ex: &mut Exchange) -> Result<(), Refusal> {
        let whose = self.groups(ex)?;
        let (groups, name) = match &whose {
            Whose::Consumer(g) => (g, &CONSUMER_GROUPS),
            Whose::Token(g) => (g, &AUTHENTICATED_GROUPS),
        };
        let listed = groups.any_of(&self.listed);
        let blocked = match self.rule {
            Rule::Allow => !listed,
            Rule::Deny => listed,
        };
        if blocked {
            return Err(forbidden());
        }
        if !self.hide_groups_header {
            if let Some(field) = groups.field() {
                ex.set_upstream(name, field.clone());
            }
        }
        Ok(())
    }
}
