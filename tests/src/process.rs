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
        Proc::spawn_wrapped(&[], name, args, log)
    }

    /// Starts `name` with `args` under a wrapper command (`prlimit --nofile=64:64`, say).
    pub fn spawn_wrapped(wrapper: &[&str], name: &str, args: &[&str], log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin(name));
                c
            }
            None => Command::new(bin(name)),
        };
        let child = cmd
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

/// A control-plane process and its addresses.
pub struct Cp {
    pub proc: Proc,
    /// `http://…` of the admin API.
    pub admin: String,
    /// `host:port` of the cluster listener.
    pub cluster: String,
}

/// Starts a control plane with its data in `dir/cp`, short heartbeats, logging to `dir/log`.
pub async fn start_cp(dir: &Path, cluster_listen: &str, log: &str) -> Cp {
    start_cp_with(dir, cluster_listen, log, &[]).await
}

/// [`start_cp`] with more flags.
pub async fn start_cp_with(dir: &Path, cluster_listen: &str, log: &str, extra: &[&str]) -> Cp {
    let data = dir.join("cp");
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--cluster-listen",
        cluster_listen,
        "--heartbeat-interval-ms",
        "200",
        "--heartbeat-timeout-ms",
        "1500",
        // The console's default port is one for the whole machine; these tests run side by side.
        "--manager-listen",
        "off",
    ];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("control-plane", &args, &dir.join(log));
    let started = proc.wait_log("control plane started").await;
    Cp {
        admin: format!("http://{}", started["admin"].as_str().unwrap()),
        cluster: started["cluster"].as_str().unwrap().to_string(),
        proc,
    }
}

/// How to start a data-plane process.
pub struct DpLaunch<'a> {
    pub data_dir: PathBuf,
    /// The control plane's cluster address.
    pub control_plane: &'a str,
    pub token: Option<&'a str>,
    pub log: PathBuf,
    /// A command the binary runs under (empty for none).
    pub wrapper: Vec<&'a str>,
}

/// A data-plane process and its addresses.
pub struct Dp {
    pub proc: Proc,
    /// `http://…` of the proxy listener.
    pub proxy: String,
    /// `http://…` of the status listener.
    pub status: String,
}

impl DpLaunch<'_> {
    /// Starts the node with short heartbeats and waits until it listens.
    pub async fn start(self) -> Dp {
        let data = self.data_dir.to_str().unwrap().to_string();
        let mut args = vec![
            "--data-dir",
            &data,
            "--control-plane",
            self.control_plane,
            "--proxy-listen",
            "127.0.0.1:0",
            "--proxy-listen-tls",
            "127.0.0.1:0",
            "--status-listen",
            "127.0.0.1:0",
            "--heartbeat-interval-ms",
            "200",
            "--heartbeat-timeout-ms",
            "1500",
        ];
        if let Some(t) = self.token {
            args.extend(["--pairing-token", t]);
        }
        let proc = Proc::spawn_wrapped(&self.wrapper, "data-plane", &args, &self.log);
        let started = proc.wait_log("data plane started").await;
        Dp {
            proxy: format!("http://{}", started["proxy"].as_str().unwrap()),
            status: format!("http://{}", started["status"].as_str().unwrap()),
            proc,
        }
    }
}

/// Starts a data plane with its data in `dir/dp`; returns the process, proxy URL and status URL.
pub async fn start_dp(
    dir: &Path,
    cp: &str,
    token: Option<&str>,
    log: &str,
) -> (Proc, String, String) {
    let dp = DpLaunch {
        data_dir: dir.join("dp"),
        control_plane: cp,
        token,
        log: dir.join(log),
        wrapper: Vec::new(),
    }
    .start()
    .await;
    (dp.proc, dp.proxy, dp.status)
}

/// POST expecting a 2xx; returns the JSON answer.
pub async fn post(admin: &str, path: &str, body: Value) -> Value {
    let r = crate::client()
        .post(format!("{admin}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    r.json().await.unwrap()
}

/// The config version a node serves, 0 when it does not answer.
pub async fn dp_version(status: &str) -> u64 {
    match crate::client().get(format!("{status}/status")).send().await {
        Ok(r) => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["config"]["version"].as_u64())
            .unwrap_or(0),
        Err(_) => 0,
    }
}
