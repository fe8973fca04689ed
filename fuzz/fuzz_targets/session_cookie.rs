//! Session and authorization cookies from arbitrary `Cookie` fields: reading them never panics and opens
//! nothing that was not sealed under the instance's secret; what is sealed opens to the same bytes.
#![no_main]

use data_plane::plugins::openid_connect::session::Cookies;
use data_plane::plugins::sealed::Sealer;
use data_plane::plugins::cookies;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

/// The output of `f`, which must not wait: a cookie session is read without any I/O.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a cookie session is read without waiting"),
    }
}

fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::on_worker_stack(|| {
        let (head, rest) = portcullis_fuzz::split2(data);
        let config = shared::plugins::openid_connect::Config::parse(
            &json!({"issuer": "https://idp", "client_id": ["web"], "client_secret": ["s"],
                "auth_methods": ["authorization_code", "session"], "session_secret": "k".repeat(32)}),
            &shared::ConfigState::default(),
        )
        .expect("a valid config");
        let jar = Cookies::new(&config.browser, None);
        if let Ok(value) = http::HeaderValue::from_bytes(head) {
            let mut headers = http::HeaderMap::new();
            headers.append(http::header::COOKIE, value);
            // Nothing but what this secret sealed can be a session.
            assert!(!matches!(ready(jar.session(&headers, 1_000)), Ok(Some(_))));
            assert!(jar.pending(&headers, 1_000).is_none());
            let _ = cookies::get_chunked(&headers, "session");
        }
        let sealer = Sealer::new(&["k".repeat(32)], "session");
        let text = String::from_utf8_lossy(rest);
        assert!(sealer.open(&text, b"session").is_none());
        let sealed = sealer.seal(rest, b"session").expect("a key");
        assert_eq!(sealer.open(&sealed, b"session").as_deref(), Some(rest));
    });
});
