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
        (s.protocol, s.host.as_str(), s.port),
        (Protocol::Https, "httpbin.org", 443)
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
fn grpc_routes_follow_kongs_rules() {
    let r = Route::parse(
        &json!({"protocols": ["grpc", "grpcs"], "paths": ["/echo.Echo/"]}),
        &ctx(),
    )
    .unwrap();
    assert!(!r.strip_path, "a gRPC path is never stripped");
    let err = Route::parse(
        &json!({"protocols": ["grpc", "http"], "methods": ["POST"], "strip_path": true}),
        &ctx(),
    )
    .unwrap_err();
    let StateError::Schema(e) = err else { panic!() };
    assert!(e["protocols"].contains("mutually exclusive"), "{e:?}");
    assert!(e["methods"].contains("cannot set 'methods'"), "{e:?}");
    assert!(e["strip_path"].contains("cannot set 'strip_path'"), "{e:?}");
    let err = Route::parse(&json!({"protocols": ["grpcs"]}), &ctx()).unwrap_err();
    let StateError::Schema(e) = err else { panic!() };
    assert!(
        e["@entity"].contains("'hosts', 'headers', 'paths'"),
        "{e:?}"
    );
    let err = Route::parse(&json!({"protocols": ["tcp"], "paths": ["/"]}), &ctx()).unwrap_err();
    let StateError::Schema(e) = err else { panic!() };
    assert!(e.contains("protocols.1"), "{e:?}");
    let err = Route::parse(
        &json!({"protocols": ["ws", "https"], "paths": ["/"]}),
        &ctx(),
    )
    .unwrap_err();
    let StateError::Schema(e) = err else { panic!() };
    assert!(e["protocols"].contains("('ws', 'wss')"), "{e:?}");
    let r = Route::parse(&json!({"protocols": ["wss"], "paths": ["/chat"]}), &ctx()).unwrap();
    assert!(r.strip_path, "a WebSocket Route strips like an HTTP one");
}

#[test]
fn grpc_services_take_no_path_and_default_their_port() {
    let s = Service::parse(&json!({"url": "grpcs://api.internal"}), &ctx()).unwrap();
    assert_eq!((s.protocol, s.port, s.path), (Protocol::Grpcs, 443, None));
    let s = Service::parse(&json!({"url": "grpc://api.internal:50051"}), &ctx()).unwrap();
    assert_eq!((s.protocol, s.port), (Protocol::Grpc, 50051));
    let err = Service::parse(
        &json!({"protocol": "grpc", "host": "a", "path": "/x"}),
        &ctx(),
    )
    .unwrap_err();
    let StateError::Schema(e) = err else { panic!() };
    assert!(e["path"].contains("value must be null"), "{e:?}");
}

#[test]
fn route_reference_must_exist() {
    let err = Route::parse(
        &json!({"paths": ["/a"], "service": {"id": "5bd8ac36-4b5b-4a3b-8f52-6f4a4b0d4f5c"}}),
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(err, StateError::ForeignKey { .. }));
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

#[test]
fn an_unreadable_service_url_is_checked_as_its_parts() {
    let errors = |url: &str| match Service::parse(&json!({ "url": url }), &ctx()) {
        Err(StateError::Schema(e)) => e,
        other => panic!("{url}: {other:?}"),
    };
    let e = errors("invalid url");
    assert_eq!(
        (&e["host"][..], &e["path"][..]),
        ("required field missing", "should start with: /")
    );
    assert!(errors("ftp://files.test/x")["protocol"].starts_with("expected one of"));
    assert!(errors("http://files.test:99999/x").contains("port"));
    assert!(errors("http://bad_host!/x").contains("host"));
    assert!(errors("http://files.test/x?a=1").contains("url"));
    let ok = Service::parse(&json!({"url": "https://files.test:8443/v1"}), &ctx()).unwrap();
    assert_eq!(
        (ok.host.as_str(), ok.port, ok.path.as_deref()),
        ("files.test", 8443, Some("/v1"))
    );
}
