//! Route matching time at 100 and 10,000 routes (each route a prefix path; the request matches one of the
//! last routes, and a host-indexed route set is mixed in so both index paths are exercised).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use data_plane::router::{RequestInfo, Router};
use serde_json::json;
use shared::{ConfigState, ParseCtx, Route};
use uuid::Uuid;

fn routes(n: usize) -> Vec<Route> {
    let state = ConfigState::default();
    (0..n)
        .map(|i| {
            let v = if i % 10 == 0 {
                json!({"paths": [format!("/svc{i}/api")], "hosts": [format!("h{i}.example.com")], "methods": ["GET", "POST"]})
            } else {
                json!({"paths": [format!("/svc{i}/api")]})
            };
            Route::parse(&v, &ParseCtx { id: Uuid::from_u128(i as u128 + 1), now: i as i64, created_at: None, resolver: &state }).expect("valid route")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("router");
    for n in [100usize, 10_000] {
        let router = Router::build(&routes(n)).expect("router builds");
        let headers = http::HeaderMap::new();
        let path = format!("/svc{}/api/users/42", n - 3);
        group.bench_function(format!("match_{n}_routes"), |b| {
            b.iter(|| {
                let req = RequestInfo {
                    method: "GET",
                    host: "gateway.example.com",
                    port: Some(8000),
                    path: black_box(&path),
                    headers: &headers,
                };
                black_box(router.find(&req))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
