//! JOSE header and registered-claim checks on arbitrary compact JWTs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::jwt::{check_claims, parse_header, ClaimRules};

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        let Ok(token) = std::str::from_utf8(data) else {
            return;
        };
        let _ = parse_header(token);
        // The payload segment, decoded as the data plane would after a valid signature.
        let payload = token.split('.').nth(1).unwrap_or(token);
        let bytes = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap_or_else(|_| data.to_vec())
        };
        if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let strict = ClaimRules {
                issuer: Some("https://idp.example"),
                audience: Some("gateway"),
                require_exp: true,
                require_iat: true,
                leeway: 30,
            };
            for rules in [ClaimRules::default(), strict] {
                let _ = check_claims(&claims, &rules, 1_700_000_000);
            }
        }
    });
});
