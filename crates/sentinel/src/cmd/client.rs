//! Talking to the running daemon's API, for the subcommands that do (`decisions`, `intel lookup`):
//! where it listens and which key to present (flags, `SENTINEL_API_KEY`, or `<data-dir>/api.addr` and
//! `<data-dir>/admin.key`), and its answers read as JSON with its error message on failure.

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// How to reach the daemon (flattened into the subcommands that talk to it).
#[derive(Args, Clone)]
pub struct Remote {
    /// The daemon's base URL (default: <data-dir>/api.addr, else api.listen).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// API key (default: <data-dir>/admin.key).
    #[arg(long, env = "SENTINEL_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
}

/// Where and how to reach the daemon.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL (`http://127.0.0.1:8000`).
    pub base: String,
    /// API key.
    pub key: String,
}

impl Target {
    /// From explicit values, else the data directory's files, else the configured address.
    pub fn resolve(
        remote: Remote,
        data_dir: &Path,
        listen: std::net::SocketAddr,
    ) -> anyhow::Result<Self> {
        let base = super::daemon_url(remote.url, data_dir, listen)?;
        let key = match remote.api_key {
            Some(k) => k,
            None => std::fs::read_to_string(data_dir.join(sentinel_api::keys::ADMIN_KEY_FILE))
                .map(|k| k.trim().to_owned())
                .with_context(|| {
                    format!("no API key: pass --api-key, set SENTINEL_API_KEY, or run where {} is readable", data_dir.join(sentinel_api::keys::ADMIN_KEY_FILE).display())
                })?,
        };
        Ok(Self { base, key })
    }

    /// An HTTP client for the daemon.
    pub fn client() -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?)
    }

    /// The answer's JSON body, or an error quoting the API's message.
    pub async fn check(resp: reqwest::Response) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"]
                .as_str()
                .unwrap_or("request failed");
            bail!("{status}: {msg}");
        }
        Ok(body)
    }
}
