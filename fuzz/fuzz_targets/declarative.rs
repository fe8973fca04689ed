//! Declarative documents (`POST /config`) as JSON, YAML and Kong's `{"config": "…"}` wrapper: built,
//! compared with the empty configuration (`dry_run`), or their errors rendered, also entity by entity
//! (`flatten_errors`).
#![no_main]

use control_plane::admin::declarative::{build_state, changes, flattened_errors, Document};
use control_plane::admin::BodyFormat;
use libfuzzer_sys::fuzz_target;
use shared::ConfigState;

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        let old = ConfigState::default();
        for format in [BodyFormat::Json, BodyFormat::Yaml, BodyFormat::Form] {
            if let Ok(doc) = Document::from_body(data, format) {
                match build_state(&doc, &old) {
                    Ok(state) => {
                        state.check().expect("a built state is consistent");
                        let _ = changes::report(&changes::changes(&old, &state));
                    }
                    Err(errors) => {
                        let _ = serde_json::to_string(&errors.to_json()).expect("errors render");
                        let _ = flattened_errors(&doc, &errors);
                    }
                }
            }
        }
    });
});
