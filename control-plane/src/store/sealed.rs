//! Private keys at rest: a [`Store`] wrapper that seals the `key` and `key_alt` of every Certificate
//! (AES-256-GCM, bound to the certificate's id and the field) before they reach the inner store (entity
//! rows and change-log records alike) and opens them when the configuration or the log is read back. The
//! control plane's state, its snapshots and the Admin API only ever see keys in clear (the Admin API
//! redacts them); the disk and the database only ever see them sealed.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, NONCE_LEN};
use serde_json::Value;
use shared::{Certificate, Change, ConfigState, Entity};
use tokio::sync::broadcast;

use super::{Event, Records, SealedCa, Store, StoreError, WriteGuard};
use crate::changelog::{decode_record, encode_record};

/// What a sealed value starts with.
const SEALED: &str = "sealed:v1:";

/// A store whose Certificates' private keys are sealed with `key`. Without a key, a Certificate cannot
/// be written and a sealed one cannot be read: both are refused with a reason naming the flag.
pub struct SealingStore {
    inner: Arc<dyn Store>,
    key: Option<Arc<LessSafeKey>>,
}

impl SealingStore {
    /// Wraps `inner`, sealing with `key`.
    pub fn new(inner: Arc<dyn Store>, key: Option<LessSafeKey>) -> SealingStore {
        SealingStore {
            inner,
            key: key.map(Arc::new),
        }
    }

    fn key(&self) -> Result<&LessSafeKey, StoreError> {
        self.key.as_deref().ok_or_else(|| {
            StoreError::Io(
                "private keys are sealed in the store, and this control plane has no --secrets-key-file"
                    .into(),
            )
        })
    }

    fn aad(c: &Certificate, field: &str) -> Vec<u8> {
        let mut aad = c.id.as_bytes().to_vec();
        aad.extend_from_slice(field.as_bytes());
        aad
    }

    fn seal_value(&self, c: &Certificate, field: &str, clear: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut buf = clear.as_bytes().to_vec();
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(c, field)),
                &mut buf,
            )
            .map_err(|_| StoreError::Io("cannot seal a private key".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{SEALED}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    fn open_value(&self, c: &Certificate, field: &str, stored: &str) -> Result<String, StoreError> {
        let Some(sealed) = stored.strip_prefix(SEALED) else {
            // Written before keys were sealed: read as it is, sealed on its next write.
            return Ok(stored.to_string());
        };
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: format!("certificates/{}/{field}", c.id),
            reason: reason.to_string(),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| corrupt("not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt("too short"));
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt("bad nonce"))?;
        let mut buf = body.to_vec();
        let clear = self
            .key()?
            .open_in_place(nonce, Aad::from(Self::aad(c, field)), &mut buf)
            .map_err(|_| {
                corrupt("cannot be decrypted with --secrets-key-file: sealed with another key, or altered")
            })?;
        String::from_utf8(clear.to_vec()).map_err(|_| corrupt("not text"))
    }

    fn map_keys(
        c: &mut Certificate,
        mut f: impl FnMut(&Certificate, &str, &str) -> Result<String, StoreError>,
    ) -> Result<(), StoreError> {
        let snapshot = c.clone();
        c.key = f(&snapshot, "key", &snapshot.key)?;
        if let Some(alt) = &snapshot.key_alt {
            c.key_alt = Some(f(&snapshot, "key_alt", alt)?);
        }
        Ok(())
    }

    fn seal_changes(&self, changes: &[Change]) -> Result<Vec<Change>, StoreError> {
        changes
            .iter()
            .map(|change| match change {
                Change::Put(Entity::Certificate(c)) => {
                    let mut c = c.clone();
                    Self::map_keys(&mut c, |c, f, v| self.seal_value(c, f, v))?;
                    Ok(Change::Put(Entity::Certificate(c)))
                }
                other => Ok(other.clone()),
            })
            .collect()
    }

    fn open_changes(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        for change in changes {
            if let Change::Put(Entity::Certificate(c)) = change {
                Self::map_keys(c, |c, f, v| self.open_value(c, f, v))?;
            }
        }
        Ok(())
    }
}

fn has_certificate(changes: &[Change]) -> bool {
    changes
        .iter()
        .any(|c| matches!(c, Change::Put(Entity::Certificate(_))))
}

#[async_trait]
impl Store for SealingStore {
    async fn load(&self) -> Result<(ConfigState, u64), StoreError> {
        let (mut state, version) = self.inner.load().await?;
        let ids: Vec<_> = state.certificates.keys().copied().collect();
        for id in ids {
            let mut c = state.certificates[&id].clone();
            Self::map_keys(&mut c, |c, f, v| self.open_value(c, f, v))?;
            state.certificates.insert(id, c);
        }
        Ok((state, version))
    }

    async fn commit(
        &self,
        base: u64,
        changes: &[Change],
        version: u64,
        log_record: &[u8],
    ) -> Result<(), StoreError> {
        if !has_certificate(changes) {
            return self.inner.commit(base, changes, version, log_record).await;
        }
        let sealed = self.seal_changes(changes)?;
        let entry = decode_record(version, log_record).map_err(StoreError::Io)?;
        let record = encode_record(&entry.hash, &self.seal_changes(&entry.changes)?);
        self.inner.commit(base, &sealed, version, &record).await
    }

    async fn lock_writes(&self) -> Result<Option<WriteGuard>, StoreError> {
        self.inner.lock_writes().await
    }

    async fn load_log(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut records = self.inner.load_log(after).await?;
        for (version, bytes) in &mut records {
            if !bytes.windows(SEALED.len()).any(|w| w == SEALED.as_bytes()) {
                continue;
            }
            let mut entry =
                decode_record(*version, bytes).map_err(|reason| StoreError::Corrupt {
                    key: format!("log/{version}"),
                    reason,
                })?;
            self.open_changes(&mut entry.changes)?;
            *bytes = encode_record(&entry.hash, &entry.changes);
        }
        Ok(records)
    }

    async fn prune_log(&self, oldest_kept: u64) -> Result<(), StoreError> {
        self.inner.prune_log(oldest_kept).await
    }

    async fn get_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        self.inner.get_record(records, id).await
    }

    async fn put_record(
        &self,
        records: Records,
        id: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        self.inner.put_record(records, id, value).await
    }

    async fn take_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        self.inner.take_record(records, id).await
    }

    async fn update_record(
        &self,
        records: Records,
        id: &str,
        f: &(dyn for<'v> Fn(Option<&'v Value>) -> Option<Value> + Sync),
    ) -> Result<Option<Value>, StoreError> {
        self.inner.update_record(records, id, f).await
    }

    async fn list_records(&self, records: Records) -> Result<Vec<(String, Value)>, StoreError> {
        self.inner.list_records(records).await
    }

    async fn healthy(&self) -> bool {
        self.inner.healthy().await
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }

    async fn announce(&self, event: &Event) -> Result<(), StoreError> {
        self.inner.announce(event).await
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events()
    }

    async fn sealed_ca(&self) -> Result<Option<SealedCa>, StoreError> {
        self.inner.sealed_ca().await
    }

    async fn keep_sealed_ca(&self, ca: &SealedCa) -> Result<SealedCa, StoreError> {
        self.inner.keep_sealed_ca(ca).await
    }
}

/// The key that seals private keys: `--secrets-key-file`, else `--cluster-ca-encryption-key-file` (the
/// operator's key every control plane on a database already has), else, for the embedded store,
/// `<data-dir>/secrets.key` (made on first start, owner-only). A shared store with neither has none:
/// writing a Certificate is then refused.
pub fn sealing_key(
    secrets_key_file: Option<&std::path::Path>,
    ca_encryption_key_file: Option<&std::path::Path>,
    data_dir: &std::path::Path,
    shared: bool,
) -> anyhow::Result<Option<LessSafeKey>> {
    use crate::ca_seal::read_key_flag;
    if let Some(path) = secrets_key_file {
        return read_key_flag(path, "--secrets-key-file").map(Some);
    }
    if let Some(path) = ca_encryption_key_file {
        return read_key_flag(path, "--cluster-ca-encryption-key-file").map(Some);
    }
    if shared {
        return Ok(None);
    }
    let path = data_dir.join("secrets.key");
    if !path.exists() {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        crate::pki::write_private(&path, &hex::encode(key))?;
    }
    read_key_flag(&path, "the data dir's secrets.key").map(Some)
}

#[cfg(test)]
mod tests;
