//! `sentinel decisions add|list|delete`: CrowdSec-like verbs that talk to the running daemon's API, so
//! the ledger stays the one source of truth. The address and key come from flags, `SENTINEL_API_KEY`,
//! or `<data-dir>/api.addr` and `<data-dir>/admin.key`.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

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
        url: Option<String>,
        key: Option<String>,
        data_dir: &Path,
        listen: std::net::SocketAddr,
    ) -> anyhow::Result<Self> {
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let mut addr = std::fs::read_to_string(data_dir.join(crate::daemon::ADDR_FILE))
                    .ok()
                    .and_then(|s| s.trim().parse::<std::net::SocketAddr>().ok())
                    .unwrap_or(listen);
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let key = match key {
            Some(k) => k,
            None => std::fs::read_to_string(data_dir.join(sentinel_api::keys::ADMIN_KEY_FILE))
                .map(|k| k.trim().to_owned())
                .with_context(|| {
                    format!("no API key: pass --api-key, set SENTINEL_API_KEY, or run where {} is readable", data_dir.join(sentinel_api::keys::ADMIN_KEY_FILE).display())
                })?,
        };
        Ok(Self { base, key })
    }

    fn client() -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?)
    }

    async fn check(resp: reqwest::Response) -> anyhow::Result<Value> {
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

    /// `POST /v1/decisions`. The body is first checked as the API checks it, so a malformed value is
    /// refused here with the API's own words, before anything is sent.
    pub async fn add(&self, body: Value) -> anyhow::Result<Value> {
        if let Err(e) = sentinel_api::decisions::check_add_body(&body) {
            bail!("400 Bad Request: {e}");
        }
        let r = Self::client()?
            .post(format!("{}/v1/decisions", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .context("the daemon does not answer")?;
        Self::check(r).await
    }

    /// `GET /v1/decisions`.
    pub async fn list(&self) -> anyhow::Result<Value> {
        let r = Self::client()?
            .get(format!("{}/v1/decisions", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .context("the daemon does not answer")?;
        Self::check(r).await
    }

    /// `DELETE /v1/decisions?…`.
    pub async fn delete(&self, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let r = Self::client()?
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
pub fn add_body(
    ip: Option<String>,
    container: Option<String>,
    file: Option<String>,
    kind: Option<String>,
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
        b["kind"] = k.into();
    }
    b
}

/// A human table of decisions.
pub fn table(items: &[Value]) -> String {
    let mut out = format!(
        "{:<28} {:<20} {:<30} {:<8} {:<8} {}\n",
        "ID", "KIND", "SUBJECT", "MODE", "STATE", "EXPIRES"
    );
    for r in items {
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
