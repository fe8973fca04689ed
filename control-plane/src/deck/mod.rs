//! `control-plane config`: decK's everyday verbs against a running control plane's Admin API, on the
//! same `kong.yaml` files decK reads.
//!
//! - `dump` writes the configuration (`GET /config`) to a file; with select tags, only the entities that
//!   carry them, flattened to the top level, and the tags in `_info.select_tags`.
//! - `diff` asks the control plane what the file would change (`POST /config?dry_run=1`) and prints it
//!   entity by entity.
//! - `sync` applies the file (`POST /config`): creates, updates and deletes so the configuration is the
//!   file's, atomically. With select tags, only entities carrying them are the file's to manage: the
//!   file's entities get the tags, and the stored entities without them are kept as they are.
//! - `validate` checks the file offline with the parser `POST /config` uses, or with `--online` against
//!   the control plane: each entity through `/schemas/{entity}/validate`, then the whole file as a dry
//!   run (references, unique names, stored secrets).

mod documents;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::Value;
use shared::ConfigState;

use crate::admin::declarative::{build_state, Document};
use crate::admin::BodyFormat;

/// `control-plane config …`.
#[derive(Debug, Parser)]
#[command(
    name = "control-plane config",
    bin_name = "control-plane config",
    about = "dump, diff, sync or validate a decK file against a control plane"
)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub verb: Verb,
    /// The control plane's Admin API.
    #[arg(
        long,
        env = "PORTCULLIS_ADMIN_URL",
        default_value = "http://127.0.0.1:8001",
        global = true
    )]
    pub admin_url: String,
    /// File holding the admin token, when the Admin API requires one.
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// Manage only the entities carrying this tag (repeatable; added to the file's `_info.select_tags`).
    #[arg(long = "select-tag", global = true)]
    pub select_tags: Vec<String>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Writes the configuration to a file (YAML, or JSON for a `.json` name; `-` for standard output).
    Dump {
        #[arg(short = 'o', long, default_value = "kong.yaml")]
        output: PathBuf,
    },
    /// Prints what syncing the file would create, update and delete.
    Diff {
        #[arg(default_value = "kong.yaml")]
        file: PathBuf,
        /// Exit with status 2 when there are changes.
        #[arg(long)]
        non_zero_exit_code: bool,
    },
    /// Makes the configuration the file's, atomically.
    Sync {
        #[arg(default_value = "kong.yaml")]
        file: PathBuf,
    },
    /// Checks the file, offline or (`--online`) against the control plane.
    Validate {
        #[arg(default_value = "kong.yaml")]
        file: PathBuf,
        #[arg(long)]
        online: bool,
    },
}

/// What a verb reports: the text to print and the exit status.
pub struct Outcome {
    pub text: String,
    pub status: i32,
}

/// Runs one verb.
pub async fn run(args: &ConfigArgs) -> Result<Outcome> {
    let client = AdminClient::new(args)?;
    let ok = |text: String| Outcome { text, status: 0 };
    match &args.verb {
        Verb::Dump { output } => {
            let doc = dump(&client, &args.select_tags).await?;
            let text = if output.extension().is_some_and(|e| e == "json") {
                serde_json::to_string_pretty(&doc)? + "\n"
            } else {
                serde_yaml::to_string(&doc)?
            };
            if output == Path::new("-") {
                return Ok(ok(text));
            }
            std::fs::write(output, text)
                .with_context(|| format!("cannot write {}", output.display()))?;
            Ok(ok(format!("wrote {}", output.display())))
        }
        Verb::Diff {
            file,
            non_zero_exit_code,
        } => {
            let doc = desired(&client, file, &args.select_tags).await?;
            let report = client.post_config(&doc, true).await?;
            let changed = report["changes"].as_array().is_some_and(|c| !c.is_empty());
            Ok(Outcome {
                text: describe(&report),
                status: if changed && *non_zero_exit_code { 2 } else { 0 },
            })
        }
        Verb::Sync { file } => {
            let doc = desired(&client, file, &args.select_tags).await?;
            let report = client.post_config(&doc, true).await?;
            if report["changes"].as_array().is_some_and(|c| !c.is_empty()) {
                client.post_config(&doc, false).await?;
            }
            Ok(ok(describe(&report)))
        }
        Verb::Validate { file, online } => {
            let doc = read_file(file)?;
            if *online {
                return validate_online(&client, file, &doc).await;
            }
            validate_offline(file, &doc)
        }
    }
}

/// The configuration as a file shows it; with select tags, only the entities carrying them.
async fn dump(client: &AdminClient, select: &[String]) -> Result<Value> {
    let export = client.get_config().await?;
    if select.is_empty() {
        return Ok(export);
    }
    let mut doc = documents::filter(&documents::flatten(&export), |e| {
        documents::has_tags(e, select)
    });
    doc["_info"] = serde_json::json!({ "select_tags": select });
    Ok(doc)
}

/// The document to post for `file`: the file itself, or with select tags, the file's entities tagged and
/// the stored entities that do not carry the tags.
async fn desired(client: &AdminClient, file: &Path, flags: &[String]) -> Result<Value> {
    let mut doc = read_file(file)?;
    let mut select = documents::select_tags_of(&doc);
    select.extend(
        flags
            .iter()
            .filter(|t| !select.contains(t))
            .cloned()
            .collect::<Vec<_>>(),
    );
    if select.is_empty() {
        return Ok(doc);
    }
    documents::tag_all(&mut doc, &select);
    let stored = documents::flatten(&client.get_config().await?);
    let others = documents::filter(&stored, |e| !documents::has_tags(e, &select));
    documents::merge(&mut doc, &others);
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("_info");
    }
    Ok(doc)
}

fn read_file(file: &Path) -> Result<Value> {
    let bytes = if file == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    serde_yaml::from_slice(&bytes)
        .with_context(|| format!("{} is not YAML or JSON", file.display()))
}

/// Whether a message is about a secret a dump shows redacted, which only the control plane can restore.
fn about_redacted_secret(message: &str) -> bool {
    message.contains("redaction placeholder")
}

fn validate_offline(file: &Path, doc: &Value) -> Result<Outcome> {
    let bytes = serde_json::to_vec(doc)?;
    let parsed = Document::from_body(&bytes, BodyFormat::Json)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let Err(errors) = build_state(&parsed, &ConfigState::default()) else {
        return Ok(Outcome {
            text: format!("{}: valid", file.display()),
            status: 0,
        });
    };
    let (notes, problems): (Vec<_>, Vec<_>) =
        errors.iter().partition(|(_, m)| about_redacted_secret(m));
    let mut text: Vec<String> = problems
        .iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect();
    if errors.omitted() > 0 {
        text.push(format!("and {} more errors", errors.omitted()));
    }
    for (path, _) in &notes {
        text.push(format!(
            "note: {path} is redacted; `validate --online` and `sync` keep the stored secret"
        ));
    }
    let failed = !problems.is_empty() || errors.omitted() > 0;
    if failed {
        text.insert(0, format!("{}: invalid", file.display()));
    } else {
        text.insert(0, format!("{}: valid", file.display()));
    }
    Ok(Outcome {
        text: text.join("\n"),
        status: if failed { 1 } else { 0 },
    })
}

/// Checks every entity of the file against the control plane's schemas (`/schemas/{entity}/validate`,
/// each entity on its own), then the whole file as an import would take it (a dry run: references,
/// unique names, stored secrets).
async fn validate_online(client: &AdminClient, file: &Path, doc: &Value) -> Result<Outcome> {
    let flat = documents::flatten(doc);
    let mut problems = Vec::new();
    for list in documents::LISTS {
        // Memberships have no schema endpoint; they and a group's `consumers` are references, which
        // the dry run below checks.
        if !shared::Kind::from_collection(list).is_some_and(|k| k.has_endpoints()) {
            continue;
        }
        for entity in flat[*list].as_array().into_iter().flatten() {
            let mut entity = entity.clone();
            if *list == "consumer_groups" {
                entity.as_object_mut().map(|o| o.remove("consumers"));
            }
            let entity = &entity;
            let errors = client.validate_entity(list, entity).await?;
            if let Some(errors) = errors {
                let kind =
                    shared::Kind::from_collection(list).map_or(*list, shared::Kind::singular);
                let name = ["name", "username", "target", "id"]
                    .into_iter()
                    .find_map(|k| entity.get(k).and_then(Value::as_str))
                    .unwrap_or("(unnamed)");
                problems.push(format!("{kind} {name}: {errors}"));
            }
        }
    }
    if problems.is_empty() {
        if let Err(e) = client.post_config(doc, true).await {
            problems.push(format!("{e:#}"));
        }
    }
    let verdict = if problems.is_empty() {
        "valid"
    } else {
        "invalid"
    };
    problems.insert(0, format!("{}: {verdict}", file.display()));
    Ok(Outcome {
        text: problems.join("\n"),
        status: if verdict == "valid" { 0 } else { 1 },
    })
}

/// A dry run's report as decK prints a diff.
fn describe(report: &Value) -> String {
    let mut lines = Vec::new();
    for c in report["changes"].as_array().into_iter().flatten() {
        let entity = c["entity"].as_str().unwrap_or_default();
        let singular: &str = match shared::Kind::from_collection(entity) {
            Some(kind) => kind.singular(),
            None => entity,
        };
        let verb = match c["action"].as_str() {
            Some("create") => "creating",
            Some("update") => "updating",
            _ => "deleting",
        };
        let mut line = format!(
            "{verb} {singular} {}",
            c["name"].as_str().unwrap_or_default()
        );
        let fields: Vec<&str> = c["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !fields.is_empty() {
            line.push_str(&format!(" ({})", fields.join(", ")));
        }
        lines.push(line);
    }
    let s = &report["summary"];
    lines.push(format!(
        "Summary:\n  Created: {}\n  Updated: {}\n  Deleted: {}",
        s["created"], s["updated"], s["deleted"]
    ));
    lines.join("\n")
}

/// The Admin API, with the admin token when one is given.
struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    fn new(args: &ConfigArgs) -> Result<AdminClient> {
        let token = match &args.admin_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read admin token file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(AdminClient {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            base: args.admin_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn get_config(&self) -> Result<Value> {
        let r = self
            .request(reqwest::Method::GET, "/config?format=json")
            .send()
            .await
            .with_context(|| format!("cannot reach the Admin API at {}", self.base))?;
        answer(r).await
    }

    /// The control plane's verdict on one entity of `collection`: `None` when valid, else its message.
    async fn validate_entity(&self, collection: &str, entity: &Value) -> Result<Option<String>> {
        let r = self
            .request(
                reqwest::Method::POST,
                &format!("/schemas/{collection}/validate"),
            )
            .json(entity)
            .send()
            .await
            .with_context(|| format!("cannot reach the Admin API at {}", self.base))?;
        if r.status().is_success() {
            return Ok(None);
        }
        if r.status() != reqwest::StatusCode::BAD_REQUEST {
            // Anything but a verdict (401, 404, 5xx) is the control plane's error.
            return answer(r).await.map(|_| None);
        }
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Ok(Some(
            body["message"].as_str().unwrap_or("invalid").to_string(),
        ))
    }

    /// Posts a document to `/config`, as a dry run or for real; the answer, or the control plane's
    /// errors field by field.
    async fn post_config(&self, doc: &Value, dry_run: bool) -> Result<Value> {
        let path = if dry_run {
            "/config?dry_run=1"
        } else {
            "/config"
        };
        let r = self
            .request(reqwest::Method::POST, path)
            .json(doc)
            .send()
            .await
            .with_context(|| format!("cannot reach the Admin API at {}", self.base))?;
        answer(r).await
    }
}

async fn answer(r: reqwest::Response) -> Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let message = body["message"].as_str().unwrap_or("no message");
    bail!("the control plane answered {status}: {message}")
}
