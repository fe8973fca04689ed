//! decK documents as JSON values: flattening an export's nesting, and selecting, tagging and merging
//! entities by tag (decK's `select_tags`).

use serde_json::{json, Map, Value};
use shared::Kind;

use crate::admin::declarative::NESTED_LISTS;

/// The top-level entity lists of a document, in the order references point (a Route's Service first).
pub const LISTS: &[&str] = &[
    "ca_certificates",
    "certificates",
    "snis",
    "services",
    "routes",
    "consumers",
    "acls",
    "consumer_groups",
    "consumer_group_consumers",
    "upstreams",
    "targets",
    "plugins",
];

/// The reference field a child nested in a `parent_list` entity gets when moved to the top level.
fn parent_field(parent_list: &str) -> &'static str {
    Kind::from_collection(parent_list).map_or("parent", Kind::singular)
}

/// Moves every nested entity of `doc` to its top-level list, referring to its parent by id (every entity
/// of an export has one), else by name or username.
pub fn flatten(doc: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in doc.as_object().into_iter().flatten() {
        if !LISTS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    for list in LISTS {
        for entity in doc[*list].as_array().into_iter().flatten() {
            push_flat(&mut out, list, entity.clone());
        }
    }
    Value::Object(out)
}

fn push_flat(out: &mut Map<String, Value>, list: &str, mut entity: Value) {
    let key = ["id", "name", "username"]
        .into_iter()
        .find_map(|k| Some(json!({ k: entity.get(k).filter(|v| !v.is_null())? })));
    for child_list in NESTED_LISTS {
        let Some(children) = entity.as_object_mut().and_then(|o| o.remove(*child_list)) else {
            continue;
        };
        for mut child in children.as_array().cloned().unwrap_or_default() {
            if let (Some(obj), Some(key)) = (child.as_object_mut(), &key) {
                obj.insert(parent_field(list).into(), key.clone());
            }
            push_flat(out, child_list, child);
        }
    }
    out.entry(list.to_string())
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .expect("lists are arrays")
        .push(entity);
}

/// True when `entity` carries every tag of `tags`.
pub fn has_tags(entity: &Value, tags: &[String]) -> bool {
    let own: Vec<&str> = entity["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    tags.iter().all(|t| own.contains(&t.as_str()))
}

/// Keeps, in a flattened document, the entities for which `keep` holds.
pub fn filter(flat: &Value, keep: impl Fn(&Value) -> bool) -> Value {
    let mut out = flat.clone();
    for list in LISTS {
        if let Some(items) = out.get_mut(*list).and_then(Value::as_array_mut) {
            items.retain(&keep);
        }
    }
    out
}

/// Adds every tag of `tags` that an entity lacks, to every entity of `doc`, nested ones included.
pub fn tag_all(doc: &mut Value, tags: &[String]) {
    for list in LISTS {
        for entity in doc
            .get_mut(*list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            tag_entity(entity, tags);
        }
    }
}

fn tag_entity(entity: &mut Value, tags: &[String]) {
    let Some(obj) = entity.as_object_mut() else {
        return;
    };
    let own = obj
        .entry("tags")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !own.is_array() {
        *own = Value::Array(Vec::new());
    }
    let own = own.as_array_mut().expect("made an array above");
    for t in tags {
        if !own.iter().any(|x| x == t) {
            own.push(json!(t));
        }
    }
    for child_list in NESTED_LISTS {
        for child in obj
            .get_mut(*child_list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            tag_entity(child, tags);
        }
    }
}

/// Appends the entities of the flattened `others` to `doc`'s top-level lists.
pub fn merge(doc: &mut Value, others: &Value) {
    for list in LISTS {
        let extra = others[*list].as_array().cloned().unwrap_or_default();
        if extra.is_empty() {
            continue;
        }
        let target = doc
            .as_object_mut()
            .expect("a document is an object")
            .entry(list.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(items) = target.as_array_mut() {
            items.extend(extra);
        }
    }
}

/// The `select_tags` a document names in `_info`.
pub fn select_tags_of(doc: &Value) -> Vec<String> {
    doc["_info"]["select_tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_moves_children_up_with_a_reference_to_their_parent() {
        let doc = json!({
            "_format_version": "3.0",
            "services": [{"id": "s1", "name": "a", "routes": [{"id": "r1", "plugins": [{"id": "p1", "name": "x"}]}], "plugins": [{"id": "p2", "name": "y"}]}],
            "upstreams": [{"id": "u1", "name": "up", "targets": [{"id": "t1", "target": "h:1"}]}],
        });
        let flat = flatten(&doc);
        assert_eq!(flat["_format_version"], "3.0");
        assert_eq!(flat["services"], json!([{"id": "s1", "name": "a"}]));
        assert_eq!(
            flat["routes"],
            json!([{"id": "r1", "service": {"id": "s1"}}])
        );
        let plugins = flat["plugins"].as_array().unwrap();
        assert!(plugins.contains(&json!({"id": "p1", "name": "x", "route": {"id": "r1"}})));
        assert!(plugins.contains(&json!({"id": "p2", "name": "y", "service": {"id": "s1"}})));
        assert_eq!(
            flat["targets"],
            json!([{"id": "t1", "target": "h:1", "upstream": {"id": "u1"}}])
        );
    }

    #[test]
    fn tags_select_tag_and_merge() {
        let mut doc = json!({"services": [{"name": "a", "routes": [{"name": "r"}]}], "consumers": [{"username": "c", "tags": ["x"]}]});
        let tags = vec!["team-a".to_string()];
        tag_all(&mut doc, &tags);
        assert_eq!(doc["services"][0]["tags"], json!(["team-a"]));
        assert_eq!(doc["services"][0]["routes"][0]["tags"], json!(["team-a"]));
        assert_eq!(doc["consumers"][0]["tags"], json!(["x", "team-a"]));
        let flat = json!({"consumers": [{"username": "mine", "tags": ["team-a"]}, {"username": "theirs"}]});
        let theirs = filter(&flat, |e| !has_tags(e, &tags));
        assert_eq!(theirs["consumers"], json!([{"username": "theirs"}]));
        merge(&mut doc, &theirs);
        assert_eq!(doc["consumers"].as_array().unwrap().len(), 2);
        assert_eq!(
            select_tags_of(&json!({"_info": {"select_tags": ["a", "b"]}})),
            ["a", "b"]
        );
    }
}
