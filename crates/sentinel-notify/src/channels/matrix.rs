//! The Matrix channel: each message is one `m.room.message` event sent to a room through the
//! client-server API (`PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`) with the
//! bot's access token. The transaction id is the message's delivery id, so a retry after a lost
//! answer is de-duplicated by the homeserver, which returns the first event's id again.
//!
//! Errors: 429 `M_LIMIT_EXCEEDED` is transient and waits `retry_after_ms` (or `Retry-After`); 401/403
//! (`M_UNKNOWN_TOKEN`, `M_FORBIDDEN`: a bad token, or the bot is not in the room) are permanent; 5xx
//! and connection failures transient. The token never appears in `Debug`, an error or a log.

use super::http;
use crate::channel::{Channel, Message, SendError};
use crate::config::{MatrixConfig, Secret};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::Duration;

/// Everything but RFC 3986 unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `type: matrix`.
pub struct MatrixChannel {
    name: String,
    homeserver: reqwest::Url,
    base: String,
    room: String,
    token: Secret,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for MatrixChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixChannel")
            .field("name", &self.name)
            .field("homeserver", &http::origin(&self.homeserver))
            .field("room", &self.room)
            .field("access_token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl MatrixChannel {
    /// Builds the channel; fails on a homeserver URL that is not http(s), an empty room or token.
    pub fn new(name: &str, cfg: &MatrixConfig) -> Result<MatrixChannel, String> {
        let homeserver = http::check_url(
            &cfg.homeserver,
            &format!("channel {name}: matrix homeserver"),
        )?;
        if cfg.room.trim().is_empty() {
            return Err(format!("channel {name}: the matrix room is empty"));
        }
        if cfg.access_token.expose().is_empty() {
            return Err(format!("channel {name}: the matrix access token is empty"));
        }
        Ok(MatrixChannel {
            name: name.to_string(),
            base: cfg.homeserver.trim_end_matches('/').to_string(),
            homeserver,
            room: cfg.room.clone(),
            token: cfg.access_token.clone(),
            timeout: cfg.timeout,
            client: http::client(cfg.timeout)?,
        })
    }

    /// The send URL for a transaction id.
    fn send_url(&self, txn: &str) -> String {
        format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            self.base,
            utf8_percent_encode(&self.room, SEGMENT),
            utf8_percent_encode(txn, SEGMENT)
        )
    }

    /// The event content: plain `body`, and the same as HTML in `formatted_body`. Subject and text
    /// are cut (at a character boundary, marked) so the event stays under the 65 536-byte limit a
    /// homeserver enforces (`M_TOO_LARGE`, a permanent refusal) even when every character of the
    /// HTML copy is escaped to six bytes.
    fn content(m: &Message) -> serde_json::Value {
        let subject = cut(&m.subject(), MAX_SUBJECT);
        let text = cut(&m.text(), MAX_TEXT);
        let html = format!(
            "<strong>{}</strong><br>{}",
            escape_html(&subject),
            escape_html(&text).replace('\n', "<br>")
        );
        serde_json::json!({
            "msgtype": "m.text",
            "body": format!("{subject}\n{text}"),
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        })
    }
}

/// The longest subject sent, in bytes.
const MAX_SUBJECT: usize = 512;
/// The longest text sent, in bytes: (512 + 8192) × 7 (plain + escaped HTML) + JSON stays < 64 KiB.
const MAX_TEXT: usize = 8192;

/// `s` cut to at most `max` bytes at a character boundary, with a mark when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated]", &s[..end])
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[async_trait::async_trait]
impl Channel for MatrixChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "matrix"
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        let req = self
            .client
            .put(self.send_url(&m.delivery_id))
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(Self::content(m).to_string());
        let secrets = [self.token.expose()];
        let reply = http::execute(req, "matrix", self.timeout, &secrets).await?;
        let answer: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
        let field = |k: &str| {
            answer
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if (200..300).contains(&reply.status) {
            tracing::debug!(evt = "matrix_event_sent", channel = %self.name,
                delivery_id = %m.delivery_id, event_id = field("event_id").unwrap_or_default());
            return Ok(());
        }
        let errcode = field("errcode");
        if reply.status == 429 || errcode.as_deref() == Some("M_LIMIT_EXCEEDED") {
            let wait_ms = answer
                .as_ref()
                .and_then(|v| v.get("retry_after_ms"))
                .and_then(|v| v.as_u64());
            let retry_after = wait_ms.map(Duration::from_millis).or(reply.retry_after);
            return Err(SendError::Transient {
                reason: format!(
                    "matrix: HTTP {}: {} (rate limited)",
                    reply.status,
                    errcode.as_deref().unwrap_or("M_LIMIT_EXCEEDED")
                ),
                retry_after,
            });
        }
        if let Some(code) = errcode {
            let error = field("error").unwrap_or_default();
            let reason = http::redact(
                &format!("matrix: HTTP {}: {code}: {error}", reply.status),
                &secrets,
            );
            let transient = reply.status == 408 || reply.status >= 500;
            return Err(if transient {
                SendError::Transient {
                    reason,
                    retry_after: reply.retry_after,
                }
            } else {
                SendError::Permanent(reason)
            });
        }
        http::classify(&reply, "matrix", &secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_and_txn_are_percent_encoded() {
        let ch = MatrixChannel::new(
            "m",
            &MatrixConfig {
                homeserver: "http://127.0.0.1:8008/".into(),
                room: "!abc/def:example.org".into(),
                access_token: Secret::new("tok"),
                timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
        assert_eq!(
            ch.send_url("01H x"),
            "http://127.0.0.1:8008/_matrix/client/v3/rooms/%21abc%2Fdef%3Aexample.org/send/m.room.message/01H%20x"
        );
        assert_eq!(escape_html("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }
}
