use bytes::{Bytes, BytesMut};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::request::{parse, Head};
use super::response::{write, Answering};
use crate::body::{full, BoxError, ProxyBody};
use crate::proxy::framing::Refusal;
use crate::proxy::stamp::Stamp;

fn parsed(text: &str) -> Result<Option<Head>, Refusal> {
    parse(&mut BytesMut::from(text), false)
}

fn bodiless(text: &str) -> super::request::Bodiless {
    match parsed(text) {
        Ok(Some(Head::Bodiless(b))) => b,
        other => panic!("{text:?} gave {other:?}"),
    }
}

fn handed_off(text: &str) -> bool {
    matches!(
        parse(&mut BytesMut::from(text), true),
        Ok(Some(Head::HandOff(_)))
    )
}

#[test]
fn a_bodiless_request_is_parsed_and_removed_from_the_buffer() {
    let mut buf = BytesMut::from(
        "GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com:8000\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next",
    );
    let Ok(Some(Head::Bodiless(b))) = parse(&mut buf, true) else {
        panic!("not parsed")
    };
    assert_eq!(&buf[..], b"GET /next", "the next request stays");
    assert_eq!(b.parts.method, http::Method::GET);
    assert_eq!(b.parts.uri, "/a/b?x=1");
    assert_eq!(b.parts.version, Version::HTTP_11);
    assert_eq!(b.parts.headers["host"], "Example.com:8000");
    let two: Vec<_> = b.parts.headers.get_all("x-two").iter().collect();
    assert_eq!(two, ["1", "2"]);
    assert!(b.keep_alive);
    // Content-Length: 0 is a bodiless request too.
    assert!(bodiless("DELETE /x HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n").keep_alive);
    // Equal Content-Length fields are one; one is passed on.
    let two =
        bodiless("GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(
        two.parts.headers.get_all("content-length").iter().count(),
        1
    );
}

#[test]
fn an_absolute_form_target_replaces_the_host_field() {
    let b = bodiless("GET http://b.example:81/p?q HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(b.parts.headers["host"], "b.example:81");
    assert_eq!(b.parts.headers.get_all("host").iter().count(), 1);
    assert_eq!(b.parts.uri.path(), "/p");
}

#[test]
fn keep_alive_follows_the_version_and_connection_tokens() {
    assert!(!bodiless("GET / HTTP/1.1\r\nHost: a\r\nConnection: te, Close\r\n\r\n").keep_alive);
    assert!(!bodiless("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(bodiless("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

#[test]
fn requests_this_server_does_not_take_stay_in_the_buffer_for_the_hyper_server() {
    for text in [
        "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n",
        "GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "PRI * HT",
    ] {
        let mut buf = BytesMut::from(text);
        assert!(
            matches!(parse(&mut buf, true), Ok(Some(Head::HandOff(_)))),
            "{text:?}"
        );
        assert_eq!(&buf[..], text.as_bytes(), "nothing consumed from {text:?}");
    }
    // The preface is only a preface at the start of a connection.
    assert!(!handed_off("PRI * HTTP/1.1\r\n\r\n"));
    assert!(matches!(
        parsed("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap_err(),
        Refusal::BadRequest(_)
    ));
}

#[test]
fn broken_heads_are_refused_and_partial_ones_wait() {
    assert!(matches!(parsed("GET /a HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
    for text in [
        "GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\ncontent-length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1, 2\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nbad name: x\r\n\r\n",
        "GET / HTTP/3.0\r\nhost: a\r\n\r\n",
        "G\0T / HTTP/1.1\r\nhost: a\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: , chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\n folded\r\n\r\n",
    ] {
        assert!(
            matches!(parsed(text).unwrap_err(), Refusal::BadRequest(_)),
            "{text:?}"
        );
    }
    assert!(matches!(
        parsed("GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: identity, chunked\r\n\r\n"),
        Err(Refusal::NotImplemented(_))
    ));
    let many: String = (0..101).map(|i| format!("x-{i}: v\r\n")).collect();
    assert_eq!(
        parsed(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
        Refusal::TooLarge
    );
    let huge = format!("GET / HTTP/1.1\r\nx-big: {}", "a".repeat(64 * 1024));
    assert_eq!(parsed(&huge).unwrap_err(), Refusal::TooLarge);
}

/// What a client reads when `resp` answers a request described by `answering`, and whether the
/// connection could be kept.
async fn written(resp: Response<ProxyBody>, answering: Answering) -> (String, Option<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let ((mut server, _), mut client) = tokio::try_join!(listener.accept(), client).unwrap();
    let mut out = Vec::new();
    let rid = (
        HeaderName::from_static("x-request-id"),
        HeaderValue::from_static("rid-7"),
    );
    let stamp = Stamp::new(
        (&rid.0, &rid.1),
        Some((Duration::from_millis(2), Duration::ZERO)),
    );
    let kept = write(&mut server, &mut out, resp, &stamp, answering)
        .await
        .ok();
    drop(server);
    let mut text = String::new();
    client.read_to_string(&mut text).await.unwrap();
    (text, kept)
}

fn answering(version: Version, head_request: bool, keep_alive: bool) -> Answering {
    Answering {
        version,
        head_request,
        keep_alive,
    }
}

fn streamed(frames: Vec<Result<Frame<Bytes>, BoxError>>) -> ProxyBody {
    StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
}

#[tokio::test]
async fn a_body_of_known_length_gets_its_length_a_date_and_one_write() {
    let mut resp = Response::new(full("hello"));
    resp.headers_mut()
        .insert("content-length", HeaderValue::from_static("99"));
    resp.headers_mut()
        .insert("connection", HeaderValue::from_static("keep-alive"));
    resp.headers_mut()
        .insert("via", HeaderValue::from_static("1.1 upstream-cache"));
    let (text, kept) = written(resp, answering(Version::HTTP_11, false, true)).await;
    assert_eq!(kept, Some(true));
    // The node's own fields replace the upstream's.
    assert_eq!(text.matches("\r\nvia: ").count(), 1, "{text}");
    assert!(text.contains("\r\nvia: 1.1 portcullis/"), "{text}");
    assert!(text.contains("\r\nx-request-id: rid-7\r\n"), "{text}");
    assert!(
        text.contains("\r\nx-portcullis-upstream-latency: 2\r\n"),
        "{text}"
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-length: 5"),
        "the body's length wins: {head}"
    );
    assert!(
        !head.contains("99") && !head.contains("connection"),
        "{head}"
    );
    assert!(head.contains("\r\ndate: "), "{head}");
    assert_eq!(body, "hello");
}

#[tokio::test]
async fn a_body_of_unknown_length_is_chunked_with_its_trailers_or_ends_the_connection() {
    let frames = || {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
            Ok(Frame::trailers(trailers)),
        ]
    };
    let (text, kept) = written(
        Response::new(streamed(frames())),
        answering(Version::HTTP_11, false, true),
    )
    .await;
    assert_eq!(kept, Some(true));
    assert!(
        text.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\nx-checksum: abc\r\n\r\n"),
        "{text:?}"
    );
    // An HTTP/1.0 client cannot read chunks: the body ends with the connection.
    let (text, kept) = written(
        Response::new(streamed(frames())),
        answering(Version::HTTP_10, false, true),
    )
    .await;
    assert_eq!(kept, Some(false));
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello world"), "{text:?}");
}

#[tokio::test]
async fn answers_without_a_body_keep_the_length_they_describe() {
    let mut resp = Response::new(streamed(vec![]));
    resp.headers_mut()
        .insert("content-length", HeaderValue::from_static("1234"));
    let (text, kept) = written(resp, answering(Version::HTTP_11, true, true)).await;
    assert_eq!(kept, Some(true));
    assert!(text.contains("\r\ncontent-length: 1234\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after a HEAD answer");
    let mut resp = Response::new(full("ignored"));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let (text, _) = written(resp, answering(Version::HTTP_11, false, true)).await;
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n") && text.ends_with("\r\n\r\n"));
    assert!(!text.contains("content-length"), "{text}");
}

#[tokio::test]
async fn the_connection_header_says_what_happens_next() {
    let (text, kept) = written(
        Response::new(full("x")),
        answering(Version::HTTP_11, false, false),
    )
    .await;
    assert_eq!(kept, Some(false));
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    let (text, kept) = written(
        Response::new(full("x")),
        answering(Version::HTTP_10, false, true),
    )
    .await;
    assert_eq!(kept, Some(true));
    assert!(text.contains("\r\nconnection: keep-alive\r\n"), "{text}");
}

#[tokio::test]
async fn a_body_that_breaks_or_ends_short_ends_the_connection() {
    let broken = streamed(vec![
        Ok(Frame::data(Bytes::from_static(b"part"))),
        Err("upstream went away".into()),
    ]);
    let (text, kept) = written(
        Response::new(broken),
        answering(Version::HTTP_11, false, true),
    )
    .await;
    assert_eq!(kept, None);
    assert!(!text.ends_with("0\r\n\r\n"), "no clean end: {text:?}");
    let mut short = Response::new(streamed(vec![Ok(Frame::data(Bytes::from_static(b"ab")))]));
    short
        .headers_mut()
        .insert("content-length", HeaderValue::from_static("10"));
    let (text, kept) = written(short, answering(Version::HTTP_11, false, true)).await;
    assert_eq!(kept, None);
    assert!(
        text.contains("\r\ncontent-length: 10\r\n") && text.ends_with("ab"),
        "{text}"
    );
}
