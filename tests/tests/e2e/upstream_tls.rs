//! HTTPS upstreams: certificates verified against the Mozilla roots plus `--upstream-ca-file`, Kong's
//! `tls_verify: false` honoured, and HTTP/2 used when the upstream offers it by ALPN.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::Method;
use serde_json::{json, Value};
use tests::pki::TestCa;
use tests::{client, ControlPlane, DataPlane, DpOptions};

/// An HTTPS server with a certificate for `localhost` issued by a private CA; answers with the HTTP
/// version it spoke. Returns its port and the CA's PEM.
async fn tls_upstream() -> (u16, String) {
    let ca = TestCa::new("test upstream CA");
    let acceptor =
        tokio_rustls::TlsAcceptor::from(ca.server_config(&["localhost"], &[b"h2", b"http/1.1"]));
    let port = tests::serve_each(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let body = json!({"version": format!("{:?}", req.version()), "path": req.uri().path()}).to_string();
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                },
            );
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        }
    })
    .await;
    (port, ca.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_and_speak_http2() {
    let (port, ca_pem) = tls_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let cp = ControlPlane::start().await;
    let trusting = DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        upstream_ca_file: Some(ca_file),
        ..Default::default()
    })
    .await;
    let plain = DataPlane::start(&cp).await;
    cp.post(
        "/services",
        json!({"name": "tls", "url": format!("https://localhost:{port}/base")}),
    )
    .await;
    cp.post("/services/tls/routes", json!({"paths": ["/tls"]}))
        .await;
    let v = cp.version().await;
    trusting.wait_version(v).await;
    plain.wait_version(v).await;
    let r = client()
        .get(format!("{}/tls/x", trusting.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"version": "HTTP/2.0", "path": "/base/x"}));
    // Without the CA the certificate is refused.
    let r = client()
        .get(format!("{}/tls/x", plain.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    // tls_verify: false turns verification off for that Service only.
    let (s, _) = cp
        .call(
            Method::PATCH,
            "/services/tls",
            Some(json!({"tls_verify": false})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    plain.wait_version(cp.version().await).await;
    assert_eq!(
        client()
            .get(format!("{}/tls/x", plain.proxy_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
