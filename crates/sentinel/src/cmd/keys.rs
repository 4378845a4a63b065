//! `sentinel keys create|list|revoke`: API keys made, listed and revoked through the running daemon's
//! `/v1/keys` (admin only), so the registry in memory and the audit trail stay the one source of truth.
//! The new key is printed once, on stdout alone (so `KEY=$(sentinel keys create ...)` works); what it is
//! goes to stderr.

use super::client::{Remote, Target};
use super::Common;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::process::ExitCode;

/// `sentinel keys` arguments.
#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::Viewer => "viewer",
            RoleArg::Operator => "operator",
            RoleArg::Admin => "admin",
        }
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key; it is printed once and never shown again.
    Create {
        /// What it may do.
        #[arg(long)]
        role: RoleArg,
        /// How long it works (90d, 12h) or until when (RFC 3339); default: until revoked.
        #[arg(long)]
        expires: Option<String>,
        /// What it is for (default: the role).
        #[arg(long)]
        name: Option<String>,
    },
    /// List every key (revoked and expired ones marked); never a key or its hash.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; it stops working at once.
    Revoke {
        /// The key's id (from `keys list`).
        id: String,
    },
}

/// Runs a `keys` subcommand against the daemon and prints its answer.
pub fn run(a: KeysArgs) -> ExitCode {
    match talk(a) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sentinel keys: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn talk(a: KeysArgs) -> anyhow::Result<String> {
    let cfg = a.common.load().map_err(anyhow::Error::msg)?;
    let target = Target::resolve(a.remote, &cfg.data_dir, &cfg.api)?;
    super::small_runtime()?.block_on(async {
        let client = target.client()?;
        match a.command {
            KeysCommand::Create {
                role,
                expires,
                name,
            } => {
                let mut body = json!({ "role": role.as_str() });
                if let Some(e) = expires {
                    body["expires"] = json!(e);
                }
                if let Some(n) = name {
                    body["name"] = json!(n);
                }
                let r = client
                    .post(format!("{}/v1/keys", target.base))
                    .bearer_auth(&target.key)
                    .json(&body)
                    .send()
                    .await
                    .context("the daemon does not answer")?;
                let v = Target::check(r).await?;
                eprintln!(
                    "created {} key {:?} [id {}], expires {} (shown only this once):",
                    v["role"].as_str().unwrap_or("-"),
                    v["name"].as_str().unwrap_or("-"),
                    v["id"].as_str().unwrap_or("-"),
                    v["expires"].as_str().unwrap_or("never"),
                );
                let key = v["key"]
                    .as_str()
                    .context("the daemon's answer holds no key")?;
                Ok(format!("{key}\n"))
            }
            KeysCommand::List { json } => {
                let mut items: Vec<Value> = Vec::new();
                let mut after: Option<String> = None;
                // Follow `next_cursor` to the end: every key, page by page.
                loop {
                    let mut req = client
                        .get(format!("{}/v1/keys", target.base))
                        .bearer_auth(&target.key);
                    if let Some(a) = &after {
                        req = req.query(&[("cursor", a.as_str())]);
                    }
                    let v = Target::check(req.send().await.context("the daemon does not answer")?)
                        .await?;
                    items.extend(v["items"].as_array().cloned().unwrap_or_default());
                    match v["next_cursor"].as_str() {
                        Some(n) if after.as_deref() != Some(n) => after = Some(n.to_owned()),
                        _ => break,
                    }
                }
                if json {
                    Ok(format!("{}\n", serde_json::to_string_pretty(&items)?))
                } else {
                    Ok(table(&items))
                }
            }
            KeysCommand::Revoke { id } => {
                let r = client
                    .delete(format!("{}/v1/keys/{id}", target.base))
                    .bearer_auth(&target.key)
                    .send()
                    .await
                    .context("the daemon does not answer")?;
                let v = Target::check(r).await?;
                if v["already_revoked"].as_bool() == Some(true) {
                    // Nothing changed: say so rather than claim a revocation that did not happen now.
                    return Ok(format!(
                        "key {id} was already revoked (at {})\n",
                        v["revoked_at"].as_str().unwrap_or("an unknown time")
                    ));
                }
                Ok(format!("key {id} revoked\n"))
            }
        }
    })
}

fn table(items: &[Value]) -> String {
    let mut out = format!(
        "{:<26}  {:<8}  {:<8}  {:<24}  {:<24}  NAME\n",
        "ID", "ROLE", "STATE", "CREATED", "EXPIRES"
    );
    for k in items {
        out.push_str(&format!(
            "{:<26}  {:<8}  {:<8}  {:<24}  {:<24}  {}\n",
            k["id"].as_str().unwrap_or("-"),
            k["role"].as_str().unwrap_or("-"),
            k["state"].as_str().unwrap_or("-"),
            k["created"].as_str().unwrap_or("-"),
            k["expires"].as_str().unwrap_or("never"),
            k["name"].as_str().unwrap_or("-"),
        ));
    }
    out
}
