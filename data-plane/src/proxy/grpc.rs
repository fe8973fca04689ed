//! gRPC on the request path: which requests are gRPC (`content-type: application/grpc…`), the deadline
//! a client gave (`grpc-timeout`), and Portcullis's own answers to them in gRPC's shape: HTTP 200 with
//! no body and the outcome in `grpc-status` and `grpc-message` (a "trailers-only" response), as Kong's
//! plugins answer gRPC clients.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{full, ProxyBody};

/// Largest own answer body read to find its message.
const MAX_MESSAGE_BODY: usize = 16 * 1024;

/// Whether the request is a gRPC call.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The client's deadline from `grpc-timeout` (1 to 8 digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`);
/// `None` when absent or malformed (a malformed one is passed on for the upstream to judge).
pub fn deadline(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC status for an HTTP status Portcullis answered with (Kong's table, with 502 as UNAVAILABLE);
/// UNKNOWN (2) for the rest.
pub fn status_for(http: StatusCode) -> u8 {
    match http.as_u16() {
        200 => 0,
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 6,
        429 => 8,
        499 => 1,
        500 => 13,
        501 => 12,
        502 | 503 => 14,
        504 => 4,
        _ => 2,
    }
}

/// `grpc-message` as the gRPC spec encodes it: bytes outside printable ASCII, and `%`, percent-encoded.
fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Portcullis's own answer `resp` (a Kong-shaped JSON error, or any other) as a gRPC client expects it:
/// HTTP 200, `content-type: application/grpc`, `grpc-status` mapped from the HTTP status and
/// `grpc-message` from the body's `message`; the other headers (`WWW-Authenticate`, `Retry-After`, …)
/// stay.
pub async fn refusal(resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let (mut parts, mut body) = resp.into_parts();
    let mut bytes = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_MESSAGE_BODY {
                break;
            }
            bytes.extend_from_slice(&data);
        }
    }
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            parts
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
        });
    let status = status_for(parts.status);
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    parts
        .headers
        .insert("grpc-status", HeaderValue::from(u16::from(status)));
    if let Ok(v) = HeaderValue::from_str(&encode_message(&message)) {
        parts.headers.insert("grpc-message", v);
    }
    Response::from_parts(parts, full(Bytes::new()))
}

#[cfg(test)]
mod tests;
