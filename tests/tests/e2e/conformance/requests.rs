//! Request framing (RFC 9112 sections 2, 3, 5, 6 and 7): every case on a fresh connection the node serves
//! itself, and again on a connection already handed to hyper's server.

use std::time::Duration;

use tests::raw::{count, RawClient, Received};
use tests::{eventually, metric, within};

use super::{is_ok, ok, Env};

/// What becomes of a request.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The upstream gets one request with this body, the client the upstream's answer; `closes`: the
    /// node ends the client's connection afterwards.
    Forwarded { body: &'static [u8], closes: bool },
    /// Refused with this status before anything reaches the upstream, and the connection closed.
    Refused(u16),
    /// The body breaks on the way: the client gets 400, and the upstream connection that carried the
    /// partial request is closed.
    BrokenBody,
}

use Expect::*;

struct Case {
    name: &'static str,
    sent: &'static [u8],
    /// The client stops sending after `sent`.
    then_end: bool,
    /// A HEAD request: its answer has no body.
    head: bool,
    expect: Expect,
}

const fn case(name: &'static str, sent: &'static [u8], expect: Expect) -> Case {
    Case {
        name,
        sent,
        then_end: false,
        head: false,
        expect,
    }
}

const fn fwd(body: &'static [u8]) -> Expect {
    Forwarded {
        body,
        closes: false,
    }
}

const CASES: &[Case] = &[
    // 6.3: how a request body is delimited.
    case("no-body", b"GET /c HTTP/1.1\r\nhost: a\r\n\r\n", fwd(b"")),
    case("length-0", b"DELETE /c HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n", fwd(b"")),
    case("length", b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello", fwd(b"hello")),
    case("chunked", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", fwd(b"hello")),
    case("chunked-ext-trailer", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n2;x=y\r\nhe\r\n3\r\nllo\r\n0\r\nx-t: 1\r\n\r\n", fwd(b"hello")),
    // Every method may carry a body; none may lose it.
    case("get-length", b"GET /c HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello", fwd(b"hello")),
    case("get-chunked", b"GET /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", fwd(b"hello")),
    case("delete-chunked", b"DELETE /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", fwd(b"hello")),
    Case { head: true, ..case("head-chunked", b"HEAD /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", fwd(b"hello")) },
    // Transfer-Encoding beside Content-Length: the coding wins, the length goes, the connection ends.
    case("length-0-and-chunked", b"GET /c HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Forwarded { body: b"hello", closes: true }),
    case("chunked-and-length", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Forwarded { body: b"hello", closes: true }),
    // Transfer-Encoding other than exactly `chunked`.
    case("coding-then-chunked", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(501)),
    case("gzip-then-chunked", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(501)),
    case("chunked-not-last", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(400)),
    case("coding-only", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip\r\n\r\nhello", Refused(400)),
    case("empty-list-element", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: , chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(400)),
    case("two-coding-fields", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(400)),
    case("xchunked", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(400)),
    case("coding-in-http10", b"POST /c HTTP/1.0\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(400)),
    case("space-before-colon", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Refused(400)),
    case("tab-before-value", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding:\tCHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", fwd(b"hello")),
    // Content-Length: one number.
    case("equal-lengths", b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello", fwd(b"hello")),
    case("conflicting-lengths", b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-length: 4\r\n\r\nhello", Refused(400)),
    case("length-list", b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 5, 5\r\n\r\nhello", Refused(400)),
    case("length-sign", b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: +5\r\n\r\nhello", Refused(400)),
    case("length-hex", b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 0x5\r\n\r\nhello", Refused(400)),
    case("length-overflow", b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 99999999999999999999999\r\n\r\nhello", Refused(400)),
    // 5.2 obs-fold, 2.2 bare CR, NUL.
    case("obs-fold", b"GET /c HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n 2\r\n\r\n", Refused(400)),
    case("bare-cr", b"GET /c HTTP/1.1\r\nhost: a\r\nx-a: 1\r2\r\n\r\n", Refused(400)),
    case("nul-in-value", b"GET /c HTTP/1.1\r\nhost: a\r\nx-a: 1\x002\r\n\r\n", Refused(400)),
    case("nul-in-name", b"GET /c HTTP/1.1\r\nhost: a\r\nx\x00a: 1\r\n\r\n", Refused(400)),
    // 2.2: a bare LF may end a line of the head; 2.2: an empty line before the request line is ignored.
    case("bare-lf-lines", b"GET /c HTTP/1.1\nhost: a\n\n", fwd(b"")),
    case("leading-empty-line", b"\r\nGET /c HTTP/1.1\r\nhost: a\r\n\r\n", fwd(b"")),
    // 3: the request line.
    case("two-spaces", b"GET  /c HTTP/1.1\r\nhost: a\r\n\r\n", Refused(400)),
    case("space-in-target", b"GET /c d HTTP/1.1\r\nhost: a\r\n\r\n", Refused(400)),
    case("tab-separator", b"GET\t/c HTTP/1.1\r\nhost: a\r\n\r\n", Refused(400)),
    case("unknown-version", b"GET /c HTTP/1.2\r\nhost: a\r\n\r\n", Refused(400)),
    case("no-version", b"GET /c\r\nhost: a\r\n\r\n", Refused(400)),
    // 3.2: Host.
    case("http10-without-host", b"GET /c HTTP/1.0\r\n\r\n", Forwarded { body: b"", closes: true }),
    case("http11-without-host", b"GET /c HTTP/1.1\r\n\r\n", Refused(400)),
    case("two-hosts", b"GET /c HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n", Refused(400)),
    case("host-list", b"GET /c HTTP/1.1\r\nhost: a, b\r\n\r\n", Refused(400)),
    case("host-userinfo", b"GET /c HTTP/1.1\r\nhost: u@a\r\n\r\n", Refused(400)),
    case("empty-host", b"GET /c HTTP/1.1\r\nhost: \r\n\r\n", Refused(400)),
    // An upgrade that carries a body: the body is forwarded; the upstream does not switch.
    case("upgrade-with-body", b"POST /c HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\ncontent-length: 5\r\n\r\nhello", fwd(b"hello")),
    // 7.1: a malformed chunked body, found after the head went upstream.
    case("chunk-size-overflow", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n", BrokenBody),
    case("chunk-size-0x", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", BrokenBody),
    case("chunk-data-longer", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", BrokenBody),
    case("chunk-data-shorter", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel\r\n0\r\n\r\n", BrokenBody),
    case("chunk-bare-lf", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\nhello\n0\n\n", BrokenBody),
    Case { then_end: true, ..case("chunk-no-final-crlf", b"POST /c HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", BrokenBody) },
];

/// Runs `case` on `client` and checks what the client and the upstream got.
async fn check(env: &Env, mut client: RawClient, case: &Case, path: &str) {
    let what = format!("{} ({path})", case.name);
    let before = env.up.received().len();
    let ended_before = env.up.ended_by_peer();
    client.send(case.sent).await;
    if case.then_end {
        client.finish_sending().await;
    }
    let answer = client.final_response(case.head).await;
    let new: Vec<Received> = env.up.received().split_off(before);
    match case.expect {
        Forwarded { body, closes } => {
            let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(answer.status, 200, "{what}: {answer:?}");
            if !case.head {
                assert!(is_ok(&answer), "{what}: {answer:?}");
            }
            let got = new
                .iter()
                .find(|r| r.target == "/c")
                .unwrap_or_else(|| panic!("{what}: nothing reached the upstream"));
            assert!(got.complete, "{what}: {got:?}");
            assert_eq!(got.body, body, "{what}: the upstream got {got:?}");
            let framed =
                count(&got.fields, "content-length") + count(&got.fields, "transfer-encoding");
            assert!(framed <= 1, "{what}: one framing field upstream: {got:?}");
            if !body.is_empty() {
                assert_eq!(framed, 1, "{what}: the body is framed upstream: {got:?}");
            }
            if closes {
                assert!(client.closed().await, "{what}: the connection is closed");
            }
        }
        Refused(status) => {
            let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(answer.status, status, "{what}: {answer:?}");
            assert!(
                !new.iter().any(|r| r.target == "/c"),
                "{what}: nothing reaches the upstream: {new:?}"
            );
            assert!(client.closed().await, "{what}: the connection is closed");
        }
        BrokenBody => {
            let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(answer.status, 400, "{what}: {answer:?}");
            assert!(
                new.iter().all(|r| !r.complete),
                "{what}: no complete request upstream: {new:?}"
            );
            // Whatever part of the request went upstream, its connection was not kept.
            if !new.is_empty() {
                eventually(Duration::from_secs(10), &what, || async {
                    (env.up.ended_by_peer() > ended_before).then_some(())
                })
                .await;
            }
            assert!(client.closed().await, "{what}: the connection is closed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_framing_follows_rfc_9112_on_both_client_servers() {
    let env = Env::start(ok).await;
    for case in CASES {
        check(&env, env.client().await, case, "served by the node").await;
        check(
            &env,
            env.handed_off_client().await,
            case,
            "after the hand-off",
        )
        .await;
    }
    // Broken bodies are the client's errors, not the upstream's.
    let metrics = reqwest::get(format!("{}/metrics", env.dp.status_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let broken = CASES
        .iter()
        .filter(|c| matches!(c.expect, BrokenBody))
        .count() as f64;
    assert_eq!(
        metric(
            &metrics,
            "portcullis_client_errors_total",
            &[("kind", "body")]
        ),
        2.0 * broken
    );
    assert_eq!(
        metric(
            &metrics,
            "portcullis_upstream_errors_total",
            &[("service", "raw"), ("kind", "protocol")]
        ),
        0.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_the_size_limits_are_refused_with_431() {
    let env = Env::start(ok).await;
    let many: String = (0..101).map(|i| format!("x-{i}: v\r\n")).collect();
    // Beyond 64 KiB by more than a read (hyper's server counts its limit in reads).
    let huge = format!("x-big: {}\r\n", "a".repeat(80 * 1024));
    for fields in [many, huge] {
        let sent = format!("GET /c HTTP/1.1\r\nhost: a\r\n{fields}\r\n");
        for (path, mut client) in [
            ("served by the node", env.client().await),
            ("after the hand-off", env.handed_off_client().await),
        ] {
            client.send(sent.as_bytes()).await;
            let answer = client.final_response(false).await.expect("an answer");
            assert_eq!(
                answer.status,
                431,
                "{path}, {} bytes: {answer:?}",
                sent.len()
            );
            assert!(client.closed().await);
        }
    }
    assert!(!env.up.received().iter().any(|r| r.target == "/c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_across_the_hand_off() {
    let env = Env::start(|r| match r.target.as_str() {
        "/1" | "/2" | "/3" => tests::raw::RawAnswer {
            bytes: format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
                &r.target[..2]
            )
            .into_bytes(),
            close: false,
        },
        _ => ok(r),
    })
    .await;
    let mut client = env.client().await;
    // A bodiless request, one with a body (the hand-off), and another bodiless one, in one write.
    client
        .send(
            b"GET /1 HTTP/1.1\r\nhost: a\r\n\r\n\
              POST /2 HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc\
              GET /3 HTTP/1.1\r\nhost: a\r\n\r\n",
        )
        .await;
    for n in ["/1", "/2", "/3"] {
        let answer = client.final_response(false).await.expect("an answer");
        assert_eq!(answer.text(), n, "{answer:?}");
    }
    let got: Vec<(String, Vec<u8>)> = env
        .up
        .received()
        .into_iter()
        .map(|r| (r.target, r.body))
        .collect();
    assert_eq!(
        got,
        [
            ("/1".to_string(), vec![]),
            ("/2".to_string(), b"abc".to_vec()),
            ("/3".to_string(), vec![])
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let env = Env::start(ok).await;
    let mut client = env.client().await;
    client
        .send(b"POST /c HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        .await;
    let interim = within(
        Duration::from_secs(10),
        "100 Continue",
        client.response(false),
    )
    .await
    .expect("an interim answer");
    assert_eq!(interim.status, 100);
    client.send(b"hello").await;
    let answer = client.final_response(false).await.expect("an answer");
    assert!(is_ok(&answer), "{answer:?}");
    let got = env.up.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"hello");
}
