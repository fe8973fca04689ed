//! Snapshot payloads and deltas as a node decodes them. A payload is decoded with its own content hash, so
//! decoding and the consistency check are reached; a delta is applied to a state decoded from the corpus's
//! first input or to the empty state, and a delta that applies must leave the incrementally kept digest
//! equal to the digest of the resulting state computed from scratch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::{ConfigState, StateDigest};

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        if let Ok(state) = serde_json::from_slice::<ConfigState>(data) {
            let hash = StateDigest::of(&state).hex();
            if let Ok((state, _)) = shared::state::decode(data, &hash) {
                // A decoded state re-encodes to a payload that decodes to the same state.
                let again = shared::state::encode(&state);
                let (back, _) = shared::state::decode(&again, &hash)
                    .expect("a decoded state re-encodes to a valid payload");
                assert_eq!(shared::state::encode(&back), again);
            }
        }
        let _ = shared::state::decode(data, "0");
        if let Ok(changes) = shared::delta::decode_changes(data) {
            let mut state = ConfigState::default();
            let mut digest = StateDigest::of(&state);
            if state.apply_changes(&changes).is_ok() {
                digest.apply(&changes);
                assert_eq!(digest, StateDigest::of(&state));
            }
        }
    });
});
