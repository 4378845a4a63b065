//! The Slack channel: a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat) gets
//! `{"text": "<subject>\n<text>"}`. The URL is itself the credential: it is kept as a secret and never
//! shown in `Debug`, an error or a log. The text is escaped as Slack asks (`&`, `<`, `>`): a title or
//! body carrying what an attacker wrote (a user name, a user agent) cannot mention `@channel`
//! (`<!channel>`), a user, or dress up a link (`<https://evil|text>`).

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

#[async_trait::async_trait]
impl Channel for SlackChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "slack"
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        let text = format!("{}\n{}", m.subject(), m.text());
        let payload = serde_json::json!({ "text": escape(&text) });
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

/// Escapes the three characters Slack's message formatting gives a meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn mentions_and_links_are_escaped() {
        assert_eq!(
            escape("<!channel> & <https://evil.example|unblock> <@U123>"),
            "&lt;!channel&gt; &amp; &lt;https://evil.example|unblock&gt; &lt;@U123&gt;"
        );
        assert_eq!(escape("plain text"), "plain text");
    }
}
