//! Driving the Docker engine and docker-compose from tests: every command has a timeout, every compose
//! project is unique and taken down (with its volumes) when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Runs a command with a timeout; its stdout, or an error with its stderr.
pub fn run(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<String> {
    let mut cmd = Command::new("timeout");
    cmd.arg("--kill-after=5")
        .arg(format!("{}", timeout.as_secs().max(1)))
        .arg(program)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Why no Docker engine can be used here, or `None` when one answers.
pub fn engine_missing() -> Option<String> {
    if Command::new("docker").arg("--version").output().is_err() {
        return Some("no docker command".into());
    }
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        return Some("no docker-compose command".into());
    }
    match run(
        "docker",
        &["info", "--format", "{{.ServerVersion}}"],
        &[],
        Duration::from_secs(20),
    ) {
        Ok(_) => None,
        Err(e) => Some(format!("the Docker engine does not answer ({e})")),
    }
}

/// A docker-compose project of the repository's `docker-compose.yml`.
pub struct Compose {
    pub project: String,
    dir: PathBuf,
    env: Vec<(String, String)>,
    /// Override files applied over `docker-compose.yml`.
    overrides: Vec<String>,
}

impl Compose {
    /// A project named uniquely, with every host port left to Docker (ephemeral).
    pub fn new(repo: &Path) -> Compose {
        let project = format!("pctest{}", std::process::id());
        let env = [
            ("PORTCULLIS_ADMIN_PORTS", "8001"),
            ("PORTCULLIS_PROXY_PORTS", "8000"),
            ("PORTCULLIS_PROXY_TLS_PORTS", "8443"),
            ("PORTCULLIS_STATUS_PORTS", "8100"),
            ("PORTCULLIS_IDP_PORTS", "9080"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Compose {
            project,
            dir: repo.to_path_buf(),
            env,
            overrides: Vec::new(),
        }
    }

    /// The project with `file` (relative to the repository) applied over `docker-compose.yml`, more
    /// variables, and a name of its own.
    pub fn with_override(repo: &Path, file: &str, env: &[(&str, &str)]) -> Compose {
        let mut c = Compose::new(repo);
        c.project
            .push_str(&file.replace(|ch: char| !ch.is_ascii_alphanumeric(), ""));
        c.overrides.push(file.to_string());
        c.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        c
    }

    /// `docker-compose <args>` in this project.
    pub fn compose(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let files: Vec<String> = std::iter::once("docker-compose.yml")
            .chain(self.overrides.iter().map(String::as_str))
            .map(|f| self.dir.join(f).to_str().unwrap().to_string())
            .collect();
        let mut all: Vec<&str> = Vec::new();
        for f in &files {
            all.extend(["-f", f.as_str()]);
        }
        all.extend(["-p", self.project.as_str()]);
        all.extend_from_slice(args);
        run("docker-compose", &all, &self.env, timeout)
    }

    /// The containers of `service`, by name, sorted.
    pub fn containers(&self, service: &str) -> Result<Vec<String>> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let svc = format!("label=com.docker.compose.service={service}");
        let out = run(
            "docker",
            &[
                "ps",
                "-a",
                "--filter",
                &project,
                "--filter",
                &svc,
                "--format",
                "{{.Names}}",
            ],
            &[],
            Duration::from_secs(20),
        )?;
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        Ok(names)
    }

    /// The name of one of this project's networks (`cluster`, `edge`).
    pub fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    /// A container's address on one of this project's networks.
    pub fn ip(&self, container: &str, network: &str) -> Result<String> {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network(network)
        );
        let ip = run(
            "docker",
            &["inspect", "--format", &format, container],
            &[],
            Duration::from_secs(20),
        )?;
        if ip.is_empty() || ip == "<no value>" {
            bail!("{container} has no address on {network}");
        }
        Ok(ip)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.compose(
            &["down", "-v", "--remove-orphans", "-t", "5"],
            Duration::from_secs(120),
        );
    }
}

/// How long a container test waits for anything.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running compose cluster and how to reach its control plane.
pub struct Cluster {
    pub compose: Compose,
    /// The control plane's container (its address changes when it restarts).
    pub cp: String,
    pub admin_token: String,
}

impl Cluster {
    /// Calls the Admin API of the control plane `cp` names.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let Ok(ip) = self.compose.ip(&self.cp, "admin") else {
            return (0, Value::Null);
        };
        let mut r = crate::client()
            .request(method, format!("http://{ip}:8001{path}"))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        match r.send().await {
            Ok(resp) => {
                let s = resp.status().as_u16();
                (s, resp.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// The node view.
    pub async fn nodes(&self) -> Vec<Value> {
        let (_, v) = self
            .admin(reqwest::Method::GET, "/clustering/data-planes", None)
            .await;
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `n` nodes are connected and run the latest config.
    pub async fn wait_all_in_sync(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let nodes = self.nodes().await;
            let ok = nodes.len() == n
                && nodes
                    .iter()
                    .all(|x| x["status"] == "connected" && x["sync_status"] == "in_sync");
            if ok {
                return nodes;
            }
            let summary: Vec<String> = nodes
                .iter()
                .map(|x| format!("{} {} {}", x["hostname"], x["status"], x["sync_status"]))
                .collect();
            assert!(
                Instant::now() < deadline,
                "{n} nodes connected and in sync not seen within {PATIENCE:?}; last: {summary:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The URL of a container's `port` as published on the host.
    pub fn published(&self, container: &str, port: u16) -> String {
        let out = run(
            "docker",
            &["port", container, &format!("{port}/tcp")],
            &[],
            Duration::from_secs(30),
        )
        .unwrap();
        let host_port = out
            .lines()
            .find_map(|l| l.trim().rsplit_once(':').map(|(_, p)| p.to_string()))
            .unwrap_or_else(|| panic!("{container} publishes {port}: {out:?}"));
        format!("http://127.0.0.1:{host_port}")
    }

    /// The proxy URL of a data-plane container.
    pub fn proxy(&self, container: &str) -> String {
        format!(
            "http://{}:8000",
            self.compose.ip(container, "edge").unwrap()
        )
    }
}

/// A container's host name.
pub fn hostname(container: &str) -> String {
    run(
        "docker",
        &["inspect", "--format", "{{.Config.Hostname}}", container],
        &[],
        Duration::from_secs(20),
    )
    .unwrap()
}

/// The status of a GET (0 when it fails), optionally with a bearer token.
pub async fn status_of(url: &str, bearer: Option<&str>) -> u16 {
    let mut r = crate::client().get(url).timeout(Duration::from_secs(10));
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}
