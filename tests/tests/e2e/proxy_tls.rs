//! TLS termination on the proxy's TLS listener: certificates chosen by SNI (exact, wildcard, the default),
//! HTTP/1.1 and HTTP/2 by ALPN, certificates rotated by an admin write while a connection stays open,
//! HTTPS-only routes redirected or refused over plain HTTP, and the Certificate and SNI entities' bad input.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use reqwest::Method;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use tests::pki::TestCa;
use tests::{client, ControlPlane, DataPlane, DpOptions, EchoUpstream};

/// Accepts any server certificate: these tests look at which one was presented.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTP/1.1 connection over TLS with server name `sni`, and the leaf certificate the server presented.
async fn connect(
    addr: SocketAddr,
    sni: &str,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    CertificateDer<'static>,
) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    (send, leaf)
}

/// The leaf certificate presented for server name `sni`.
async fn served(addr: SocketAddr, sni: &str) -> CertificateDer<'static> {
    connect(addr, sni).await.1
}

/// GET `/hello` on an open connection; the status.
async fn get_on(
    send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
) -> u16 {
    let req = http::Request::get("/hello")
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

async fn cluster(opts: DpOptions) -> (ControlPlane, DataPlane, EchoUpstream) {
    let cp = ControlPlane::start().await;
    let up = EchoUpstream::start().await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        ..opts
    })
    .await;
    cp.post("/services", json!({"name": "s", "url": up.url}))
        .await;
    cp.post("/services/s/routes", json!({"name": "all", "paths": ["/"]}))
        .await;
    (cp, dp, up)
}

async fn sync(cp: &ControlPlane, dp: &DataPlane) {
    dp.wait_version(cp.version().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snis_exact_and_wildcard_and_the_default_certificate_over_http1_and_http2() {
    let ca = TestCa::new("portcullis test CA");
    let dir = tempfile::tempdir().unwrap();
    let default = ca.issue(&["default.example.test"]);
    let (cert_file, key_file) = (
        dir.path().join("default.pem"),
        dir.path().join("default.key"),
    );
    std::fs::write(&cert_file, &default.cert).unwrap();
    std::fs::write(&key_file, &default.key).unwrap();
    let (cp, dp, _up) = cluster(DpOptions {
        tls_default: Some((cert_file, key_file)),
        ..Default::default()
    })
    .await;
    let a = ca.issue(&["a.example.test"]);
    let b = ca.issue(&["*.b.example.test"]);
    let created = cp
        .post(
            "/certificates",
            json!({"cert": a.cert, "key": a.key, "snis": ["a.example.test"]}),
        )
        .await;
    assert_eq!(
        created["key"], "[redacted]",
        "a private key never reads back"
    );
    assert_eq!(created["snis"], json!(["a.example.test"]));
    let cert_b = cp
        .post("/certificates", json!({"cert": b.cert, "key": b.key}))
        .await;
    let b_id = cert_b["id"].as_str().unwrap();
    cp.post(
        &format!("/certificates/{b_id}/snis"),
        json!({"name": "*.b.example.test"}),
    )
    .await;
    let snis = cp.get("/snis").await.unwrap();
    assert_eq!(snis["data"].as_array().unwrap().len(), 2, "{snis}");
    let shown = cp.get(&format!("/certificates/{b_id}")).await.unwrap();
    assert_eq!(shown["snis"], json!(["*.b.example.test"]));
    sync(&cp, &dp).await;

    let tls = dp.proxy_tls_addr;
    assert_eq!(served(tls, "a.example.test").await, a.der);
    assert_eq!(served(tls, "x.b.example.test").await, b.der);
    assert_eq!(served(tls, "unknown.example.test").await, default.der);

    // Clients that verify against the CA: HTTP/2 by ALPN, and HTTP/1.1 when that is all they speak.
    let port = tls.port();
    for (http1_only, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let c = ca.client(&["a.example.test", "x.b.example.test"], tls, http1_only);
        for host in ["a.example.test", "x.b.example.test"] {
            let resp = c
                .get(format!("https://{host}:{port}/hello"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                (resp.status().as_u16(), resp.version()),
                (200, version),
                "{host}"
            );
            let echo: Value = resp.json().await.unwrap();
            assert_eq!(echo["path"], "/hello");
            assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
            assert_eq!(echo["headers"]["x-forwarded-port"], port.to_string());
        }
    }
    // The plain listener still says http.
    let plain: Value = client()
        .get(format!("{}/hello", dp.proxy_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["headers"]["x-forwarded-proto"], "http");

    // Removing a certificate removes its SNIs; its names fall back to the default certificate.
    let (s, _) = cp
        .call(Method::DELETE, &format!("/certificates/{b_id}"), None)
        .await
        .unwrap();
    assert_eq!(s, 204);
    assert_eq!(
        cp.get("/snis").await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    sync(&cp, &dp).await;
    assert_eq!(served(tls, "x.b.example.test").await, default.der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_new_handshakes_while_an_open_connection_keeps_working() {
    let ca = TestCa::new("portcullis test CA");
    let (cp, dp, _up) = cluster(DpOptions::default()).await;
    let first = ca.issue(&["api.example.test"]);
    let cert = cp
        .post(
            "/certificates",
            json!({"cert": first.cert, "key": first.key, "snis": ["api.example.test"]}),
        )
        .await;
    let id = cert["id"].as_str().unwrap().to_string();
    sync(&cp, &dp).await;
    let (mut open, leaf) = connect(dp.proxy_tls_addr, "api.example.test").await;
    assert_eq!(leaf, first.der);
    assert_eq!(get_on(&mut open, "api.example.test").await, 200);

    let second = ca.issue(&["api.example.test"]);
    let (s, v) = cp
        .call(
            Method::PATCH,
            &format!("/certificates/{id}"),
            Some(json!({"cert": second.cert, "key": second.key})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["snis"],
        json!(["api.example.test"]),
        "a PATCH without snis keeps them"
    );
    sync(&cp, &dp).await;
    assert_eq!(
        served(dp.proxy_tls_addr, "api.example.test").await,
        second.der
    );
    // The connection opened before the rotation is not dropped.
    for _ in 0..3 {
        assert_eq!(get_on(&mut open, "api.example.test").await, 200);
    }
    // A PUT that echoes the redacted key keeps the stored one.
    let (s, v) = cp
        .call(
            Method::PUT,
            &format!("/certificates/{id}"),
            Some(json!({"cert": second.cert, "key": "[redacted]", "snis": ["api.example.test", "www.example.test"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["snis"], json!(["api.example.test", "www.example.test"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_only_routes_redirect_or_refuse_plain_http_and_serve_over_tls() {
    let (cp, dp, _up) = cluster(DpOptions::default()).await;
    cp.post(
        "/services/s/routes",
        json!({"name": "moved", "paths": ["/secure"], "protocols": ["https"], "https_redirect_status_code": 301}),
    )
    .await;
    cp.post(
        "/services/s/routes",
        json!({"name": "refused", "paths": ["/strict"], "protocols": ["https"]}),
    )
    .await;
    sync(&cp, &dp).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(format!("{}/secure/page?x=1", dp.proxy_url))
        .header("host", "shop.example.test:8000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 301);
    assert_eq!(
        resp.headers()["location"],
        "https://shop.example.test/secure/page?x=1"
    );
    assert!(resp.headers().contains_key("x-request-id"));
    let resp = client()
        .get(format!("{}/strict", dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 426);
    assert_eq!(resp.headers()["upgrade"], "TLS/1.2, HTTP/1.1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Please use HTTPS protocol");
    // Over TLS (the node's self-signed default certificate) both routes answer.
    let (mut conn, _) = connect(dp.proxy_tls_addr, "localhost").await;
    for path in ["/secure/page", "/strict"] {
        let req = http::Request::get(path)
            .header("host", "shop.example.test")
            .body(Empty::new())
            .unwrap();
        conn.ready().await.unwrap();
        let resp = conn.send_request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        resp.into_body().collect().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_and_snis_get_a_400_naming_the_field() {
    let cp = ControlPlane::start().await;
    let ca = TestCa::new("portcullis test CA");
    let good = ca.issue(&["a.example.test"]);
    let other = ca.issue(&["b.example.test"]);
    let expired = ca.issue_expired(&["old.example.test"]);
    let post = |body: Value| {
        let cp = &cp;
        async move {
            cp.call(Method::POST, "/certificates", Some(body))
                .await
                .unwrap()
        }
    };
    let (s, v) = post(json!({"cert": good.cert, "key": other.key})).await;
    assert_eq!(
        (s, v["fields"]["key"].as_str()),
        (400, Some("the private key does not match the certificate")),
        "{v}"
    );
    let (s, v) = post(json!({"cert": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "key": good.key})).await;
    assert_eq!(s, 400);
    assert!(
        v["fields"]["cert"].as_str().unwrap().starts_with("invalid"),
        "{v}"
    );
    let (s, v) = post(json!({"cert": expired.cert, "key": expired.key})).await;
    assert_eq!(s, 400);
    assert!(
        v["fields"]["cert"]
            .as_str()
            .unwrap()
            .starts_with("the certificate expired"),
        "{v}"
    );
    let (s, v) =
        post(json!({"cert": good.cert, "key": good.key, "snis": ["a.example.test:443"]})).await;
    assert_eq!(
        (s, v["fields"]["snis"][0].as_str()),
        (400, Some("must not have a port")),
        "{v}"
    );
    let (s, v) = post(json!({"cert": good.cert, "key": "[redacted]"})).await;
    assert_eq!(s, 400);
    assert!(
        v["fields"]["key"]
            .as_str()
            .unwrap()
            .contains("no stored key"),
        "{v}"
    );
    // Nothing of the refused writes was stored.
    assert_eq!(cp.get("/certificates").await.unwrap()["data"], json!([]));

    let first = cp
        .post(
            "/certificates",
            json!({"cert": good.cert, "key": good.key, "snis": ["a.example.test"]}),
        )
        .await;
    let (s, v) =
        post(json!({"cert": other.cert, "key": other.key, "snis": ["a.example.test"]})).await;
    assert_eq!(s, 400);
    assert!(
        v["fields"]["snis"][0]
            .as_str()
            .unwrap()
            .contains("already belongs to certificate"),
        "{v}"
    );
    let (s, v) = cp
        .call(
            Method::POST,
            "/snis",
            Some(json!({"name": "a.example.test", "certificate": first["id"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 409, "{v}");
    let (s, v) = cp
        .call(Method::POST, "/snis", Some(json!({"name": "c.example.test", "certificate": {"id": "7b0c2bdc-98a4-4c5b-8d3c-7b6a2f0e4a11"}})))
        .await
        .unwrap();
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("certificate"),
        "{v}"
    );
    // The export keeps certificates and their SNIs, keys redacted; importing it back keeps the keys.
    let doc = cp.get("/config?format=json").await.unwrap();
    assert_eq!(doc["certificates"][0]["key"], "[redacted]");
    assert_eq!(doc["certificates"][0]["snis"][0]["name"], "a.example.test");
    let (s, v) = cp
        .call(
            Method::POST,
            "/config",
            Some(json!({"config": doc.to_string()})),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{v}");
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        cp.get(&format!("/certificates/{id}")).await.unwrap()["snis"],
        json!(["a.example.test"])
    );
}
