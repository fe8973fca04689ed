use rustls::SignatureScheme;
use serde_json::json;
use shared::{Certificate, ConfigState, Entity, ParseCtx, Sni};
use uuid::Uuid;

use super::ServerCertificates;

fn pem(name: &str, alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn add_certificate(state: &mut ConfigState, n: u128, body: serde_json::Value, snis: &[&str]) {
    let ctx = ParseCtx {
        id: Uuid::from_u128(n),
        now: platform::unix_now(),
        created_at: None,
        resolver: &ConfigState::default(),
    };
    state
        .put(Entity::Certificate(
            Certificate::parse(&body, &ctx).unwrap(),
        ))
        .unwrap();
    for (i, name) in snis.iter().enumerate() {
        let ctx = ParseCtx {
            id: Uuid::from_u128(n * 100 + i as u128),
            now: 1,
            created_at: None,
            resolver: &*state,
        };
        let sni = Sni::parse(
            &json!({"name": name, "certificate": {"id": Uuid::from_u128(n)}}),
            &ctx,
        )
        .unwrap();
        state.put(Entity::Sni(sni)).unwrap();
    }
}

fn leaf(found: Option<std::sync::Arc<rustls::sign::CertifiedKey>>) -> Vec<u8> {
    found
        .expect("a certificate")
        .end_entity_cert()
        .unwrap()
        .to_vec()
}

const ECDSA: &[SignatureScheme] = &[SignatureScheme::ECDSA_NISTP256_SHA256];

#[test]
fn names_match_exactly_then_by_one_leading_then_one_trailing_wildcard_label() {
    let mut state = ConfigState::default();
    let (a, ak) = pem("a.example.test", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (w, wk) = pem("*.example.test", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (t, tk) = pem("shop.example", &rcgen::PKCS_ECDSA_P256_SHA256);
    add_certificate(
        &mut state,
        1,
        json!({"cert": a, "key": ak}),
        &["a.example.test"],
    );
    add_certificate(
        &mut state,
        2,
        json!({"cert": w, "key": wk}),
        &["*.example.test"],
    );
    add_certificate(&mut state, 3, json!({"cert": t, "key": tk}), &["shop.*"]);
    let certs = ServerCertificates::build(&state).unwrap();
    assert_eq!(certs.len(), 3);
    let exact = leaf(certs.lookup("a.example.test", ECDSA));
    let wild = leaf(certs.lookup("b.example.test", ECDSA));
    assert_ne!(exact, wild);
    assert!(
        certs.lookup("x.b.example.test", ECDSA).is_none(),
        "one label only"
    );
    assert!(certs.lookup("example.test", ECDSA).is_none());
    let trailing = leaf(certs.lookup("shop.example", ECDSA));
    assert_eq!(leaf(certs.lookup("shop.other", ECDSA)), trailing);
    assert!(certs.lookup("unknown", ECDSA).is_none());
}

#[test]
fn the_alternative_pair_serves_clients_that_cannot_verify_the_primary_key() {
    let mut state = ConfigState::default();
    let (ec, eck) = pem("a.example.test", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (ed, edk) = pem("a.example.test", &rcgen::PKCS_ED25519);
    add_certificate(
        &mut state,
        1,
        json!({"cert": ec, "key": eck, "cert_alt": ed, "key_alt": edk}),
        &["a.example.test"],
    );
    let certs = ServerCertificates::build(&state).unwrap();
    let primary = leaf(certs.lookup("a.example.test", ECDSA));
    let alt = leaf(certs.lookup("a.example.test", &[SignatureScheme::ED25519]));
    assert_ne!(primary, alt);
    let both = [
        SignatureScheme::ED25519,
        SignatureScheme::ECDSA_NISTP256_SHA256,
    ];
    assert_eq!(leaf(certs.lookup("a.example.test", &both)), primary);
}

#[test]
fn a_certificate_that_does_not_parse_rejects_the_configuration() {
    let mut state = ConfigState::default();
    let (a, ak) = pem("a.example.test", &rcgen::PKCS_ECDSA_P256_SHA256);
    add_certificate(&mut state, 1, json!({"cert": a, "key": ak}), &[]);
    let id = Uuid::from_u128(1);
    let mut broken = state.certificates[&id].clone();
    broken.key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
    state.certificates.insert(id, broken);
    let err = ServerCertificates::build(&state).err().unwrap();
    assert!(
        err.contains("certificate 00000000-0000-0000-0000-000000000001: key:"),
        "{err}"
    );
}
