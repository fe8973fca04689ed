//! The cluster CA kept in a shared store: generated once by the first control plane to start, its private
//! key sealed (AES-256-GCM, authenticated together with the certificate) with a key the operator gives
//! every control plane as a file. The database never sees the CA key in clear, and a control plane given
//! another key refuses to start instead of creating a second CA.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::store::{SealedCa, Store};

/// Reads the sealing key: 32 bytes written as 64 hex digits (surrounding whitespace ignored).
pub fn read_key(path: &Path) -> Result<LessSafeKey> {
    read_key_flag(path, "--cluster-ca-encryption-key-file")
}

/// Reads a 256-bit key written as 64 hex digits from `path`, the value of `flag`.
pub fn read_key_flag(path: &Path, flag: &str) -> Result<LessSafeKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
    let Some(bytes) = bytes else {
        bail!(
            "{flag} {} must hold 64 hex digits (a 256-bit key), e.g. from `openssl rand -hex 32`",
            path.display()
        );
    };
    let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte AES-256 key");
    Ok(LessSafeKey::new(key))
}

fn seal(key: &LessSafeKey, cert_pem: &str, key_pem: &str) -> SealedCa {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut sealed = key_pem.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(cert_pem.as_bytes()),
        &mut sealed,
    )
    .expect("sealing a CA key cannot fail");
    SealedCa {
        cert_pem: cert_pem.to_string(),
        nonce: nonce.to_vec(),
        sealed_key: sealed,
    }
}

fn open(key: &LessSafeKey, ca: &SealedCa) -> Result<String> {
    let nonce = Nonce::try_assume_unique_for_key(&ca.nonce)
        .map_err(|_| anyhow::anyhow!("the sealed cluster CA's nonce is malformed"))?;
    let mut buf = ca.sealed_key.clone();
    let plain = key
        .open_in_place(nonce, Aad::from(ca.cert_pem.as_bytes()), &mut buf)
        .map_err(|_| {
            anyhow::anyhow!(
                "the cluster CA kept in the database cannot be decrypted with \
                 --cluster-ca-encryption-key-file: it was sealed with another key, or altered"
            )
        })?;
    String::from_utf8(plain.to_vec()).context("the decrypted CA key is not PEM text")
}

/// The cluster CA (certificate and key PEM) kept in `store`, created and kept first when there is none.
pub async fn shared_ca(store: &dyn Store, key: &LessSafeKey) -> Result<(String, String)> {
    let kept = match store
        .sealed_ca()
        .await
        .context("cannot read the cluster CA from the database")?
    {
        Some(kept) => kept,
        None => {
            let (cert_pem, key_pem) = crate::pki::generate_ca()?;
            store
                .keep_sealed_ca(&seal(key, &cert_pem, &key_pem))
                .await
                .context("cannot keep the cluster CA in the database")?
        }
    };
    let key_pem = open(key, &kept)?;
    Ok((kept.cert_pem, key_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[byte; 32]).unwrap())
    }

    #[test]
    fn sealed_keys_open_only_with_their_key_and_certificate() {
        let sealed = seal(&key(1), "CERT", "-----BEGIN PRIVATE KEY-----");
        assert!(!String::from_utf8_lossy(&sealed.sealed_key).contains("PRIVATE KEY"));
        assert_eq!(
            open(&key(1), &sealed).unwrap(),
            "-----BEGIN PRIVATE KEY-----"
        );
        assert!(open(&key(2), &sealed).is_err());
        let swapped = SealedCa {
            cert_pem: "OTHER CERT".into(),
            ..sealed.clone()
        };
        assert!(open(&key(1), &swapped).is_err());
    }

    #[test]
    fn the_key_file_must_hold_256_bits_in_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "abcd").unwrap();
        assert!(read_key(&path)
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        assert!(read_key(&path).is_ok());
    }
}
