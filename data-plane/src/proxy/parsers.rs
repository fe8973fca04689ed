//! The hand-written HTTP/1.x parsers as pure functions over bytes, for the fuzz targets (which hold them
//! against hyper's on the same bytes) and for tests: what the node decides about a request head from a
//! client, and about a whole response from an upstream. They run the very code the proxy runs.

pub use super::framing::BodyFraming;

/// What the node decides about the bytes at the start of a client connection.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestVerdict {
    /// More bytes are needed.
    Incomplete,
    /// Refused with this status; the connection closes.
    Refused(u16),
    /// A bodiless request the node serves itself, `len` bytes long.
    Bodiless {
        method: String,
        target: String,
        len: usize,
    },
    /// Left to hyper's server with the body framing the rules found (`None`: an HTTP/2 preface).
    HandOff(Option<BodyFraming>),
}

/// The node's decision about `bytes`, the start of a connection when `first`.
pub fn request(bytes: &[u8], first: bool) -> RequestVerdict {
    super::h1_server::verdict(bytes, first)
}

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

/// The node's reading of `bytes` as the answer to a request (a HEAD request when `head_request`).
pub fn response(bytes: &[u8], head_request: bool) -> ResponseVerdict {
    super::h1::verdict(bytes, head_request)
}
