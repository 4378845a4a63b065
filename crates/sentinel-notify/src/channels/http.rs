//! What the HTTP channels (webhook, Slack, Matrix) share: the client (rustls, no redirects, a
//! per-attempt timeout), a capped read of the answer, `Retry-After`, the status classification
//! (2xx delivered; 408, 429 and 5xx transient; any other answer permanent) and error text that never
//! carries a URL or a credential.

use crate::channel::SendError;
use std::time::{Duration, SystemTime};

/// At most this much of an answer's body is read (the rest is dropped unread).
pub(crate) const BODY_CAP: usize = 64 * 1024;

/// The `User-Agent` every HTTP channel sends.
pub(crate) const USER_AGENT: &str = concat!("sentinel/", env!("CARGO_PKG_VERSION"));

/// The longest receiver-given wait taken as is (a longer one is cut to this).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// A client for one channel: rustls, redirects never followed, `timeout` for the whole attempt.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))
}

/// Checks that `url` is an absolute http(s) URL; the error never shows the URL.
pub(crate) fn check_url(url: &str, what: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{what}: not a valid URL ({e})"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(parsed),
        "http" | "https" => Err(format!("{what}: the URL has no host")),
        other => Err(format!(
            "{what}: the URL scheme must be http or https, not {other:?}"
        )),
    }
}

/// A URL reduced to `scheme://host:port`, for `Debug` (no user, path or query, where credentials live).
pub(crate) fn origin(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        (Some(h), None) => format!("{}://{h}", url.scheme()),
        _ => url.scheme().to_string(),
    }
}

/// An answer: status, `Retry-After` and the first [`BODY_CAP`] bytes of the body.
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, as a wait from now.
    pub retry_after: Option<Duration>,
    /// The body, cut at [`BODY_CAP`].
    pub body: Vec<u8>,
}

impl Reply {
    /// The start of the body as one line of text, for an error message.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned();
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_string()
    }
}

/// Sends the request and reads the answer; a failure to get an answer is classified here
/// (timeouts and connection failures are transient). `what` names the channel type in errors;
/// `secrets` are cut out of any error text.
pub(crate) async fn execute(
    req: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
    secrets: &[&str],
) -> Result<Reply, SendError> {
    let mut resp = req
        .send()
        .await
        .map_err(|e| transport_error(e, what, timeout, secrets))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_CAP - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= BODY_CAP {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let e = e.without_url();
                // The status is the answer; a body cut short only loses detail.
                tracing::debug!(evt = "notify_body_read_failed", channel_type = what,
                    error = %redact(&chain(&e), secrets));
                break;
            }
        }
    }
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// The common classification of an answer: 2xx delivered; 408, 429 and 5xx transient (with the
/// receiver's `Retry-After`); 3xx (redirects are not followed) and other 4xx permanent.
pub(crate) fn classify(reply: &Reply, what: &str, secrets: &[&str]) -> Result<(), SendError> {
    let status = reply.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let snippet = reply.snippet();
    let reason = if snippet.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        redact(&format!("{what}: HTTP {status}: {snippet}"), secrets)
    };
    if status == 408 || status == 429 || status >= 500 {
        Err(SendError::Transient {
            reason,
            retry_after: reply.retry_after,
        })
    } else if (300..400).contains(&status) {
        Err(SendError::Permanent(format!(
            "{reason} (redirects are not followed: configure the final URL)"
        )))
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), capped at a day.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().ok()?)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_CAP))
}

/// A request that got no answer: timeouts and connection failures are transient; a request that
/// could not even be built (a bad URL) is permanent. The text is the error's causes without the
/// URL reqwest puts at the top.
fn transport_error(
    e: reqwest::Error,
    what: &str,
    timeout: Duration,
    secrets: &[&str],
) -> SendError {
    let e = e.without_url();
    if e.is_timeout() {
        return SendError::transient(format!(
            "{what}: no answer within {:.1}s",
            timeout.as_secs_f64()
        ));
    }
    let detail = redact(&chain(&e), secrets);
    if e.is_builder() {
        return SendError::Permanent(format!("{what}: cannot build the request: {detail}"));
    }
    if e.is_connect() {
        return SendError::transient(format!("{what}: cannot connect: {detail}"));
    }
    SendError::transient(format!("{what}: request failed: {detail}"))
}

/// An error and its causes, joined with `: `, skipping repeats.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.iter().any(|p| p.contains(&text)) {
            // Already said.
        } else if parts
            .last()
            .is_some_and(|last| text.starts_with(last.as_str()))
        {
            // A cause that repeats its wrapper's text and adds to it ("Connection error" then
            // "Connection error: invalid peer certificate"): keep the longer one only.
            if let Some(last) = parts.last_mut() {
                *last = text;
            }
        } else {
            parts.push(text);
        }
        source = s.source();
    }
    // Some libraries wrap an error of their own kind and print both ("Connection error: Connection
    // error: …"): say each consecutive segment once.
    let mut segments: Vec<&str> = Vec::new();
    let joined = parts.join(": ");
    for seg in joined.split(": ") {
        if segments.last() != Some(&seg) {
            segments.push(seg);
        }
    }
    segments.join(": ")
}

/// `text` with every non-empty secret replaced by `***` (a last line of defence: error texts are
/// built without secrets in the first place).
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let wait = parse_retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(120));
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999999"), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn a_cause_repeating_its_wrapper_is_said_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "Connection error",
            Some(Box::new(E(
                "Connection error: invalid peer certificate: UnknownIssuer",
                Some(Box::new(E("UnknownIssuer", None))),
            ))),
        );
        assert_eq!(
            chain(&e),
            "Connection error: invalid peer certificate: UnknownIssuer"
        );
        let e = E(
            "Connection error: Connection error: received corrupt message",
            None,
        );
        assert_eq!(chain(&e), "Connection error: received corrupt message");
        let e = E("smtp", Some(Box::new(E("refused", None))));
        assert_eq!(chain(&e), "smtp: refused");
    }

    #[test]
    fn redaction_cuts_secrets() {
        assert_eq!(redact("a hunter22 b", &["hunter22", ""]), "a *** b");
    }
}
