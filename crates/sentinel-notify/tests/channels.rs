//! The notification channels against real receivers on loopback: the testkit's signature-checking
//! webhook receiver, Matrix and Slack fakes, and a real SMTP server with STARTTLS and a private CA.
//! Each test asserts what arrived (or why it did not), how a failure is classified, and that no
//! secret shows in an error or in `Debug`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{NoticeKind, Severity, Timestamp, TraceId};
use sentinel_notify::channels::{sign, verify, VerifyError};
use sentinel_notify::config::{
    ChannelConfig, MatrixConfig, Secret, SlackConfig, SmtpConfig, SmtpSecurity, WebhookConfig,
};
use sentinel_notify::{build_channel, Channel, Message, SendError};
use sentinel_testkit::receivers::{MatrixFake, SlackFake, WebhookReceiver};
use sentinel_testkit::smtp::{SmtpOptions, SmtpSink};
use sentinel_testkit::ti::RetryAfter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const WEBHOOK_SECRET: &str = "whsec-7f3a9c0e4b1d2e8f";
const MATRIX_TOKEN: &str = "syt_bot_token_5d9e1f2a3b4c";
const MATRIX_ROOM: &str = "!roomAbc:fake.local";
const SMTP_USER: &str = "sentinel@example.org";
const SMTP_PASSWORD: &str = "smtp-pass-91c2e7d4";
const TIMEOUT: Duration = Duration::from_secs(10);

fn message(id: &str) -> Message {
    let first = Timestamp::from_millis(1_790_000_000_000);
    Message {
        delivery_id: id.to_string(),
        kind: NoticeKind::Alert,
        severity: Severity::High,
        title: "ssh brute force from 192.0.2.7 <b>&".to_string(),
        body: "42 failed logins in 60s\nbanned for 1h".to_string(),
        trace_id: TraceId::new(),
        count: 3,
        first_seen: first,
        last_seen: first.plus(Duration::from_secs(90)),
    }
}

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

fn webhook(url: String, secret: &str) -> Arc<dyn Channel> {
    build_channel(
        "hook",
        &ChannelConfig::Webhook(WebhookConfig {
            url,
            secret: Secret::new(secret),
            timeout: TIMEOUT,
        }),
    )
    .unwrap()
}

fn matrix(homeserver: String, room: &str, token: &str) -> Arc<dyn Channel> {
    build_channel(
        "matrix",
        &ChannelConfig::Matrix(MatrixConfig {
            homeserver,
            room: room.to_string(),
            access_token: Secret::new(token),
            timeout: TIMEOUT,
        }),
    )
    .unwrap()
}

fn slack(url: String) -> Arc<dyn Channel> {
    build_channel(
        "slack",
        &ChannelConfig::Slack(SlackConfig {
            url: Secret::new(url),
            timeout: TIMEOUT,
        }),
    )
    .unwrap()
}

fn smtp_cfg(port: u16, security: SmtpSecurity, ca: Option<PathBuf>, login: bool) -> SmtpConfig {
    SmtpConfig {
        host: "localhost".to_string(),
        port,
        security,
        username: login.then(|| SMTP_USER.to_string()),
        password: login.then(|| Secret::new(SMTP_PASSWORD)),
        from: "Sentinel <sentinel@example.org>".to_string(),
        to: vec![
            "ops@example.org".to_string(),
            "oncall@example.org".to_string(),
        ],
        ca_file: ca,
        timeout: TIMEOUT,
    }
}

fn smtp(cfg: SmtpConfig) -> Arc<dyn Channel> {
    build_channel("mail", &ChannelConfig::Smtp(cfg)).unwrap()
}

fn transient(r: Result<(), SendError>) -> (String, Option<Duration>) {
    match r {
        Err(SendError::Transient {
            reason,
            retry_after,
        }) => (reason, retry_after),
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

fn permanent(r: Result<(), SendError>) -> String {
    match r {
        Err(SendError::Permanent(reason)) => reason,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked into {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivers_a_signed_message_the_receiver_verifies() {
    let rx = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let ch = webhook(rx.url(), WEBHOOK_SECRET);
    assert_eq!((ch.name(), ch.kind()), ("hook", "webhook"));
    let m = message("01HWEBHOOK0000000000000001");
    ch.send(&m).await.unwrap();

    let got = rx.received();
    assert_eq!(got.len(), 1, "rejected: {:?}", rx.rejected());
    let d = &got[0];
    assert_eq!(d.delivery_id, m.delivery_id);
    assert_eq!(d.header("content-type"), Some("application/json"));
    assert!(d.header("user-agent").unwrap().starts_with("sentinel/"));
    // The body is the message plus sent_at.
    let back: Message = serde_json::from_value(d.json.clone()).unwrap();
    assert_eq!(back, m);
    let sent_at = d.json["sent_at"].as_str().unwrap();
    Timestamp::parse_rfc3339(sent_at).unwrap();
    // The crate's own verify agrees with the receiver's independent check.
    let ts = d.timestamp.to_string();
    assert_eq!(
        verify(
            WEBHOOK_SECRET.as_bytes(),
            &ts,
            &d.signature,
            &d.raw,
            d.timestamp,
            300
        ),
        Ok(())
    );
    assert_eq!(
        d.signature,
        sign(WEBHOOK_SECRET.as_bytes(), d.timestamp, &d.raw)
    );
    assert_eq!(
        verify(
            b"not-the-secret",
            &ts,
            &d.signature,
            &d.raw,
            d.timestamp,
            300
        ),
        Err(VerifyError::Mismatch)
    );

    // A retry of the same message is signed afresh and de-duplicated by the receiver.
    ch.send(&m).await.unwrap();
    assert_eq!(rx.received().len(), 1);
    assert_eq!(rx.attempts().len(), 2);
    assert!(rx.attempts().iter().all(|a| a.status == 200));
    assert!(rx.rejected().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_with_a_wrong_secret_is_rejected_and_permanent() {
    let rx = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let wrong = "whsec-wrong-0000000000";
    let ch = webhook(rx.url(), wrong);
    let reason = permanent(ch.send(&message("01HWRONGSECRET000000000001")).await);
    assert!(reason.contains("401"), "{reason}");
    assert_no_secret(&reason, &[wrong, WEBHOOK_SECRET]);
    assert!(rx.received().is_empty());
    assert_eq!(rx.rejected(), vec!["signature mismatch".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_refuses_replays_and_unsigned_requests() {
    // What a receiver following the documented scheme refuses: a correctly signed request whose
    // timestamp is outside the window (a replay), and requests without the headers.
    let rx = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let client = reqwest::Client::new();
    let body = br#"{"delivery_id":"01HREPLAY"}"#.to_vec();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = now - 3600;
    let resp = client
        .post(rx.url())
        .header("X-Sentinel-Delivery", "01HREPLAY")
        .header("X-Sentinel-Timestamp", old.to_string())
        .header(
            "X-Sentinel-Signature",
            sign(WEBHOOK_SECRET.as_bytes(), old, &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client
        .post(rx.url())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // The same body signed now is accepted.
    let resp = client
        .post(rx.url())
        .header("X-Sentinel-Delivery", "01HREPLAY")
        .header("X-Sentinel-Timestamp", now.to_string())
        .header(
            "X-Sentinel-Signature",
            sign(WEBHOOK_SECRET.as_bytes(), now, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rejected = rx.rejected();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].contains("replay window"), "{rejected:?}");
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_rate_limited_refused_and_missing_are_classified() {
    let rx = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let ch = webhook(rx.url(), WEBHOOK_SECRET);
    let m = message("01HCLASSIFY000000000000001");

    rx.set_down(true);
    let (reason, wait) = transient(ch.send(&m).await);
    assert!(reason.contains("503"), "{reason}");
    assert_eq!(wait, None);
    rx.set_down(false);

    rx.set_rate_limited(Some(RetryAfter::Seconds(7)));
    let (reason, wait) = transient(ch.send(&m).await);
    assert!(reason.contains("429"), "{reason}");
    assert_eq!(wait, Some(Duration::from_secs(7)));

    rx.set_rate_limited(Some(RetryAfter::HttpDate(120)));
    let (_, wait) = transient(ch.send(&m).await);
    let wait = wait.expect("an HTTP-date Retry-After is honoured");
    assert!(
        wait >= Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
    rx.set_rate_limited(None);

    // Recovered: the same message goes through once.
    ch.send(&m).await.unwrap();
    assert_eq!(rx.received().len(), 1);
    assert!(rx.rejected().is_empty());

    // A path the receiver does not serve: 404, permanent.
    let missing = webhook(format!("{}-missing", rx.url()), WEBHOOK_SECRET);
    let reason = permanent(missing.send(&m).await);
    assert!(reason.contains("404"), "{reason}");

    // Nothing listening: transient, and the URL is not in the reason.
    let url = format!(
        "http://127.0.0.1:{}/hook?token=sekrit-query",
        closed_port().await
    );
    let refused = webhook(url, WEBHOOK_SECRET);
    let (reason, _) = transient(refused.send(&m).await);
    assert!(reason.contains("connect"), "{reason}");
    assert_no_secret(&reason, &["sekrit-query", WEBHOOK_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_redirects_are_not_followed() {
    // A server that answers every request with a redirect to the real receiver.
    let rx = WebhookReceiver::start(WEBHOOK_SECRET).await;
    let target = rx.url();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { axum::response::Redirect::temporary(&target) }
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let ch = webhook(format!("http://{addr}/hook"), WEBHOOK_SECRET);
    let reason = permanent(ch.send(&message("01HREDIRECT000000000000001")).await);
    assert!(reason.contains("307"), "{reason}");
    assert!(rx.attempts().is_empty(), "the redirect was followed");
    server.abort();
}

/// A raw HTTP server: each connection's request is read, then `answer` is written; with
/// `endless`, chunks of `x` follow for as long as the client reads. Dropping the handle stops it.
async fn raw_http(answer: &'static str, endless: bool) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
                while endless && s.write_all(chunk.as_bytes()).await.is_ok() {}
                // Without `endless`: hold the connection open, answering nothing more.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_are_read_at_most_64_kib_and_attempts_time_out() {
    // An error answer with an endless body: classified by its status, the body cut at the cap
    // (reading it all would never end, and the attempt would time out instead).
    let (port, endless) = raw_http(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        true,
    )
    .await;
    let ch = webhook(format!("http://127.0.0.1:{port}/hook"), WEBHOOK_SECRET);
    let reason = permanent(ch.send(&message("01HBODYCAP0000000000000001")).await);
    assert!(reason.contains("HTTP 400"), "{reason}");
    assert!(reason.len() < 400, "{reason}");
    endless.abort();

    // A server that accepts and never answers: transient, after the configured timeout.
    let (port, silent) = raw_http("", false).await;
    let ch = build_channel(
        "hook",
        &ChannelConfig::Webhook(WebhookConfig {
            url: format!("http://127.0.0.1:{port}/hook"),
            secret: Secret::new(WEBHOOK_SECRET),
            timeout: Duration::from_secs(1),
        }),
    )
    .unwrap();
    let (reason, _) = transient(ch.send(&message("01HTIMEOUT0000000000000001")).await);
    assert!(reason.contains("no answer within 1.0s"), "{reason}");

    // The same silence from an SMTP server (no greeting): transient.
    let mut cfg = smtp_cfg(port, SmtpSecurity::Starttls, None, false);
    cfg.timeout = Duration::from_secs(1);
    let (reason, _) = transient(smtp(cfg).send(&message("01HTIMEOUT0000000000000002")).await);
    assert!(!reason.is_empty());
    silent.abort();
}

// ---------------------------------------------------------------------------------------------
// Slack

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_posts_subject_and_text_and_hides_its_url() {
    let fake = SlackFake::start().await;
    let ch = slack(fake.url());
    let m = message("01HSLACK000000000000000001");
    ch.send(&m).await.unwrap();
    let posts = fake.received();
    assert_eq!(posts.len(), 1);
    // Slack's formatting characters are escaped (no mention, no disguised link).
    let escaped = format!("{}\n{}", m.subject(), m.text())
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert_eq!(posts[0].text, escaped);
    assert!(
        posts[0].text.contains("&lt;b&gt;&amp;"),
        "{}",
        posts[0].text
    );
    assert!(posts[0]
        .text
        .starts_with("[Sentinel] HIGH: ssh brute force"));

    fake.set_rate_limited(Some(RetryAfter::Seconds(30)));
    let (reason, wait) = transient(ch.send(&m).await);
    assert_eq!(wait, Some(Duration::from_secs(30)));
    assert_no_secret(&reason, &[&fake.token(), &fake.url()]);
    fake.set_rate_limited(None);

    fake.set_down(true);
    let (reason, _) = transient(ch.send(&m).await);
    assert!(reason.contains("503"), "{reason}");
    fake.set_down(false);

    // A revoked webhook (wrong path): 404 no_service, permanent, URL not shown.
    let wrong_url = format!(
        "http://{}/services/TFAKE0000/BFAKE0000/revoked-9f8e7d",
        fake.addr()
    );
    let reason = permanent(slack(wrong_url).send(&m).await);
    assert!(
        reason.contains("404") && reason.contains("no_service"),
        "{reason}"
    );
    assert_no_secret(&reason, &["revoked-9f8e7d"]);
    assert_eq!(fake.rejected().len(), 1);

    let refused = slack(format!(
        "http://127.0.0.1:{}/services/T/B/tok-55aa66bb",
        closed_port().await
    ));
    let (reason, _) = transient(refused.send(&m).await);
    assert_no_secret(&reason, &["tok-55aa66bb"]);
    assert_eq!(fake.received().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Matrix

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_sends_with_the_delivery_id_as_txn_and_is_deduplicated() {
    let fake = MatrixFake::start(MATRIX_ROOM, MATRIX_TOKEN).await;
    let ch = matrix(format!("{}/", fake.homeserver()), MATRIX_ROOM, MATRIX_TOKEN);
    let m = message("01HMATRIX00000000000000001");
    ch.send(&m).await.unwrap();
    // The same message again (a retry after a lost answer): the homeserver answers the same event.
    ch.send(&m).await.unwrap();

    let events = fake.received();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.txn_id, m.delivery_id);
    assert_eq!(e.room_id, MATRIX_ROOM);
    assert_eq!(e.event_type, "m.room.message");
    assert_eq!(e.content["msgtype"], "m.text");
    assert_eq!(e.content["body"], format!("{}\n{}", m.subject(), m.text()));
    let html = e.content["formatted_body"].as_str().unwrap();
    assert!(
        html.contains("&lt;b&gt;&amp;") && !html.contains("<b>&"),
        "{html}"
    );

    let attempts = fake.attempts();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[0].path.contains("%21roomAbc%3Afake.local"),
        "{}",
        attempts[0].path
    );
    let ids: Vec<_> = attempts
        .iter()
        .map(|a| a.response_json().unwrap()["event_id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], e.event_id.as_str());
    assert_eq!(
        attempts[0].header("authorization"),
        Some(format!("Bearer {MATRIX_TOKEN}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_failures_are_classified_without_the_token() {
    let fake = MatrixFake::start(MATRIX_ROOM, MATRIX_TOKEN).await;
    let m = message("01HMATRIXFAIL0000000000001");

    let bad = "syt_wrong_token_000111";
    let reason = permanent(matrix(fake.homeserver(), MATRIX_ROOM, bad).send(&m).await);
    assert!(
        reason.contains("401") && reason.contains("M_UNKNOWN_TOKEN"),
        "{reason}"
    );
    assert_no_secret(&reason, &[bad, MATRIX_TOKEN]);
    assert_eq!(fake.rejected().len(), 1);

    let reason = permanent(
        matrix(fake.homeserver(), "!other:fake.local", MATRIX_TOKEN)
            .send(&m)
            .await,
    );
    assert!(
        reason.contains("403") && reason.contains("M_FORBIDDEN"),
        "{reason}"
    );

    let ch = matrix(fake.homeserver(), MATRIX_ROOM, MATRIX_TOKEN);
    fake.set_rate_limited(Some(RetryAfter::Seconds(3)));
    let (reason, wait) = transient(ch.send(&m).await);
    assert!(reason.contains("M_LIMIT_EXCEEDED"), "{reason}");
    assert_eq!(wait, Some(Duration::from_millis(3000)));
    fake.set_rate_limited(None);

    fake.set_down(true);
    let (reason, _) = transient(ch.send(&m).await);
    assert!(reason.contains("503"), "{reason}");
    fake.set_down(false);

    let refused = matrix(
        format!("http://127.0.0.1:{}", closed_port().await),
        MATRIX_ROOM,
        MATRIX_TOKEN,
    );
    let (reason, _) = transient(refused.send(&m).await);
    assert_no_secret(&reason, &[MATRIX_TOKEN]);

    ch.send(&m).await.unwrap();
    assert_eq!(fake.received().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// SMTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_with_login_delivers_the_message() {
    let sink = SmtpSink::start(SmtpOptions::default().with_auth(SMTP_USER, SMTP_PASSWORD)).await;
    let ch = smtp(smtp_cfg(
        sink.port(),
        SmtpSecurity::Starttls,
        Some(sink.ca_file().to_path_buf()),
        true,
    ));
    assert_eq!((ch.name(), ch.kind()), ("mail", "smtp"));
    let m = message("01HSMTP0000000000000000001");
    ch.send(&m).await.unwrap();

    let mails = sink.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.tls, "the message came over a plain connection");
    assert_eq!(mail.auth_user.as_deref(), Some(SMTP_USER));
    assert_eq!(mail.mail_from, "sentinel@example.org");
    assert_eq!(mail.rcpt_to, vec!["ops@example.org", "oncall@example.org"]);
    assert!(m.subject().contains('×'));
    assert_eq!(mail.subject.as_deref(), Some(m.subject().as_str()));
    assert_eq!(
        mail.message_id.as_deref(),
        Some("<01HSMTP0000000000000000001@sentinel>")
    );
    assert_eq!(mail.body.trim_end(), m.text().trim_end());
    let ct = mail.header("Content-Type").unwrap();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(mail
        .header("From")
        .unwrap()
        .contains("sentinel@example.org"));
    assert!(mail.header("Date").is_some());
    assert!(!mail.raw.contains(SMTP_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_implicit_tls_and_plain_loopback_deliver() {
    let sink = SmtpSink::start(SmtpOptions::implicit_tls()).await;
    let ch = smtp(smtp_cfg(
        sink.port(),
        SmtpSecurity::Tls,
        Some(sink.ca_file().into()),
        false,
    ));
    ch.send(&message("01HSMTPS000000000000000001"))
        .await
        .unwrap();
    let mails = sink.received();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].tls);

    // Lines starting with a dot survive the transfer (stuffed by the client, unstuffed by the
    // server), and a line with a lone dot does not end the message early.
    let relay = SmtpSink::start(SmtpOptions::plain()).await;
    let ch = smtp(smtp_cfg(relay.port(), SmtpSecurity::None, None, false));
    let mut m = message("01HRELAY000000000000000001");
    m.body = ".leading dot\n..two dots\n.\nafter a lone dot".to_string();
    ch.send(&m).await.unwrap();
    let mails = relay.received();
    assert_eq!(mails.len(), 1);
    assert!(!mails[0].tls);
    assert_eq!(mails[0].body.trim_end(), m.text().trim_end());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_is_required_and_the_certificate_checked() {
    let m = message("01HSMTPTLS0000000000000001");
    // A server that does not offer STARTTLS: refused, nothing sent in clear.
    let plain = SmtpSink::start(SmtpOptions::plain()).await;
    let other = SmtpSink::start(SmtpOptions::default()).await;
    let ch = smtp(smtp_cfg(
        plain.port(),
        SmtpSecurity::Starttls,
        Some(other.ca_file().into()),
        true,
    ));
    let reason = permanent(ch.send(&m).await);
    assert!(reason.contains("does not offer STARTTLS"), "{reason}");
    assert_no_secret(&reason, &[SMTP_PASSWORD]);
    assert!(plain.received().is_empty());
    assert_eq!(plain.attempts(), 0, "MAIL was sent over a plain connection");

    // A server whose certificate is signed by a CA we were not given: the handshake fails.
    let ch = smtp(smtp_cfg(
        other.port(),
        SmtpSecurity::Starttls,
        Some(plain.ca_file().into()),
        false,
    ));
    let (reason, _) = transient(ch.send(&m).await);
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert!(other.received().is_empty());

    // Without any ca_file, the bundled public roots do not trust the test CA either.
    let ch = smtp(smtp_cfg(other.port(), SmtpSecurity::Starttls, None, false));
    transient(ch.send(&m).await);
    assert!(other.received().is_empty());

    // The right CA: delivered.
    let ch = smtp(smtp_cfg(
        other.port(),
        SmtpSecurity::Starttls,
        Some(other.ca_file().into()),
        false,
    ));
    ch.send(&m).await.unwrap();
    assert_eq!(other.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_replies_are_classified() {
    let sink = SmtpSink::start(SmtpOptions::default().with_auth(SMTP_USER, SMTP_PASSWORD)).await;
    let cfg = smtp_cfg(
        sink.port(),
        SmtpSecurity::Starttls,
        Some(sink.ca_file().into()),
        true,
    );
    let ch = smtp(cfg.clone());
    let m = message("01HSMTPFAULT00000000000001");

    sink.fail_next(451, 1);
    let (reason, _) = transient(ch.send(&m).await);
    assert!(reason.contains("451"), "{reason}");
    sink.fail_next(421, 1);
    let (reason, _) = transient(ch.send(&m).await);
    assert!(reason.contains("421"), "{reason}");
    sink.fail_next(550, 1);
    let reason = permanent(ch.send(&m).await);
    assert!(reason.contains("550"), "{reason}");
    assert!(sink.received().is_empty());

    // A wrong password: 535, permanent, and the password not in the error.
    let mut wrong = cfg.clone();
    wrong.password = Some(Secret::new("wrong-pass-77aa88bb"));
    let reason = permanent(smtp(wrong).send(&m).await);
    assert!(reason.contains("535"), "{reason}");
    assert_no_secret(&reason, &["wrong-pass-77aa88bb", SMTP_PASSWORD]);
    assert_eq!(sink.auth_failures(), 1);

    // Nothing listening: transient.
    let refused = smtp(smtp_cfg(
        closed_port().await,
        SmtpSecurity::Starttls,
        None,
        true,
    ));
    let (reason, _) = transient(refused.send(&m).await);
    assert_no_secret(&reason, &[SMTP_PASSWORD]);

    // The faults were one-shot: now it goes through.
    ch.send(&m).await.unwrap();
    assert_eq!(sink.received().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Build, Debug, log

#[test]
fn debug_never_shows_a_secret() {
    use sentinel_notify::channels::matrix::MatrixChannel;
    use sentinel_notify::channels::slack::SlackChannel;
    use sentinel_notify::channels::smtp::SmtpChannel;
    use sentinel_notify::channels::webhook::WebhookChannel;
    let webhook = WebhookChannel::new(
        "w",
        &WebhookConfig {
            url: "https://user:pw-in-url@hooks.example.org/in?key=query-key-1".into(),
            secret: Secret::new(WEBHOOK_SECRET),
            timeout: TIMEOUT,
        },
    )
    .unwrap();
    let slack = SlackChannel::new(
        "s",
        &SlackConfig {
            url: Secret::new("https://hooks.slack.example/services/T1/B2/slacksecret123"),
            timeout: TIMEOUT,
        },
    )
    .unwrap();
    let matrix = MatrixChannel::new(
        "m",
        &MatrixConfig {
            homeserver: "https://matrix.example.org".into(),
            room: MATRIX_ROOM.into(),
            access_token: Secret::new(MATRIX_TOKEN),
            timeout: TIMEOUT,
        },
    )
    .unwrap();
    let smtp = SmtpChannel::new("e", &smtp_cfg(587, SmtpSecurity::Starttls, None, true)).unwrap();
    let texts = [
        format!("{webhook:?}"),
        format!("{slack:?}"),
        format!("{matrix:?}"),
        format!("{smtp:?}"),
    ];
    for t in &texts {
        assert_no_secret(
            t,
            &[
                WEBHOOK_SECRET,
                "pw-in-url",
                "query-key-1",
                "slacksecret123",
                MATRIX_TOKEN,
                SMTP_PASSWORD,
            ],
        );
        assert!(t.contains("***"), "{t}");
    }
}

#[test]
fn bad_configuration_is_refused_with_a_clear_error() {
    let err = |cfg: ChannelConfig| build_channel("c", &cfg).map(|_| ()).unwrap_err();
    let e = err(ChannelConfig::Webhook(WebhookConfig {
        url: "ftp://example.org/x".into(),
        secret: Secret::new("s3cret-value"),
        timeout: TIMEOUT,
    }));
    assert!(e.contains("http or https"), "{e}");
    let e = err(ChannelConfig::Slack(SlackConfig {
        url: Secret::new("not a url slacksecret456"),
        timeout: TIMEOUT,
    }));
    assert_no_secret(&e, &["slacksecret456"]);
    let mut c = smtp_cfg(25, SmtpSecurity::None, None, false);
    c.host = "mail.example.org".into();
    let e = err(ChannelConfig::Smtp(c));
    assert!(e.contains("loopback"), "{e}");
    let mut c = smtp_cfg(
        587,
        SmtpSecurity::Starttls,
        Some("/nonexistent/ca.pem".into()),
        false,
    );
    let e = err(ChannelConfig::Smtp(c.clone()));
    assert!(e.contains("ca_file"), "{e}");
    c.ca_file = None;
    c.from = "not an address".into();
    let e = err(ChannelConfig::Smtp(c));
    assert!(e.contains("from address"), "{e}");
}

#[tokio::test]
async fn log_channel_always_succeeds() {
    let ch = build_channel("log", &ChannelConfig::Log).unwrap();
    assert_eq!(ch.kind(), "log");
    ch.send(&message("01HLOG00000000000000000001"))
        .await
        .unwrap();
}
