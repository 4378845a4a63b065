//! AlienVault OTX `GET /api/v1/indicators/{IPv4|IPv6}/{ip}/general`: the community pulses that name an
//! address.

use super::http::{Endpoint, Raw};
use crate::config::ProviderSettings;
use crate::provider::{Answer, Provider, ProviderError, Reply};
use async_trait::async_trait;
use sentinel_core::Verdict;
use serde::Deserialize;
use serde_json::json;
use std::fmt;
use std::net::IpAddr;

/// Pulse tags kept in the details.
const MAX_TAGS: usize = 20;

/// The AlienVault OTX client (provider name `otx`).
///
/// Request: `GET {base_url}/api/v1/indicators/IPv4/{ip}/general` (or `IPv6`) with header
/// `X-OTX-API-KEY`.
///
/// Verdict from `pulse_info.count`: ≥ 5 → malicious (score 75 + 5 per further pulse, at most 100),
/// ≥ 1 → suspicious (score 30 + 10 per further pulse), 0 → unknown with score 0 and negative. OTX
/// never answers benign: its `validation` list (a whitelist entry, say) is kept in the details for the
/// reader, not turned into a verdict. Details keep `pulse_info.count`, the pulses' distinct tags (the
/// first 20), `reputation`, `country_code`, `asn` and `validation`.
pub struct Otx {
    endpoint: Endpoint,
}

impl fmt::Debug for Otx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otx")
            .field("base_url", &self.endpoint.base().as_str())
            .finish_non_exhaustive()
    }
}

impl Otx {
    /// A client from its settings; an error when no key is set or the base URL is not http(s).
    pub fn new(settings: &ProviderSettings, client: reqwest::Client) -> Result<Self, String> {
        let endpoint = Endpoint::new(
            "otx",
            settings.key.as_ref(),
            "x-otx-api-key",
            &settings.base_url,
            settings.timeout,
            client,
        )?;
        Ok(Otx { endpoint })
    }

    fn answer(&self, raw: &Raw) -> Result<Answer, ProviderError> {
        raw.answer(&self.endpoint, parse_general, |body| self.message(body))
    }

    /// OTX errors are `{"detail":"…"}`; anything else is shown as text.
    fn message(&self, body: &[u8]) -> String {
        #[derive(Deserialize)]
        struct Detail {
            detail: String,
        }
        match serde_json::from_slice::<Detail>(body) {
            Ok(d) => self.endpoint.clean(&d.detail),
            Err(_) => self.endpoint.body_text(body),
        }
    }
}

#[async_trait]
impl Provider for Otx {
    fn name(&self) -> &str {
        "otx"
    }

    async fn lookup(&self, ip: IpAddr) -> Reply {
        let ip = super::canonical(ip);
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        let ip = ip.to_string();
        let url = self
            .endpoint
            .url(&["api", "v1", "indicators", family, &ip, "general"]);
        self.endpoint.reply(url, |raw| self.answer(raw)).await
    }
}

#[derive(Deserialize)]
struct General {
    pulse_info: PulseInfo,
    #[serde(default)]
    reputation: serde_json::Value,
    #[serde(default)]
    country_code: Option<String>,
    #[serde(default)]
    asn: Option<String>,
    #[serde(default)]
    validation: serde_json::Value,
}

#[derive(Deserialize)]
struct PulseInfo {
    count: u64,
    #[serde(default)]
    pulses: Vec<Pulse>,
}

#[derive(Deserialize)]
struct Pulse {
    #[serde(default)]
    tags: Vec<String>,
}

fn parse_general(body: &[u8]) -> Result<Answer, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let general: General = serde_path_to_error::deserialize(de).map_err(|e| e.to_string())?;
    let count = general.pulse_info.count;
    let (verdict, score) = match count {
        0 => (Verdict::Unknown, 0),
        1..=4 => (Verdict::Suspicious, 30 + 10 * (count - 1)),
        _ => (
            Verdict::Malicious,
            75u64
                .saturating_add(5u64.saturating_mul(count - 5))
                .min(100),
        ),
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in general.pulse_info.pulses.iter().flat_map(|p| p.tags.iter()) {
        if tags.len() == MAX_TAGS {
            break;
        }
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            tags.push(tag.clone());
        }
    }
    Ok(Answer {
        verdict,
        score: Some(score as u8),
        details: json!({
            "pulse_info": {"count": count},
            "tags": tags,
            "reputation": general.reputation,
            "country_code": general.country_code,
            "asn": general.asn,
            "validation": general.validation,
        }),
        negative: count == 0,
    })
}
