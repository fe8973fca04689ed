//! A real third-party OAuth 2.0 / OpenID Connect server for interop tests: django-oauth-toolkit, run by
//! `interop/dot_server.py` in the virtualenv that `scripts/interop-setup.sh` installs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The running server.
pub struct Dot {
    child: Child,
    /// `http://127.0.0.1:<port>/o`
    pub issuer: String,
    /// Client credentials by name (`gateway`, `app`, `kong`), and the user.
    pub info: Value,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The Python of the interop virtualenv (`PORTCULLIS_INTEROP_PYTHON`, else `target/interop-venv`), which
/// holds django-oauth-toolkit and the Kong client aio-kong.
pub fn interop_python() -> PathBuf {
    let python = std::env::var("PORTCULLIS_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target/interop-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/interop-setup.sh (scripts/test.sh does)",
        python.display()
    );
    python
}

/// A script of `interop/`.
pub fn interop_script(name: &str) -> PathBuf {
    workspace().join("interop").join(name)
}

impl Dot {
    /// Starts the server (opaque access tokens) and waits for its readiness line.
    pub fn start() -> Dot {
        Self::start_with(false)
    }

    /// Starts the server; with `jwt_access_tokens` it issues RS256 JWT access tokens signed with the key
    /// it publishes in its JWKS.
    pub fn start_with(jwt_access_tokens: bool) -> Dot {
        Self::launch(
            jwt_access_tokens
                .then_some("--jwt-access-tokens")
                .into_iter()
                .collect(),
        )
    }

    /// Starts the server with a client `web` for the authorization code flow whose callback is
    /// `redirect_uri`, a login page and RP-initiated logout.
    pub fn start_for_browsers(redirect_uri: &str) -> Dot {
        Self::launch(vec!["--web-redirect-uri", redirect_uri])
    }

    fn launch(args: Vec<&str>) -> Dot {
        let mut child = Command::new(interop_python())
            .arg(interop_script("dot_server.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start django-oauth-toolkit");
        let stdout = child.stdout.take().expect("stdout");
        // The server prints its readiness line within seconds (migrations on SQLite); a reader thread bounds the wait.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(90))
            .expect("django-oauth-toolkit did not start within 90 s");
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("bad readiness line {line:?}: {e}"));
        Dot {
            child,
            issuer: info["issuer"].as_str().unwrap().to_string(),
            info,
        }
    }

    /// Client id and secret of a configured client.
    pub fn client(&self, name: &str) -> (String, String) {
        let c = &self.info["clients"][name];
        (
            c["client_id"].as_str().unwrap().to_string(),
            c["client_secret"].as_str().unwrap().to_string(),
        )
    }

    /// An access token from the client-credentials grant.
    pub async fn client_credentials_token(&self, name: &str) -> String {
        let (id, secret) = self.client(name);
        let r: Value = crate::client()
            .post(format!("{}/token/", self.issuer))
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {r}"))
            .to_string()
    }

    /// Revokes a token at the server.
    pub async fn revoke(&self, name: &str, token: &str) {
        let (id, secret) = self.client(name);
        let r = crate::client()
            .post(format!("{}/revoke_token/", self.issuer))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "revoke: {}", r.status());
    }
}

impl Drop for Dot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
