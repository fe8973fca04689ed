use super::*;

fn judge(version: Version, target: &str, fields: &[(&str, &str)]) -> Result<Accepted, Refusal> {
    let names: Vec<HeaderName> = fields
        .iter()
        .map(|(n, _)| HeaderName::from_bytes(n.as_bytes()).unwrap())
        .collect();
    let mut seen = HeadFields::default();
    for (name, (_, value)) in names.iter().zip(fields) {
        seen.see(name, value.as_bytes());
    }
    seen.judge(version, &target.parse().unwrap())
}

fn body(version: Version, fields: &[(&str, &str)]) -> Result<BodyFraming, Refusal> {
    judge(version, "/", fields).map(|a| a.body)
}

const V11: Version = Version::HTTP_11;
const V10: Version = Version::HTTP_10;

#[test]
fn host_fields_follow_rfc_9112_section_3_2() {
    let bad = |why: &'static str| Err(Refusal::BadRequest(why));
    assert_eq!(
        body(V11, &[]),
        bad("an HTTP/1.1 request without a Host field")
    );
    assert_eq!(body(V10, &[]), Ok(BodyFraming::None), "HTTP/1.0 needs none");
    assert_eq!(
        body(V11, &[("host", "a"), ("host", "a")]),
        bad("more than one Host field"),
        "two fields, even equal ones"
    );
    assert_eq!(
        body(V10, &[("host", "a"), ("Host", "b")]),
        bad("more than one Host field")
    );
    for invalid in ["", "a, b", "user@a", "a:x", "a:", "a b", "[::1"] {
        assert_eq!(
            body(V11, &[("host", invalid)]),
            bad("invalid Host field"),
            "{invalid:?}"
        );
    }
    for valid in ["a", "a.example:8000", "[::1]:80", "127.0.0.1"] {
        assert_eq!(
            body(V11, &[("host", valid)]),
            Ok(BodyFraming::None),
            "{valid:?}"
        );
    }
}

#[test]
fn an_absolute_form_target_names_the_host() {
    let accepted = judge(V11, "http://b.example:81/p?q", &[("host", "a.example")]).unwrap();
    assert_eq!(
        accepted.host_from_target.unwrap(),
        HeaderValue::from_static("b.example:81")
    );
    assert_eq!(
        judge(V11, "/p", &[("host", "a")]).unwrap().host_from_target,
        None
    );
    // Still a Host field is required, and it must be valid, though the target's host wins.
    assert!(judge(V11, "http://b/", &[]).is_err());
    assert!(judge(V11, "http://b/", &[("host", "a, b")]).is_err());
    assert!(judge(V11, "ftp://b/", &[("host", "b")]).is_err());
    assert!(judge(V11, "http://u@b/", &[("host", "b")]).is_err());
}

#[test]
fn transfer_encoding_is_exactly_chunked_or_refused() {
    let chunked = |v: &str| body(V11, &[("host", "a"), ("transfer-encoding", v)]);
    assert_eq!(chunked("chunked"), Ok(BodyFraming::Chunked));
    assert_eq!(chunked("Chunked "), Ok(BodyFraming::Chunked));
    for not_implemented in ["identity, chunked", "gzip, chunked", "chunked, chunked"] {
        assert!(
            matches!(chunked(not_implemented), Err(Refusal::NotImplemented(_))),
            "{not_implemented:?}"
        );
    }
    for malformed in [
        ", chunked",
        "chunked,",
        "chu nked",
        "\"chunked\"",
        "",
        "gzip",
        "chunked, identity",
        "xchunked",
    ] {
        assert!(
            matches!(chunked(malformed), Err(Refusal::BadRequest(_))),
            "{malformed:?}"
        );
    }
    let two = [
        ("host", "a"),
        ("transfer-encoding", "chunked"),
        ("transfer-encoding", "chunked"),
    ];
    assert_eq!(
        body(V11, &two),
        Err(Refusal::BadRequest("more than one Transfer-Encoding field"))
    );
    assert_eq!(
        body(V10, &[("transfer-encoding", "chunked")]),
        Err(Refusal::BadRequest(
            "Transfer-Encoding in an HTTP/1.0 request"
        ))
    );
    // Beside a Content-Length, the coding wins.
    let both = [
        ("host", "a"),
        ("content-length", "0"),
        ("transfer-encoding", "chunked"),
    ];
    assert_eq!(body(V11, &both), Ok(BodyFraming::Chunked));
}

#[test]
fn content_length_is_one_number() {
    let length = |values: &[&str]| {
        let mut fields = vec![("host", "a")];
        fields.extend(values.iter().map(|v| ("content-length", *v)));
        body(V11, &fields)
    };
    assert_eq!(length(&["0"]), Ok(BodyFraming::None));
    assert_eq!(length(&["5"]), Ok(BodyFraming::Length(5)));
    assert_eq!(length(&["5", "5"]), Ok(BodyFraming::Length(5)));
    for bad in [
        &["5", "6"][..],
        &["5, 5"],
        &["+5"],
        &["-1"],
        &["0x5"],
        &[""],
        &["1 2"],
        &["99999999999999999999"],
    ] {
        assert!(
            matches!(length(bad), Err(Refusal::BadRequest(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_response_coding_removes_its_length() {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    assert!(!coding_overrides_length(&mut h), "a length alone stays");
    assert!(h.contains_key(header::CONTENT_LENGTH));
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    assert!(coding_overrides_length(&mut h));
    assert!(!h.contains_key(header::CONTENT_LENGTH));
    assert!(!coding_overrides_length(&mut h), "nothing left to remove");
}

#[test]
fn requests_hyper_parsed_get_the_same_rules() {
    let req = |version: Version, uri: &str, hosts: &[&str]| {
        let mut b = http::Request::builder().version(version).uri(uri);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    };
    // HTTP/1.1: an absolute-form target's host replaces Host; Host is required and single.
    let mut r = req(V11, "http://b.example/p", &["a.example"]);
    assert_eq!(check_parsed(&mut r), Ok(()));
    assert_eq!(r.headers()["host"], "b.example");
    assert_eq!(
        check_parsed(&mut req(V11, "/p", &[])),
        Err(Refusal::BadRequest(
            "an HTTP/1.1 request without a Host field"
        ))
    );
    assert_eq!(
        check_parsed(&mut req(V11, "/p", &["a", "b"])),
        Err(Refusal::BadRequest("more than one Host field"))
    );
    // HTTP/2: a Host field must name the `:authority`.
    let h2 = Version::HTTP_2;
    assert_eq!(
        check_parsed(&mut req(h2, "https://a.example/p", &["A.example"])),
        Ok(())
    );
    assert_eq!(
        check_parsed(&mut req(h2, "https://a.example/p", &["b.example"])),
        Err(Refusal::BadRequest("Host and :authority differ"))
    );
    assert_eq!(check_parsed(&mut req(h2, "/p", &["b.example"])), Ok(()));
    // A head over the limit, whatever hyper's buffer let through.
    let mut big = req(V11, "/p", &["a"]);
    big.headers_mut().insert(
        "x-big",
        HeaderValue::from_str(&"a".repeat(MAX_HEAD)).unwrap(),
    );
    assert_eq!(check_parsed(&mut big), Err(Refusal::TooLarge));
}
