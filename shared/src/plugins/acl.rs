//! Config schema of `acl` (Kong's field set): the groups allowed, or the groups denied (exactly one of
//! the two lists), whether the groups are sent upstream, whether groups an auth plugin found in the
//! token win over the Consumer's own, and whether consumer groups count as groups.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entity::Resolver;
use crate::schema::{FieldErrors, Fields, ENTITY};

/// The plugin's name.
pub const NAME: &str = "acl";
/// The schema version this release speaks.
pub const VERSION: &str = "1.0.0";
/// Fields that hold secrets.
pub const SECRET_FIELDS: &[&str] = &[];

/// A validated `acl` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Groups that may call; `None` when the config denies instead.
    pub allow: Option<Vec<String>>,
    /// Groups that may not call; `None` when the config allows instead.
    pub deny: Option<Vec<String>>,
    /// Do not send `X-Consumer-Groups` / `X-Authenticated-Groups` upstream.
    pub hide_groups_header: bool,
    /// Use the groups an auth plugin set for the request even when a Consumer was authenticated.
    pub always_use_authenticated_groups: bool,
    /// Count the request's consumer groups (the Consumer's, or those a token's claim named) as groups.
    #[serde(default)]
    pub include_consumer_groups: bool,
}

/// Which way the listed groups decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Only members of a listed group may call.
    Allow,
    /// Members of a listed group may not call.
    Deny,
}

impl Config {
    /// Validates a raw config, filling in defaults.
    pub fn parse(v: &Value, _resolver: &dyn Resolver) -> Result<Config, FieldErrors> {
        let mut f = Fields::new(v, "")?;
        let allow = f.opt_strings("allow");
        let deny = f.opt_strings("deny");
        let hide_groups_header = f.bool_or("hide_groups_header", false);
        let always_use_authenticated_groups = f.bool_or("always_use_authenticated_groups", false);
        let include_consumer_groups = f.bool_or("include_consumer_groups", false);
        let set = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
        match (set(&allow), set(&deny)) {
            (true, true) => f.error(
                ENTITY,
                "only one of these fields must be non-empty: 'config.allow', 'config.deny'",
            ),
            (false, false) => f.error(
                ENTITY,
                "at least one of these fields must be non-empty: 'config.allow', 'config.deny'",
            ),
            _ => {}
        }
        f.finish().into_result(Config {
            allow,
            deny,
            hide_groups_header,
            always_use_authenticated_groups,
            include_consumer_groups,
        })
    }

    /// The rule and its groups: deny when `deny` lists any group (Kong's reading), else allow.
    pub fn rule(&self) -> (Rule, &[String]) {
        match &self.deny {
            Some(deny) if !deny.is_empty() => (Rule::Deny, deny),
            _ => (Rule::Allow, self.allow.as_deref().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::describe::NoEntities as Nothing;
    use serde_json::json;

    #[test]
    fn one_list_is_required_and_both_are_refused() {
        let c = Config::parse(&json!({"allow": ["admins", "ops"]}), &Nothing).unwrap();
        assert_eq!(
            c.rule(),
            (Rule::Allow, &["admins".into(), "ops".into()][..])
        );
        assert!(!c.hide_groups_header && !c.always_use_authenticated_groups);
        let c = Config::parse(&json!({"deny": ["banned"], "allow": []}), &Nothing).unwrap();
        assert_eq!(c.rule().0, Rule::Deny);
        let e = Config::parse(&json!({}), &Nothing).unwrap_err();
        assert!(e.get(ENTITY).unwrap().starts_with("at least one of"));
        let e = Config::parse(&json!({"allow": ["a"], "deny": ["b"]}), &Nothing).unwrap_err();
        assert!(e.get(ENTITY).unwrap().starts_with("only one of"));
        let e = Config::parse(&json!({"allow": "admins"}), &Nothing).unwrap_err();
        assert!(e.contains("allow"), "{e:?}");
    }
}
