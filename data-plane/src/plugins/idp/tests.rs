use std::sync::atomic::Ordering;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::plugins::ConsumerIndex;
use crate::plugins::IdpClients;

const ID: uuid::Uuid = uuid::Uuid::from_u128(7);

fn idp(timeout_ms: u64) -> (Idp, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let ctx = BuildCtx {
        state: Default::default(),
        consumers: Arc::new(ConsumerIndex::default()),
        groups: Arc::default(),
        caches: Arc::new(Caches::new(100)),
        metrics: metrics.clone(),
        clients: Arc::new(IdpClients::new(None)),
        traffic: Arc::default(),
        revocations: Arc::default(),
    };
    let settings = IdpSettings {
        timeout_ms,
        keepalive_ms: 1_000,
        verify_tls: true,
        namespace: &[b"http://idp.test/introspect"],
        events: &[],
    };
    (
        Idp::new("test-plugin", &ID, &ctx, settings).unwrap(),
        metrics,
    )
}

fn count(metrics: &Metrics, event: &str) -> u64 {
    let id = ID.to_string();
    metrics
        .plugin_events
        .with(&[
            ("plugin", "test-plugin"),
            ("instance", &id),
            ("event", event),
        ])
        .load(Ordering::Relaxed)
}

/// A one-connection server that reads a request and then does `reply` with the socket.
async fn server(reply: &'static [u8], close: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = sock.read(&mut buf).await;
        sock.write_all(reply).await.unwrap();
        if close {
            drop(sock);
        } else {
            // Holds the connection open without finishing the answer.
            std::future::pending::<()>().await;
        }
    });
    format!("http://{addr}/introspect")
}

async fn call(idp: &Idp, url: &str) -> Result<IdpAnswer, IdpFailure> {
    idp.send_expecting_ok(idp.client().post(url).form(&[("token", "t")]))
        .await
}

#[tokio::test]
async fn an_answer_of_200_is_returned_whole_with_its_media_type() {
    let (idp, metrics) = idp(2_000);
    let url = server(
        b"HTTP/1.1 200 OK\r\nContent-Type: Application/JSON\r\nContent-Length: 15\r\n\r\n{\"active\":true}",
        true,
    )
    .await;
    let answer = call(&idp, &url).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    assert_eq!(&answer.body[..], b"{\"active\":true}");
    assert_eq!(count(&metrics, "idp_call"), 1);
    assert_eq!(count(&metrics, "idp_error"), 0);
    assert!(metrics
        .render()
        .contains("instance=\"00000000-0000-0000-0000-000000000007\""));
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let (idp, metrics) = idp(2_000);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = call(&idp, &format!("http://127.0.0.1:{port}/x"))
        .await
        .err()
        .unwrap();
    assert_eq!(err, IdpFailure::Unreachable);
    assert_eq!(err.to_string(), "unreachable");
    assert_eq!(count(&metrics, "idp_error"), 1);
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout() {
    let (idp, metrics) = idp(200);
    let url = server(b"", false).await;
    let err = call(&idp, &url).await.err().unwrap();
    assert_eq!(err, IdpFailure::Timeout);
    assert_eq!(count(&metrics, "idp_error"), 1);
}

#[tokio::test]
async fn a_status_other_than_200_is_a_fault_only_when_200_is_expected() {
    let (idp, metrics) = idp(2_000);
    let reply = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops";
    let url = server(reply, true).await;
    let err = call(&idp, &url).await.err().unwrap();
    assert_eq!(err, IdpFailure::Status(500));
    assert_eq!(err.to_string(), "answered HTTP 500");
    assert_eq!(count(&metrics, "idp_error"), 1);

    let url = server(reply, true).await;
    let answer = idp.send(idp.client().post(&url)).await.unwrap();
    assert_eq!((answer.status, &answer.body[..]), (500, &b"oops"[..]));
    assert_eq!(count(&metrics, "idp_call"), 2);
    assert_eq!(count(&metrics, "idp_error"), 1);
}

#[tokio::test]
async fn a_body_cut_short_is_unreadable() {
    let (idp, _) = idp(2_000);
    let url = server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"active\":",
        true,
    )
    .await;
    assert_eq!(call(&idp, &url).await.err(), Some(IdpFailure::Unreadable));
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_a_transport_error() {
    let (idp, _) = idp(2_000);
    let url = server(b"", true).await;
    assert_eq!(call(&idp, &url).await.err(), Some(IdpFailure::Transport));
}

#[tokio::test]
async fn keys_hash_the_token_alone_within_the_namespace() {
    let (a, _) = idp(1_000);
    let token = b"opaque-token";
    let plain = a.key(&[], &[token]);
    // The token part is the token's SHA-256, so a purge by token hash reaches every namespace.
    assert_eq!(plain.token, <[u8; 32]>::from(Sha256::digest(token)));
    assert_eq!(a.key(&[], &[token]), plain);
    let scoped = a.key(&[b"GET", b"/a"], &[token]);
    assert_eq!(scoped.token, plain.token);
    assert_ne!(scoped.namespace, plain.namespace);
    assert_ne!(
        a.key(&[b"GET", b"/b"], &[token]).namespace,
        scoped.namespace
    );
    // Parts are delimited: moving a byte from one part to the next is another key.
    assert_ne!(a.key(&[], &[b"ab", b"c"]), a.key(&[], &[b"a", b"bc"]));
    assert_ne!(
        a.key(&[b"ab", b"c"], &[token]),
        a.key(&[b"a", b"bc"], &[token])
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch_and_failures_are_not_cached() {
    let (idp, metrics) = idp(1_000);
    let cache = &idp.caches().introspection;
    let key = idp.key(&[], &[b"t"]);
    let fail = || async { Err::<Cached, String>("down".into()) };
    let (out, missed) = idp.cached(cache, key, ("hit", "miss"), fail()).await;
    assert_eq!((out.err().as_deref(), missed), (Some("down"), true));
    let fetch = || async {
        Ok::<_, String>(Cached::new(
            Arc::new(json!({"active": true})),
            Duration::from_secs(60),
        ))
    };
    let (first, second) = tokio::join!(
        idp.cached(cache, key, ("hit", "miss"), fetch()),
        idp.cached(cache, key, ("hit", "miss"), fetch())
    );
    assert!(first.0.is_ok() && second.0.is_ok());
    assert_eq!(u8::from(first.1) + u8::from(second.1), 1);
    let (third, missed) = idp.cached(cache, key, ("hit", "miss"), fetch()).await;
    assert!(Arc::ptr_eq(&third.unwrap(), &first.0.unwrap()));
    assert!(!missed);
    assert_eq!((count(&metrics, "miss"), count(&metrics, "hit")), (2, 2));
}

#[test]
fn answers_live_for_the_ttl_but_never_past_exp() {
    let now = 1_000;
    let ttl = |t: Option<u64>, claims: Value| {
        TtlRule {
            ttl: t,
            ..TtlRule::default()
        }
        .lifetime(&claims, now)
    };
    assert_eq!(
        ttl(Some(30), json!({"exp": 1_010})),
        Duration::from_secs(10)
    );
    assert_eq!(
        ttl(Some(30), json!({"exp": 5_000})),
        Duration::from_secs(30)
    );
    assert_eq!(ttl(None, json!({"exp": 1_100})), Duration::from_secs(100));
    assert_eq!(ttl(None, json!({})), Duration::ZERO);
    assert_eq!(ttl(Some(30), json!({})), Duration::from_secs(30));
    assert_eq!(ttl(Some(30), json!({"exp": 900})), Duration::ZERO);
}

#[test]
fn min_and_max_bound_the_ttl_and_exp_still_wins() {
    let rule = TtlRule {
        ttl: Some(300),
        min: Some(60),
        max: Some(120),
    };
    assert_eq!(rule.lifetime(&json!({}), 0), Duration::from_secs(120));
    assert_eq!(
        rule.lifetime(&json!({"exp": 30}), 0),
        Duration::from_secs(30)
    );
    assert_eq!(
        rule.lifetime(&json!({"exp": 90}), 0),
        Duration::from_secs(90)
    );
    let short = TtlRule {
        ttl: Some(10),
        min: Some(60),
        max: None,
    };
    assert_eq!(
        short.lifetime(&json!({"exp": 1_000}), 0),
        Duration::from_secs(60)
    );
}
