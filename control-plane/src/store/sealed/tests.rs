use ring::aead::{UnboundKey, AES_256_GCM};
use serde_json::json;
use shared::{ParseCtx, StateDigest};
use uuid::Uuid;

use super::*;
use crate::store::SledStore;

fn key(byte: u8) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[byte; 32]).unwrap())
}

fn certificate() -> Certificate {
    let made = rcgen::generate_simple_self_signed(vec!["a.example.test".to_string()]).unwrap();
    Certificate::parse(
        &json!({"cert": made.cert.pem(), "key": made.key_pair.serialize_pem()}),
        &ParseCtx {
            id: Uuid::new_v4(),
            now: platform::unix_now(),
            created_at: None,
            resolver: &ConfigState::default(),
        },
    )
    .unwrap()
}

/// Every byte the embedded store holds, as text.
fn raw(dir: &std::path::Path) -> String {
    let db = sled::open(dir).unwrap();
    let mut out = String::new();
    for tree in db.tree_names() {
        for (k, v) in db.open_tree(tree).unwrap().iter().flatten() {
            out.push_str(&String::from_utf8_lossy(&k));
            out.push_str(&String::from_utf8_lossy(&v));
        }
    }
    out
}

#[tokio::test]
async fn private_keys_are_sealed_in_entities_and_log_records_and_open_with_their_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let cert = certificate();
    let changes = vec![Change::Put(Entity::Certificate(cert.clone()))];
    let mut state = ConfigState::default();
    state.insert_entity(Entity::Certificate(cert.clone()));
    let hash = StateDigest::of(&state).hex();
    {
        let sealed = SealingStore::new(Arc::new(SledStore::open(&path).unwrap()), Some(key(1)));
        sealed
            .commit(0, &changes, 1, &encode_record(&hash, &changes))
            .await
            .unwrap();
    }
    let body = cert.key.lines().nth(1).unwrap().to_string();
    let stored = raw(&path);
    assert!(stored.contains(SEALED), "the key is stored sealed");
    assert!(
        !stored.contains(&body),
        "no line of the private key is stored in clear"
    );
    assert!(
        stored.contains(&cert.cert.lines().nth(1).unwrap().to_string()),
        "certificates are public"
    );

    let sealed = SealingStore::new(Arc::new(SledStore::open(&path).unwrap()), Some(key(1)));
    let (loaded, version) = sealed.load().await.unwrap();
    assert_eq!((version, &loaded.certificates[&cert.id]), (1, &cert));
    let log = sealed.load_log(0).await.unwrap();
    let entry = decode_record(1, &log[0].1).unwrap();
    assert_eq!(entry.changes, changes);
    assert_eq!(entry.hash, hash);
    drop(sealed);

    let wrong = SealingStore::new(Arc::new(SledStore::open(&path).unwrap()), Some(key(2)));
    let err = wrong.load().await.unwrap_err().to_string();
    assert!(err.contains("sealed with another key"), "{err}");
    drop(wrong);
    let none = SealingStore::new(Arc::new(SledStore::open(&path).unwrap()), None);
    let err = none.load().await.unwrap_err().to_string();
    assert!(err.contains("--secrets-key-file"), "{err}");
    let err = none
        .commit(1, &changes, 2, &encode_record(&hash, &changes))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--secrets-key-file"), "{err}");
}

#[test]
fn a_sealed_key_moved_to_another_certificate_does_not_open() {
    let store = SealingStore::new(
        Arc::new(
            crate::store::SledStore::open(&tempfile::tempdir().unwrap().path().join("s")).unwrap(),
        ),
        Some(key(1)),
    );
    let a = certificate();
    let mut b = certificate();
    let sealed = store.seal_value(&a, "key", &a.key).unwrap();
    assert_eq!(store.open_value(&a, "key", &sealed).unwrap(), a.key);
    assert!(store.open_value(&a, "key_alt", &sealed).is_err());
    b.key = sealed.clone();
    assert!(store.open_value(&b, "key", &sealed).is_err());
}

#[test]
fn the_embedded_store_makes_its_key_once_and_a_shared_one_needs_a_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(sealing_key(None, None, dir.path(), false)
        .unwrap()
        .is_some());
    let first = std::fs::read_to_string(dir.path().join("secrets.key")).unwrap();
    sealing_key(None, None, dir.path(), false).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secrets.key")).unwrap(),
        first
    );
    assert!(sealing_key(None, None, dir.path(), true).unwrap().is_none());
    let file = dir.path().join("given");
    std::fs::write(&file, "zz").unwrap();
    let err = sealing_key(Some(&file), None, dir.path(), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--secrets-key-file") && err.contains("64 hex digits"),
        "{err}"
    );
}
