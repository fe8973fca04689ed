//! A real headless browser for tests: Debian's Chromium driven over WebDriver (chromedriver, fantoccini).
//! Where Chromium or its driver is missing, [`Chrome::start`] says so and the test prints a loud
//! SKIPPED line; screenshots go to `target/test-artifacts/<test>/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// A chromedriver process and a browser session on it.
pub struct Chrome {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    artifacts: PathBuf,
}

/// The first of `names` on the `PATH` or in `/usr/bin`.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        path.split(':')
            .chain(["/usr/bin", "/usr/lib/chromium"])
            .map(|d| PathBuf::from(d).join(n))
            .find(|p| p.is_file())
    })
}

impl Chrome {
    /// [`Chrome::start`] for the test `test`, or `None` after a loud SKIPPED line naming what is missing.
    pub async fn start_or_skip(test: &str) -> Option<Chrome> {
        match Chrome::start(test).await {
            Ok(c) => Some(c),
            Err(missing) => {
                eprintln!("SKIPPED: {test}: {missing} is missing");
                None
            }
        }
    }

    /// Starts chromedriver on a free port and a headless Chromium session with a profile of its own;
    /// `Err` names what is missing.
    pub async fn start(test: &str) -> Result<Chrome, String> {
        let driver_bin =
            find(&["chromedriver"]).ok_or("chromedriver (Debian package chromium-driver)")?;
        let browser_bin =
            find(&["chromium", "chromium-browser"]).ok_or("chromium (Debian package chromium)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", driver_bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        crate::eventually(crate::PATIENCE, "chromedriver answers", || async {
            reqwest::get(&status)
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })
        .await;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": browser_bin,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1024,768", format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .map_err(|e| format!("no browser session: {e}"))?;
        let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-artifacts")
            .join(test);
        std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
        Ok(Chrome {
            client,
            driver,
            _profile: profile,
            artifacts,
        })
    }

    /// Saves a screenshot of the page as `<name>.png` among the test's artifacts.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.artifacts.join(format!("{name}.png")), png);
        }
    }

    /// The page's text once `wanted` is in it (bounded wait: pages load and redirect on their own).
    pub async fn wait_for_text(&self, wanted: &str) -> String {
        let c = &self.client;
        crate::eventually(
            crate::PATIENCE,
            &format!("the page shows {wanted:?}"),
            || async { c.source().await.ok().filter(|s| s.contains(wanted)) },
        )
        .await
    }

    /// Ends the browser session and the driver.
    pub async fn stop(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
