//! `sentinel decisions add|list|delete`: CrowdSec-like verbs that talk to the running daemon's API, so
//! the ledger stays the one source of truth. The address and key come from flags, `SENTINEL_API_KEY`,
//! or `<data-dir>/api.addr` and `<data-dir>/admin.key`.

use super::client::{Remote, Target};
use super::Common;
use anyhow::{bail, Context};
use clap::builder::PossibleValue;
use clap::{Args, Subcommand, ValueEnum};
use sentinel_core::ActionKind;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::LazyLock;

/// `sentinel decisions` arguments.
#[derive(Args)]
pub struct DecisionsArgs {
    #[command(subcommand)]
    command: DecisionsCommand,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Subcommand)]
enum DecisionsCommand {
    /// Add a decision (block an address or range by default).
    Add {
        /// Address or CIDR.
        #[arg(long)]
        ip: Option<String>,
        /// Container name or id (isolate_container).
        #[arg(long)]
        container: Option<String>,
        /// Absolute file path (quarantine_file).
        #[arg(long)]
        file: Option<String>,
        /// What to do (default: block_ip).
        #[arg(long)]
        kind: Option<Kind>,
        /// How long (4h, 30m, 7d).
        #[arg(long, default_value = "4h")]
        duration: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print the exact nftables, Docker or file operations and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List live decisions.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Delete (revert) decisions.
    Delete {
        /// Every live decision on this address.
        #[arg(long)]
        ip: Option<String>,
        /// One decision by id.
        #[arg(long)]
        id: Option<String>,
        /// Every live decision.
        #[arg(long)]
        all: bool,
    },
}

/// An action kind on the command line, by its snake_case name (the list is [`ActionKind::ALL`]).
#[derive(Clone, Copy, Debug)]
struct Kind(ActionKind);

static KINDS: LazyLock<Vec<Kind>> =
    LazyLock::new(|| ActionKind::ALL.into_iter().map(Kind).collect());

impl ValueEnum for Kind {
    fn value_variants<'a>() -> &'a [Self] {
        &KINDS
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.as_str()))
    }
}

/// Runs a `decisions` subcommand against the daemon and prints its answer.
pub fn run(a: DecisionsArgs) -> ExitCode {
    match talk(a) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sentinel decisions: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn talk(a: DecisionsArgs) -> anyhow::Result<String> {
    let cfg = a.common.load().map_err(anyhow::Error::msg)?;
    let target = Target::resolve(a.remote, &cfg.data_dir, &cfg.api)?;
    super::small_runtime()?.block_on(async {
        match a.command {
            DecisionsCommand::Add {
                ip,
                container,
                file,
                kind,
                duration,
                reason,
                dry_run,
            } => {
                let body = add_body(
                    ip,
                    container,
                    file,
                    kind.map(|k| k.0),
                    &duration,
                    &reason,
                    dry_run,
                );
                let r = target.add(body).await?;
                Ok(if dry_run {
                    dry_run_text(&r)
                } else {
                    added_text(&r)
                })
            }
            DecisionsCommand::List { json } => {
                let items = target.list().await?;
                if json {
                    Ok(format!("{}\n", serde_json::to_string_pretty(&items)?))
                } else {
                    Ok(table(&items))
                }
            }
            DecisionsCommand::Delete { ip, id, all } => {
                let q: Vec<(&str, String)> = match (ip, id, all) {
                    (Some(ip), None, false) => vec![("ip", ip)],
                    (None, Some(id), false) => vec![("id", id)],
                    (None, None, true) => vec![("all", "true".into())],
                    _ => bail!("give exactly one of --ip, --id or --all"),
                };
                let v = target.delete(&q).await?;
                let n = v.as_array().map(|a| a.len()).unwrap_or(0);
                Ok(format!("{n} decision(s) deleted\n"))
            }
        }
    })
}

fn dry_run_text(r: &Value) -> String {
    let ops: Vec<&str> = r["preview"]["operations"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o.as_str()).collect())
        .unwrap_or_default();
    format!(
        "dry run ({} mode), would run:\n{}\n",
        r["mode"].as_str().unwrap_or("-"),
        ops.join("\n")
    )
}

fn added_text(r: &Value) -> String {
    format!(
        "{} {} {} ({} mode) until {} [id {}]\n",
        r["spec"]["kind"].as_str().unwrap_or("-"),
        r["spec"]["subject"]["value"].as_str().unwrap_or("-"),
        r["state"].as_str().unwrap_or("-"),
        r["mode"].as_str().unwrap_or("-"),
        r["expires_at"].as_str().unwrap_or("-"),
        r["id"].as_str().unwrap_or("-"),
    )
}

impl Target {
    /// `POST /v1/decisions`. The body is first checked as the API checks it, so a malformed value is
    /// refused here with the API's own words, before anything is sent.
    async fn add(&self, body: Value) -> anyhow::Result<Value> {
        if let Err(e) = sentinel_api::decisions::check_add_body(&body) {
            bail!("400 Bad Request: {e}");
        }
        let r = self
            .client()?
            .post(format!("{}/v1/decisions", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .context("the daemon does not answer")?;
        Self::check(r).await
    }

    /// `GET /v1/decisions`, every page: the answer is paged by count and bytes, so the listing
    /// follows `next_cursor` to the end (a cursor answered twice would loop: refused).
    async fn list(&self) -> anyhow::Result<Vec<Value>> {
        let client = self.client()?;
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut req = client
                .get(format!("{}/v1/decisions", self.base))
                .query(&[("limit", "1000")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let r = req
                .bearer_auth(&self.key)
                .send()
                .await
                .context("the daemon does not answer")?;
            let mut page = Self::check(r).await?;
            match page["items"].take() {
                Value::Array(a) => items.extend(a),
                _ => bail!("the daemon answered a page without `items`"),
            }
            match page["next_cursor"].as_str() {
                Some(c) if !seen.insert(c.to_owned()) => {
                    bail!("the daemon answered the same page twice (cursor {c})")
                }
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// `DELETE /v1/decisions?…`.
    async fn delete(&self, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let r = self
            .client()?
            .delete(format!("{}/v1/decisions", self.base))
            .query(query)
            .bearer_auth(&self.key)
            .send()
            .await
            .context("the daemon does not answer")?;
        Self::check(r).await
    }
}

/// The body of an add request.
fn add_body(
    ip: Option<String>,
    container: Option<String>,
    file: Option<String>,
    kind: Option<ActionKind>,
    duration: &str,
    reason: &str,
    dry_run: bool,
) -> Value {
    let mut b = json!({"duration": duration, "reason": reason, "dry_run": dry_run});
    if let Some(ip) = ip {
        b["ip"] = ip.into();
    }
    if let Some(c) = container {
        b["container"] = c.into();
    }
    if let Some(f) = file {
        b["file"] = f.into();
    }
    if let Some(k) = kind {
        b["kind"] = k.as_str().into();
    }
    b
}

/// A human table of decisions.
fn table(items: &[Value]) -> String {
    let mut out = format!(
        "{:<28} {:<20} {:<30} {:<8} {:<8} {}\n",
        "ID", "KIND", "SUBJECT", "MODE", "STATE", "EXPIRES"
    );
    for r in items {
        // A record over the answer's byte budget comes as a marker naming it.
        if r["elided"] == true {
            out.push_str(&format!(
                "{:<28} (not shown: {} bytes, over the answer's byte budget)\n",
                r["cursor"].as_str().unwrap_or("-"),
                r["bytes"]
            ));
            continue;
        }
        out.push_str(&format!(
            "{:<28} {:<20} {:<30} {:<8} {:<8} {}\n",
            r["id"].as_str().unwrap_or("-"),
            r["spec"]["kind"].as_str().unwrap_or("-"),
            r["spec"]["subject"]["value"].as_str().unwrap_or("-"),
            r["mode"].as_str().unwrap_or("-"),
            r["state"].as_str().unwrap_or("-"),
            r["expires_at"].as_str().unwrap_or("-"),
        ));
    }
    out
}
