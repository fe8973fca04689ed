//! Kong's `flatten_errors=1` form of a refused declarative document: one record per entity that has
//! errors, naming it (type, name, id, tags, its own fields) and listing its errors as `field` or
//! `entity` errors, so a tool can point at the entity whatever its nesting.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use shared::{FieldErrors, Kind};

use super::document::{parse, Document};
use super::NESTED_LISTS as NESTED;

/// The reference a nested entity gets to its parent, by the parent's list.
fn parent_field(list: &str) -> &'static str {
    Kind::from_collection(list).map_or("parent", Kind::singular)
}

/// Where one entity sits: its list and positions from the top (`services.1.routes.2`).
type EntityPath = Vec<(String, usize)>;

/// Splits an error path into the entity it is about and the field within it (`@entity` for errors
/// about the entity as a whole); `None` for errors outside any entity (`_format_version`).
fn split(path: &str) -> Option<(EntityPath, String)> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut at = 0;
    let mut entity = EntityPath::new();
    while at + 1 < parts.len() {
        let (list, index) = (parts[at], parts[at + 1]);
        let nested_ok = entity.is_empty() || NESTED.contains(&list);
        match index.parse::<usize>() {
            Ok(i) if i >= 1 && nested_ok => {
                entity.push((list.to_string(), i));
                at += 2;
            }
            _ => break,
        }
    }
    if entity.is_empty() || at >= parts.len() {
        return None;
    }
    Some((entity, parts[at..].join(".")))
}

/// The entity at `path` in the document, its own fields only (nested lists removed, a nested entity
/// given its parent's id), and the singular of its list.
fn locate(sections: &Map<String, Value>, path: &EntityPath) -> Option<(String, Value)> {
    let (first, i) = path.first()?;
    let mut entity = sections.get(first)?.as_array()?.get(i - 1)?.clone();
    let mut list = first.clone();
    for (child_list, j) in &path[1..] {
        let parent_id = entity.get("id").cloned();
        let mut child = entity.get(child_list)?.as_array()?.get(j - 1)?.clone();
        if let (Some(obj), Some(id)) = (child.as_object_mut(), parent_id) {
            obj.entry(parent_field(&list))
                .or_insert_with(|| json!({ "id": id }));
        }
        entity = child;
        list = child_list.clone();
    }
    if let Some(obj) = entity.as_object_mut() {
        for nested in NESTED {
            obj.remove(*nested);
        }
    }
    let singular = Kind::from_collection(&list).map_or("entity", Kind::singular);
    Some((singular.to_string(), entity))
}

/// Kong's `flattened_errors` for `errors` found in `doc`.
pub fn flattened_errors(doc: &Document, errors: &FieldErrors) -> Value {
    let sections: Map<String, Value> = match doc.sections() {
        Ok(s) => s.into_iter().map(|(k, raw)| (k, parse(raw))).collect(),
        Err(_) => return json!([]),
    };
    let mut by_entity: BTreeMap<EntityPath, Vec<Value>> = BTreeMap::new();
    for (path, message) in errors.iter() {
        let Some((entity, field)) = split(path) else {
            continue;
        };
        let error = if field == "@entity" {
            json!({"type": "entity", "message": message})
        } else {
            json!({"type": "field", "field": field, "message": message})
        };
        by_entity.entry(entity).or_default().push(error);
    }
    let records: Vec<Value> = by_entity
        .into_iter()
        .filter_map(|(path, errors)| {
            let (entity_type, entity) = locate(&sections, &path)?;
            let text = |k: &str| entity.get(k).and_then(Value::as_str).map(str::to_string);
            let tags = entity.get("tags").filter(|t| t.is_array()).cloned();
            Some(json!({
                "entity_type": entity_type,
                "entity_name": text("name").or_else(|| text("username")),
                "entity_id": text("id"),
                "entity_tags": tags,
                "entity": entity,
                "errors": errors,
            }))
        })
        .collect();
    Value::Array(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::BodyFormat;

    #[test]
    fn errors_are_grouped_by_the_entity_they_are_about() {
        let doc = json!({
            "_format_version": "3.0",
            "services": [
                {"id": "9748f662-7711-4a90-8186-dc02f10eb0f5", "name": "a", "host": "h", "tags": ["t"],
                 "routes": [{"name": "r", "paths": ["nope"]}]},
                {"name": "b", "port": "x"},
            ],
        });
        let parsed = Document::from_body(doc.to_string().as_bytes(), BodyFormat::Json).unwrap();
        let mut errors = FieldErrors::new();
        errors.add("services.1.routes.1.paths.1", "should start with: /");
        errors.add("services.2.port", "expected an integer");
        errors.add("services.2.@entity", "needs a host");
        errors.add("_format_version", "required field missing");
        let flat = flattened_errors(&parsed, &errors);
        assert_eq!(
            flat,
            json!([
                {
                    "entity_type": "route",
                    "entity_name": "r",
                    "entity_id": null,
                    "entity_tags": null,
                    "entity": {"name": "r", "paths": ["nope"], "service": {"id": "9748f662-7711-4a90-8186-dc02f10eb0f5"}},
                    "errors": [{"type": "field", "field": "paths.1", "message": "should start with: /"}],
                },
                {
                    "entity_type": "service",
                    "entity_name": "b",
                    "entity_id": null,
                    "entity_tags": null,
                    "entity": {"name": "b", "port": "x"},
                    "errors": [
                        {"type": "entity", "message": "needs a host"},
                        {"type": "field", "field": "port", "message": "expected an integer"},
                    ],
                },
            ])
        );
    }
}
