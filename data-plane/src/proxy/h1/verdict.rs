//! A whole upstream response read from bytes by the very code that reads it from a socket: the pure
//! function the fuzz targets and tests hold against hyper's client (see [`crate::proxy::parsers`]).

use bytes::BytesMut;

/// What the node makes of a whole upstream response (the bytes, then the connection's end).
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// The bytes end inside the head: the upstream closed there (502).
    Incomplete,
    /// The head is refused (502).
    Invalid(String),
    /// The answer as the client gets it: the status and the body; `complete` is false when the body
    /// broke or ended early (the client's connection then ends); `reusable` when the upstream
    /// connection could carry another exchange.
    Message {
        status: u16,
        body: Vec<u8>,
        complete: bool,
        reusable: bool,
    },
}

/// A whole response read from `bytes` the way [`send`] and the body read it from a socket that ends
/// after them (see [`crate::proxy::parsers`]).
pub fn verdict(bytes: &[u8], head_request: bool) -> ResponseVerdict {
    let mut buf = BytesMut::from(bytes);
    let head = match super::head::parse_response(&mut buf) {
        Ok(Some(head)) => head,
        Ok(None) => return ResponseVerdict::Incomplete,
        Err(e) => return ResponseVerdict::Invalid(e.0.to_string()),
    };
    let framing = match head_request {
        true => super::body::Framing::Empty,
        false => head.framing,
    };
    let (body, complete) = super::body::read_all(framing, &mut buf);
    ResponseVerdict::Message {
        status: head.parts.status.as_u16(),
        body,
        complete,
        // Nothing may follow the answer on a connection that is kept.
        reusable: complete && head.keep_alive && buf.is_empty(),
    }
}
