//! A Service's own TLS settings toward its upstream: `ca_certificates` (CA Certificate entities trusted
//! instead of the node's roots), `client_certificate` (mutual TLS) and `tls_verify_depth`, against an
//! upstream that requires a client certificate from its own CA.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::Method;
use serde_json::{json, Value};
use tests::pki::{Issued, TestCa};
use tests::{client, ControlPlane, DataPlane};

/// An HTTPS upstream for `localhost` presenting `leaf` then `chain`, that requires a client certificate
/// issued by `client_ca`; it answers with the number of certificates the client presented. Returns its
/// port.
async fn mtls_upstream(
    leaf: Issued,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    client_ca: &TestCa,
) -> u16 {
    let mut client_roots = rustls::RootCertStore::empty();
    client_roots.add(client_ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            std::iter::once(leaf.der).chain(chain).collect(),
            leaf.key_der,
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let port = tests::serve_each(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let presented = tls.get_ref().1.peer_certificates().map_or(0, |c| c.len());
            let svc = hyper::service::service_fn(move |_req| async move {
                let body = json!({"client_certificates": presented}).to_string();
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        }
    })
    .await;
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_present_client_certificates_and_trust_their_own_ca_certificates() {
    let server_ca = TestCa::new("upstream server CA");
    let intermediate = server_ca.intermediate("upstream intermediate CA");
    let client_ca = TestCa::new("gateway client CA");
    let server = intermediate.issue(&["localhost"]);
    let port = mtls_upstream(server, vec![intermediate.cert.der().clone()], &client_ca).await;
    let client_cert = client_ca.issue(&["gateway.example.test"]);

    let cp = ControlPlane::start().await;
    // The node has no --upstream-ca-file: only the Services' own CA certificates make it trust the upstream.
    let dp = DataPlane::start(&cp).await;
    let ca = cp
        .post("/ca_certificates", json!({"cert": server_ca.pem()}))
        .await;
    let other_ca = cp
        .post("/ca_certificates", json!({"cert": client_ca.pem()}))
        .await;
    let cert = cp
        .post(
            "/certificates",
            json!({"cert": client_cert.cert, "key": client_cert.key}),
        )
        .await;
    let url = format!("https://localhost:{port}");
    for (name, extra) in [
        (
            "mtls",
            json!({"client_certificate": {"id": cert["id"]}, "ca_certificates": [ca["id"]]}),
        ),
        ("no-client-cert", json!({"ca_certificates": [ca["id"]]})),
        (
            "wrong-ca",
            json!({"client_certificate": {"id": cert["id"]}, "ca_certificates": [other_ca["id"]]}),
        ),
        (
            "too-deep",
            json!({"client_certificate": {"id": cert["id"]}, "ca_certificates": [ca["id"]], "tls_verify_depth": 0}),
        ),
        (
            "deep-enough",
            json!({"client_certificate": {"id": cert["id"]}, "ca_certificates": [ca["id"]], "tls_verify_depth": 1}),
        ),
    ] {
        let mut svc = json!({"name": name, "url": url});
        for (k, v) in extra.as_object().unwrap() {
            svc[k] = v.clone();
        }
        cp.post("/services", svc).await;
        cp.post(
            &format!("/services/{name}/routes"),
            json!({"paths": [format!("/{name}")]}),
        )
        .await;
    }
    dp.wait_version(cp.version().await).await;
    for (name, status) in [
        ("mtls", 200),
        ("no-client-cert", 502),
        ("wrong-ca", 502),
        ("too-deep", 502),
        ("deep-enough", 200),
    ] {
        let r = client()
            .get(format!("{}/{name}", dp.proxy_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        if status == 200 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["client_certificates"], 1, "{name}");
        }
    }

    // What Services use cannot be removed, and what is not a CA is refused.
    let (s, v) = cp
        .call(
            Method::DELETE,
            &format!("/ca_certificates/{}", ca["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("ca_certificates"),
        "{v}"
    );
    let (s, v) = cp
        .call(
            Method::DELETE,
            &format!("/certificates/{}", cert["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("client_certificate"),
        "{v}"
    );
    let (s, v) = cp
        .call(
            Method::POST,
            "/ca_certificates",
            Some(json!({"cert": client_cert.cert})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    assert!(
        v["fields"]["cert"]
            .as_str()
            .unwrap()
            .starts_with("not a CA certificate"),
        "{v}"
    );
    let (s, v) = cp
        .call(
            Method::POST,
            "/ca_certificates",
            Some(json!({"cert": server_ca.pem()})),
        )
        .await
        .unwrap();
    assert_eq!(s, 409, "the same CA twice: {v}");
    let (s, v) = cp
        .call(
            Method::POST,
            "/services",
            Some(json!({"url": url, "ca_certificates": ["3c6a2f1e-1b8d-4d55-9a7e-0b1c2d3e4f50"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("ca_certificates"),
        "{v}"
    );
    let (s, v) = cp
        .call(
            Method::POST,
            "/services",
            Some(json!({"url": url, "tls_verify_depth": 65})),
        )
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert!(v["fields"]["tls_verify_depth"].is_string(), "{v}");
}
