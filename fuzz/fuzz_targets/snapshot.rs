//! Snapshot payloads as a node decodes them (the hash is made to match, so decoding is reached).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        let hash = shared::state::hash(data);
        if let Ok(state) = shared::state::decode(data, &hash) {
            // A decoded state re-encodes to a payload that decodes to the same state.
            let again = shared::state::encode(&state);
            let back = shared::state::decode(&again, &shared::state::hash(&again))
                .expect("a decoded state re-encodes to a valid payload");
            assert_eq!(shared::state::encode(&back), again);
        }
        let _ = shared::state::decode(data, "0");
    });
});
