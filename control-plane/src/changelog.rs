//! The change log: the entity changes of each committed version, with the content hash of the state they
//! lead to, kept for a bounded window (a number of versions and of bytes). It is stored with the
//! configuration (the record of a version is committed in the same transaction as its changes) and
//! mirrored here in memory, where the sync sessions read it: a node whose config is a version inside the
//! window is sent the changes since that version; any other node a full snapshot.

use std::collections::VecDeque;
use std::sync::Arc;

use shared::Change;

/// How much history the log keeps.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Most versions kept.
    pub versions: usize,
    /// Most bytes (of encoded changes) kept; the newest version is kept whatever its size.
    pub bytes: usize,
}

/// One committed version.
#[derive(Debug)]
pub struct LogEntry {
    pub version: u64,
    /// Content hash of the state after this version.
    pub hash: String,
    pub changes: Vec<Change>,
    /// Size of the encoded changes.
    pub bytes: usize,
}

/// Encodes a log record for the store: the hash, a newline, the changes (`shared::delta`).
pub fn encode_record(hash: &str, changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash.len() + 1);
    out.extend_from_slice(hash.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&shared::delta::encode_changes(changes));
    out
}

/// Decodes a stored log record of `version`.
pub fn decode_record(version: u64, bytes: &[u8]) -> Result<LogEntry, String> {
    let nl = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no hash line")?;
    let hash = std::str::from_utf8(&bytes[..nl]).map_err(|_| "hash is not text")?;
    let changes = shared::delta::decode_changes(&bytes[nl + 1..])?;
    Ok(LogEntry {
        version,
        hash: hash.to_string(),
        changes,
        bytes: bytes.len() - nl - 1,
    })
}

/// The in-memory window of the log.
#[derive(Debug)]
pub struct ChangeLog {
    entries: VecDeque<Arc<LogEntry>>,
    bytes: usize,
    limits: LogLimits,
}

impl ChangeLog {
    /// An empty log.
    pub fn new(limits: LogLimits) -> ChangeLog {
        ChangeLog {
            entries: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    /// Appends the newest version (the versions must follow each other) and drops what falls out of the
    /// window. Returns the oldest version still kept when something was dropped, so the store can drop
    /// the same.
    pub fn push(&mut self, entry: LogEntry) -> Option<u64> {
        let mut dropped = false;
        if self
            .entries
            .back()
            .is_some_and(|last| last.version + 1 != entry.version)
        {
            // A gap (versions committed elsewhere and not seen here): older entries cannot chain to it.
            self.entries.clear();
            self.bytes = 0;
            dropped = true;
        }
        self.bytes += entry.bytes;
        self.entries.push_back(Arc::new(entry));
        while self.entries.len() > self.limits.versions.max(1)
            || (self.bytes > self.limits.bytes && self.entries.len() > 1)
        {
            let old = self.entries.pop_front().expect("more than one entry");
            self.bytes -= old.bytes;
            dropped = true;
        }
        dropped.then(|| self.entries.front().expect("the newest is kept").version)
    }

    /// The newest `n` versions kept, newest first.
    pub fn newest(&self, n: usize) -> Vec<Arc<LogEntry>> {
        self.entries.iter().rev().take(n).cloned().collect()
    }

    /// The oldest and newest versions kept.
    pub fn span(&self) -> Option<(u64, u64)> {
        Some((self.entries.front()?.version, self.entries.back()?.version))
    }

    /// Bytes of encoded changes kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The changes that take a node running `base_version` with `base_hash` to `target`, compacted (the
    /// last change of each entity), when the log covers that span and knows the base by that hash.
    pub fn between(&self, base_version: u64, base_hash: &str, target: u64) -> Option<Vec<Change>> {
        let (oldest, newest) = self.span()?;
        if base_version < oldest || target > newest || base_version >= target {
            return None;
        }
        let at = |v: u64| &self.entries[(v - oldest) as usize];
        if at(base_version).hash != base_hash {
            return None;
        }
        let changes = (base_version + 1..=target).flat_map(|v| at(v).changes.iter().cloned());
        Some(shared::delta::compact(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Kind;
    use uuid::Uuid;

    fn entry(version: u64, bytes: usize) -> LogEntry {
        LogEntry {
            version,
            hash: format!("h{version}"),
            changes: vec![Change::Delete(
                Kind::Route,
                Uuid::from_u128(version as u128),
            )],
            bytes,
        }
    }

    #[test]
    fn window_by_versions_and_bytes() {
        let mut log = ChangeLog::new(LogLimits {
            versions: 3,
            bytes: 100,
        });
        assert_eq!(log.push(entry(1, 10)), None);
        assert_eq!(log.push(entry(2, 10)), None);
        assert_eq!(log.push(entry(3, 10)), None);
        assert_eq!(log.push(entry(4, 10)), Some(2));
        assert_eq!(log.span(), Some((2, 4)));
        assert_eq!(
            log.push(entry(5, 95)),
            Some(5),
            "bytes: only the newest fits"
        );
        assert_eq!(
            log.push(entry(6, 500)),
            Some(6),
            "the newest stays whatever its size"
        );
        assert_eq!(log.span(), Some((6, 6)));
        assert_eq!(log.push(entry(9, 1)), Some(9), "a gap starts over");
    }

    #[test]
    fn between_needs_the_base_by_version_and_hash() {
        let mut log = ChangeLog::new(LogLimits {
            versions: 10,
            bytes: 1000,
        });
        for v in 1..=5 {
            log.push(entry(v, 1));
        }
        assert_eq!(log.between(2, "h2", 5).map(|c| c.len()), Some(3));
        assert_eq!(log.between(2, "h2", 3).map(|c| c.len()), Some(1));
        assert_eq!(log.between(2, "other", 5), None, "a base with another hash");
        assert_eq!(log.between(0, "", 5), None, "before the window");
        assert_eq!(log.between(5, "h5", 5), None, "nothing to send");
        assert_eq!(log.between(2, "h2", 6), None, "beyond the log");
    }

    #[test]
    fn records_round_trip() {
        let e = entry(7, 0);
        let bytes = encode_record(&e.hash, &e.changes);
        let back = decode_record(7, &bytes).unwrap();
        assert_eq!((back.hash, back.changes), (e.hash, e.changes));
        assert!(decode_record(7, b"no newline").is_err());
        assert!(decode_record(7, b"h\nnot json").is_err());
    }
}
