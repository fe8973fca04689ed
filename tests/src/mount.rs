//! A small tmpfs mounted for one test: a disk that fills up, or turns read-only, under a real process.
//! Mounting needs privileges a machine may not grant; [`TmpMount::new`] says so and the test reports
//! itself skipped, loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
pub struct TmpMount {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TmpMount {
    /// Mounts a tmpfs of `kib` KiB on a fresh directory; `Err` says why it could not.
    pub fn new(kib: u64) -> Result<TmpMount, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().to_path_buf();
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={kib}k,mode=0755"),
            "tmpfs",
            path.to_str().unwrap(),
        ])?;
        Ok(TmpMount { path, _dir: dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the file system read-only (or writable again).
    pub fn set_read_only(&self, read_only: bool) {
        let opt = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        run(&["mount", "-o", opt, self.path.to_str().unwrap()]).expect("remount");
    }

    /// Fills the file system to the last byte with `filler`; returns its path.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0u8]);
        while f.write_all(&[0u8]).is_ok() {}
        filler
    }
}

impl Drop for TmpMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
