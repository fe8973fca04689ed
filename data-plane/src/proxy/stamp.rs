//! The fields Portcullis adds to every response a client gets: the request id under the configured
//! header and, when an upstream answered, the latency headers and `Via`. They replace any field of the
//! same name the upstream sent, and go into the response's header map ([`Stamp::apply`], for the hyper
//! server) or straight into an HTTP/1.x response head ([`Stamp::encode`]), which spares a map
//! insertion per field.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `Via` on every proxied response.
const VIA: &str = concat!("1.1 portcullis/", env!("CARGO_PKG_VERSION"));

static UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-portcullis-upstream-latency");
static PROXY_LATENCY: HeaderName = HeaderName::from_static("x-portcullis-proxy-latency");

/// What one response gets.
pub struct Stamp {
    request_id: (HeaderName, HeaderValue),
    /// Time spent waiting for the upstream and time spent in the node, when an upstream answered.
    latencies: Option<(Duration, Duration)>,
}

impl Stamp {
    pub fn new(
        request_id: (&HeaderName, &HeaderValue),
        latencies: Option<(Duration, Duration)>,
    ) -> Stamp {
        Stamp {
            request_id: (request_id.0.clone(), request_id.1.clone()),
            latencies,
        }
    }

    /// The fields, in the order they are written.
    fn fields(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> {
        let proxied = self.latencies.map(|(upstream, proxy)| {
            [
                (&UPSTREAM_LATENCY, millis_value(upstream)),
                (&PROXY_LATENCY, millis_value(proxy)),
                (&header::VIA, HeaderValue::from_static(VIA)),
            ]
        });
        std::iter::once((&self.request_id.0, self.request_id.1.clone()))
            .chain(proxied.into_iter().flatten())
    }

    /// Whether the upstream's field `name` is replaced by one of these.
    pub fn replaces(&self, name: &HeaderName) -> bool {
        *name == self.request_id.0
            || self.latencies.is_some()
                && (*name == UPSTREAM_LATENCY || *name == PROXY_LATENCY || *name == header::VIA)
    }

    /// Puts the fields in `headers`, replacing the upstream's.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            headers.insert(name.clone(), value);
        }
    }

    /// Appends the fields as lines of an HTTP/1.x head; the head's other fields are those of the
    /// response that these do not replace ([`Stamp::replaces`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (name, value) in self.fields() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Latencies below this many milliseconds take their header value from a table made once.
const MILLIS_TABLE: usize = 1000;

/// `d` in whole milliseconds as a header value. The usual values come from the table, so neither
/// formatting nor an allocation happens per response.
fn millis_value(d: Duration) -> HeaderValue {
    static TABLE: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let ms = d.as_millis();
    let table = TABLE.get_or_init(|| {
        // One string holding every number, so each value is a static slice of it.
        let digits: &'static str = (0..MILLIS_TABLE)
            .map(|n| n.to_string())
            .collect::<String>()
            .leak();
        let mut at = 0;
        (0..MILLIS_TABLE)
            .map(|n| {
                let len = n.checked_ilog10().unwrap_or(0) as usize + 1;
                let value = HeaderValue::from_static(&digits[at..at + len]);
                at += len;
                value
            })
            .collect()
    });
    match table.get(ms as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(ms as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_values() {
        for ms in [0, 7, 10, 99, 100, 999, 1000, 123_456] {
            assert_eq!(
                millis_value(Duration::from_millis(ms)),
                ms.to_string().as_str(),
                "{ms} ms"
            );
        }
        assert_eq!(millis_value(Duration::from_micros(1999)), "1");
    }

    /// The head's fields as the encoder writes them: the response's that are not replaced, then these.
    fn on_wire(stamp: &Stamp, upstream: &HeaderMap) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, value) in upstream.iter().filter(|(n, _)| !stamp.replaces(n)) {
            out.push((name.to_string(), value.to_str().unwrap().to_string()));
        }
        let mut wire = Vec::new();
        stamp.encode(&mut wire);
        for line in std::str::from_utf8(&wire).unwrap().split_terminator("\r\n") {
            let (n, v) = line.split_once(": ").unwrap();
            out.push((n.to_string(), v.to_string()));
        }
        out.sort();
        out
    }

    fn in_map(stamp: &Stamp, upstream: &HeaderMap) -> Vec<(String, String)> {
        let mut map = upstream.clone();
        stamp.apply(&mut map);
        let mut out: Vec<(String, String)> = map
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn stamps_replace_the_upstreams_fields_in_the_map_and_on_the_wire_alike() {
        let rid = (
            HeaderName::from_static("x-trace"),
            HeaderValue::from_static("rid-1"),
        );
        let mut upstream = HeaderMap::new();
        for (name, value) in [
            ("x-trace", "upstream's"),
            ("via", "1.1 other"),
            ("x-portcullis-proxy-latency", "999"),
            ("content-type", "text/plain"),
        ] {
            upstream.append(name, HeaderValue::from_static(value));
        }
        let proxied = Stamp::new(
            (&rid.0, &rid.1),
            Some((Duration::from_millis(3), Duration::ZERO)),
        );
        let expected: Vec<(String, String)> = [
            ("content-type", "text/plain"),
            ("via", VIA),
            ("x-portcullis-proxy-latency", "0"),
            ("x-portcullis-upstream-latency", "3"),
            ("x-trace", "rid-1"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(in_map(&proxied, &upstream), expected);
        assert_eq!(on_wire(&proxied, &upstream), expected);

        // An answer of the node's own carries the request id alone.
        let own = Stamp::new((&rid.0, &rid.1), None);
        let expected: Vec<(String, String)> = [
            ("content-type", "text/plain"),
            ("via", "1.1 other"),
            ("x-portcullis-proxy-latency", "999"),
            ("x-trace", "rid-1"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(in_map(&own, &upstream), expected);
        assert_eq!(on_wire(&own, &upstream), expected);
    }
}
