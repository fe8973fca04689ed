//! Credential lookup and removal over arbitrary headers, query strings and bodies of every kind.
#![no_main]

use data_plane::plugins::credentials::parse::{
    basic_credentials, bearer_token, body_value, body_without, query_value, query_without, Source,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        let (head, body) = portcullis_fuzz::split2(data);
        let head = String::from_utf8_lossy(head);
        let _ = bearer_token(&head);
        let _ = basic_credentials(&head);
        let _ = query_value(&head, "access_token");
        let _ = query_without(&head, &["access_token", "client_secret"]);
        for content_type in [
            "application/x-www-form-urlencoded",
            "application/json",
            "application/problem+json",
            &format!("multipart/form-data; boundary={head}"),
            "multipart/form-data; boundary=XyZ",
        ] {
            let _ = body_value(content_type, body, "access_token");
            for source in [Source::Form, Source::Json, Source::Multipart] {
                let _ = body_without(source, content_type, body, &["access_token", "username"]);
            }
        }
    });
});
