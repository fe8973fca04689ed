//! Property: a router updated route by route matches every request exactly as a router built from scratch
//! from the same routes (hosts exact and wildcard, prefix and regex paths, methods, priorities).

use std::collections::BTreeMap;

use data_plane::router::{RequestInfo, Router};
use proptest::prelude::*;
use serde_json::json;
use shared::{ConfigState, ParseCtx, Route};
use uuid::Uuid;

fn route(slot: u8, variant: u8) -> Route {
    let hosts = match variant % 4 {
        0 => json!([]),
        1 => json!([format!("h{}.test", variant % 3)]),
        2 => json!(["*.test"]),
        _ => json!([format!("h{}.test", variant % 3), "other.test"]),
    };
    let path = match variant % 5 {
        0 => json!(["/"]),
        1 => json!([format!("/a{}/", variant % 2)]),
        2 => json!([format!("/a{}", variant % 3)]),
        3 => json!([r"~/a\d+/x"]),
        _ => json!([]),
    };
    let methods = if variant.is_multiple_of(3) {
        json!(["GET"])
    } else {
        json!([])
    };
    let mut v =
        json!({"hosts": hosts, "paths": path, "methods": methods, "regex_priority": variant % 2});
    if v["hosts"].as_array().unwrap().is_empty()
        && v["paths"].as_array().unwrap().is_empty()
        && v["methods"].as_array().unwrap().is_empty()
    {
        v["paths"] = json!(["/fallback"]);
    }
    let state = ConfigState::default();
    Route::parse(
        &v,
        &ParseCtx {
            id: Uuid::from_u128(slot as u128 + 1),
            now: (variant % 7) as i64,
            created_at: None,
            resolver: &state,
        },
    )
    .expect("valid route")
}

fn requests() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for host in [
        "h0.test",
        "h1.test",
        "h2.test",
        "x.test",
        "other.test",
        "plain",
    ] {
        for path in ["/", "/a0/", "/a1/y", "/a2", "/a12/x", "/fallback", "/zzz"] {
            for method in ["GET", "POST"] {
                out.push((method, host, path));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn updated_router_matches_a_fresh_build(ops in prop::collection::vec((0u8..12, any::<u8>(), any::<bool>()), 1..40)) {
        let mut routes: BTreeMap<u8, Route> = BTreeMap::new();
        let mut router = Router::default();
        let headers = http::HeaderMap::new();
        for (slot, variant, delete) in ops {
            let id = Uuid::from_u128(slot as u128 + 1);
            if delete {
                routes.remove(&slot);
                router = router.updated(&[id], []).unwrap();
            } else {
                let r = route(slot, variant);
                routes.insert(slot, r.clone());
                router = router.updated(&[], [&r]).unwrap();
            }
            let fresh = Router::build(routes.values()).unwrap();
            prop_assert_eq!(router.len(), fresh.len());
            for (method, host, path) in requests() {
                let req = RequestInfo { method, host, port: None, path, headers: &headers };
                prop_assert_eq!(router.find(&req), fresh.find(&req), "{} {} {}", method, host, path);
            }
        }
    }
}
