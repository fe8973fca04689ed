//! Driving the Docker engine and docker-compose from tests: every command has a timeout, every compose
//! project is unique and taken down (with its volumes) when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

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
}

impl Compose {
    /// A project named uniquely, with every host port left to Docker (ephemeral).
    pub fn new(repo: &Path) -> Compose {
        let project = format!("pctest{}", std::process::id());
        let env = [
            ("PORTCULLIS_ADMIN_PORTS", "8001"),
            ("PORTCULLIS_PROXY_PORTS", "8000"),
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
        }
    }

    /// `docker-compose <args>` in this project.
    pub fn compose(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let file = self.dir.join("docker-compose.yml");
        let mut all = vec!["-f", file.to_str().unwrap(), "-p", &self.project];
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
