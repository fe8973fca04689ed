use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::body::{Chunked, Decoded, Framing};
use super::head::{encode_request, parse_response, HeadError, MAX_HEAD};
use super::*;

fn chunked_all(input: &[u8]) -> Result<(Vec<u8>, bool), &'static str> {
    let mut state = Chunked::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match state.decode(&mut buf)? {
            Decoded::Data(d) => out.extend_from_slice(&d),
            Decoded::NeedMore => return Ok((out, false)),
            Decoded::End => return Ok((out, true)),
        }
    }
}

#[test]
fn chunked_bodies_decode_with_extensions_and_trailers() {
    let (data, end) =
        chunked_all(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-t: 1\r\n\r\n").unwrap();
    assert_eq!(data, b"hello, world");
    assert!(end);
    let (data, end) = chunked_all(b"A \r\n0123456789\r\n0\r\n\r\n").unwrap();
    assert_eq!((data.as_slice(), end), (&b"0123456789"[..], true));
    // Cut anywhere, the decoder waits for more and keeps what it has decoded.
    let whole = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    for cut in 0..whole.len() {
        let mut state = Chunked::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut end = false;
        for part in [&whole[..cut], &whole[cut..]] {
            buf.extend_from_slice(part);
            loop {
                match state.decode(&mut buf).unwrap() {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::NeedMore => break,
                    Decoded::End => {
                        end = true;
                        break;
                    }
                }
            }
        }
        assert_eq!((out.as_slice(), end), (&b"abcde"[..], true), "cut at {cut}");
    }
}

#[test]
fn malformed_chunked_bodies_are_refused() {
    for bad in [
        &b"x\r\nabc\r\n"[..],
        b"\r\n",
        b"3\r\nabcX\r\n",
        b"3\nabc",
        b"11111111111111111\r\n",
        b"-1\r\n",
        b"0\r\nno colon\r\n\r\n",
        b"3;a\rb\r\nabc\r\n0\r\n\r\n",
        b"3;\x00\r\nabc\r\n0\r\n\r\n",
        b"0\r\n: empty name\r\n\r\n",
        b"0\r\n folded: x\r\n\r\n",
        b"0\r\nx-a: \x01\r\n\r\n",
    ] {
        assert!(
            chunked_all(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [b'1'; 5000];
    assert_eq!(chunked_all(&long), Err("chunk size line too long"));
    let mut trailers = b"0\r\n".to_vec();
    for _ in 0..4000 {
        trailers.extend_from_slice(b"x-trailer: some value\r\n");
    }
    assert_eq!(chunked_all(&trailers), Err("too many trailer fields"));
    let mut large = b"0\r\nx-large: ".to_vec();
    large.extend_from_slice(&[b'a'; 17 * 1024]);
    large.extend_from_slice(b"\r\n\r\n");
    assert_eq!(chunked_all(&large), Err("trailer fields too large"));
}

fn parse(input: &[u8]) -> Result<Option<head::ResponseHead>, HeadError> {
    parse_response(&mut BytesMut::from(input))
}

#[test]
fn response_heads_decide_framing_and_keep_alive() {
    let cases: [(&[u8], Framing, bool); 8] = [
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Framing::Chunked(Chunked::Size),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
            Framing::Chunked(Chunked::Size),
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            Framing::UntilClose,
            false,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", Framing::UntilClose, false),
        (
            b"HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
            Framing::Length(1),
            false,
        ),
    ];
    for (input, framing, keep_alive) in cases {
        let head = parse(input).unwrap().unwrap();
        let shown = String::from_utf8_lossy(input);
        assert_eq!(head.framing, framing, "{shown}");
        assert_eq!(head.keep_alive, keep_alive, "{shown}");
    }
    let closing =
        parse(b"HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 0\r\n\r\n");
    assert!(!closing.unwrap().unwrap().keep_alive);
}

#[test]
fn response_heads_keep_fields_and_skip_interim_answers() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nx-y: z\r\ncontent-length: 4\r\n\r\nbody"[..],
    );
    let head = parse_response(&mut buf).unwrap().unwrap();
    assert_eq!(head.parts.status, 201);
    let cookies: Vec<_> = head.parts.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(head.parts.headers["x-y"], "z");
    assert_eq!(
        &buf[..],
        b"body",
        "the body's first bytes stay in the buffer"
    );
    assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap().is_none());
}

#[test]
fn malformed_response_heads_are_refused() {
    let cases: [(&[u8], &str); 6] = [
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "invalid content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "conflicting content-length values",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "invalid content-length",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "unexpected status code",
        ),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed response head"),
        (b"SMTP ready\r\n\r\n", "malformed response head"),
    ];
    for (input, why) in cases {
        assert_eq!(
            parse(input).err(),
            Some(HeadError(why)),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    let huge = [b"HTTP/1.1 200 OK\r\nx: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
    assert_eq!(
        parse(&huge).err(),
        Some(HeadError("response head too large"))
    );
}

#[test]
fn request_heads_carry_the_forwarded_fields() {
    let mut headers = HeaderMap::new();
    headers.insert("x-a", HeaderValue::from_static("1"));
    let path = "/p?q=1".parse().unwrap();
    let req = BodylessRequest {
        method: &Method::GET,
        path_and_query: &path,
        headers: &headers,
        forwarded: None,
    };
    let encode = |req: &BodylessRequest<'_>| {
        let mut out = BytesMut::new();
        encode_request(req, "up:8080", &mut out);
        out
    };
    assert_eq!(
        &encode(&req)[..],
        b"GET /p?q=1 HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\n\r\n"
    );
    headers.insert("host", HeaderValue::from_static("example.com"));
    let req = BodylessRequest {
        method: &Method::GET,
        path_and_query: &path,
        headers: &headers,
        forwarded: None,
    };
    let head = String::from_utf8(encode(&req).to_vec()).unwrap();
    assert_eq!(head.matches("host:").count(), 1);
    assert!(head.contains("host: example.com\r\n"));
}

/// An upstream on a real socket that answers each request on a connection with the next of `answers`,
/// and closes the connection when told to; returns its address and how many connections it accepted.
async fn upstream(script: Vec<Vec<&'static [u8]>>) -> (Authority, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    let task = tokio::spawn(async move {
        let mut accepted = 0;
        for answers in script {
            let (mut conn, _) = listener.accept().await.unwrap();
            accepted += 1;
            for answer in answers {
                let mut got = Vec::new();
                while !got.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1024];
                    let n = conn.read(&mut b).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&b[..n]);
                }
                conn.write_all(answer).await.unwrap();
            }
        }
        accepted
    });
    (authority, task)
}

async fn get(
    pool: &Arc<H1Pool>,
    authority: &Authority,
    method: Method,
) -> Result<(u16, Vec<u8>), String> {
    let headers = HeaderMap::new();
    let path = "/".parse().unwrap();
    let dial = Dial {
        authority,
        connect_timeout: Duration::from_secs(2),
        attempts: 1,
    };
    let req = BodylessRequest {
        method: &method,
        path_and_query: &path,
        headers: &headers,
        forwarded: None,
    };
    let resp = send(pool, &dial, &req, Instant::now())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes().to_vec()))
}

#[tokio::test]
async fn kept_connections_carry_the_next_request() {
    let (authority, upstream) = upstream(vec![vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\ncde\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil close",
    ]])
    .await;
    let pool = Arc::new(H1Pool::default());
    assert_eq!(
        get(&pool, &authority, Method::GET).await.unwrap(),
        (200, b"ab".to_vec())
    );
    assert_eq!(
        get(&pool, &authority, Method::GET).await.unwrap(),
        (200, b"cde".to_vec())
    );
    // A HEAD answer's Content-Length describes a body that is not sent.
    assert_eq!(
        get(&pool, &authority, Method::HEAD).await.unwrap(),
        (200, vec![])
    );
    assert_eq!(
        get(&pool, &authority, Method::GET).await.unwrap(),
        (204, vec![])
    );
    assert_eq!(
        get(&pool, &authority, Method::GET).await.unwrap(),
        (200, b"until close".to_vec())
    );
    assert_eq!(
        upstream.await.unwrap(),
        1,
        "one connection carried all five"
    );
    assert!(
        pool.take(&authority, Instant::now()).is_none(),
        "a closed connection is not kept"
    );
}

#[tokio::test]
async fn a_kept_connection_the_upstream_closed_is_replaced_for_idempotent_requests() {
    let (authority, upstream) = upstream(vec![
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"],
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb"],
    ])
    .await;
    let pool = Arc::new(H1Pool::default());
    assert_eq!(
        get(&pool, &authority, Method::GET).await.unwrap(),
        (200, b"a".to_vec())
    );
    // The upstream has closed the first connection (its task moved on to the next accept); the pool
    // may or may not have noticed yet, and the request must succeed either way.
    assert_eq!(
        get(&pool, &authority, Method::GET).await.unwrap(),
        (200, b"b".to_vec())
    );
    assert_eq!(upstream.await.unwrap(), 2);
}

#[tokio::test]
async fn broken_answers_and_refused_connections_are_errors() {
    let (authority, upstream) = upstream(vec![
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"],
        vec![b"HTTP/1.1 200 OK\r\ncont"],
    ])
    .await;
    let pool = Arc::new(H1Pool::default());
    let cut = get(&pool, &authority, Method::GET).await.unwrap_err();
    assert!(cut.contains("before the end of the body"), "{cut}");
    let cut = get(&pool, &authority, Method::GET).await.unwrap_err();
    assert!(cut.contains("in the middle of the response head"), "{cut}");
    upstream.await.unwrap();
    let refused = get(&pool, &authority, Method::GET).await.unwrap_err();
    assert!(refused.starts_with("Connect { attempts: 1"), "{refused}");
}
