//! Upstream responses read by the in-task exchange (head, framing and body decoding), against hyper's
//! client on the same bytes. Wherever the node delivers a complete answer, hyper must read the same
//! status and body; the node may refuse or cut more, never accept differently. The first byte chooses
//! whether the request was HEAD.
#![no_main]

use data_plane::proxy::parsers::{response, ResponseVerdict};
use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::hyper_oracle::{client_reads, ClientRead};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let head_request = selector & 1 == 1;
    let ours = response(bytes, head_request);
    let ResponseVerdict::Message {
        status,
        body,
        complete: true,
        ..
    } = &ours
    else {
        return;
    };
    match client_reads(bytes, head_request) {
        ClientRead::Response {
            status: s,
            body: Ok(b),
        } => {
            assert_eq!(*status, s, "a different status");
            assert_eq!(body, &b, "a different body");
        }
        theirs => panic!("the node delivers {ours:?} where hyper reads {theirs:?}"),
    }
});
