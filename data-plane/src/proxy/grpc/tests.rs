use super::*;
use serde_json::json;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn grpc_requests_are_known_by_content_type() {
    assert!(is_grpc(&headers(&[("content-type", "application/grpc")])));
    assert!(is_grpc(&headers(&[(
        "content-type",
        "application/grpc+proto"
    )])));
    assert!(!is_grpc(&headers(&[("content-type", "application/json")])));
    assert!(!is_grpc(&headers(&[])));
}

#[test]
fn grpc_timeouts_parse_in_every_unit_and_bad_ones_are_ignored() {
    let d = |v: &'static str| deadline(&headers(&[("grpc-timeout", v)]));
    assert_eq!(d("2H"), Some(Duration::from_secs(7200)));
    assert_eq!(d("3M"), Some(Duration::from_secs(180)));
    assert_eq!(d("5S"), Some(Duration::from_secs(5)));
    assert_eq!(d("250m"), Some(Duration::from_millis(250)));
    assert_eq!(d("7u"), Some(Duration::from_micros(7)));
    assert_eq!(d("99999999n"), Some(Duration::from_nanos(99_999_999)));
    for bad in ["", "S", "123456789S", "5s", "-1S", "1.5S", "5"] {
        assert_eq!(d(bad), None, "{bad:?}");
    }
    assert_eq!(deadline(&headers(&[])), None);
}

#[test]
fn http_statuses_map_to_grpc_codes() {
    let code = |s: u16| status_for(StatusCode::from_u16(s).unwrap());
    assert_eq!(
        [401, 403, 404, 429, 502, 503, 504, 500, 400, 418].map(code),
        [16, 7, 5, 8, 14, 14, 4, 13, 3, 2]
    );
}

#[tokio::test]
async fn an_own_answer_becomes_a_trailers_only_grpc_response() {
    let body = serde_json::to_vec(&json!({"message": "Unauthorized: 100% wrong"})).unwrap();
    let resp = Response::builder()
        .status(401)
        .header("content-type", "application/json; charset=utf-8")
        .header("content-length", body.len())
        .header("www-authenticate", "Bearer")
        .body(full(Bytes::from(body)))
        .unwrap();
    let out = refusal(resp).await;
    assert_eq!(out.status(), 200);
    let h = out.headers();
    assert_eq!(h["content-type"], "application/grpc");
    assert_eq!(h["grpc-status"], "16");
    assert_eq!(h["grpc-message"], "Unauthorized: 100%25 wrong");
    assert_eq!(h["www-authenticate"], "Bearer");
    assert!(h.get("content-length").is_none());
    let bytes = out.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes.is_empty());

    let plain = Response::builder()
        .status(503)
        .body(full(Bytes::from_static(b"not json")))
        .unwrap();
    let out = refusal(plain).await;
    assert_eq!(out.headers()["grpc-status"], "14");
    assert_eq!(out.headers()["grpc-message"], "Service Unavailable");
}
