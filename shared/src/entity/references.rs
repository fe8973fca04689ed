//! References from one entity to another (`{"id": …}`, by name or username, or bare), and how their
//! errors are reported after the entity's own: Kong's missing primary key, foreign key violation and
//! unresolved foreign keys.

use serde_json::Value;
use uuid::Uuid;

use super::{ForeignKey, Kind, ParseCtx};
use crate::error::StateError;
use crate::schema::{FieldErrors, Fields};

/// What the references of one entity resolve to: the errors found so far, reported by [`finish`] after
/// any schema error.
#[derive(Default)]
pub(crate) struct References {
    /// References by name or username that name nothing (`service.name`).
    unresolved: FieldErrors,
    /// The first reference by id that names nothing.
    missing: Option<StateError>,
}

impl References {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records a reference by id in `field` to a `kind` entity that does not exist.
    pub(crate) fn missing(&mut self, field: &str, id: &Uuid, kind: Kind) {
        self.missing
            .get_or_insert_with(|| StateError::missing_reference(field, id, kind));
    }
}

/// Reads a reference to a `kind` entity: Kong's `{"id": …}` (or `{"name": …}`, `{"username": …}`),
/// or a bare id or name. An id must be a UUID; an object naming no key is Kong's `missing primary key`.
pub(crate) fn read_ref(
    f: &mut Fields<'_>,
    refs: &mut References,
    ctx: &ParseCtx<'_>,
    field: &str,
    kind: Kind,
) -> Option<ForeignKey> {
    let raw = f.raw(field)?;
    let (by, key) = match raw {
        Value::String(s) if parse_id(s).is_some() => ("id", s.as_str()),
        Value::String(s) => ("name", s.as_str()),
        Value::Object(m) => match ["id", "name", "username"]
            .into_iter()
            .find_map(|k| Some((k, m.get(k).filter(|v| !v.is_null())?)))
        {
            Some((by, Value::String(s))) => (by, s.as_str()),
            Some((by, _)) => {
                f.error(&format!("{field}.{by}"), "expected a string");
                return None;
            }
            None => {
                f.error(&format!("{field}.id"), "missing primary key");
                return None;
            }
        },
        _ => {
            f.error(field, "expected a reference such as {\"id\": \"…\"}");
            return None;
        }
    };
    if by == "id" && parse_id(key).is_none() {
        f.error(&format!("{field}.id"), "expected a valid UUID");
        return None;
    }
    if let Some(id) = ctx.resolver.resolve(kind, key) {
        return Some(ForeignKey { id });
    }
    match parse_id(key) {
        Some(id) if by == "id" => refs.missing(field, &id, kind),
        _ => refs.unresolved.add(
            format!("{field}.{by}"),
            format!(
                "the foreign key cannot be resolved with '{{{by}={key:?}}}' for an existing '{}' entity",
                kind.collection()
            ),
        ),
    }
    None
}

/// An id as Kong writes and reads them: a hyphenated UUID (36 characters).
pub(crate) fn parse_id(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s).ok().filter(|_| s.len() == 36)
}

pub(crate) fn finish<T>(f: Fields<'_>, refs: References, value: T) -> Result<T, StateError> {
    let errors = f.finish();
    if !errors.is_empty() {
        return Err(StateError::Schema(errors));
    }
    if !refs.unresolved.is_empty() {
        return Err(StateError::Unresolved(refs.unresolved));
    }
    match refs.missing {
        Some(e) => Err(e),
        None => Ok(value),
    }
}
