//! A gRPC service for tests (`proto/echo.proto`), served with hyper directly, in clear (h2c) or over
//! TLS, so that nothing but the proxy enforces deadlines; and a client connecting through TLS with ALPN
//! `h2` to a name the test CA vouches for.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

pub mod proto {
    tonic::include_proto!("portcullis.test.echo");
}

use proto::echo_server::{Echo, EchoServer};
use proto::Msg;

use crate::pki::TestCa;

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

/// The service: echoes, counts, collects and shouts; `x-trace` request metadata comes back as response
/// metadata.
#[derive(Clone, Default)]
pub struct EchoService;

fn traced<T>(req_meta: &tonic::metadata::MetadataMap, body: T) -> Response<T> {
    let mut resp = Response::new(body);
    if let Some(v) = req_meta.get("x-trace") {
        resp.metadata_mut().insert("x-trace", v.clone());
    }
    resp
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, req: Request<Msg>) -> Result<Response<Msg>, Status> {
        let meta = req.metadata().clone();
        let msg = req.into_inner();
        tokio::time::sleep(Duration::from_millis(msg.delay_ms)).await;
        if msg.text == "fail" {
            let mut status = Status::invalid_argument("fail was asked for");
            status
                .metadata_mut()
                .insert("x-detail", "the text was fail".parse().unwrap());
            return Err(status);
        }
        Ok(traced(&meta, msg))
    }

    type CountdownStream = MsgStream;

    async fn countdown(&self, req: Request<Msg>) -> Result<Response<MsgStream>, Status> {
        let n = req.get_ref().count;
        let out = tokio_stream::iter((0..n).rev().map(|i| {
            Ok(Msg {
                text: i.to_string(),
                count: i,
                delay_ms: 0,
            })
        }));
        Ok(Response::new(Box::pin(out)))
    }

    async fn collect(&self, req: Request<Streaming<Msg>>) -> Result<Response<Msg>, Status> {
        let mut stream = req.into_inner();
        let mut texts = Vec::new();
        while let Some(m) = stream.next().await {
            texts.push(m?.text);
        }
        Ok(Response::new(Msg {
            text: texts.join(","),
            count: texts.len() as u32,
            delay_ms: 0,
        }))
    }

    type ShoutStream = MsgStream;

    async fn shout(&self, req: Request<Streaming<Msg>>) -> Result<Response<MsgStream>, Status> {
        let stream = req.into_inner();
        let out = stream.map(|m| {
            m.map(|m| Msg {
                text: m.text.to_uppercase(),
                ..m
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}

/// Serves [`EchoService`] on an ephemeral port, over TLS when `tls` is given (a server configuration
/// offering `h2`); returns the port.
pub async fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    let routes = tonic::service::Routes::new(EchoServer::new(EchoService));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    crate::serve_each(move |tcp| {
        let routes = routes.clone();
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let mut routes = routes.clone();
            let req = req.map(|b| {
                http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(b, |e| {
                    Status::internal(e.to_string())
                }))
            });
            tower::Service::call(&mut routes, req)
        });
        let acceptor = acceptor.clone();
        async move {
            let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            let _ = match acceptor {
                None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                Some(a) => match a.accept(tcp).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), svc).await,
                    Err(_) => return,
                },
            };
        }
    })
    .await
}

/// A channel in clear (HTTP/2 with prior knowledge) to `addr`.
pub async fn channel(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A channel over TLS (ALPN `h2`) to `addr`, asking for server name `name` and trusting `ca` only.
pub async fn tls_channel(
    addr: std::net::SocketAddr,
    name: &str,
    ca: &TestCa,
) -> tonic::transport::Channel {
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[b"h2"]));
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let connect = tower::service_fn(move |_: http::Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    tonic::transport::Endpoint::from_shared(format!("http://{name}"))
        .unwrap()
        .connect_with_connector(connect)
        .await
        .unwrap()
}
