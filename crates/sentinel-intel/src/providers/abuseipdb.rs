//! AbuseIPDB v2 `GET /api/v2/check`: reports about an address by AbuseIPDB's users.

use super::http::{Endpoint, Raw};
use crate::config::ProviderSettings;
use crate::provider::{Answer, Provider, ProviderError, Reply};
use async_trait::async_trait;
use sentinel_core::Verdict;
use serde::Deserialize;
use serde_json::json;
use std::fmt;
use std::net::IpAddr;

/// The AbuseIPDB v2 client (provider name `abuseipdb`).
///
/// Request: `GET {base_url}/api/v2/check?ipAddress=…&maxAgeInDays=…&verbose` with headers `Key` and
/// `Accept: application/json`.
///
/// Verdict: `isWhitelisted` → benign; else `abuseConfidenceScore` ≥ 75 → malicious, ≥ 25 →
/// suspicious; else unknown, and negative (nothing known) when `totalReports` is 0. The score is
/// `abuseConfidenceScore`. Details keep `abuseConfidenceScore`, `totalReports`, `numDistinctUsers`,
/// `isWhitelisted`, `isTor`, `usageType`, `countryCode` and `lastReportedAt`.
pub struct AbuseIpDb {
    endpoint: Endpoint,
    max_age_days: u32,
}

impl fmt::Debug for AbuseIpDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbuseIpDb")
            .field("base_url", &self.endpoint.base().as_str())
            .field("max_age_days", &self.max_age_days)
            .finish_non_exhaustive()
    }
}

impl AbuseIpDb {
    /// A client from its settings; an error when no key is set or the base URL is not http(s).
    pub fn new(settings: &ProviderSettings, client: reqwest::Client) -> Result<Self, String> {
        let endpoint = Endpoint::new(
            "abuseipdb",
            settings.key.as_ref(),
            "key",
            &settings.base_url,
            settings.timeout,
            client,
        )?;
        Ok(AbuseIpDb {
            endpoint,
            // The API accepts 1–365.
            max_age_days: settings.max_age_days.clamp(1, 365),
        })
    }

    fn answer(&self, raw: &Raw) -> Result<Answer, ProviderError> {
        raw.answer(&self.endpoint, parse_check, |body| self.message(body))
    }

    /// `{"errors":[{"detail":"…","status":…}]}`: the details joined, else the body's text.
    fn message(&self, body: &[u8]) -> String {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<ErrorItem>,
        }
        #[derive(Deserialize)]
        struct ErrorItem {
            detail: Option<String>,
        }
        match serde_json::from_slice::<Errors>(body) {
            Ok(e) if e.errors.iter().any(|i| i.detail.is_some()) => {
                let details: Vec<&str> = e
                    .errors
                    .iter()
                    .filter_map(|i| i.detail.as_deref())
                    .collect();
                self.endpoint.clean(&details.join("; "))
            }
            _ => self.endpoint.body_text(body),
        }
    }
}

#[async_trait]
impl Provider for AbuseIpDb {
    fn name(&self) -> &str {
        "abuseipdb"
    }

    async fn lookup(&self, ip: IpAddr) -> Reply {
        let mut url = self.endpoint.url(&["api", "v2", "check"]);
        url.query_pairs_mut()
            .append_pair("ipAddress", &super::canonical(ip).to_string())
            .append_pair("maxAgeInDays", &self.max_age_days.to_string())
            .append_key_only("verbose");
        self.endpoint.reply(url, |raw| self.answer(raw)).await
    }
}

#[derive(Deserialize)]
struct Check {
    data: CheckData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckData {
    abuse_confidence_score: u64,
    total_reports: u64,
    #[serde(default)]
    num_distinct_users: Option<u64>,
    #[serde(default)]
    is_whitelisted: Option<bool>,
    #[serde(default)]
    is_tor: Option<bool>,
    #[serde(default)]
    usage_type: Option<String>,
    #[serde(default)]
    country_code: Option<String>,
    #[serde(default)]
    last_reported_at: Option<String>,
}

fn parse_check(body: &[u8]) -> Result<Answer, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let check: Check = serde_path_to_error::deserialize(de).map_err(|e| e.to_string())?;
    let d = check.data;
    if d.abuse_confidence_score > 100 {
        return Err(format!(
            "data.abuseConfidenceScore: {} is above 100",
            d.abuse_confidence_score
        ));
    }
    let score = d.abuse_confidence_score as u8;
    let whitelisted = d.is_whitelisted == Some(true);
    let verdict = if whitelisted {
        Verdict::Benign
    } else if score >= 75 {
        Verdict::Malicious
    } else if score >= 25 {
        Verdict::Suspicious
    } else {
        Verdict::Unknown
    };
    let negative = verdict == Verdict::Unknown && d.total_reports == 0;
    Ok(Answer {
        verdict,
        score: Some(score),
        details: json!({
            "abuseConfidenceScore": d.abuse_confidence_score,
            "totalReports": d.total_reports,
            "numDistinctUsers": d.num_distinct_users,
            "isWhitelisted": d.is_whitelisted,
            "isTor": d.is_tor,
            "usageType": d.usage_type,
            "countryCode": d.country_code,
            "lastReportedAt": d.last_reported_at,
        }),
        negative,
    })
}
