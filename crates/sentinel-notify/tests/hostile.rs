//! A hostile reviewer's tests: notices carrying CR/LF, NUL, dot lines, markup and mentions, through
//! the real channels to real receivers on loopback, and receivers that misbehave (slowloris, endless
//! answers, redirects). Each test asserts what the receiver got, or how the failure was bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{NoticeKind, Severity, Timestamp, TraceId};
use sentinel_notify::config::{
    ChannelConfig, MatrixConfig, Secret, SlackConfig, SmtpConfig, SmtpSecurity, WebhookConfig,
};
use sentinel_notify::{build_channel, Channel, Message, SendError};
use sentinel_testkit::receivers::{MatrixFake, SlackFake, WebhookReceiver};
use sentinel_testkit::smtp::{SmtpOptions, SmtpSink};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(10);

fn message(id: &str, title: &str, body: &str) -> Message {
    let first = Timestamp::from_millis(1_790_000_000_000);
    Message {
        delivery_id: id.to_string(),
        kind: NoticeKind::Alert,
        severity: Severity::High,
        title: title.to_string(),
        body: body.to_string(),
        trace_id: TraceId::new(),
        count: 1,
        first_seen: first,
        last_seen: first,
    }
}

fn smtp_plain(port: u16, timeout: Duration) -> Arc<dyn Channel> {
    build_channel(
        "mail",
        &ChannelConfig::Smtp(SmtpConfig {
            host: "127.0.0.1".to_string(),
            port,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "Sentinel <sentinel@example.org>".to_string(),
            to: vec!["ops@example.org".to_string()],
            ca_file: None,
            timeout,
        }),
    )
    .unwrap()
}

/// A title with CR/LF cannot add a header (`Bcc:`) or end the headers; a body with `\r\n.\r\n`
/// cannot end DATA early and smuggle a second message; a NUL and a 5000-byte line arrive intact.
#[tokio::test]
async fn smtp_header_and_data_injection_is_inert() {
    let sink = SmtpSink::start(SmtpOptions::plain()).await;
    let ch = smtp_plain(sink.port(), TIMEOUT);
    let long = "x".repeat(5000);
    let title = "pwned\r\nBcc: victim@evil.example\r\n\r\ninjected body";
    let body = format!(
        "line one\r\n.\r\nMAIL FROM:<evil@evil.example>\r\nRCPT TO:<victim@evil.example>\r\nDATA\r\nsmuggled\r\n.\r\nnul:\0:end\n{long}\n.leading dot"
    );
    ch.send(&message("inj-1", title, &body)).await.unwrap();
    let mails = sink.received();
    assert_eq!(
        mails.len(),
        1,
        "one message, not a smuggled second: {mails:?}"
    );
    let m = &mails[0];
    assert_eq!(m.rcpt_to, vec!["ops@example.org".to_string()]);
    assert!(
        m.header("Bcc").is_none(),
        "a header was injected: {}",
        m.raw
    );
    let subject = m.subject.clone().unwrap();
    assert!(subject.contains("pwned"), "{subject:?}");
    assert!(
        !subject.contains('\r') && !subject.contains('\n'),
        "{subject:?}"
    );
    assert!(
        m.body.contains("MAIL FROM:<evil@evil.example>"),
        "{}",
        m.body
    );
    assert!(m.body.contains("smuggled"), "{}", m.body);
    assert!(m.body.contains(&long), "the long line was cut");
    assert!(m.body.contains(".leading dot"), "{}", m.body);
    assert!(
        m.body.contains("delivery: inj-1"),
        "the body was cut short: {}",
        m.body
    );
}

/// A server that accepts the connection and never greets: the attempt ends within its timeout.
#[tokio::test]
async fn smtp_silent_server_is_bounded_by_the_timeout() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = l.accept().await.unwrap();
            held.push(s);
        }
    });
    let ch = smtp_plain(port, Duration::from_secs(2));
    let t0 = Instant::now();
    let r = ch.send(&message("slow-1", "t", "b")).await;
    let took = t0.elapsed();
    hold.abort();
    assert!(matches!(r, Err(SendError::Transient { .. })), "{r:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// A Slack title carrying `<!channel>` and a disguised link is shown as text, not as a mention
/// or a link: `&`, `<` and `>` are escaped as Slack's message formatting requires.
#[tokio::test]
async fn slack_control_sequences_are_escaped() {
    let fake = SlackFake::start().await;
    let ch = build_channel(
        "slack",
        &ChannelConfig::Slack(SlackConfig {
            url: Secret::new(fake.url()),
            timeout: TIMEOUT,
        }),
    )
    .unwrap();
    ch.send(&message(
        "s-1",
        "<!channel> wake up & <http://evil.example|click here>",
        "<@U123> body",
    ))
    .await
    .unwrap();
    let posts = fake.received();
    assert_eq!(posts.len(), 1);
    let text = &posts[0].text;
    assert!(!text.contains("<!channel>"), "mention went out: {text}");
    assert!(!text.contains("<http://evil"), "link went out: {text}");
    assert!(!text.contains("<@U123>"), "user mention went out: {text}");
    assert!(
        text.contains("&lt;!channel&gt; wake up &amp; &lt;http://evil.example|click here&gt;"),
        "{text}"
    );
}

/// Markup in a notice reaches Matrix escaped in `formatted_body`, and a room id with `/`, `?`,
/// `#` and `..` stays one path segment.
#[tokio::test]
async fn matrix_markup_and_odd_room_ids() {
    let room = "!a/../b?x=1#frag:fake.local";
    let token = "syt_hostile_token_0123";
    let fake = MatrixFake::start(room, token).await;
    let ch = build_channel(
        "matrix",
        &ChannelConfig::Matrix(MatrixConfig {
            homeserver: fake.homeserver(),
            room: room.to_string(),
            access_token: Secret::new(token),
            timeout: TIMEOUT,
        }),
    )
    .unwrap();
    ch.send(&message(
        "../../evil?x#y",
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
    ))
    .await
    .unwrap();
    let ev = fake.received();
    assert_eq!(ev.len(), 1, "{:?}", fake.attempts());
    let content = ev[0].content["formatted_body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!content.contains("<script>"), "{content}");
    assert!(!content.contains("<img"), "{content}");
}

/// A receiver that answers 200 with an endless body and one that never answers: both attempts end
/// (the first delivered, the body read is capped; the second transient) within the timeout.
#[tokio::test]
async fn webhook_endless_and_silent_receivers_are_bounded() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let srv = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut n = 0;
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            n += 1;
            if n == 1 {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 500 Oops\r\ncontent-type: text/plain\r\n\r\n")
                        .await;
                    let chunk = vec![b'a'; 65536];
                    while s.write_all(&chunk).await.is_ok() {}
                });
            } else {
                held.push(s);
            }
        }
    });
    let ch = build_channel(
        "hook",
        &ChannelConfig::Webhook(WebhookConfig {
            url: format!("http://127.0.0.1:{port}/hook"),
            secret: Secret::new("whsec-hostile-0123"),
            timeout: Duration::from_secs(2),
        }),
    )
    .unwrap();
    let t0 = Instant::now();
    let r = ch.send(&message("e-1", "t", "b")).await;
    assert!(
        matches!(&r, Err(SendError::Transient { reason, .. }) if reason.contains("500")),
        "{r:?}"
    );
    let r = ch.send(&message("e-2", "t", "b")).await;
    assert!(matches!(r, Err(SendError::Transient { .. })), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    srv.abort();
}

/// JSON and header safety for the webhook: a title with quotes, CR/LF and NUL arrives intact and
/// verified; a delivery id with CR/LF cannot break the header (a clear permanent error, no panic).
#[tokio::test]
async fn webhook_escapes_json_and_refuses_header_breaking_ids() {
    let rx = WebhookReceiver::start("whsec-hostile-0123").await;
    let ch = build_channel(
        "hook",
        &ChannelConfig::Webhook(WebhookConfig {
            url: rx.url(),
            secret: Secret::new("whsec-hostile-0123"),
            timeout: TIMEOUT,
        }),
    )
    .unwrap();
    let title = "\"},\"severity\":\"info\",\"x\":\"\r\n\0";
    ch.send(&message("w-1", title, "b")).await.unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json["title"], title);
    assert_eq!(got[0].json["severity"], "high");
    let r = ch.send(&message("w-2\r\nX-Evil: 1", "t", "b")).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(rx.received().len(), 1);
}

/// A homeserver that answers with a redirect to another host: not followed (the token is never
/// sent anywhere else), a permanent error that names no token.
#[tokio::test]
async fn matrix_redirect_is_not_followed_and_the_token_stays_home() {
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let other_task = tokio::spawn(async move {
        loop {
            let (_s, _) = other.accept().await.unwrap();
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let srv = tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let ans = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{other_port}/steal\r\ncontent-length: 0\r\n\r\n"
                );
                let _ = s.write_all(ans.as_bytes()).await;
            });
        }
    });
    let token = "syt_must_not_leave_0123";
    let ch = build_channel(
        "matrix",
        &ChannelConfig::Matrix(MatrixConfig {
            homeserver: format!("http://127.0.0.1:{port}"),
            room: "!r:fake.local".into(),
            access_token: Secret::new(token),
            timeout: TIMEOUT,
        }),
    )
    .unwrap();
    let r = ch.send(&message("red-1", "t", "b")).await;
    match &r {
        Err(SendError::Permanent(reason)) => {
            assert!(reason.contains("307"), "{reason}");
            assert!(!reason.contains(token), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    srv.abort();
    other_task.abort();
}

/// A hostile SMTP server that echoes the AUTH line back in its refusal: the error (which goes to
/// the outbox's last_error, the API and the logs) carries neither the password nor its base64.
#[tokio::test]
async fn smtp_refusal_echoing_the_credentials_is_redacted() {
    use tokio::io::AsyncBufReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let srv = tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = tokio::io::BufReader::new(r);
                let _ = w.write_all(b"220 evil ESMTP\r\n").await;
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let cmd = line.trim_end().to_string();
                    line.clear();
                    let ans = if cmd.starts_with("EHLO") {
                        "250-evil\r\n250 AUTH PLAIN LOGIN\r\n".to_string()
                    } else if cmd.starts_with("AUTH") {
                        format!("535 5.7.8 credentials {cmd} rejected\r\n")
                    } else if cmd.starts_with("QUIT") {
                        "221 bye\r\n".to_string()
                    } else {
                        format!("535 5.7.8 {cmd} rejected\r\n")
                    };
                    if w.write_all(ans.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let password = "smtp-pass-very-secret-77";
    let ch = build_channel(
        "mail",
        &ChannelConfig::Smtp(SmtpConfig {
            host: "127.0.0.1".to_string(),
            port,
            security: SmtpSecurity::None,
            username: Some("bot@example.org".into()),
            password: Some(Secret::new(password)),
            from: "Sentinel <sentinel@example.org>".to_string(),
            to: vec!["ops@example.org".to_string()],
            ca_file: None,
            timeout: TIMEOUT,
        }),
    )
    .unwrap();
    let r = ch.send(&message("auth-1", "t", "b")).await;
    let reason = match r {
        Err(SendError::Permanent(reason)) => reason,
        other => panic!("{other:?}"),
    };
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let plain = b64.encode(format!("\0bot@example.org\0{password}"));
    assert!(reason.contains("535"), "{reason}");
    assert!(!reason.contains(password), "{reason}");
    assert!(
        !reason.contains(&plain),
        "the AUTH PLAIN credentials leaked: {reason}"
    );
    assert!(!reason.contains(&b64.encode(password)), "{reason}");
    srv.abort();
}

/// A notice with a 1 MB body of characters that HTML-escape to six bytes: the Matrix event stays
/// under the 65 536-byte limit homeservers enforce (else `M_TOO_LARGE` makes it a dead letter).
#[tokio::test]
async fn matrix_event_stays_under_the_homeserver_size_limit() {
    let room = "!big:fake.local";
    let token = "syt_big_token_0123";
    let fake = MatrixFake::start(room, token).await;
    let ch = build_channel(
        "matrix",
        &ChannelConfig::Matrix(MatrixConfig {
            homeserver: fake.homeserver(),
            room: room.to_string(),
            access_token: Secret::new(token),
            timeout: TIMEOUT,
        }),
    )
    .unwrap();
    let body = "\"é".repeat(350_000);
    ch.send(&message("big-1", &"'".repeat(10_000), &body))
        .await
        .unwrap();
    let ev = fake.received();
    assert_eq!(ev.len(), 1);
    let size = ev[0].content.to_string().len();
    assert!(size < 65_536 - 1024, "event content is {size} bytes");
    let plain = ev[0].content["body"].as_str().unwrap();
    assert!(plain.contains("[truncated]"), "no truncation mark");
}
