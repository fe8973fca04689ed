//! Pairing tokens as a node reads them from a flag, a file or the environment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::pairing::PairingToken;

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(token) = PairingToken::parse(text) {
            // What parses re-encodes to a token that parses to the same parts.
            let again = PairingToken::parse(&token.encode()).expect("an encoded token parses");
            assert_eq!(again.encode(), token.encode());
        }
    });
});
