use serde_json::json;

use super::*;

fn schema() -> Value {
    json!({"fields": [
        {"id": {"type": "string", "uuid": true, "auto": true}},
        {"name": {"type": "string", "unique": true}},
        {"port": {"type": "integer", "default": 80, "between": [0, 65535]}},
        {"enabled": {"type": "boolean", "default": true}},
        {"paths": {"type": "set", "elements": {"type": "string"}}},
        {"headers": {"type": "map"}},
        {"service": {"type": "foreign", "reference": "services"}},
        {"protocol": {"type": "string", "one_of": ["http", "https"]}},
        {"config": {"type": "record", "fields": [
            {"client_secret": {"type": "string", "encrypted": true}},
            {"ttl": {"type": "integer"}}
        ]}}
    ]})
}

#[test]
fn fields_are_typed_and_auto_fields_left_out() {
    let fields = parse_fields(&schema(), &[]);
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["name", "port", "enabled", "paths", "headers", "service", "protocol", "config"]
    );
    let required = json!({"fields": [{"tags": {"type": "set"}}, {"host": {"type": "string", "required": true}},
        {"name": {"type": "string"}}]});
    let order: Vec<String> = parse_fields(&required, &[])
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        order,
        ["name", "host", "tags"],
        "name first, then what is required"
    );
    assert!(matches!(fields[3].kind, FieldKind::List(_)));
    assert!(matches!(fields[4].kind, FieldKind::Json));
    let FieldKind::Record(config) = &fields[7].kind else {
        panic!("config is a record")
    };
    assert!(config[0].secret);
}

#[test]
fn a_created_entity_leaves_empty_inputs_out() {
    let fields = parse_fields(&schema(), &[]);
    let form = Form::from_pairs(&[
        ("name", "svc"),
        ("port", "8080"),
        ("paths", "/a\n\n /b \n"),
        ("service", "0b8e0e35-6e5f-4b66-9d5e-8a3b2c1d0e0f"),
        ("config.client_secret", "s3cret"),
        ("config.ttl", ""),
        ("headers", ""),
    ]);
    let (body, errors) = body(&fields, &form, Purpose::Create);
    assert!(errors.is_empty());
    assert_eq!(
        Value::Object(body.clone()),
        json!({"name": "svc", "port": 8080, "enabled": false, "paths": ["/a", "/b"],
               "service": {"id": "0b8e0e35-6e5f-4b66-9d5e-8a3b2c1d0e0f"},
               "config": {"client_secret": "s3cret"}})
    );
    let shown = without_secrets(&fields, &body);
    assert_eq!(shown["config"], json!({}));
    assert!(!shown.to_string().contains("s3cret"));
}

#[test]
fn an_edit_clears_empty_inputs_but_keeps_an_empty_secret() {
    let fields = parse_fields(&schema(), &[]);
    let form = Form::from_pairs(&[("name", ""), ("enabled", "true"), ("port", "abc")]);
    let (body, errors) = body(&fields, &form, Purpose::Edit);
    assert!(errors.is_empty());
    assert_eq!(body["name"], Value::Null);
    assert_eq!(body["enabled"], true);
    // Text where a number belongs goes to the Admin API, which says what it expects.
    assert_eq!(body["port"], "abc");
    assert!(body["config"].get("client_secret").is_none());
    assert_eq!(body["config"]["ttl"], Value::Null);
}

#[test]
fn text_that_is_not_json_is_an_error_of_its_field() {
    let fields = parse_fields(&schema(), &[]);
    let form = Form::from_pairs(&[("headers", "{not json")]);
    let (_, errors) = body(&fields, &form, Purpose::Create);
    assert!(errors["headers"].starts_with("expected JSON"));
}

#[test]
fn api_errors_are_placed_by_path() {
    let errors = api_errors(&json!({
        "port": "value should be between 0 and 65535",
        "config": {"introspection_url": "required field missing"},
        "paths": [null, "must begin with '/'"],
        "@entity": ["at least one of these fields must be non-empty"]
    }));
    assert_eq!(errors["port"], "value should be between 0 and 65535");
    assert_eq!(errors["config.introspection_url"], "required field missing");
    assert_eq!(errors["paths"], "element 2: must begin with '/'");
    assert!(errors["@entity"].contains("at least one"));
}

#[test]
fn inputs_never_show_a_secret_and_put_errors_beside_fields() {
    let fields = parse_fields(&schema(), &[]);
    let values = json!({"name": "a<b", "config": {"client_secret": "s3cret", "ttl": 5}});
    let mut errors = Errors::new();
    errors.insert("config.ttl".into(), "too small".into());
    let refs = References::from([(
        "services".to_string(),
        vec![("id-1".to_string(), "svc one".to_string())],
    )]);
    let html = inputs(&fields, "", &values, &errors, &refs).into_string();
    assert!(!html.contains("s3cret"));
    assert!(html.contains("a&lt;b"), "values are escaped");
    assert!(html.contains(r#"id="f-config-ttl-error""#) && html.contains("too small"));
    assert!(html.contains(r#"aria-describedby="f-config-ttl-error""#));
    assert!(html.contains(r#"<label for="f-name">"#));
    assert!(html.contains("svc one"));
}
