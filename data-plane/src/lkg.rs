//! The last-known-good configuration on the node's disk: the snapshot the node last applied, so it can
//! serve at once after a restart, with or without the control plane.
//!
//! `<dir>/snapshot` holds a full configuration, replaced atomically (written beside, synced, renamed,
//! directory synced): a header line `PORTCULLIS-LKG 1 <version> <hash> <payload bytes> <payload sha256>`
//! and the payload. `<dir>/journal` holds the deltas applied since, appended and synced one record at a
//! time (`PORTCULLIS-DELTA 1 <base version> <base hash> <version> <hash> <bytes> <sha256>` and the
//! changes), so a small change costs a small write; the node folds the journal into a new snapshot when
//! it grows (compaction). Plain files can be read from a read-only or full disk, and the checksums tell a
//! damaged record from a good one: a torn last record (a crash during an append) ends the journal there.
//! The directory is owner-only (0700) and the files 0600: configurations hold plugin secrets.
//!
//! Storing can fail (a full or read-only disk, permissions); the node then keeps serving what it applied
//! and reports it, so opening never fails and every write reports its error.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

const MAGIC: &str = "PORTCULLIS-LKG 1";
const DELTA_MAGIC: &str = "PORTCULLIS-DELTA 1";

/// Journal size after which the node writes a fresh snapshot instead of appending.
pub const COMPACT_AFTER_RECORDS: usize = 128;
/// Journal bytes after which the node writes a fresh snapshot instead of appending.
pub const COMPACT_AFTER_BYTES: u64 = 8 * 1024 * 1024;

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub version: u64,
    pub hash: String,
    pub payload: Vec<u8>,
}

/// A stored delta: the changes from `base_version`/`base_hash` to `version`/`hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelta {
    pub base_version: u64,
    pub base_hash: String,
    pub version: u64,
    pub hash: String,
    pub changes: Vec<u8>,
}

/// What the last-known-good store holds: a snapshot and the deltas applied after it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub snapshot: StoredSnapshot,
    pub deltas: Vec<StoredDelta>,
    /// Why the journal ends early (a damaged record), when it does.
    pub journal_damage: Option<String>,
}

/// The node's last-known-good files.
pub struct Lkg {
    dir: PathBuf,
    /// Records and bytes in the journal since the last snapshot.
    journal: std::sync::Mutex<(usize, u64)>,
}

impl Lkg {
    /// Uses `dir`, creating it owner-only when it can; a directory that cannot be created is reported by
    /// the first [`Lkg::save`], and [`Lkg::load`] still reads whatever is there.
    pub fn open(dir: &Path) -> Lkg {
        let _ = platform::files::private_dir(dir);
        Lkg {
            dir: dir.to_path_buf(),
            journal: std::sync::Mutex::new((0, 0)),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("snapshot")
    }

    fn journal_file(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// The stored snapshot and journal, if any. A damaged snapshot is reported, never half-used; the
    /// journal is used up to its first damaged record.
    pub fn load(&self) -> Result<Option<Stored>> {
        let path = self.file();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let snapshot = decode(&bytes).with_context(|| format!("{} is damaged", path.display()))?;
        let (deltas, journal_damage) = match fs::read(self.journal_file()) {
            Ok(bytes) => decode_journal(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
            Err(e) => (Vec::new(), Some(format!("cannot read the journal: {e}"))),
        };
        let size = deltas.iter().map(|d| d.changes.len() as u64).sum();
        *self.journal.lock().expect("journal lock") = (deltas.len(), size);
        Ok(Some(Stored {
            snapshot,
            deltas,
            journal_damage,
        }))
    }

    /// True when the journal is large enough that the next change should be stored as a snapshot.
    pub fn compaction_due(&self) -> bool {
        let (records, bytes) = *self.journal.lock().expect("journal lock");
        records >= COMPACT_AFTER_RECORDS || bytes >= COMPACT_AFTER_BYTES
    }

    /// Appends a delta to the journal and syncs it. The snapshot it builds on must be stored already.
    pub fn append(&self, delta: &StoredDelta) -> Result<()> {
        let path = self.journal_file();
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode_private()
                .open(&path)?;
            let mut record = encode_delta_header(delta);
            record.extend_from_slice(&delta.changes);
            f.write_all(&record)?;
            f.sync_data()
        };
        write().with_context(|| {
            format!(
                "cannot append to the last-known-good journal {}",
                path.display()
            )
        })?;
        let mut j = self.journal.lock().expect("journal lock");
        j.0 += 1;
        j.1 += delta.changes.len() as u64;
        Ok(())
    }

    /// Replaces the stored snapshot atomically and durably.
    pub fn save(&self, snap: &StoredSnapshot) -> Result<()> {
        platform::files::private_dir(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let tmp = self.dir.join("snapshot.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = platform::files::private_file(&tmp)?;
            f.write_all(&encode_header(snap))?;
            f.write_all(&snap.payload)?;
            f.sync_all()?;
            fs::rename(&tmp, self.file())?;
            // The journal's deltas are folded into this snapshot.
            match fs::remove_file(self.journal_file()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
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

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

fn encode_delta_header(d: &StoredDelta) -> Vec<u8> {
    format!(
        "{DELTA_MAGIC} {} {} {} {} {} {}\n",
        d.base_version,
        d.base_hash,
        d.version,
        d.hash,
        d.changes.len(),
        hex::encode(Sha256::digest(&d.changes))
    )
    .into_bytes()
}

/// Reads journal records up to the end or the first damaged one (whose reason is returned).
pub fn decode_journal(mut bytes: &[u8]) -> (Vec<StoredDelta>, Option<String>) {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match decode_delta(bytes) {
            Ok((d, rest)) => {
                out.push(d);
                bytes = rest;
            }
            Err(e) => {
                let at = out.len() + 1;
                return (out, Some(format!("journal record {at}: {e:#}")));
            }
        }
    }
    (out, None)
}

fn decode_delta(bytes: &[u8]) -> Result<(StoredDelta, &[u8])> {
    let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
        bail!("no header line");
    };
    let header = std::str::from_utf8(&bytes[..end]).context("header is not text")?;
    let rest = header
        .strip_prefix(DELTA_MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .context("not a journal record of this format")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let [base_version, base_hash, version, hash, len, sum] = fields[..] else {
        bail!("header has {} fields, expected 6", fields.len());
    };
    let len: usize = len.parse().context("length is not a number")?;
    let body = &bytes[end + 1..];
    if body.len() < len {
        bail!("record is {} bytes, header says {len}", body.len());
    }
    let (changes, rest) = body.split_at(len);
    if hex::encode(Sha256::digest(changes)) != sum {
        bail!("record checksum does not match");
    }
    Ok((
        StoredDelta {
            base_version: base_version
                .parse()
                .context("base version is not a number")?,
            base_hash: base_hash.to_string(),
            version: version.parse().context("version is not a number")?,
            hash: hash.to_string(),
            changes: changes.to_vec(),
        },
        rest,
    ))
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
        assert_eq!(lkg.load().unwrap().unwrap().snapshot, snap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("lkg")), 0o700);
        assert_eq!(mode(&dir.path().join("lkg/snapshot")), 0o600);
    }

    fn delta(n: u64) -> StoredDelta {
        StoredDelta {
            base_version: n - 1,
            base_hash: format!("h{}", n - 1),
            version: n,
            hash: format!("h{n}"),
            changes: format!("[{n}]").into_bytes(),
        }
    }

    #[test]
    fn journal_appends_are_read_back_and_folded_by_a_snapshot() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lkg = Lkg::open(&dir.path().join("lkg"));
        lkg.save(&snap()).unwrap();
        lkg.append(&delta(8)).unwrap();
        lkg.append(&delta(9)).unwrap();
        let stored = lkg.load().unwrap().unwrap();
        assert_eq!(stored.deltas, vec![delta(8), delta(9)]);
        assert_eq!(stored.journal_damage, None);
        let mode = fs::metadata(dir.path().join("lkg/journal"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A torn last record ends the journal before it.
        let path = dir.path().join("lkg/journal");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let stored = lkg.load().unwrap().unwrap();
        assert_eq!(stored.deltas, vec![delta(8)]);
        assert!(stored.journal_damage.unwrap().contains("record 2"));
        lkg.save(&snap()).unwrap();
        assert!(!path.exists(), "a snapshot replaces the journal");
        assert!(lkg.load().unwrap().unwrap().deltas.is_empty());
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
