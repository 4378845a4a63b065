//! VirusTotal v3 `GET /api/v3/ip_addresses/{ip}`: what the scanning engines last said about an address.

use super::http::{Endpoint, Raw};
use crate::config::ProviderSettings;
use crate::provider::{Answer, Provider, ProviderError, Reply};
use async_trait::async_trait;
use sentinel_core::Verdict;
use serde::Deserialize;
use serde_json::json;
use std::fmt;
use std::net::IpAddr;

/// The VirusTotal v3 client (provider name `virustotal`).
///
/// Request: `GET {base_url}/api/v3/ip_addresses/{ip}` with header `x-apikey`.
///
/// Verdict from `last_analysis_stats` and `reputation`:
/// - `malicious` ≥ 3 → malicious, score 70 + 5 per further engine (100 from 9 engines);
/// - `malicious` ≥ 1, `suspicious` ≥ 2 or `reputation` < −10 → suspicious, score
///   30 + 10 × malicious + 5 × suspicious (at most 69);
/// - otherwise unknown with score 0: engines calling an attacker's address harmless is not evidence
///   that it is safe, so VirusTotal never answers benign. Negative (nothing known) when every count
///   is 0, or when VirusTotal answers 404 `NotFoundError` (no score then).
///
/// Details keep `last_analysis_stats`, `reputation`, `as_owner` and `country`. Errors come as
/// `{"error":{"code","message"}}`: 401/403 → unauthorized, 429 `QuotaExceededError` → rate limited.
pub struct VirusTotal {
    endpoint: Endpoint,
}

impl fmt::Debug for VirusTotal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirusTotal")
            .field("base_url", &self.endpoint.base().as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorItem,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: String,
    #[serde(default)]
    message: Option<String>,
}

impl VirusTotal {
    /// A client from its settings; an error when no key is set or the base URL is not http(s).
    pub fn new(settings: &ProviderSettings, client: reqwest::Client) -> Result<Self, String> {
        let endpoint = Endpoint::new(
            "virustotal",
            settings.key.as_ref(),
            "x-apikey",
            &settings.base_url,
            settings.timeout,
            client,
        )?;
        Ok(VirusTotal { endpoint })
    }

    fn answer(&self, raw: &Raw) -> Result<Answer, ProviderError> {
        let error = serde_json::from_slice::<ErrorBody>(&raw.body)
            .ok()
            .map(|b| b.error);
        // Only VirusTotal's own "not found" is an answer; a 404 from anything else (a wrong
        // base_url) is an error, not "nothing known".
        if raw.status == 404 && error.as_ref().is_some_and(|e| e.code == "NotFoundError") {
            return Ok(Answer {
                verdict: Verdict::Unknown,
                score: None,
                details: json!({"found": false}),
                negative: true,
            });
        }
        raw.answer(&self.endpoint, parse_ip, |body| {
            self.message(error.as_ref(), body)
        })
    }

    /// `code: message`, else the body's text.
    fn message(&self, error: Option<&ErrorItem>, body: &[u8]) -> String {
        match error {
            Some(ErrorItem {
                code,
                message: Some(message),
            }) => self.endpoint.clean(&format!("{code}: {message}")),
            Some(ErrorItem {
                code,
                message: None,
            }) => self.endpoint.clean(code),
            None => self.endpoint.body_text(body),
        }
    }
}

#[async_trait]
impl Provider for VirusTotal {
    fn name(&self) -> &str {
        "virustotal"
    }

    async fn lookup(&self, ip: IpAddr) -> Reply {
        let ip = super::canonical(ip).to_string();
        let url = self.endpoint.url(&["api", "v3", "ip_addresses", &ip]);
        self.endpoint.reply(url, |raw| self.answer(raw)).await
    }
}

#[derive(Deserialize)]
struct IpObject {
    data: IpData,
}

#[derive(Deserialize)]
struct IpData {
    attributes: Attributes,
}

#[derive(Deserialize)]
struct Attributes {
    #[serde(default)]
    last_analysis_stats: Stats,
    #[serde(default)]
    reputation: i64,
    #[serde(default)]
    as_owner: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

#[derive(Deserialize, Default, serde::Serialize)]
struct Stats {
    #[serde(default)]
    harmless: u64,
    #[serde(default)]
    malicious: u64,
    #[serde(default)]
    suspicious: u64,
    #[serde(default)]
    undetected: u64,
    #[serde(default)]
    timeout: u64,
}

fn parse_ip(body: &[u8]) -> Result<Answer, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let object: IpObject = serde_path_to_error::deserialize(de).map_err(|e| e.to_string())?;
    let a = object.data.attributes;
    let s = &a.last_analysis_stats;
    let (verdict, score) = if s.malicious >= 3 {
        (
            Verdict::Malicious,
            70u64
                .saturating_add(5u64.saturating_mul(s.malicious - 3))
                .min(100),
        )
    } else if s.malicious >= 1 || s.suspicious >= 2 || a.reputation < -10 {
        (
            Verdict::Suspicious,
            (30 + 10 * s.malicious)
                .saturating_add(5u64.saturating_mul(s.suspicious))
                .min(69),
        )
    } else {
        (Verdict::Unknown, 0)
    };
    let negative = s.harmless == 0
        && s.malicious == 0
        && s.suspicious == 0
        && s.undetected == 0
        && s.timeout == 0
        && verdict == Verdict::Unknown;
    Ok(Answer {
        verdict,
        score: Some(score as u8),
        details: json!({
            "last_analysis_stats": s,
            "reputation": a.reputation,
            "as_owner": a.as_owner,
            "country": a.country,
        }),
        negative,
    })
}
