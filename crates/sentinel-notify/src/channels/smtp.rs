//! The email channel: one plain-text message per notification over SMTP (lettre, rustls).
//!
//! Security is the configured one and never less: `starttls` upgrades the connection and refuses
//! to go on if the server does not offer STARTTLS (no silent fallback to plain text); `tls` speaks
//! TLS from the first byte (SMTPS); `none` is only allowed for a relay on a loopback address. The
//! server certificate is checked against the bundled Mozilla roots plus `ca_file`, when given.
//!
//! The message: `From`/`To` from the configuration, `Subject` = [`Message::subject`], a text/plain
//! body = [`Message::text`], `Message-ID: <delivery_id@sentinel>` (the same on every retry, so a
//! mail client can thread or drop repeats). Each attempt opens its own connection and must finish
//! within the configured timeout.
//!
//! Errors: a 4xx reply, a connection, TLS or network failure and a timeout are transient; a 5xx
//! reply (a rejected sender or recipient, failed login) and a server without STARTTLS when it is
//! required are permanent. The password never appears in `Debug`, an error or a log.

use super::http::redact;
use crate::channel::{Channel, Message, SendError};
use crate::config::{Secret, SmtpConfig, SmtpSecurity};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::net::IpAddr;
use std::time::Duration;

/// `type: smtp`.
pub struct SmtpChannel {
    name: String,
    host: String,
    port: u16,
    security: SmtpSecurity,
    username: Option<String>,
    password: Option<Secret>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether `host` names this machine's loopback (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl SmtpChannel {
    /// Builds the channel: parses the addresses, reads `ca_file`, and sets up the transport.
    /// Fails on a bad address, an unreadable or invalid `ca_file`, a login without a password (or
    /// the reverse), and `security: none` towards a host that is not loopback.
    pub fn new(name: &str, cfg: &SmtpConfig) -> Result<SmtpChannel, String> {
        let ctx = format!("channel {name}");
        if cfg.host.trim().is_empty() {
            return Err(format!("{ctx}: the smtp host is empty"));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("{ctx}: from address {:?} is not valid: {e}", cfg.from))?;
        if cfg.to.is_empty() {
            return Err(format!("{ctx}: no `to` address"));
        }
        let to = cfg
            .to
            .iter()
            .map(|a| {
                a.parse::<Mailbox>()
                    .map_err(|e| format!("{ctx}: to address {a:?} is not valid: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match cfg.security {
            SmtpSecurity::None => {
                if !is_loopback(&cfg.host) {
                    return Err(format!(
                        "{ctx}: security none sends mail in clear text and is only allowed for a relay on loopback, not {:?}; use starttls or tls",
                        cfg.host
                    ));
                }
                Tls::None
            }
            SmtpSecurity::Starttls => Tls::Required(tls_parameters(&ctx, cfg)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(&ctx, cfg)?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
                .port(cfg.port)
                .tls(tls)
                .timeout(Some(cfg.timeout));
        match (&cfg.username, &cfg.password) {
            (Some(user), Some(pass)) => {
                builder =
                    builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
            }
            (None, None) => {}
            (Some(_), None) => return Err(format!("{ctx}: smtp username without a password")),
            (None, Some(_)) => return Err(format!("{ctx}: smtp password without a username")),
        }
        Ok(SmtpChannel {
            name: name.to_string(),
            host: cfg.host.clone(),
            port: cfg.port,
            security: cfg.security,
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            from,
            to,
            timeout: cfg.timeout,
            transport: builder.build(),
        })
    }

    fn email(&self, m: &Message) -> Result<lettre::Message, SendError> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(m.subject())
            .message_id(Some(format!("<{}@sentinel>", m.delivery_id)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(m.text())
            .map_err(|e| SendError::Permanent(format!("smtp: cannot build the message: {e}")))
    }

    /// What must never show in an error: the password, and the base64 forms it travels in (AUTH
    /// PLAIN's `\0user\0password`, AUTH LOGIN's password line), which a hostile or careless server
    /// may echo back in its refusal.
    fn secrets(&self) -> Vec<String> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let Some(p) = &self.password else {
            return Vec::new();
        };
        let pass = p.expose();
        let user = self.username.as_deref().unwrap_or_default();
        let plain = b64.encode(format!("\0{user}\0{pass}"));
        vec![
            pass.to_string(),
            b64.encode(pass),
            plain.trim_end_matches('=').to_string(),
            b64.encode(pass).trim_end_matches('=').to_string(),
        ]
    }
}

fn tls_parameters(ctx: &str, cfg: &SmtpConfig) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(cfg.host.clone());
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("{ctx}: cannot read ca_file {}: {e}", path.display()))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "{ctx}: ca_file {} holds no PEM certificate",
                path.display()
            ));
        }
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("{ctx}: ca_file {} is not valid PEM: {e}", path.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls()
        .map_err(|e| format!("{ctx}: cannot set up TLS: {e}"))
}

/// What to look at for a TLS failure the operator can fix in the channel's configuration.
fn hint(detail: &str) -> &'static str {
    if detail.contains("UnknownIssuer") || detail.contains("CaUsedAsEndEntity") {
        " (the server's certificate is not signed by a CA Sentinel trusts: set the channel's \
         `ca_file` to the CA that signed it)"
    } else if detail.contains("NotValidForName") {
        " (the server's certificate is not for this `host`: use the name it was issued to)"
    } else if detail.contains("invalid peer certificate") {
        " (the server's certificate was refused: check the channel's `ca_file` and `host`)"
    } else if detail.contains("InvalidContentType") || detail.contains("corrupt message") {
        " (no TLS answer on this port: `security: tls` is for port 465, `starttls` for 587)"
    } else {
        ""
    }
}

/// 4xx, connection, TLS, network and timeouts are transient; 5xx and refusals by the client itself
/// (no STARTTLS offered) permanent.
fn classify(e: &lettre::transport::smtp::Error, secrets: &[&str]) -> SendError {
    let detail = redact(&super::http::chain(e), secrets);
    if e.is_permanent() {
        let hint = if detail.to_ascii_uppercase().contains("STARTTLS") {
            " (the server wants TLS first: set the channel's `security: starttls`)"
        } else {
            ""
        };
        SendError::Permanent(format!("smtp: server refused: {detail}{hint}"))
    } else if e.is_transient() {
        SendError::transient(format!("smtp: server deferred: {detail}"))
    } else if e.is_client() && detail.contains("STARTTLS") {
        SendError::Permanent(format!(
            "smtp: the server does not offer STARTTLS and security is starttls: nothing was sent ({detail})"
        ))
    } else if e.is_client() {
        SendError::Permanent(format!("smtp: refused by the client: {detail}"))
    } else if e.is_timeout() {
        SendError::transient(format!("smtp: timed out: {detail}"))
    } else {
        SendError::transient(format!("smtp: {detail}{}", hint(&detail)))
    }
}

#[async_trait::async_trait]
impl Channel for SmtpChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        let email = self.email(m)?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let secrets = self.secrets();
                let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
                Err(classify(&e, &refs))
            }
            Err(_) => Err(SendError::transient(format!(
                "smtp: no complete answer within {:.1}s",
                self.timeout.as_secs_f64()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_say_what_to_fix() {
        assert!(
            hint("Connection error: invalid peer certificate: UnknownIssuer").contains("ca_file")
        );
        assert!(hint("invalid peer certificate: NotValidForName").contains("`host`"));
        assert!(hint("received corrupt message of type InvalidContentType").contains("465"));
        assert_eq!(hint("Connection refused (os error 111)"), "");
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("mail.example.org"));
        assert!(!is_loopback("192.0.2.1"));
    }
}
