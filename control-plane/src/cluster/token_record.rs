//! An enrollment (pairing) token as the store keeps it: the hash of its secret, never the secret, its
//! lifetime, the labels its nodes get and how many of its uses are taken.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One stored enrollment token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    /// SHA-256 of the token's secret, in hex.
    pub secret_hash: String,
    pub created_at: i64,
    /// Unix seconds after which the token admits no node.
    pub expires_at: i64,
    /// Labels every node enrolled with it gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "one")]
    pub max_uses: u64,
    #[serde(default)]
    pub uses: u64,
}

fn one() -> u64 {
    1
}

impl TokenRecord {
    /// The record stored as `value`; `None` when it is not one (a damaged record admits no node).
    pub fn read(value: &Value) -> Option<TokenRecord> {
        serde_json::from_value(value.clone()).ok()
    }

    /// The stored form.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a token record serialises")
    }

    /// How many nodes it still admits.
    pub fn uses_left(&self) -> u64 {
        self.max_uses.saturating_sub(self.uses)
    }

    /// Whether it has expired at `now` (unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }

    /// The record after one more use: counted, or `None` (removed) once no use is left.
    pub fn after_one_use(&self) -> Option<TokenRecord> {
        match self.uses_left() {
            0 | 1 => None,
            _ => Some(TokenRecord {
                uses: self.uses + 1,
                ..self.clone()
            }),
        }
    }

    /// What the Admin API shows of it (never the secret's hash).
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "labels": self.labels,
            "max_uses": self.max_uses,
            "uses": self.uses,
        })
    }
}

/// [`TokenRecord::after_one_use`] over stored values, as the store's atomic update takes it.
pub fn take_one_use(current: Option<&Value>) -> Option<Value> {
    TokenRecord::read(current?)?
        .after_one_use()
        .map(|r| r.to_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(max_uses: u64) -> TokenRecord {
        TokenRecord {
            id: "t1".into(),
            secret_hash: "ab".into(),
            created_at: 10,
            expires_at: 20,
            labels: BTreeMap::from([("region".into(), "eu".into())]),
            max_uses,
            uses: 0,
        }
    }

    #[test]
    fn each_use_is_counted_and_the_last_removes_the_record() {
        let three = record(3).to_value();
        let second = take_one_use(Some(&three)).unwrap();
        assert_eq!(TokenRecord::read(&second).unwrap().uses_left(), 2);
        let third = take_one_use(Some(&second)).unwrap();
        assert_eq!(TokenRecord::read(&third).unwrap().uses, 2);
        assert_eq!(take_one_use(Some(&third)), None);
        assert_eq!(take_one_use(Some(&record(1).to_value())), None);
        assert_eq!(take_one_use(None), None);
    }

    #[test]
    fn records_stored_before_uses_were_counted_read_as_single_use_and_damaged_ones_admit_nothing() {
        let old = json!({"id": "t", "secret_hash": "h", "created_at": 1, "expires_at": 2});
        let r = TokenRecord::read(&old).unwrap();
        assert_eq!((r.max_uses, r.uses, r.labels.len()), (1, 0, 0));
        assert_eq!(TokenRecord::read(&json!({"id": "t"})), None);
        assert_eq!(take_one_use(Some(&json!("garbage"))), None);
    }

    #[test]
    fn the_view_never_shows_the_secret_hash() {
        let view = record(2).view();
        assert!(view.get("secret_hash").is_none());
        assert_eq!(view["labels"]["region"], "eu");
        assert!(record(2).expired(20) && !record(2).expired(19));
    }
}
