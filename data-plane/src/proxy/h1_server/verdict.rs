//! What the node decides about the bytes at the start of a client connection, by the very code that
//! reads them from a socket: the pure function the fuzz targets and tests hold against hyper's server
//! (see [`crate::proxy::parsers`]).

use bytes::BytesMut;

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
    HandOff(Option<crate::proxy::framing::BodyFraming>),
}

/// The decision [`super::serve`] makes about `bytes` at the start of a connection (`first`) or after a
/// response (see [`crate::proxy::parsers`]).
pub fn verdict(bytes: &[u8], first: bool) -> RequestVerdict {
    let mut buf = BytesMut::from(bytes);
    match super::request::parse(&mut buf, first) {
        Ok(None) => RequestVerdict::Incomplete,
        Err(refusal) => RequestVerdict::Refused(refusal.status().as_u16()),
        Ok(Some(super::request::Head::Bodiless(b))) => RequestVerdict::Bodiless {
            method: b.parts.method.to_string(),
            target: b.parts.uri.to_string(),
            len: bytes.len() - buf.len(),
        },
        Ok(Some(super::request::Head::HandOff(framing))) => RequestVerdict::HandOff(framing),
    }
}
