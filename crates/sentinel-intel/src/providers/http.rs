//! What every remote provider client shares: the checked base URL, the key header, one attempt under
//! the per-attempt timeout with a bounded body, the quota headers (`X-RateLimit-*`, `Retry-After`) and
//! error messages that are scrubbed of the key and shortened before they leave the client.
//!
//! It knows nothing of any provider's JSON: each client maps statuses and bodies itself.

use crate::provider::{Answer, ApiKey, ProviderError, RateInfo, Reply, MAX_PROVIDER_WAIT};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Url};
use serde_json::Value;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most of a server's own text an error message keeps.
pub(crate) const MESSAGE_CHARS: usize = 200;

/// The largest answer read. AbuseIPDB's verbose answer lists reports, so this is generous; anything
/// bigger is not an answer we can use and becomes `Malformed` rather than unbounded memory.
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;

/// One provider's endpoint: where it is, the key as a header, and the attempt timeout.
#[derive(Clone)]
pub(crate) struct Endpoint {
    base: Url,
    key: ApiKey,
    header: HeaderName,
    value: HeaderValue,
    timeout: Duration,
    client: Client,
}

/// A response that arrived in full within the timeout, whatever its status.
pub(crate) struct Raw {
    pub status: u16,
    pub body: Vec<u8>,
    pub rate: RateInfo,
    pub retry_after: Option<Duration>,
}

impl Raw {
    /// How every provider's response reads: a 2xx is parsed by `parse` (what it cannot read is
    /// malformed), 401/403 is a refused key, 429 a rate limit with its `Retry-After`, anything else a
    /// status error; `message` turns an error body into the provider's own explanation.
    pub(crate) fn answer(
        &self,
        endpoint: &Endpoint,
        parse: impl FnOnce(&[u8]) -> Result<Answer, String>,
        message: impl FnOnce(&[u8]) -> String,
    ) -> Result<Answer, ProviderError> {
        match self.status {
            200..=299 => match parse(&self.body) {
                Ok(mut answer) => {
                    answer.details = bounded(std::mem::take(&mut answer.details), &endpoint.key);
                    Ok(answer)
                }
                Err(e) => Err(ProviderError::Malformed(endpoint.clean(&e))),
            },
            401 | 403 => Err(ProviderError::Unauthorized {
                status: self.status,
                message: message(&self.body),
            }),
            429 => Err(ProviderError::RateLimited {
                retry_after: self.retry_after,
            }),
            status => Err(ProviderError::Status {
                status,
                message: message(&self.body),
            }),
        }
    }
}

impl Endpoint {
    /// One attempt: a GET of `url`, its response read by `answer`, with the quota headers it carried.
    pub(crate) async fn reply(
        &self,
        url: Url,
        answer: impl FnOnce(&Raw) -> Result<Answer, ProviderError>,
    ) -> Reply {
        match self.get(url).await {
            Ok(raw) => Reply {
                result: answer(&raw),
                rate: raw.rate,
            },
            Err(e) => Reply::new(Err(e)),
        }
    }

    /// Checks the base URL and the key up front so that a misconfiguration is an error at start,
    /// not a failure on every lookup.
    pub(crate) fn new(
        provider: &str,
        key: Option<&ApiKey>,
        header: &'static str,
        base_url: &str,
        timeout: Duration,
        client: Client,
    ) -> Result<Self, String> {
        let key = key
            .cloned()
            .ok_or_else(|| format!("{provider}: no API key set"))?;
        if key.expose().is_empty() {
            return Err(format!("{provider}: the API key is empty"));
        }
        let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
            format!("{provider}: the API key holds characters an HTTP header cannot carry")
        })?;
        value.set_sensitive(true);
        let base = parse_base_url(base_url).map_err(|e| format!("{provider}: {e}"))?;
        if timeout.is_zero() {
            return Err(format!("{provider}: the timeout must be above zero"));
        }
        Ok(Endpoint {
            base,
            key,
            header: HeaderName::from_static(header),
            value,
            timeout,
            client,
        })
    }

    /// The base URL with `segments` appended (each percent-encoded as a path segment).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The base URL as given (it never carries credentials: [`parse_base_url`] refuses them).
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// One GET with the key header and `Accept: application/json`, the whole exchange (connect,
    /// headers, body) bounded by the attempt timeout.
    pub(crate) async fn get(&self, url: Url) -> Result<Raw, ProviderError> {
        let request = self
            .client
            .get(url)
            .header(self.header.clone(), self.value.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout);
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout),
        }
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Raw, ProviderError> {
        let mut response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let now = SystemTime::now();
        let retry_after = retry_after(response.headers(), now);
        let rate = rate_info(response.headers(), retry_after, now);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ProviderError::Malformed(format!(
                    "answer larger than {} MiB",
                    MAX_BODY / (1024 * 1024)
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Raw {
            status,
            body,
            rate,
            retry_after,
        })
    }

    fn transport(&self, error: &reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            return ProviderError::Timeout;
        }
        ProviderError::Transport(self.clean(&error_chain(error)))
    }

    /// Scrubs the key out of `text` and shortens it, for any message built from what a server sent.
    pub(crate) fn clean(&self, text: &str) -> String {
        shorten(&self.key.scrub(text))
    }

    /// The server's body as a last-resort message: its text, scrubbed and shortened.
    pub(crate) fn body_text(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return "(empty body)".to_owned();
        }
        self.clean(text)
    }
}

/// The most of its answer a provider's details keep (bytes of JSON, roughly): the fields the issue
/// lists take a few hundred bytes. Details are cached (up to `max_entries` answers, 100,000 by
/// default, so at most ~400 MB even if every answer is padded) and stored with every
/// investigation, so a padded answer (megabyte strings, huge arrays, each within [`MAX_BODY`]) must
/// not be kept whole.
pub(crate) const MAX_DETAILS: usize = 4 * 1024;

/// The longest string kept in details (characters).
const MAX_DETAIL_STRING: usize = 256;

/// `details` cut down to about [`MAX_DETAILS`] bytes: strings shortened, and arrays and objects
/// cut off (in order) once the budget is spent. The key is scrubbed out of every string first (a
/// provider or gateway that echoes it would otherwise put it in the cache and the store).
pub(crate) fn bounded(details: Value, key: &ApiKey) -> Value {
    let mut budget = MAX_DETAILS;
    bound(details, key, &mut budget)
}

/// The key scrubbed out of `s` (before any cut, so no part of it is left either).
fn scrubbed(s: String, key: &ApiKey) -> String {
    if s.contains(key.expose()) {
        key.scrub(&s)
    } else {
        s
    }
}

fn bound(value: Value, key: &ApiKey, budget: &mut usize) -> Value {
    match value {
        Value::String(s) => {
            let s = scrubbed(s, key);
            let s = match s.char_indices().nth(MAX_DETAIL_STRING) {
                Some((i, _)) => format!("{}…", &s[..i]),
                None => s,
            };
            // The cost as JSON (escapes included).
            let cost = serde_json::to_string(&s).map_or(s.len(), |j| j.len());
            *budget = budget.saturating_sub(cost);
            Value::String(s)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                if *budget == 0 {
                    break;
                }
                *budget = budget.saturating_sub(1);
                out.push(bound(item, key, budget));
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if *budget == 0 {
                    break;
                }
                let k = scrubbed(k, key);
                let k = match k.char_indices().nth(MAX_DETAIL_STRING) {
                    Some((i, _)) => k[..i].to_owned(),
                    None => k,
                };
                *budget = budget.saturating_sub(k.len() + 4);
                let v = bound(v, key, budget);
                out.insert(k, v);
            }
            Value::Object(out)
        }
        other => {
            *budget = budget.saturating_sub(24);
            other
        }
    }
}

/// A provider's base URL: `http` or `https` with a host, no credentials, query or fragment. A path
/// prefix (a gateway in front of the provider) is kept.
pub(crate) fn parse_base_url(text: &str) -> Result<Url, String> {
    let url =
        Url::parse(text.trim()).map_err(|e| format!("base_url {text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "base_url {text:?} must be http:// or https://, not {}://",
            url.scheme()
        ));
    }
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("base_url {text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it holds a secret.
        return Err("base_url must not carry a user name or password".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "base_url {text:?} must not have a query or fragment"
        ));
    }
    Ok(url)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the past means "now";
/// a wait above [`MAX_PROVIDER_WAIT`] is cut to it.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_PROVIDER_WAIT));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_PROVIDER_WAIT),
    )
}

/// Values of `X-RateLimit-Reset` above this are Unix times (AbuseIPDB sends epoch seconds); below it
/// they are seconds from now (as other APIs send). A window of 30 years from now is not plausible.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// The quota headers. `reset_after` comes from `X-RateLimit-Reset`, or from `Retry-After` when the
/// reset is absent; never above [`MAX_PROVIDER_WAIT`] (a reset beyond what the clock can hold is
/// that too, not an overflow).
pub(crate) fn rate_info(
    headers: &HeaderMap,
    retry_after: Option<Duration>,
    now: SystemTime,
) -> RateInfo {
    let number = |name: &str| -> Option<u64> {
        headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
    };
    let reset_after = number("x-ratelimit-reset")
        .map(|reset| {
            if reset >= EPOCH_THRESHOLD {
                match UNIX_EPOCH.checked_add(Duration::from_secs(reset)) {
                    Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
                    None => MAX_PROVIDER_WAIT,
                }
            } else {
                Duration::from_secs(reset)
            }
            .min(MAX_PROVIDER_WAIT)
        })
        .or(retry_after);
    RateInfo {
        limit: number("x-ratelimit-limit"),
        remaining: number("x-ratelimit-remaining"),
        reset_after,
    }
}

/// At most [`MESSAGE_CHARS`] characters, on one line, control characters dropped.
pub(crate) fn shorten(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if chars == MESSAGE_CHARS {
            out.push('…');
            return out;
        }
        out.push(c);
        chars += 1;
    }
    out.trim().to_owned()
}

/// A reqwest error and its causes on one line, without the URL (it adds nothing the caller lacks).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    let mut first = true;
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            if !first {
                text.push_str(": ");
            }
            let _ = write!(text, "{part}");
            first = false;
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn base_urls() {
        assert!(parse_base_url("https://api.abuseipdb.com").is_ok());
        assert_eq!(
            parse_base_url("http://127.0.0.1:8080/gw/").unwrap().path(),
            "/gw/"
        );
        assert!(parse_base_url("ftp://example.org")
            .unwrap_err()
            .contains("http:// or https://"));
        assert!(parse_base_url("file:///etc/passwd").is_err());
        assert!(parse_base_url("api.abuseipdb.com").is_err());
        let e = parse_base_url("https://user:hunter22@example.org").unwrap_err();
        assert!(!e.contains("hunter22"), "{e}");
        assert!(parse_base_url("https://example.org/?a=1").is_err());
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_785_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 120 "));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn rate_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_785_000_000);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit", HeaderValue::from_static("1000"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1785000300"));
        let r = rate_info(&h, None, now);
        assert_eq!(r.limit, Some(1000));
        assert_eq!(r.remaining, Some(0));
        assert_eq!(r.reset_after, Some(Duration::from_secs(300)));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("60"));
        assert_eq!(
            rate_info(&h, None, now).reset_after,
            Some(Duration::from_secs(60))
        );
        h.remove("x-ratelimit-reset");
        assert_eq!(
            rate_info(&h, Some(Duration::from_secs(7)), now).reset_after,
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn messages_are_short_and_one_line() {
        let long = "x".repeat(500);
        let s = shorten(&long);
        assert_eq!(s.chars().count(), MESSAGE_CHARS + 1);
        assert_eq!(shorten("a\n\n  b\tc"), "a b c");
    }
}
