use serde_json::json;

use super::*;
use crate::entity::Resolver;
use crate::schema::FieldErrors;

struct OneCertificate(Uuid);
impl Resolver for OneCertificate {
    fn resolve(&self, kind: Kind, key: &str) -> Option<Uuid> {
        (kind == Kind::Certificate && key == self.0.to_string()).then_some(self.0)
    }
}

fn ctx(resolver: &dyn Resolver) -> ParseCtx<'_> {
    ParseCtx {
        id: Uuid::from_u128(7),
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        created_at: None,
        resolver,
    }
}

fn pem_pair(alg: &'static rcgen::SignatureAlgorithm, expired: bool) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["a.example.test".to_string()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn errors(r: Result<Certificate, StateError>) -> FieldErrors {
    match r {
        Err(StateError::Schema(e)) => e,
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn a_matching_pair_parses_and_reads_back_redacted() {
    let (cert, key) = pem_pair(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let c = Certificate::parse(
        &json!({"cert": cert, "key": key}),
        &ctx(&OneCertificate(Uuid::nil())),
    )
    .unwrap();
    assert_eq!(
        KeyPair::parse(&c.cert, &c.key).unwrap().kind,
        KeyKind::Ecdsa
    );
    let shown = c.redacted();
    assert_eq!(shown.key, crate::plugins::REDACTED);
    assert_eq!(shown.key_alt, None);
}

#[test]
fn bad_pem_mismatched_keys_and_expired_certificates_name_their_field() {
    let none = OneCertificate(Uuid::nil());
    let (cert, key) = pem_pair(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let (_, other_key) = pem_pair(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let e = errors(Certificate::parse(
        &json!({"cert": cert, "key": other_key}),
        &ctx(&none),
    ));
    assert_eq!(e["key"], "the private key does not match the certificate");
    let e = errors(Certificate::parse(
        &json!({"cert": "not a pem", "key": key}),
        &ctx(&none),
    ));
    assert!(e["cert"].starts_with("no certificate found"), "{e:?}");
    let e = errors(Certificate::parse(
        &json!({"cert": cert, "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
        &ctx(&none),
    ));
    assert!(e["key"].starts_with("unsupported private key"), "{e:?}");
    let (old_cert, old_key) = pem_pair(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    let e = errors(Certificate::parse(
        &json!({"cert": old_cert, "key": old_key}),
        &ctx(&none),
    ));
    assert!(e["cert"].starts_with("the certificate expired"), "{e:?}");
    let e = errors(Certificate::parse(&json!({}), &ctx(&none)));
    assert_eq!(
        (&e["cert"], &e["key"]),
        (
            &"required field missing".to_string(),
            &"required field missing".to_string()
        )
    );
}

#[test]
fn an_alternative_pair_must_be_whole_and_of_another_key_type() {
    let none = OneCertificate(Uuid::nil());
    let (cert, key) = pem_pair(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let (ed_cert, ed_key) = pem_pair(&rcgen::PKCS_ED25519, false);
    let (ec_cert, ec_key) = pem_pair(&rcgen::PKCS_ECDSA_P384_SHA384, false);
    let c = Certificate::parse(
        &json!({"cert": cert, "key": key, "cert_alt": ed_cert, "key_alt": ed_key}),
        &ctx(&none),
    )
    .unwrap();
    assert_eq!(
        c.redacted().key_alt.as_deref(),
        Some(crate::plugins::REDACTED)
    );
    let e = errors(Certificate::parse(
        &json!({"cert": cert, "key": key, "cert_alt": ec_cert, "key_alt": ec_key}),
        &ctx(&none),
    ));
    assert!(e["cert_alt"].contains("another key type"), "{e:?}");
    let e = errors(Certificate::parse(
        &json!({"cert": cert, "key": key, "cert_alt": ed_cert}),
        &ctx(&none),
    ));
    assert_eq!(e["key_alt"], "required when 'cert_alt' is set");
}

#[test]
fn sni_names_are_host_names_with_one_wildcard_and_name_an_existing_certificate() {
    let cert = Uuid::from_u128(1);
    let r = OneCertificate(cert);
    let ok = |name: &str| {
        Sni::parse(
            &json!({"name": name, "certificate": {"id": cert}}),
            &ctx(&r),
        )
    };
    assert_eq!(ok("API.Example.test").unwrap().name, "api.example.test");
    assert!(ok("*.example.test").is_ok() && ok("example.*").is_ok());
    for (bad, why) in [
        ("a.example.test:443", "must not have a port"),
        ("10.0.0.1", "must not be an IP address"),
        (
            "a.*.test",
            "invalid wildcard: must be placed at leftmost or rightmost label",
        ),
        ("bad name", "invalid hostname"),
    ] {
        match ok(bad) {
            Err(StateError::Schema(e)) => assert_eq!(e["name"], why, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let missing = Sni::parse(&json!({"name": "a.test"}), &ctx(&r));
    assert!(
        matches!(missing, Err(StateError::Schema(e)) if e["certificate"] == "required field missing")
    );
    let dangling = Sni::parse(
        &json!({"name": "a.test", "certificate": {"id": Uuid::from_u128(2)}}),
        &ctx(&r),
    );
    assert!(matches!(dangling, Err(StateError::ForeignKey { .. })));
}
