//! Header fields added to requests as one unit, made once and shared by every request that carries them
//! (a plugin's headers derived from a cached token, say): the fields for a header map and the same
//! fields already encoded for an HTTP/1.1 head, so adding them to a request costs a reference count
//! instead of a map insertion per field.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Fields with distinct names, in the order they are sent.
#[derive(Debug)]
pub struct HeaderBlock {
    fields: Vec<(HeaderName, HeaderValue)>,
    wire: Bytes,
}

impl HeaderBlock {
    /// A block of `fields`; a later field replaces an earlier one of the same name.
    pub fn new(fields: Vec<(HeaderName, HeaderValue)>) -> HeaderBlock {
        let mut distinct: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            match distinct.iter_mut().find(|(n, _)| *n == name) {
                Some(field) => field.1 = value,
                None => distinct.push((name, value)),
            }
        }
        let mut wire = BytesMut::new();
        for (name, value) in &distinct {
            encode_field(&mut wire, name, &[value.as_bytes()]);
        }
        HeaderBlock {
            fields: distinct,
            wire: wire.freeze(),
        }
    }

    pub fn fields(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields
    }

    /// The fields as lines of an HTTP/1.1 head (`name: value\r\n` each).
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Puts the fields in `headers`, each replacing any of its name.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.fields {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Appends `name: value\r\n`, the value given in parts.
pub fn encode_field(out: &mut BytesMut, name: &HeaderName, value: &[&[u8]]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    for part in value {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_sends_the_same_fields_in_a_map_and_on_the_wire() {
        let block = HeaderBlock::new(vec![
            (
                HeaderName::from_static("x-credential-sub"),
                HeaderValue::from_static("alex"),
            ),
            (
                HeaderName::from_static("x-credential-scope"),
                HeaderValue::from_static("read"),
            ),
            (
                HeaderName::from_static("x-credential-sub"),
                HeaderValue::from_static("bob"),
            ),
        ]);
        assert_eq!(
            block.wire(),
            b"x-credential-sub: bob\r\nx-credential-scope: read\r\n"
        );
        let mut map = HeaderMap::new();
        map.insert("x-credential-scope", HeaderValue::from_static("spoofed"));
        map.insert("accept", HeaderValue::from_static("*/*"));
        block.apply(&mut map);
        assert_eq!(map.len(), 3);
        assert_eq!(map["x-credential-scope"], "read");
        assert_eq!(map["x-credential-sub"], "bob");
    }
}
