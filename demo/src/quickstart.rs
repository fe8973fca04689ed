//! Starts the local cluster, configures it through the Admin API and describes the steps to try.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::echo::EchoUpstream;
use crate::idp::{DemoIdp, IdpSetup};

/// Where everything listens; port 0 picks a free port.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "demo",
    about = "Portcullis quickstart: a local cluster with a demo identity provider and upstream"
)]
pub struct Options {
    /// Where the control plane and the data planes keep their data.
    #[arg(long, env = "PORTCULLIS_DEMO_DIR", default_value = "./demo-data")]
    pub data_dir: PathBuf,
    /// Start from scratch: delete the data dirs first.
    #[arg(long)]
    pub fresh: bool,
    /// Admin API port.
    #[arg(long, default_value_t = 8001)]
    pub admin_port: u16,
    /// Operator console port.
    #[arg(long, default_value_t = 8002)]
    pub console_port: u16,
    /// Cluster port.
    #[arg(long, default_value_t = 8005)]
    pub cluster_port: u16,
    /// Proxy ports of the two data planes.
    #[arg(long, value_delimiter = ',', default_value = "8000,8010")]
    pub proxy_ports: Vec<u16>,
    /// Status ports of the two data planes.
    #[arg(long, value_delimiter = ',', default_value = "8100,8110")]
    pub status_ports: Vec<u16>,
    /// Port of the demo identity provider.
    #[arg(long, default_value_t = 9080)]
    pub idp_port: u16,
    /// Port of the echo upstream.
    #[arg(long, default_value_t = 9090)]
    pub upstream_port: u16,
}

/// How to authenticate a step's request.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// `Authorization: Bearer $TOKEN` (the token from the first step).
    Token,
    /// `--user name:password`.
    Basic(String, String),
    /// The Admin API's token, as `Kong-Admin-Token`.
    Admin(String),
}

/// One thing to try, printed as a curl command and executable by tests.
#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    pub method: &'static str,
    pub url: String,
    pub auth: Auth,
    /// Form fields of the body.
    pub form: Vec<(String, String)>,
    /// Expected HTTP status.
    pub expect: u16,
    /// A string the response body must contain.
    pub expect_body: Option<String>,
    /// Keep `access_token` from the JSON answer as `$TOKEN`.
    pub saves_token: bool,
}

impl Step {
    /// The curl command for this step.
    pub fn curl(&self) -> String {
        let mut cmd = String::from("curl -s");
        if self.method != "GET" && self.form.is_empty() {
            cmd.push_str(&format!(" -X {}", self.method));
        }
        match &self.auth {
            Auth::None => {}
            Auth::Token => cmd.push_str(" -H \"Authorization: Bearer $TOKEN\""),
            Auth::Basic(u, p) => cmd.push_str(&format!(" --user {u}:{p}")),
            Auth::Admin(t) => cmd.push_str(&format!(" -H \"Kong-Admin-Token: {t}\"")),
        }
        for (k, v) in &self.form {
            cmd.push_str(&format!(" -d {k}={}", v.replace(' ', "%20")));
        }
        if self.expect != 200 {
            cmd.push_str(" -i");
        }
        cmd.push_str(&format!(" {}", self.url));
        if self.saves_token {
            cmd = format!(
                "TOKEN=$({cmd} | sed -E 's/.*\"access_token\": *\"([^\"]+)\".*/\\1/'); echo $TOKEN"
            );
        }
        cmd
    }
}

/// A running quickstart.
pub struct Running {
    pub admin_url: String,
    /// The token of the Admin API and of the console's sign-in.
    pub admin_token: String,
    pub console_url: String,
    pub cluster_addr: SocketAddr,
    pub proxy_urls: Vec<String>,
    pub status_urls: Vec<String>,
    pub idp: DemoIdp,
    pub steps: Vec<Step>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<Result<()>>>,
}

async fn bind(port: u16) -> Result<TcpListener> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpListener::bind(addr).await.with_context(|| {
        format!("port {port} is in use; stop what uses it or choose another port (see --help)")
    })
}

/// The Admin API's token, made on the first run and kept in the data dir.
fn admin_token(data_dir: &std::path::Path) -> Result<(PathBuf, String)> {
    let path = data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok((path, t.trim().to_string()));
    }
    let token = hex::encode(rand::random::<[u8; 16]>());
    platform::files::write_private(&path, &token)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, token))
}

/// A client of the Admin API that presents its token.
fn admin_client(token: &str) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("kong-admin-token", token.parse()?);
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()?)
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The declarative configuration of the demo: one route per plugin, as Kong's how-tos set them up, and
/// a route that signs people in through the browser (`/web`), its sessions sealed with `session_secret`.
pub fn demo_config(idp: &str, upstream: &str, session_secret: &str) -> Value {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("kong:kong-secret");
    json!({
        "_format_version": "3.0",
        "services": [
            {
                "name": "introspection-demo",
                "url": format!("{upstream}/anything"),
                "routes": [{"name": "introspection-route", "paths": ["/introspection"]}],
                "plugins": [{"name": "oauth2-introspection", "config": {
                    "introspection_url": format!("{idp}/introspect"),
                    "authorization_value": format!("Basic {basic}"),
                    "consumer_by": "client_id",
                    "ttl": 30
                }}]
            },
            {
                "name": "example-service",
                "url": format!("{upstream}/anything"),
                "routes": [{"name": "example-route", "paths": ["/anything"]}],
                "plugins": [{"name": "openid-connect", "config": {
                    "issuer": idp,
                    "client_id": ["kong"],
                    "client_secret": ["kong-secret"],
                    "client_auth": ["client_secret_post"],
                    "auth_methods": ["introspection", "password"],
                    "bearer_token_param_type": ["header"]
                }}]
            },
            {
                "name": "sign-in-demo",
                "url": format!("{upstream}/anything"),
                "routes": [{"name": "sign-in-route", "paths": ["/web"]}],
                "plugins": [{"name": "openid-connect", "config": {
                    "issuer": idp,
                    "client_id": ["app"],
                    "client_secret": ["app-secret"],
                    "auth_methods": ["authorization_code", "session"],
                    "session_secret": session_secret,
                    "logout_uri_suffix": "/logout",
                    "logout_methods": ["GET", "POST"],
                    "backchannel_logout_uri_suffix": "/backchannel-logout",
                    "upstream_headers_claims": ["preferred_username"],
                    "upstream_headers_names": ["x-user"]
                }}]
            }
        ],
        "consumers": [{"username": "app", "custom_id": "app"}]
    })
}

/// Starts everything and returns once every data plane runs the demo configuration.
pub async fn start(opts: &Options) -> Result<Running> {
    if opts.proxy_ports.len() != 2 || opts.status_ports.len() != 2 {
        bail!("--proxy-ports and --status-ports take two ports each");
    }
    if opts.fresh && opts.data_dir.exists() {
        std::fs::remove_dir_all(&opts.data_dir)
            .with_context(|| format!("cannot remove {}", opts.data_dir.display()))?;
    }
    std::fs::create_dir_all(&opts.data_dir)?;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();

    let idp = DemoIdp::start(bind(opts.idp_port).await?, IdpSetup::default()).await;
    let upstream = EchoUpstream::start_on(bind(opts.upstream_port).await?).await;

    let admin = bind(opts.admin_port).await?;
    let cluster = bind(opts.cluster_port).await?;
    let manager = bind(opts.console_port).await?;
    let admin_url = format!("http://{}", admin.local_addr()?);
    let console_url = format!("http://{}", manager.local_addr()?);
    let cluster_addr = cluster.local_addr()?;
    let (token_file, token) = admin_token(&opts.data_dir)?;
    let cp_config = control_plane::Config {
        data_dir: opts.data_dir.join("control-plane"),
        admin_listen: admin.local_addr()?,
        cluster_listen: cluster_addr,
        cluster_hostnames: vec![],
        admin_token_file: Some(token_file),
        log_format: control_plane::LogFormat::Text,
        heartbeat_interval_ms: 1000,
        heartbeat_timeout_ms: 3000,
        cert_lifetime_secs: 86_400,
        ..control_plane::Config::defaults()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    stops.push(stop);
    tasks.push(tokio::spawn(control_plane::run(
        cp_config,
        control_plane::Listeners {
            admin,
            cluster,
            manager: Some(manager),
        },
        async move {
            let _ = stopped.await;
        },
    )));
    let c = admin_client(&token)?;
    wait_for("the control plane", || async {
        c.get(format!("{admin_url}/status")).send().await.is_ok()
    })
    .await?;

    let mut proxy_urls = Vec::new();
    let mut status_urls = Vec::new();
    for i in 0..2 {
        let data_dir = opts.data_dir.join(format!("data-plane-{}", i + 1));
        let paired = data_dir.join("identity/node-id").exists();
        let pairing_token = if paired {
            None
        } else {
            let r: Value = c
                .post(format!("{admin_url}/clustering/pairing-tokens"))
                .json(&json!({"ttl": 300, "labels": {"demo": "true"}}))
                .send()
                .await?
                .json()
                .await?;
            Some(
                r["token"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no pairing token in {r}"))?
                    .to_string(),
            )
        };
        let proxy = bind(opts.proxy_ports[i]).await?;
        let status = bind(opts.status_ports[i]).await?;
        proxy_urls.push(format!("http://{}", proxy.local_addr()?));
        status_urls.push(format!("http://{}", status.local_addr()?));
        let dp_config = data_plane::Config {
            data_dir,
            control_plane: Some(cluster_addr.to_string()),
            pairing_token,
            proxy_listen: proxy.local_addr()?,
            status_listen: status.local_addr()?,
            node_name: Some(format!("demo-node-{}", i + 1)),
            plugins: vec!["bundled".into()],
            log_format: data_plane::LogFormat::Text,
            request_id_header: "x-request-id".into(),
            heartbeat_interval_ms: 1000,
            heartbeat_timeout_ms: 3000,
            max_config_bytes: 64 * 1024 * 1024,
            cache_max_entries: 10_000,
            idp_ca_file: None,
            upstream_ca_file: None,
            drain_timeout_ms: 5_000,
            ..data_plane::Config::defaults()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(data_plane::run(
            dp_config,
            data_plane::Listeners {
                proxy,
                proxy_tls: None,
                status,
            },
            async move {
                let _ = stopped.await;
            },
        )));
    }

    // The demo provider ends sessions of the sign-in route through the first node.
    idp.set_backchannel_logout_uri("app", &format!("{}/web/backchannel-logout", proxy_urls[0]));

    // Configure through the Admin API: one declarative document, applied atomically (idempotent on reruns).
    let r = c
        .post(format!("{admin_url}/config"))
        .json(&demo_config(
            &idp.issuer,
            &upstream.url,
            &hex::encode(rand::random::<[u8; 32]>()),
        ))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("the demo configuration was refused: {}", r.text().await?);
    }
    let version = c
        .get(format!("{admin_url}/status"))
        .send()
        .await?
        .json::<Value>()
        .await?["config_version"]
        .as_u64()
        .unwrap_or(0);
    wait_for("both data planes to apply the configuration", || async {
        let Ok(r) = c
            .get(format!("{admin_url}/clustering/data-planes"))
            .send()
            .await
        else {
            return false;
        };
        let Ok(v) = r.json::<Value>().await else {
            return false;
        };
        let nodes = v["data"].as_array().cloned().unwrap_or_default();
        v["latest_config"]["version"].as_u64() == Some(version)
            && nodes
                .iter()
                .filter(|n| n["status"] == "connected" && n["sync_status"] == "in_sync")
                .count()
                >= 2
    })
    .await?;

    let idp_url = idp.issuer.clone();
    let steps = vec![
        Step {
            title: "Get an access token from the demo identity provider (client-credentials grant)".into(),
            method: "POST",
            url: format!("{idp_url}/token"),
            auth: Auth::Basic("app".into(), "app-secret".into()),
            form: vec![("grant_type".into(), "client_credentials".into()), ("scope".into(), "read".into())],
            expect: 200,
            expect_body: Some("access_token".into()),
            saves_token: true,
        },
        Step {
            title: "Call the route protected by oauth2-introspection with it (X-Credential-* headers are in the echo)".into(),
            method: "GET",
            url: format!("{}/introspection", proxy_urls[0]),
            auth: Auth::Token,
            form: vec![],
            expect: 200,
            expect_body: Some("x-credential-client-id".into()),
            saves_token: false,
        },
        Step {
            title: "Call it without a token: 401".into(),
            method: "GET",
            url: format!("{}/introspection", proxy_urls[0]),
            auth: Auth::None,
            form: vec![],
            expect: 401,
            expect_body: Some("The access token is missing".into()),
            saves_token: false,
        },
        Step {
            title: "openid-connect with the password grant: the gateway gets a token for alex and forwards it".into(),
            method: "GET",
            url: format!("{}/anything", proxy_urls[0]),
            auth: Auth::Basic("alex".into(), "doe".into()),
            form: vec![],
            expect: 200,
            expect_body: Some("Bearer ".into()),
            saves_token: false,
        },
        Step {
            title: "openid-connect with the token from the first step, on the second data plane (introspected)".into(),
            method: "GET",
            url: format!("{}/anything", proxy_urls[1]),
            auth: Auth::Token,
            form: vec![],
            expect: 200,
            expect_body: Some("x-credential-identifier".into()),
            saves_token: false,
        },
        Step {
            title: "Wrong password: 401".into(),
            method: "GET",
            url: format!("{}/anything", proxy_urls[1]),
            auth: Auth::Basic("alex".into(), "wrong".into()),
            form: vec![],
            expect: 401,
            expect_body: Some("Unauthorized".into()),
            saves_token: false,
        },
        Step {
            title: "The sign-in route asked by a script, not a browser (a browser is sent to sign in): 401".into(),
            method: "GET",
            url: format!("{}/web", proxy_urls[1]),
            auth: Auth::None,
            form: vec![],
            expect: 401,
            expect_body: Some("Unauthorized".into()),
            saves_token: false,
        },
        Step {
            title: "The data planes as the control plane sees them".into(),
            method: "GET",
            url: format!("{admin_url}/clustering/data-planes"),
            auth: Auth::Admin(token.clone()),
            form: vec![],
            expect: 200,
            expect_body: Some("in_sync".into()),
            saves_token: false,
        },
    ];
    Ok(Running {
        admin_url,
        admin_token: token,
        console_url,
        cluster_addr,
        proxy_urls,
        status_urls,
        idp,
        steps,
        stops,
        tasks,
    })
}

impl Running {
    /// Stops every component and waits for them.
    pub async fn stop(mut self) -> Result<()> {
        // Data planes first, then the control plane.
        for s in self.stops.drain(..).rev() {
            let _ = s.send(());
        }
        for t in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .context("a component did not stop in time")???;
        }
        Ok(())
    }

    /// The text printed after start-up.
    pub fn banner(&self) -> String {
        let mut out = String::new();
        out.push_str("\nPortcullis is running:\n");
        out.push_str(&format!(
            "  control plane   admin API {}  cluster (mTLS gRPC) {}\n",
            self.admin_url, self.cluster_addr
        ));
        out.push_str(&format!(
            "  console         {}  (sign in with the admin token {})\n",
            self.console_url, self.admin_token
        ));
        for (i, (p, s)) in self.proxy_urls.iter().zip(&self.status_urls).enumerate() {
            out.push_str(&format!(
                "  data plane {}    proxy {p}  status {s}/status  metrics {s}/metrics\n",
                i + 1
            ));
        }
        out.push_str(&format!("  demo identity provider {}  (development only: users alex/doe, bob/builder; clients kong/kong-secret, app/app-secret)\n", self.idp.issuer));
        out.push_str("\nTry it:\n");
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!("\n# {}. {}\n{}\n", i + 1, s.title, s.curl()));
        }
        out.push_str(&format!(
            "\n# Sign in through a browser: open {}/web and sign in as alex / doe (the echo shows x-user);\n# {}/web/logout signs out.\n",
            self.proxy_urls[0], self.proxy_urls[0]
        ));
        out.push_str("\nCtrl-C stops everything; run again to resume from the stored state, or with --fresh to start over.\n");
        out
    }
}
