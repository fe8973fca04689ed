//! A real headless browser for tests, driven over WebDriver (fantoccini): Debian's Chromium with
//! chromedriver, or Debian's Firefox ESR with geckodriver (built from crates.io by the test command).
//! Where the browser or its driver is missing, [`Headless::start`] says so and the test prints a loud
//! SKIPPED line; screenshots go to `target/test-artifacts/<test>/` (`<test>_firefox/` for Firefox).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// Which browser a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

impl Engine {
    /// The browser's binary and its WebDriver's, or what is missing.
    fn binaries(self) -> Result<(PathBuf, PathBuf), String> {
        match self {
            Engine::Chromium => Ok((
                find(&["chromium", "chromium-browser"])
                    .ok_or("chromium (Debian package chromium)")?,
                find(&["chromedriver"]).ok_or("chromedriver (Debian package chromium-driver)")?,
            )),
            Engine::Firefox => Ok((
                find(&["firefox-esr", "firefox"]).ok_or("firefox (Debian package firefox-esr)")?,
                find(&["geckodriver"]).ok_or("geckodriver (cargo install geckodriver)")?,
            )),
        }
    }

    /// The directory of `test`'s screenshots: Chromium's under the test's name, Firefox's beside them.
    fn artifacts(self, test: &str) -> String {
        match self {
            Engine::Chromium => test.to_string(),
            Engine::Firefox => format!("{test}_firefox"),
        }
    }

    /// The driver's arguments to listen on `port`.
    fn driver_args(self, port: u16) -> Vec<String> {
        match self {
            Engine::Chromium => vec![format!("--port={port}")],
            // Marionette and WebDriver BiDi on ports of the system's choosing, so drivers never collide.
            Engine::Firefox => vec![
                format!("--port={port}"),
                "--marionette-port=0".into(),
                "--websocket-port=0".into(),
            ],
        }
    }

    /// Capabilities for a headless session at 1024×768 with a profile in `profile`.
    fn capabilities(self, browser: &Path, profile: &Path) -> serde_json::Map<String, Value> {
        let mut caps = serde_json::Map::new();
        match self {
            Engine::Chromium => caps.insert(
                "goog:chromeOptions".into(),
                json!({
                    "binary": browser,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--window-size=1024,768", format!("--user-data-dir={}", profile.display())],
                }),
            ),
            Engine::Firefox => caps.insert(
                "moz:firefoxOptions".into(),
                json!({
                    "binary": browser,
                    "args": ["-headless", "--width=1024", "--height=768", "-profile", profile],
                }),
            ),
        };
        caps
    }
}

/// A WebDriver process and a browser session on it.
pub struct Headless {
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

impl Headless {
    /// [`Headless::start`] for the test `test`, or `None` after a loud SKIPPED line naming what is
    /// missing.
    pub async fn start_or_skip(test: &str, engine: Engine) -> Option<Headless> {
        match Headless::start(test, engine).await {
            Ok(c) => Some(c),
            Err(missing) => {
                eprintln!("SKIPPED: {test} ({engine:?}): {missing} is missing");
                None
            }
        }
    }

    /// Starts the engine's WebDriver on a free port and a headless session with a profile of its own;
    /// `Err` names what is missing.
    pub async fn start(test: &str, engine: Engine) -> Result<Headless, String> {
        let (browser_bin, driver_bin) = engine.binaries()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let driver = Command::new(&driver_bin)
            .args(engine.driver_args(port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", driver_bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        crate::eventually(crate::PATIENCE, "the WebDriver answers", || async {
            reqwest::get(&status)
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })
        .await;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(engine.capabilities(&browser_bin, profile.path()))
            .connect(&url)
            .await
            .map_err(|e| format!("no browser session: {e}"))?;
        let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-artifacts")
            .join(engine.artifacts(test));
        std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
        Ok(Headless {
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
