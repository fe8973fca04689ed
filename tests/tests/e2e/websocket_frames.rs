//! WebSocket through the proxy as a WebSocket library sees it: text, binary and 10 MiB messages on a
//! `ws` Route to a `ws` Service, a close from either side, a `wss` Route over the TLS listener with the
//! handshake checked by `oauth2-introspection`, a plain request on a WebSocket Route refused with 426,
//! and WebSocket over HTTP/2 (RFC 8441) to an HTTP/1.1 upstream.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tests::pki::TestCa;
use tests::ws::echo_server;
use tests::{client, within, ControlPlane, DataPlane, DpOptions, TestIdp};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

const PATIENCE: Duration = Duration::from_secs(10);

/// A `ws` Service on the echo server and a Route `/chat` with `protocols`.
async fn ws_route(cp: &ControlPlane, port: u16, protocols: &[&str]) {
    cp.post(
        "/services",
        json!({"name": "chat", "url": format!("ws://127.0.0.1:{port}")}),
    )
    .await;
    cp.post(
        "/services/chat/routes",
        json!({"name": "chat", "protocols": protocols, "paths": ["/chat"]}),
    )
    .await;
}

async fn next_message<S>(ws: &mut WebSocketStream<S>) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within(PATIENCE, "a message", ws.next())
        .await
        .map(|m| m.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_a_ws_route_and_either_side_may_close() {
    let port = echo_server().await;
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    ws_route(&cp, port, &["ws"]).await;
    dp.wait_version(cp.version().await).await;
    let url = format!("{}/chat", dp.proxy_url.replace("http://", "ws://"));

    let (mut ws, resp) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::text("hello")));
    let bytes = vec![0u8, 1, 2, 255];
    ws.send(Message::binary(bytes.clone())).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::binary(bytes)));
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    match next_message(&mut ws).await {
        Some(Message::Binary(got)) => assert!(got[..] == big[..], "10 MiB came back changed"),
        other => panic!("{:?}", other.map(|m| m.len())),
    }
    // The client closes: the server's close answers it and the stream ends.
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "client bye".into(),
    }))
    .await
    .unwrap();
    let closing = next_message(&mut ws).await;
    assert!(matches!(closing, Some(Message::Close(_))), "{closing:?}");
    assert!(within(PATIENCE, "the end", ws.next()).await.is_none());

    // The server closes.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("close-please")).await.unwrap();
    match next_message(&mut ws).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason.as_str(), "server bye");
        }
        other => panic!("{other:?}"),
    }

    // A plain request on the WebSocket Route.
    let resp = client()
        .get(format!("{}/chat", dp.proxy_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 426);
    assert_eq!(resp.headers()["upgrade"], "websocket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_route_over_the_tls_listener_checks_the_token() {
    let port = echo_server().await;
    let idp = TestIdp::start().await;
    idp.add_token("ws-token", json!({"sub": "alice", "client_id": "app"}));
    let ca = TestCa::new("edge CA");
    let dir = tempfile::tempdir().unwrap();
    let edge = ca
        .issue(&["chat.example.test"])
        .write_to(dir.path(), "edge");
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start_with(DpOptions {
        pairing_token: Some(cp.pairing_token().await),
        control_plane: Some(cp.cluster_addr.to_string()),
        tls_default: Some(edge),
        ..Default::default()
    })
    .await;
    ws_route(&cp, port, &["wss"]).await;
    cp.post(
        "/routes/chat/plugins",
        json!({"name": "oauth2-introspection", "config": {"introspection_url": idp.introspection_url(), "authorization_value": idp.authorization}}),
    )
    .await;
    dp.wait_version(cp.version().await).await;

    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[]));
    let connect = |token: Option<&'static str>| {
        let connector = connector.clone();
        let addr = dp.proxy_tls_addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("chat.example.test").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            let mut req = "wss://chat.example.test/chat"
                .into_client_request()
                .unwrap();
            if let Some(t) = token {
                req.headers_mut()
                    .insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            tokio_tungstenite::client_async(req, tls).await
        }
    };
    match connect(None).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("{:?}", other.map(|_| "connected without a token")),
    }
    let (mut ws, _) = connect(Some("ws-token")).await.unwrap();
    ws.send(Message::text("over tls")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::text("over tls")));
    // The Route takes wss only: a handshake in clear is refused.
    let url = format!("{}/chat", dp.proxy_url.replace("http://", "ws://"));
    match tokio_tungstenite::connect_async(&url).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 426),
        other => panic!("{:?}", other.map(|_| "connected in clear")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http2_reaches_an_http1_upstream() {
    let port = echo_server().await;
    let cp = ControlPlane::start().await;
    let dp = DataPlane::start(&cp).await;
    ws_route(&cp, port, &["ws", "wss"]).await;
    dp.wait_version(cp.version().await).await;
    let addr = dp.proxy_url.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    // A first exchange lets the server's settings (extended CONNECT allowed) arrive.
    let plain = http::Request::get(format!("http://{addr}/chat"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(plain).await.unwrap();
    assert_eq!(resp.status(), 426, "not a handshake");

    let mut connect = http::Request::connect(format!("http://{addr}/chat"))
        .header("sec-websocket-version", "13")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    connect
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = within(PATIENCE, "the CONNECT answer", sender.send_request(connect))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{resp:?}");
    assert!(resp.headers().get("sec-websocket-accept").is_none());
    let upgraded = within(PATIENCE, "the stream", hyper::upgrade::on(resp))
        .await
        .unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    ws.send(Message::text("over h2")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::text("over h2")));
    ws.send(Message::binary(vec![7u8; 100_000])).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::binary(vec![7u8; 100_000]))
    );
}
