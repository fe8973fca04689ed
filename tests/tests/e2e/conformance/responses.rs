//! Response framing (RFC 9112 sections 4, 6 and 7): every case for a bodiless request (exchanged in the
//! request's own task) and for a request with a body (the pooled client), with one rule for both.

use tests::raw::RawAnswer;

use super::{is_ok, ok, Env};

/// What the client gets.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status and body. `reusable`: the upstream connection may carry the next exchange.
    Answer {
        status: u16,
        body: &'static [u8],
        reusable: bool,
    },
    /// 502: the answer cannot be framed, and its connection is not used again.
    BadGateway,
    /// The body is cut short and the client's connection ends (the head may have been sent).
    Cut,
}

use Expect::*;

struct Case {
    name: &'static str,
    /// What the upstream answers; `close`: it ends the connection afterwards.
    answer: &'static [u8],
    close: bool,
    /// Only for a HEAD request (which has no body, so takes only the in-task path).
    head: bool,
    expect: Expect,
}

const fn case(name: &'static str, answer: &'static [u8], expect: Expect) -> Case {
    Case {
        name,
        answer,
        close: false,
        head: false,
        expect,
    }
}

const fn hello(reusable: bool) -> Expect {
    Answer {
        status: 200,
        body: b"hello",
        reusable,
    }
}

const CASES: &[Case] = &[
    case("length", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", hello(true)),
    case("chunked", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", hello(true)),
    // 6.3: the coding wins over a length beside it, and the connection is not trusted again.
    case("length-and-chunked", b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", hello(false)),
    case("chunked-and-long-length", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 50\r\n\r\n5\r\nhello\r\n0\r\n\r\n", hello(false)),
    Case { close: true, ..case("until-close", b"HTTP/1.1 200 OK\r\n\r\nhello", hello(false)) },
    Case { close: true, ..case("coding-not-chunked", b"HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\n\r\nhello", hello(false)) },
    // 15.2 (RFC 9110): interim answers are not the answer.
    case("interim", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", hello(true)),
    // 6.3: no body after 204 and 304, nor for HEAD; bytes beyond the answer make the connection unusable.
    case("204-with-body", b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\nhello", Answer { status: 204, body: b"", reusable: false }),
    case("304-with-body", b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\nhello", Answer { status: 304, body: b"", reusable: false }),
    case("204", b"HTTP/1.1 204 No Content\r\n\r\n", Answer { status: 204, body: b"", reusable: true }),
    Case { head: true, ..case("head-with-length", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Answer { status: 200, body: b"", reusable: true }) },
    case("two-answers", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbad", hello(false)),
    // Broken framing.
    Case { close: true, ..case("short-body", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello", Cut) },
    case("bad-chunk-size", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", Cut),
    case("coding-in-http10", b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", BadGateway),
    case("bad-length", b"HTTP/1.1 200 OK\r\ncontent-length: five\r\n\r\nhello", BadGateway),
    case("conflicting-lengths", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello", BadGateway),
    case("obs-fold", b"HTTP/1.1 200 OK\r\nx-a: 1\r\n 2\r\ncontent-length: 5\r\n\r\nhello", BadGateway),
    case("space-before-colon", b"HTTP/1.1 200 OK\r\ncontent-length : 5\r\n\r\nhello", BadGateway),
    case("switching-unasked", b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n", BadGateway),
];

/// How a request reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// A bodiless request: exchanged in the request's own task.
    InTask,
    /// A request with a body: the pooled client.
    Pooled,
}

fn request(path: Path, target: &str, head: bool) -> Vec<u8> {
    match (path, head) {
        (Path::InTask, true) => format!("HEAD {target} HTTP/1.1\r\nhost: a\r\n\r\n"),
        (Path::InTask, false) => format!("GET {target} HTTP/1.1\r\nhost: a\r\n\r\n"),
        (Path::Pooled, _) => {
            format!("POST {target} HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\n\r\nx")
        }
    }
    .into_bytes()
}

/// The upstream connection that carried the last request to `target`.
fn connection_of(env: &Env, target: &str) -> usize {
    env.up
        .received()
        .iter()
        .rev()
        .find(|r| r.target == target)
        .unwrap_or_else(|| panic!("{target} reached the upstream"))
        .connection
}

async fn check(env: &Env, case: &Case, path: Path) {
    let what = format!("{} ({path:?})", case.name);
    let target = format!("/r/{}", case.name);
    let mut client = env.client().await;
    client.send(&request(path, &target, case.head)).await;
    let answer = client.response(case.head).await;
    let used = connection_of(env, &target);
    let open = match case.expect {
        Answer {
            status,
            body,
            reusable: _,
        } => {
            let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(answer.status, status, "{what}: {answer:?}");
            assert_eq!(answer.text(), String::from_utf8_lossy(body), "{what}");
            assert!(answer.complete, "{what}: {answer:?}");
            match status {
                // RFC 9110 8.6: never a length on a 204; on a 304 or a HEAD answer, the length of
                // what a GET would have got.
                204 => assert_eq!(answer.field("content-length"), None, "{what}: {answer:?}"),
                304 => {}
                _ if case.head => assert_eq!(answer.field("content-length"), Some("5"), "{what}"),
                _ => {
                    if let Some(length) = answer.field("content-length") {
                        assert_eq!(length, body.len().to_string(), "{what}: {answer:?}");
                    }
                }
            }
            true
        }
        BadGateway => {
            let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(answer.status, 502, "{what}: {answer:?}");
            true
        }
        Cut => {
            if let Some(answer) = answer {
                assert!(!answer.complete, "{what}: {answer:?}");
            }
            assert!(
                client.closed().await,
                "{what}: the client's connection ends"
            );
            false
        }
    };
    // The next exchange, on the same client connection when it is open (so the same worker and pool),
    // gets its own answer, never what was left of this one.
    let mut next = match open {
        true => client,
        false => env.client().await,
    };
    let after = format!("/after/{}", case.name);
    next.send(&request(path, &after, false)).await;
    let answer = next.final_response(false).await;
    let answer = answer.unwrap_or_else(|| panic!("{what}: no answer to the next request"));
    assert!(is_ok(&answer), "{what}: the next request got {answer:?}");
    let reused = connection_of(env, &after) == used;
    match case.expect {
        Answer {
            reusable: false, ..
        }
        | BadGateway
        | Cut => {
            assert!(!reused, "{what}: the upstream connection was used again")
        }
        // The in-task pool hands back the connection it kept last.
        Answer { reusable: true, .. } if path == Path::InTask && open => {
            assert!(reused, "{what}: the upstream connection was kept")
        }
        Answer { .. } => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_framing_follows_rfc_9112_on_both_upstream_paths() {
    let env = Env::start(|r| {
        let name = r.target.strip_prefix("/r/");
        match CASES.iter().find(|c| Some(c.name) == name) {
            Some(c) => RawAnswer {
                bytes: c.answer.to_vec(),
                close: c.close,
            },
            None => ok(r),
        }
    })
    .await;
    for case in CASES {
        check(&env, case, Path::InTask).await;
        if !case.head {
            check(&env, case, Path::Pooled).await;
        }
    }
}
