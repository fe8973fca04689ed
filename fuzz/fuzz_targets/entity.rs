//! Admin API bodies: every entity kind and plugin config, as JSON and as form fields, with field errors
//! rendered as the API answers them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::schema::parsing_form;
use shared::{ConfigState, Entity, Kind, ParseCtx, StateError};

fn parse_all(body: &serde_json::Value, form: bool) {
    let state = ConfigState::default();
    let ctx = ParseCtx {
        id: uuid::Uuid::nil(),
        now: 1_700_000_000,
        created_at: None,
        resolver: &state,
    };
    for kind in Kind::ALL {
        let parsed = parsing_form(form, || Entity::parse(kind, body, &ctx).map(|_| ()));
        if let Err(StateError::Schema(errors)) = parsed {
            let rendered = serde_json::to_string(&errors.to_json()).expect("errors render");
            let _ = (rendered, errors.summary());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
            parse_all(&body, false);
        }
        if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) {
            if let Ok(body) = control_plane::admin::form_to_json(pairs) {
                parse_all(&body, true);
            }
        }
    });
});
