//! The hand-written HTTP/1.x parsers as pure functions over bytes, for the fuzz targets (which hold them
//! against hyper's on the same bytes) and for tests: what the node decides about a request head from a
//! client, and about a whole response from an upstream. They run the very code the proxy runs.

pub use super::framing::BodyFraming;
pub use super::h1::ResponseVerdict;
pub use super::h1_server::RequestVerdict;

/// The node's decision about `bytes`, the start of a connection when `first`.
pub fn request(bytes: &[u8], first: bool) -> RequestVerdict {
    super::h1_server::verdict(bytes, first)
}

/// The node's reading of `bytes` as the answer to a request (a HEAD request when `head_request`).
pub fn response(bytes: &[u8], head_request: bool) -> ResponseVerdict {
    super::h1::verdict(bytes, head_request)
}
