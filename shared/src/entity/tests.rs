use super::*;
use serde_json::json;

struct NoRefs;
impl Resolver for NoRefs {
    fn resolve(&self, _: Kind, _: &str) -> Option<Uuid> {
        None
    }
}

fn ctx() -> ParseCtx<'static> {
    ParseCtx {
        id: Uuid::nil(),
        now: 1000,
        created_at: None,
        resolver: &NoRefs,
    }
}

#[test]
fn service_url_shorthand_expands() {
    let s = Service::parse(
        &json!({"name": "example-service", "url": "https://httpbin.org/anything"}),
        &ctx(),
    )
    .unwrap();
    assert_eq!(
        (s.protocol.as_str(), s.host.as_str(), s.port),
        ("https", "httpbin.org", 443)
    );
    assert_eq!(s.path.as_deref(), Some("/anything"));
    assert_eq!((s.retries, s.connect_timeout), (5, 60_000));
    let s = Service::parse(&json!({"url": "http://up:8080"}), &ctx()).unwrap();
    assert_eq!((s.port, s.path), (8080, None));
}

#[test]
fn service_errors_name_fields() {
    let err = Service::parse(
        &json!({"name": "bad name", "port": "x", "colour": 1}),
        &ctx(),
    )
    .unwrap_err();
    let StateError::Schema(e) = err else {
        panic!("{err:?}")
    };
    assert!(e.contains("name"));
    assert_eq!(e["port"], "expected an integer");
    assert_eq!(e["host"], "required field missing");
    assert_eq!(e["colour"], "unknown field");
}

#[test]
fn route_requires_a_matching_field_and_valid_paths() {
    let err = Route::parse(&json!({"name": "r"}), &ctx()).unwrap_err();
    let StateError::Schema(e) = err else { panic!() };
    assert!(e["@entity"].contains("must set one of"));
    let err = Route::parse(&json!({"paths": ["nope", "~/(unclosed"]}), &ctx()).unwrap_err();
    let StateError::Schema(e) = err else { panic!() };
    assert!(e.contains("paths.1") && e.contains("paths.2"));
    let r = Route::parse(
        &json!({"paths": ["/a"], "hosts": ["*.example.com"]}),
        &ctx(),
    )
    .unwrap();
    assert!(r.strip_path && !r.preserve_host && r.protocols == ["http", "https"]);
}

#[test]
fn route_reference_must_exist() {
    let err = Route::parse(
        &json!({"paths": ["/a"], "service": {"id": "5bd8ac36-4b5b-4a3b-8f52-6f4a4b0d4f5c"}}),
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(err, StateError::ForeignKey(_)));
}

#[test]
fn consumer_needs_username_or_custom_id() {
    assert!(Consumer::parse(&json!({}), &ctx()).is_err());
    assert!(Consumer::parse(&json!({"custom_id": "c1"}), &ctx()).is_ok());
}

#[test]
fn merge_patches_nested_objects() {
    let mut base = json!({"a": 1, "config": {"x": 1, "y": 2}});
    merge_json(&mut base, &json!({"config": {"y": 3}, "b": null}));
    assert_eq!(base, json!({"a": 1, "config": {"x": 1, "y": 3}, "b": null}));
}
