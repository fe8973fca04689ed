//! Introspection answers (RFC 7662 JSON) and RFC 9701 JWT envelopes as an identity provider could send.
#![no_main]

use data_plane::plugins::introspection_answer::{judge, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        if let Ok(answer) = parse(data) {
            let _ = judge(answer.clone(), true, 1_700_000_000);
            let _ = judge(answer, false, 1_700_000_000);
        }
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = shared::jwt::parse_header(text);
        }
    });
});
