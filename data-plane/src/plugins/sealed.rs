//! Sealed values: data encrypted and authenticated with AES-256-GCM (ring) under keys derived with
//! HKDF-SHA256 from the operator's secrets and the value's purpose, so a session cookie can never be read
//! or forged without the secret, nor one kind of cookie be replayed as another. The first secret seals;
//! every one opens, so a secret is rotated by putting the new one first.
//!
//! Sealed form (URL-safe base64 without padding): a version byte (1), a 96-bit random nonce, the
//! ciphertext and its 128-bit tag. The cookie's name is the additional authenticated data.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;

const VERSION: u8 = 1;
const SALT: &[u8] = b"portcullis sealed value v1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The keys of one purpose.
pub struct Sealer {
    keys: Vec<LessSafeKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

impl Sealer {
    /// Keys for `purpose` from `secrets` (the first seals).
    pub fn new(secrets: &[String], purpose: &str) -> Sealer {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT);
        let keys = secrets
            .iter()
            .map(|secret| {
                let prk = salt.extract(secret.as_bytes());
                let info = [purpose.as_bytes()];
                let okm = prk
                    .expand(&info, &AES_256_GCM)
                    .expect("an AES-256 key is a valid HKDF output length");
                LessSafeKey::new(UnboundKey::from(okm))
            })
            .collect();
        Sealer { keys }
    }

    /// `plain` sealed under the first key, bound to `aad`; `None` without a key.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Option<String> {
        let key = self.keys.first()?;
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(B64.encode(out))
    }

    /// What `sealed` holds, if a key opens it with `aad`; `None` for anything altered, truncated, sealed
    /// under another secret or for another `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let raw = B64.decode(sealed.as_bytes()).ok()?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.keys.iter().find_map(|key| {
            let mut buf = body.to_vec();
            let plain = key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut buf,
                )
                .ok()?;
            Some(plain.to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.repeat(32)).collect()
    }

    #[test]
    fn what_is_sealed_opens_only_with_a_key_of_the_same_purpose_and_aad() {
        let s = Sealer::new(&secrets(&["a"]), "session");
        let sealed = s.seal(b"alex", b"session").unwrap();
        assert_eq!(s.open(&sealed, b"session").unwrap(), b"alex");
        assert!(!sealed.contains("alex"));
        // Two seals of the same value differ (random nonce).
        assert_ne!(sealed, s.seal(b"alex", b"session").unwrap());
        assert_eq!(s.open(&sealed, b"other-cookie"), None);
        assert_eq!(
            Sealer::new(&secrets(&["a"]), "authorization").open(&sealed, b"session"),
            None
        );
        assert_eq!(
            Sealer::new(&secrets(&["b"]), "session").open(&sealed, b"session"),
            None
        );
    }

    #[test]
    fn any_altered_byte_or_truncation_is_refused() {
        let s = Sealer::new(&secrets(&["a"]), "session");
        let sealed = s.seal(b"{\"sub\":\"alex\"}", b"n").unwrap();
        let raw = B64.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            assert_eq!(s.open(&B64.encode(&bad), b"n"), None, "byte {i}");
        }
        for n in 0..raw.len() {
            assert_eq!(s.open(&B64.encode(&raw[..n]), b"n"), None, "length {n}");
        }
        assert_eq!(s.open("not base64!", b"n"), None);
        assert_eq!(Sealer::new(&[], "session").seal(b"x", b"n"), None);
    }

    #[test]
    fn rotation_seals_with_the_first_secret_and_opens_with_any() {
        let old = Sealer::new(&secrets(&["a"]), "session");
        let rotated = Sealer::new(&secrets(&["b", "a"]), "session");
        let before = old.seal(b"v", b"n").unwrap();
        assert_eq!(rotated.open(&before, b"n").unwrap(), b"v");
        let after = rotated.seal(b"v", b"n").unwrap();
        assert_eq!(old.open(&after, b"n"), None);
        assert_eq!(
            Sealer::new(&secrets(&["b"]), "session")
                .open(&after, b"n")
                .unwrap(),
            b"v"
        );
    }
}
