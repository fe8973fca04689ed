//! The last-known-good configuration on the node's disk: the snapshot the node last applied, so it can
//! serve at once after a restart, with or without the control plane.
//!
//! One file, `<dir>/snapshot`, replaced atomically (written beside, synced, renamed, directory synced):
//! a header line `PORTCULLIS-LKG 1 <version> <hash> <payload bytes> <payload sha256>` and the payload. A
//! plain file can be read from a read-only or full disk, and the checksum tells a damaged file from a
//! good one. The directory is owner-only (0700) and the file 0600: snapshots hold plugin secrets.
//!
//! Storing can fail (a full or read-only disk, permissions); the node then keeps serving what it applied
//! and reports it, so opening never fails and every write reports its error.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

const MAGIC: &str = "PORTCULLIS-LKG 1";

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub version: u64,
    pub hash: String,
    pub payload: Vec<u8>,
}

/// The node's last-known-good file.
pub struct Lkg {
    dir: PathBuf,
}

impl Lkg {
    /// Uses `dir`, creating it owner-only when it can; a directory that cannot be created is reported by
    /// the first [`Lkg::save`], and [`Lkg::load`] still reads whatever is there.
    pub fn open(dir: &Path) -> Lkg {
        let _ = crate::fsutil::private_dir(dir);
        Lkg {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("snapshot")
    }

    /// The stored snapshot, if any. A damaged file is reported, never half-used.
    pub fn load(&self) -> Result<Option<StoredSnapshot>> {
        let path = self.file();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        decode(&bytes)
            .map(Some)
            .with_context(|| format!("{} is damaged", path.display()))
    }

    /// Replaces the stored snapshot atomically and durably.
    pub fn save(&self, snap: &StoredSnapshot) -> Result<()> {
        crate::fsutil::private_dir(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let tmp = self.dir.join("snapshot.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = crate::fsutil::private_file(&tmp)?;
            f.write_all(&encode_header(snap))?;
            f.write_all(&snap.payload)?;
            f.sync_all()?;
            fs::rename(&tmp, self.file())?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::Error::new(e).context(format!(
                "cannot store the last-known-good config in {}",
                self.dir.display()
            ))
        })
    }
}

fn encode_header(snap: &StoredSnapshot) -> Vec<u8> {
    format!(
        "{MAGIC} {} {} {} {}\n",
        snap.version,
        snap.hash,
        snap.payload.len(),
        hex::encode(Sha256::digest(&snap.payload))
    )
    .into_bytes()
}

/// Reads a stored file: header, length and checksum must all agree.
pub fn decode(bytes: &[u8]) -> Result<StoredSnapshot> {
    let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
        bail!("no header line");
    };
    let header = std::str::from_utf8(&bytes[..end]).context("header is not text")?;
    let rest = header
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .context("not a last-known-good file of this format")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let [version, hash, len, sum] = fields[..] else {
        bail!("header has {} fields, expected 4", fields.len());
    };
    let version: u64 = version.parse().context("version is not a number")?;
    let len: usize = len.parse().context("length is not a number")?;
    let payload = &bytes[end + 1..];
    if payload.len() != len {
        bail!("payload is {} bytes, header says {len}", payload.len());
    }
    if hex::encode(Sha256::digest(payload)) != sum {
        bail!("payload checksum does not match");
    }
    Ok(StoredSnapshot {
        version,
        hash: hash.to_string(),
        payload: payload.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> StoredSnapshot {
        StoredSnapshot {
            version: 7,
            hash: "abc".into(),
            payload: b"{\"services\":[]}".to_vec(),
        }
    }

    #[test]
    fn round_trip_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lkg = Lkg::open(&dir.path().join("lkg"));
        assert_eq!(lkg.load().unwrap(), None);
        lkg.save(&snap()).unwrap();
        assert_eq!(lkg.load().unwrap(), Some(snap()));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("lkg")), 0o700);
        assert_eq!(mode(&dir.path().join("lkg/snapshot")), 0o600);
    }

    #[test]
    fn damage_is_detected() {
        let mut bytes = encode_header(&snap());
        bytes.extend_from_slice(&snap().payload);
        assert_eq!(decode(&bytes).unwrap(), snap());
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        assert!(decode(&bytes).is_err(), "flipped bit");
        assert!(decode(&bytes[..bytes.len() - 3]).is_err(), "truncated");
        assert!(decode(b"garbage").is_err());
        assert!(decode(b"PORTCULLIS-LKG 1 x y\n").is_err());
    }
}
