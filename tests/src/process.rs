//! Real `control-plane` and `data-plane` processes for tests that need kill -9, restarts from disk, or a
//! frozen peer. Processes log JSON to a file; readiness is read from their log lines, never slept for.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{eventually, PATIENCE};

/// The path of a workspace binary built next to the running test (`cargo build --bins` puts it there).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` before the tests",
        path.display()
    );
    path
}

/// A running process that is killed when dropped.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `name` with `args`, logging JSON to `log`.
    pub fn spawn(name: &str, args: &[&str], log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let child = Command::new(bin(name))
            .args(args)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn");
        Proc {
            child,
            log: log.to_path_buf(),
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line whose message is `message` and returns its fields.
    pub async fn wait_log(&self, message: &str) -> Value {
        let log = self.log.clone();
        eventually(
            PATIENCE,
            &format!("log line '{message}' in {}", log.display()),
            || {
                let log = log.clone();
                async move {
                    let text = std::fs::read_to_string(&log).ok()?;
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                        .find(|v| v["fields"]["message"] == message)
                        .map(|v| v["fields"].clone())
                }
            },
        )
        .await
    }

    /// Sends a signal (`KILL`, `TERM`, `STOP`, `CONT`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, patience: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process did not exit within {patience:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
        self.kill9();
    }
}
