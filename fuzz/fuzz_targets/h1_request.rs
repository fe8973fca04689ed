//! Request heads from clients, against hyper's server on the same bytes. Where the node takes a request
//! itself it must read it exactly as hyper does (method, target, no body); where it hands one to hyper
//! it must have found the framing hyper finds. Refusing is always allowed: the node may be stricter,
//! never looser or different.
#![no_main]

use data_plane::proxy::parsers::{request, BodyFraming, RequestVerdict};
use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::hyper_oracle::{server_reads, ServerRead};

fuzz_target!(|data: &[u8]| {
    let ours = request(data, true);
    // Only where the node decides something is hyper asked.
    if matches!(
        ours,
        RequestVerdict::Refused(_) | RequestVerdict::HandOff(None)
    ) {
        return;
    }
    let theirs = server_reads(data);
    match (&ours, &theirs) {
        (RequestVerdict::Incomplete, ServerRead::NoRequest) => {}
        (RequestVerdict::Incomplete, ServerRead::Request { .. }) => {
            panic!("the node waits for more where hyper read a request: {theirs:?}")
        }
        (
            RequestVerdict::Bodiless { method, target, .. },
            ServerRead::Request {
                method: m,
                target: t,
                body,
                tunnel,
                ..
            },
        ) => {
            assert_eq!((method, target), (m, t), "a different request line");
            if !tunnel {
                assert_eq!(
                    body.as_deref(),
                    Ok(&[][..]),
                    "hyper finds a body where the node finds none"
                );
            }
        }
        (RequestVerdict::Bodiless { .. }, ServerRead::NoRequest) => {
            panic!("the node serves a request that hyper refuses: {ours:?}")
        }
        // A hand-off that hyper refuses is answered by hyper.
        (RequestVerdict::HandOff(Some(_)), ServerRead::NoRequest) => {}
        (
            RequestVerdict::HandOff(Some(framing)),
            ServerRead::Request {
                exact_len, tunnel, ..
            },
        ) => {
            if !tunnel {
                let expected = match framing {
                    BodyFraming::None => Some(0),
                    BodyFraming::Length(n) => Some(*n),
                    BodyFraming::Chunked => None,
                };
                assert_eq!(
                    *exact_len, expected,
                    "framing {framing:?} where hyper finds {theirs:?}"
                );
            }
        }
        _ => unreachable!("filtered above"),
    }
});
