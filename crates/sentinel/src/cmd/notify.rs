//! `sentinel notify send|status|dead-letters|retry`: the running daemon's notifications, through its
//! API (`/v1/notify`); and `sentinel notify test --channel NAME`, which builds one configured channel
//! here, without the daemon, and sends it one test message (the first thing to run after configuring
//! a channel: exit 1 with the channel's own reason when it fails).

use super::client::{Remote, Target};
use super::Common;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;

/// `sentinel notify` arguments.
#[derive(Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    command: NotifyCommand,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send a notice of yours through the daemon's routes (kind `manual`).
    Send {
        /// Title (1 to 200 characters).
        #[arg(long)]
        title: String,
        /// Body (at most 16 KiB).
        #[arg(long, default_value = "")]
        body: String,
        /// info, low, medium, high or critical.
        #[arg(long, default_value = "info")]
        severity: String,
    },
    /// The engine's counters: accepted, delivered, folded, failed attempts, dead letters, outbox.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Messages that exhausted their attempts, newest first.
    DeadLetters {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Queue a dead letter again (it keeps its delivery id).
    Retry {
        /// The dead letter's delivery id.
        delivery_id: String,
    },
    /// Build one configured channel here (no daemon needed) and send it one test message.
    Test {
        /// The channel's name under `notify.channels`.
        #[arg(long)]
        channel: String,
    },
}

/// Runs a `notify` subcommand and prints its answer.
pub fn run(a: NotifyArgs) -> ExitCode {
    match talk(a) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sentinel notify: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn talk(a: NotifyArgs) -> anyhow::Result<String> {
    let cfg = a.common.load().map_err(anyhow::Error::msg)?;
    if let NotifyCommand::Test { channel } = &a.command {
        return super::small_runtime()?.block_on(test_channel(&cfg.notify, channel));
    }
    let target = Target::resolve(a.remote, &cfg.data_dir, &cfg.api)?;
    super::small_runtime()?.block_on(async {
        match a.command {
            NotifyCommand::Send {
                title,
                body,
                severity,
            } => {
                let v = target
                    .call(
                        reqwest::Method::POST,
                        "/v1/notify",
                        Some(json!({"title": title, "body": body, "severity": severity})),
                    )
                    .await?;
                Ok(match v["channels"].as_array() {
                    Some(c) if !c.is_empty() => format!(
                        "queued for {} (rows {})\n",
                        join(&v["channels"]),
                        join(&v["rows"])
                    ),
                    _ => format!("{}\n", v["note"].as_str().unwrap_or("no route matches")),
                })
            }
            NotifyCommand::Status { json } => {
                let v = target
                    .call(reqwest::Method::GET, "/v1/notify", None)
                    .await?;
                Ok(if json {
                    format!("{}\n", serde_json::to_string_pretty(&v)?)
                } else {
                    status_text(&v)
                })
            }
            NotifyCommand::DeadLetters { json, limit } => {
                // An answer is bounded by bytes as well as by `limit`: follow `next_before` until
                // `limit` dead letters are shown or there are no more.
                let mut items: Vec<Value> = Vec::new();
                let mut before: Option<String> = None;
                let mut next = Value::Null;
                while items.len() < limit {
                    let mut path = format!("/v1/notify/dead-letters?limit={}", limit - items.len());
                    if let Some(b) = &before {
                        let q: String = url_form(&[("before", b.as_str())]);
                        path.push('&');
                        path.push_str(&q);
                    }
                    let mut page = target.call(reqwest::Method::GET, &path, None).await?;
                    let got = match page["items"].take() {
                        Value::Array(a) => a,
                        _ => bail!("the daemon answered a page without `items`"),
                    };
                    let empty = got.is_empty();
                    items.extend(got);
                    next = page["next_before"].take();
                    match next.as_str() {
                        Some(b) if !empty && before.as_deref() != Some(b) => {
                            before = Some(b.to_owned())
                        }
                        _ => break,
                    }
                }
                let v = json!({"items": items, "next_before": next});
                Ok(if json {
                    format!("{}\n", serde_json::to_string_pretty(&v)?)
                } else {
                    dead_text(v["items"].as_array().map(Vec::as_slice).unwrap_or(&[]))
                })
            }
            NotifyCommand::Retry { delivery_id } => {
                target
                    .call(
                        reqwest::Method::POST,
                        &format!("/v1/notify/dead-letters/{delivery_id}/retry"),
                        None,
                    )
                    .await
                    .map_err(|e| {
                        if e.to_string().starts_with("404") {
                            anyhow::anyhow!(
                                "no dead letter has delivery id {delivery_id:?} (the ids are in \
                                 `sentinel notify dead-letters`)"
                            )
                        } else {
                            e
                        }
                    })?;
                Ok(format!("{delivery_id} queued again\n"))
            }
            NotifyCommand::Test { .. } => bail!("unreachable"),
        }
    })
}

/// One problem per channel that passes validation but cannot be built (a `ca_file` that holds no
/// certificate, …): the daemon and the supervisor refuse to start on it, so `config check` and
/// `supervise --check` say so first. Builds only; nothing is sent.
pub fn channel_build_problems(cfg: &sentinel_notify::NotifyConfig) -> Vec<String> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![format!("cannot start a runtime to build the channels: {e}")],
    };
    let _guard = rt.enter();
    cfg.channels
        .iter()
        .filter_map(|(name, c)| {
            sentinel_notify::build_channel(name, c)
                .err()
                .map(|e| format!("`notify.channels.{name}`: cannot be built: {e}"))
        })
        .collect()
}

/// Builds `name` from the configuration and sends it one message of kind `test`.
async fn test_channel(cfg: &sentinel_notify::NotifyConfig, name: &str) -> anyhow::Result<String> {
    let Some(c) = cfg.channels.get(name) else {
        let known: Vec<&String> = cfg.channels.keys().collect();
        bail!("no channel {name:?} under notify.channels (configured: {known:?})");
    };
    let ch = sentinel_notify::build_channel(name, c)
        .map_err(|e| anyhow::anyhow!("cannot build channel {name} ({}): {e}", c.kind()))?;
    let now = sentinel_core::Timestamp::now();
    let trace = sentinel_core::TraceId::new();
    let m = sentinel_notify::Message {
        delivery_id: format!("test-{trace}"),
        kind: sentinel_core::NoticeKind::Test,
        severity: sentinel_core::Severity::Info,
        title: format!("test message to channel {name}"),
        body: "If you read this, Sentinel can reach this channel.".into(),
        trace_id: trace,
        count: 1,
        first_seen: now,
        last_seen: now,
    };
    ch.send(&m).await.map_err(|e| {
        anyhow::anyhow!(
            "channel {name} ({}): the test message failed: {e}",
            c.kind()
        )
    })?;
    let note = if c.kind() == "log" {
        " — a log channel writes an `evt=notice` line to the JSON log of the daemon (or supervisor) \
         that uses it, not to this terminal"
    } else {
        ""
    };
    Ok(format!(
        "channel {name} ({}): test message sent (delivery {}){note}\n",
        c.kind(),
        m.delivery_id
    ))
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn status_text(v: &Value) -> String {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "accepted {}, delivered {}, folded {}, failed attempts {}, dead {}, unrouted {}\noutbox: {} pending, {} dead\n",
        n("accepted"),
        n("delivered"),
        n("folded"),
        n("attempts_failed"),
        n("dead"),
        n("unrouted"),
        n("outbox_pending"),
        n("outbox_dead"),
    );
    if let Some(chs) = v["channels"].as_object() {
        out.push_str(&format!(
            "{:<16} {:>9} {:>7} {:>7} {:>5} {:>8} {:>9}\n",
            "CHANNEL", "DELIVERED", "FOLDED", "FAILED", "DEAD", "PENDING", "DEAD_ROWS"
        ));
        for (name, c) in chs {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "{:<16} {:>9} {:>7} {:>7} {:>5} {:>8} {:>9}\n",
                name,
                n("delivered"),
                n("folded"),
                n("attempts_failed"),
                n("dead"),
                n("outbox_pending"),
                n("outbox_dead"),
            ));
        }
    }
    out
}

fn dead_text(items: &[Value]) -> String {
    if items.is_empty() {
        return "no dead letters\n".to_string();
    }
    let mut out = format!(
        "{:<28} {:<12} {:>8} {:<25} {}\n",
        "DELIVERY", "CHANNEL", "ATTEMPTS", "DIED", "TITLE / LAST ERROR"
    );
    for d in items {
        out.push_str(&format!(
            "{:<28} {:<12} {:>8} {:<25} {}\n{:<76} {}\n",
            d["delivery_id"].as_str().unwrap_or("-"),
            d["channel"].as_str().unwrap_or("-"),
            d["attempts"].as_u64().unwrap_or(0),
            d["died_at"].as_str().unwrap_or("-"),
            d["message"]["title"].as_str().unwrap_or("-"),
            "",
            d["last_error"].as_str().unwrap_or("-"),
        ));
    }
    out
}

impl Target {
    /// One call to the daemon's API, its JSON answer or the API's error message.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .client()?
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.context("the daemon does not answer")?;
        Self::check(r).await
    }
}

/// `k=v&…`, percent-encoded for a query string.
fn url_form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
