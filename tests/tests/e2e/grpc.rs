//! gRPC through the proxy with a tonic client and a tonic service: unary, server-streaming,
//! client-streaming and bidirectional calls over h2c, metadata and trailers intact; the
//! `oauth2-introspection` plugin on a gRPC Route with gRPC-shaped refusals; deadlines from the client
//! and from the Service; a `grpcs` upstream reached through the proxy's TLS listener; and plugins that
//! run only on the protocols they list.

use std::time::Duration;

use serde_json::{json, Value};
use tests::grpc::proto::echo_client::EchoClient;
use tests::grpc::proto::Msg;
use tests::grpc::{channel, serve, tls_channel};
use tests::idp::TestIdp;
use tests::pki::TestCa;
use tests::{within, ControlPlane, DataPlane, DpOptions};
use tokio_stream::StreamExt;
use tonic::{Code, Request};

const ECHO_PATH: &str = "/portcullis.test.echo.Echo/";

fn msg(text: &str) -> Msg {
    Msg {
        text: text.into(),
        count: 0,
        delay_ms: 0,
    }
}

/// A Service `echo` for the upstream at `port` with `service` settings, and a gRPC Route on the echo
/// service's path.
async fn grpc_route(cp: &ControlPlane, port: u16, service: Value, protocols: &[&str]) {
    let mut body = json!({"name": "echo", "protocol": "grpc", "host": "localhost", "port": port});
    for (k, v) in service.as_object().unwrap() {
        body[k] = v.clone();
    }
    cp.post("/services", body).await;
    cp.post(
        "/services/echo/routes",
        json!({"name": "echo", "protocols": protocols, "paths": [ECHO_PATH]}),
    )
    .await;
}

/// The texts of a server-streaming call of `n` messages.
async fn countdown(c: &mut EchoClient<tonic::transport::Channel>, n: u32) -> Vec<String> {
    let mut ask = msg("");
    ask.count = n;
    c.countdown(ask)
        .await
        .unwrap()
        .into_inner()
        .map(|m| m.unwrap().text)
        .collect()
        .await
}

async fn client(dp: &DataPlane) -> EchoClient<tonic::transport::Channel> {
    EchoClient::new(channel(dp.proxy_url.trim_start_matches("http://")).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_call_passes_through_with_metadata_and_trailers() {
    let port = serve(None).await;
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    grpc_route(&cp, port, json!({}), &["grpc", "grpcs"]).await;
    dp.wait_version(cp.version().await).await;
    let mut c = client(&dp).await;

    // Unary, with request metadata echoed back as response metadata.
    let mut req = Request::new(msg("hello"));
    req.metadata_mut().insert("x-trace", "t-1".parse().unwrap());
    let resp = c.unary(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-trace").unwrap(), "t-1");
    assert_eq!(resp.into_inner().text, "hello");

    // An error status and its metadata travel in the trailers.
    let err = c.unary(msg("fail")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "fail was asked for");
    assert_eq!(err.metadata().get("x-detail").unwrap(), "the text was fail");

    // Server streaming.
    assert_eq!(countdown(&mut c, 5).await, ["4", "3", "2", "1", "0"]);

    // Client streaming.
    let parts = tokio_stream::iter(["a", "b", "c", "d"].map(msg));
    let got = c.collect(parts).await.unwrap().into_inner();
    assert_eq!((got.text.as_str(), got.count), ("a,b,c,d", 4));

    // Bidirectional, in lock step: each answer arrives before the next message is sent, so nothing
    // is buffered on the way in either direction.
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(1);
    let mut answers = c
        .shout(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for word in ["one", "two", "three"] {
        tx.send(msg(word)).await.unwrap();
        let got = within(Duration::from_secs(5), "the answer", answers.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.text, word.to_uppercase());
    }
    drop(tx);
    assert!(
        answers.next().await.is_none(),
        "the stream ends with the client's"
    );

    // A path no Route has: NOT_FOUND, gRPC-shaped.
    let mut other = EchoClient::new(channel(dp.proxy_url.trim_start_matches("http://")).await);
    let routes = cp.get("/routes/echo").await.unwrap();
    assert_eq!(routes["strip_path"], false, "gRPC Routes keep the path");
    cp.call(
        reqwest::Method::PATCH,
        "/routes/echo",
        Some(json!({"paths": ["/elsewhere.Service/"]})),
    )
    .await
    .unwrap();
    dp.wait_version(cp.version().await).await;
    let err = other.unary(msg("x")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

/// A unary call made by hand over HTTP/2 in clear, with `headers`, so that only the proxy acts on them.
async fn raw_unary(
    dp: &DataPlane,
    m: &Msg,
    headers: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming> {
    let encoded = prost::Message::encode_to_vec(m);
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    framed.extend_from_slice(&encoded);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut req = http::Request::post(format!("{}{ECHO_PATH}Unary", dp.proxy_url))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(framed)))
        .unwrap();
    within(Duration::from_secs(10), "the raw call", client.request(req))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_grpc_shaped_and_deadlines_are_kept() {
    let port = serve(None).await;
    let idp = TestIdp::start().await;
    idp.add_token("grpc-token", json!({"sub": "alice", "client_id": "app"}));
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    grpc_route(
        &cp,
        port,
        json!({"read_timeout": 500, "write_timeout": 500}),
        &["grpc"],
    )
    .await;
    cp.post(
        "/routes/echo/plugins",
        json!({"name": "oauth2-introspection", "config": {"introspection_url": idp.introspection_url(), "authorization_value": idp.authorization}}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    let mut c = client(&dp).await;

    let err = c.unary(msg("hi")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(!err.message().is_empty());
    let with_token = |m: Msg| {
        let mut req = Request::new(m);
        req.metadata_mut()
            .insert("authorization", "Bearer grpc-token".parse().unwrap());
        req
    };
    assert_eq!(
        c.unary(with_token(msg("hi")))
            .await
            .unwrap()
            .into_inner()
            .text,
        "hi"
    );

    // The client's deadline (grpc-timeout) bounds the upstream exchange: the upstream here never gives
    // up by itself, and this client does not either, so DEADLINE_EXCEEDED comes from the proxy.
    let mut slow = msg("slow");
    slow.delay_ms = 5_000;
    let started = std::time::Instant::now();
    let resp = raw_unary(
        &dp,
        &slow,
        &[
            ("grpc-timeout", "200m"),
            ("authorization", "Bearer grpc-token"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "4", "{resp:?}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // So does the Service's (write_timeout + read_timeout: 1 s) without a client deadline.
    let err = c.unary(with_token(slow)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");

    // The identity provider failing: UNAVAILABLE.
    idp.set_mode(tests::idp::Mode::Status(500));
    let mut req = Request::new(msg("hi"));
    req.metadata_mut()
        .insert("authorization", "Bearer other-token".parse().unwrap());
    let err = c.unary(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcs_upstream_through_the_tls_listener() {
    let upstream_ca = TestCa::new("grpc upstream CA");
    let port = serve(Some(upstream_ca.server_config(&["localhost"], &[b"h2"]))).await;
    let dir = tempfile::tempdir().unwrap();
    let upstream_ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca_file, upstream_ca.pem()).unwrap();
    let edge_ca = TestCa::new("edge CA");
    let edge = edge_ca
        .issue(&["grpc.example.test"])
        .write_to(dir.path(), "edge");
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        upstream_ca_file: Some(upstream_ca_file),
        tls_default: Some(edge),
        ..Default::default()
    })
    .await;
    grpc_route(&cp, port, json!({"protocol": "grpcs"}), &["grpcs"]).await;
    dp.wait_version(cp.version().await).await;

    let mut c =
        EchoClient::new(tls_channel(dp.proxy_tls_addr, "grpc.example.test", &edge_ca).await);
    assert_eq!(countdown(&mut c, 3).await, ["2", "1", "0"]);
    assert_eq!(
        c.unary(msg("over tls")).await.unwrap().into_inner().text,
        "over tls"
    );

    // The Route takes grpcs only: a call in clear is refused.
    let err = client(&dp).await.unary(msg("clear")).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_runs_only_on_the_protocols_it_lists() {
    let port = serve(None).await;
    let idp = TestIdp::start().await;
    idp.add_token("grpc-token", json!({"sub": "alice", "client_id": "app"}));
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    grpc_route(&cp, port, json!({}), &["grpc"]).await;
    let config = json!({"introspection_url": idp.introspection_url(), "authorization_value": idp.authorization});
    // On the Route, for TLS gRPC only: a call in clear does not run it.
    cp.post(
        "/routes/echo/plugins",
        json!({"name": "oauth2-introspection", "protocols": ["grpcs"], "config": config}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    let mut c = client(&dp).await;
    assert_eq!(
        c.unary(msg("open")).await.unwrap().into_inner().text,
        "open"
    );
    assert_eq!(idp.calls(), 0);
    // A global instance that lists grpc applies instead of the Route's, which does not.
    cp.post(
        "/plugins",
        json!({"name": "oauth2-introspection", "protocols": ["grpc"], "config": config}),
    )
    .await;
    dp.wait_version(cp.version().await).await;
    let err = c.unary(msg("closed")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}
