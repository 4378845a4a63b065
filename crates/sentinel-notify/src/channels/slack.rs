//! The Slack channel: a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat) gets
//! `{"text": "<subject>\n<text>"}`, with `&`, `<` and `>` escaped as Slack's message formatting
//! requires, so a notice (whose title may carry attacker-chosen text: a user name, a URL, a log
//! line) cannot ping `<!channel>`/`<@user>` or show a disguised `<url|label>` link. The URL is itself the credential: it is kept as a secret and never
//! shown in `Debug`, an error or a log.

use super::http;
use crate::channel::{Channel, Message, SendError};
use crate::config::{Secret, SlackConfig};
use std::time::Duration;

/// `type: slack`.
pub struct SlackChannel {
    name: String,
    url: Secret,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for SlackChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackChannel")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SlackChannel {
    /// Builds the channel; fails (without showing the URL) on a URL that is not http(s).
    pub fn new(name: &str, cfg: &SlackConfig) -> Result<SlackChannel, String> {
        http::check_url(cfg.url.expose(), &format!("channel {name}: slack url"))?;
        Ok(SlackChannel {
            name: name.to_string(),
            url: cfg.url.clone(),
            timeout: cfg.timeout,
            client: http::client(cfg.timeout)?,
        })
    }
}

/// Slack's escaping of message text: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;` (nothing else).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
    out
}

#[async_trait::async_trait]
impl Channel for SlackChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "slack"
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        let text = escape(&format!("{}\n{}", m.subject(), m.text()));
        let payload = serde_json::json!({ "text": text });
        let req = self
            .client
            .post(self.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_string());
        let url = self.url.expose();
        // The path (and a query, if any) is what makes the URL a credential.
        let path = reqwest::Url::parse(url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        let secrets = [url, path.as_str()];
        let reply = http::execute(req, "slack", self.timeout, &secrets).await?;
        http::classify(&reply, "slack", &secrets)
    }
}
