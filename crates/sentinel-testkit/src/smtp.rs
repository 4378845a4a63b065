//! A real SMTP server for tests ([`SmtpSink`]): it listens on `127.0.0.1:0`, speaks enough ESMTP
//! for a real client (EHLO/HELO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA with dot-unstuffing,
//! RSET, NOOP, QUIT), and records every message it accepts.
//!
//! TLS uses a private CA made at start (rcgen): the server certificate is for `localhost` and
//! `127.0.0.1`, and the CA's PEM is written to a temporary file ([`SmtpSink::ca_file`]) that a test
//! puts in the client's `ca_file`. The sink can offer STARTTLS or not, require it before `MAIL`,
//! speak TLS from the first byte (SMTPS), require a login, and answer the next N messages with a
//! 421, 451 or 550 ([`SmtpSink::fail_next`]). It stops when dropped.

use base64::Engine;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// The longest command line accepted (RFC 5321 says 512; AUTH lines can be longer).
const MAX_LINE: usize = 4096;
/// The largest message accepted.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// How a [`SmtpSink`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpOptions {
    /// Offer STARTTLS in the EHLO answer.
    pub starttls: bool,
    /// Refuse `MAIL` (530) until the connection is encrypted.
    pub require_tls: bool,
    /// Speak TLS from the first byte (SMTPS) instead of plain text.
    pub implicit_tls: bool,
    /// Require `AUTH` with this user and password before `MAIL`; AUTH is offered only when set.
    pub auth: Option<(String, String)>,
}

impl Default for SmtpOptions {
    /// STARTTLS offered and required, no implicit TLS, no login.
    fn default() -> Self {
        SmtpOptions {
            starttls: true,
            require_tls: true,
            implicit_tls: false,
            auth: None,
        }
    }
}

impl SmtpOptions {
    /// Plain text only: no STARTTLS offered, nothing required (a loopback relay).
    pub fn plain() -> Self {
        SmtpOptions {
            starttls: false,
            require_tls: false,
            implicit_tls: false,
            auth: None,
        }
    }

    /// SMTPS: TLS from the first byte.
    pub fn implicit_tls() -> Self {
        SmtpOptions {
            starttls: false,
            require_tls: true,
            implicit_tls: true,
            auth: None,
        }
    }

    /// These options, with a required login.
    pub fn with_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }
}

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `MAIL FROM` address (without the angle brackets).
    pub mail_from: String,
    /// The `RCPT TO` addresses, in order.
    pub rcpt_to: Vec<String>,
    /// The DATA as received, dot-unstuffed, CRLF line ends, without the final `.` line.
    pub raw: String,
    /// The `Subject` header, unfolded and with RFC 2047 encoded words decoded.
    pub subject: Option<String>,
    /// The `Message-ID` header as is.
    pub message_id: Option<String>,
    /// The body after its transfer encoding (base64, quoted-printable) is undone, LF line ends.
    pub body: String,
    /// Whether the connection was encrypted (STARTTLS or SMTPS) when the message came.
    pub tls: bool,
    /// The user who logged in, if anyone did.
    pub auth_user: Option<String>,
}

impl ReceivedMail {
    /// The first header with this name (case-insensitive), unfolded, not decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        headers(&self.raw)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

#[derive(Default)]
struct State {
    mails: Vec<ReceivedMail>,
    /// `(code, remaining)`: the next `remaining` MAIL commands get `code`.
    fault: Option<(u16, usize)>,
    attempts: usize,
    connections: usize,
    auth_failures: usize,
}

struct Shared {
    options: SmtpOptions,
    acceptor: TlsAcceptor,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A real SMTP server on loopback. Dropping it stops the server and deletes the CA file.
pub struct SmtpSink {
    addr: SocketAddr,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// Starts a sink with these options on a free loopback port. Must be called inside a tokio
    /// runtime. Panics (with the reason) only if it cannot make its certificate or bind a port.
    pub async fn start(options: SmtpOptions) -> SmtpSink {
        let (ca_pem, acceptor) = match make_tls() {
            Ok(x) => x,
            Err(e) => panic!("smtp sink: cannot make the test certificate: {e}"),
        };
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("smtp sink: no temporary directory: {e}"),
        };
        let ca_file = dir.path().join("smtp-sink-ca.pem");
        if let Err(e) = std::fs::write(&ca_file, ca_pem) {
            panic!("smtp sink: cannot write {}: {e}", ca_file.display());
        }
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("smtp sink: cannot bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("smtp sink: no local address: {e}"),
        };
        let shared = Arc::new(Shared {
            options,
            acceptor,
            state: Mutex::new(State::default()),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                accept_shared.lock().connections += 1;
                let s = accept_shared.clone();
                sessions.spawn(async move {
                    let _ = session(s, stream).await;
                });
                while sessions.try_join_next().is_some() {}
            }
        });
        SmtpSink {
            addr,
            ca_file,
            _dir: dir,
            shared,
            task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The PEM file of the CA that signed its certificate (valid for `localhost` and `127.0.0.1`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The messages accepted so far, in order.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.lock().mails.clone()
    }

    /// `MAIL` commands seen so far, accepted or not.
    pub fn attempts(&self) -> usize {
        self.shared.lock().attempts
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// Failed logins so far.
    pub fn auth_failures(&self) -> usize {
        self.shared.lock().auth_failures
    }

    /// The next `n` messages are answered with `code` at `MAIL` (421 also closes the connection,
    /// as a server shutting down does; 451 is a local error, 550 a permanent refusal).
    pub fn fail_next(&self, code: u16, n: usize) {
        self.shared.lock().fault = if n == 0 { None } else { Some((code, n)) };
    }
}

/// A CA and a server certificate signed by it; returns the CA PEM and the acceptor.
fn make_tls() -> Result<(String, TlsAcceptor), String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let e = |e: rcgen::Error| e.to_string();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A distinct name per sink: another sink's CA is then an unknown issuer, as a stranger's is.
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!(
            "sentinel-testkit smtp sink CA {} {serial}",
            std::process::id()
        ),
    );
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(e)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(e)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().map_err(e)?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(e)?;
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key_der)
        .map_err(|e| e.to_string())?;
    Ok((ca_pem, TlsAcceptor::from(Arc::new(config))))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection's conversation.
struct Conn {
    io: BufReader<Box<dyn Io>>,
    tls: bool,
}

impl Conn {
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        let w = self.io.get_mut();
        w.write_all(text.as_bytes()).await?;
        w.write_all(b"\r\n").await?;
        w.flush().await
    }

    /// One line without its CRLF; `None` at end of stream. Over-long lines are an error.
    async fn line(&mut self) -> std::io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = (&mut self.io)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if !buf.ends_with(b"\n") {
            return Err(std::io::Error::other("line too long or cut short"));
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }
}

#[derive(Default)]
struct Txn {
    from: Option<String>,
    rcpt: Vec<String>,
}

async fn session(shared: Arc<Shared>, stream: TcpStream) -> std::io::Result<()> {
    let opts = shared.options.clone();
    let mut conn = if opts.implicit_tls {
        let tls = shared.acceptor.accept(stream).await?;
        Conn {
            io: BufReader::new(Box::new(tls) as Box<dyn Io>),
            tls: true,
        }
    } else {
        Conn {
            io: BufReader::new(Box::new(stream) as Box<dyn Io>),
            tls: false,
        }
    };
    conn.reply("220 localhost ESMTP sentinel-testkit sink ready")
        .await?;
    let mut greeted = false;
    let mut user: Option<String> = None;
    let mut txn = Txn::default();
    while let Some(line) = conn.line().await? {
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => {
                greeted = true;
                txn = Txn::default();
                let mut lines = vec!["localhost greets you".to_string()];
                lines.push("8BITMIME".to_string());
                lines.push(format!("SIZE {MAX_MESSAGE}"));
                if opts.starttls && !conn.tls {
                    lines.push("STARTTLS".to_string());
                }
                if opts.auth.is_some() && (conn.tls || !opts.require_tls) {
                    lines.push("AUTH PLAIN LOGIN".to_string());
                }
                let last = lines.len() - 1;
                let text = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect::<Vec<_>>()
                    .join("\r\n");
                conn.reply(&text).await?;
            }
            "HELO" => {
                greeted = true;
                txn = Txn::default();
                conn.reply("250 localhost").await?;
            }
            "STARTTLS" => {
                if !opts.starttls || conn.tls {
                    conn.reply("502 5.5.1 STARTTLS not available").await?;
                    continue;
                }
                conn.reply("220 2.0.0 Ready to start TLS").await?;
                if !conn.io.buffer().is_empty() {
                    // Commands pipelined before the handshake would be an injection.
                    return Ok(());
                }
                let inner = conn.io.into_inner();
                let tls = shared.acceptor.accept(inner).await?;
                conn = Conn {
                    io: BufReader::new(Box::new(tls) as Box<dyn Io>),
                    tls: true,
                };
                greeted = false;
                user = None;
                txn = Txn::default();
            }
            "AUTH" => {
                let Some((want_user, want_pass)) = opts.auth.clone() else {
                    conn.reply("502 5.5.1 AUTH not available").await?;
                    continue;
                };
                if opts.require_tls && !conn.tls {
                    conn.reply(
                        "538 5.7.11 Encryption required for requested authentication mechanism",
                    )
                    .await?;
                    continue;
                }
                let mut parts = arg.splitn(2, ' ');
                let mech = parts.next().unwrap_or("").to_ascii_uppercase();
                let initial = parts.next().map(str::to_string);
                let creds = match mech.as_str() {
                    "PLAIN" => {
                        let resp = match initial {
                            Some(r) => r,
                            None => {
                                conn.reply("334 ").await?;
                                conn.line().await?.unwrap_or_default()
                            }
                        };
                        decode_b64(&resp).and_then(|raw| {
                            let mut f = raw.split('\0');
                            let _authzid = f.next()?;
                            Some((f.next()?.to_string(), f.next()?.to_string()))
                        })
                    }
                    "LOGIN" => {
                        let u = match initial {
                            Some(r) => r,
                            None => {
                                conn.reply("334 VXNlcm5hbWU6").await?;
                                conn.line().await?.unwrap_or_default()
                            }
                        };
                        conn.reply("334 UGFzc3dvcmQ6").await?;
                        let p = conn.line().await?.unwrap_or_default();
                        decode_b64(&u).zip(decode_b64(&p))
                    }
                    _ => {
                        conn.reply("504 5.5.4 Unrecognized authentication type")
                            .await?;
                        continue;
                    }
                };
                match creds {
                    Some((u, p)) if u == want_user && p == want_pass => {
                        user = Some(u);
                        conn.reply("235 2.7.0 Authentication successful").await?;
                    }
                    _ => {
                        shared.lock().auth_failures += 1;
                        conn.reply("535 5.7.8 Authentication credentials invalid")
                            .await?;
                    }
                }
            }
            "MAIL" => {
                if !greeted {
                    conn.reply("503 5.5.1 Say EHLO first").await?;
                    continue;
                }
                shared.lock().attempts += 1;
                if opts.require_tls && !conn.tls {
                    conn.reply("530 5.7.0 Must issue a STARTTLS command first")
                        .await?;
                    continue;
                }
                if opts.auth.is_some() && user.is_none() {
                    conn.reply("530 5.7.0 Authentication required").await?;
                    continue;
                }
                let fault = {
                    let mut st = shared.lock();
                    match st.fault {
                        Some((code, n)) => {
                            st.fault = if n > 1 { Some((code, n - 1)) } else { None };
                            Some(code)
                        }
                        None => None,
                    }
                };
                if let Some(code) = fault {
                    match code {
                        421 => {
                            conn.reply("421 4.3.2 Service shutting down, try later")
                                .await?;
                            return Ok(());
                        }
                        451 => {
                            conn.reply("451 4.3.0 Local error in processing, try later")
                                .await?
                        }
                        550 => conn.reply("550 5.7.1 Mailbox unavailable: refused").await?,
                        other => conn.reply(&format!("{other} scripted failure")).await?,
                    }
                    continue;
                }
                match path_arg(&arg, "FROM:") {
                    Some(addr) => {
                        txn = Txn {
                            from: Some(addr),
                            rcpt: Vec::new(),
                        };
                        conn.reply("250 2.1.0 Sender OK").await?;
                    }
                    None => conn.reply("501 5.5.4 Syntax: MAIL FROM:<address>").await?,
                }
            }
            "RCPT" => {
                if txn.from.is_none() {
                    conn.reply("503 5.5.1 Need MAIL first").await?;
                    continue;
                }
                match path_arg(&arg, "TO:") {
                    Some(addr) if !addr.is_empty() => {
                        txn.rcpt.push(addr);
                        conn.reply("250 2.1.5 Recipient OK").await?;
                    }
                    _ => conn.reply("501 5.5.4 Syntax: RCPT TO:<address>").await?,
                }
            }
            "DATA" => {
                if txn.rcpt.is_empty() {
                    conn.reply("503 5.5.1 Need RCPT first").await?;
                    continue;
                }
                conn.reply("354 End data with <CR><LF>.<CR><LF>").await?;
                let mut raw = String::new();
                let mut too_big = false;
                loop {
                    let Some(l) = conn.line().await? else {
                        return Ok(());
                    };
                    if l == "." {
                        break;
                    }
                    let l = l.strip_prefix('.').unwrap_or(&l);
                    if raw.len() + l.len() > MAX_MESSAGE {
                        too_big = true;
                        continue;
                    }
                    raw.push_str(l);
                    raw.push_str("\r\n");
                }
                if too_big {
                    conn.reply("552 5.3.4 Message too big").await?;
                    txn = Txn::default();
                    continue;
                }
                let mail = parse_mail(
                    txn.from.take().unwrap_or_default(),
                    std::mem::take(&mut txn.rcpt),
                    raw,
                    conn.tls,
                    user.clone(),
                );
                let n = {
                    let mut st = shared.lock();
                    st.mails.push(mail);
                    st.mails.len()
                };
                conn.reply(&format!("250 2.0.0 OK queued as sink-{n}"))
                    .await?;
            }
            "RSET" => {
                txn = Txn::default();
                conn.reply("250 2.0.0 OK").await?;
            }
            "NOOP" => conn.reply("250 2.0.0 OK").await?,
            "QUIT" => {
                conn.reply("221 2.0.0 Bye").await?;
                let _ = conn.io.get_mut().shutdown().await;
                return Ok(());
            }
            _ => conn.reply("502 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

/// `FROM:<a@b> BODY=8BITMIME` → `a@b`.
fn path_arg(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_string())
}

fn decode_b64(s: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// The header section, unfolded, as `(name, value)` pairs.
fn headers(raw: &str) -> Vec<(String, String)> {
    let head = raw.split("\r\n\r\n").next().unwrap_or("");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn parse_mail(
    mail_from: String,
    rcpt_to: Vec<String>,
    raw: String,
    tls: bool,
    auth_user: Option<String>,
) -> ReceivedMail {
    let hs = headers(&raw);
    let get = |name: &str| {
        hs.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body_raw = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let cte = get("Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = match cte.as_str() {
        "base64" => {
            let compact: String = body_raw.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| body_raw.to_string())
        }
        "quoted-printable" => decode_qp(body_raw),
        _ => body_raw.to_string(),
    };
    ReceivedMail {
        mail_from,
        rcpt_to,
        subject: get("Subject").map(|s| decode_rfc2047(&s)),
        message_id: get("Message-ID"),
        body: body.replace("\r\n", "\n"),
        raw,
        tls,
        auth_user,
    }
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` bytes and `=` soft line breaks.
fn decode_qp(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(hex) = s.get(i + 1..i + 3) {
                if let Ok(b) = u8::from_str_radix(hex, 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes RFC 2047 encoded words (`=?utf-8?B?…?=`, `=?utf-8?Q?…?=`); whitespace between two
/// encoded words is dropped, as the RFC says.
fn decode_rfc2047(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut last_was_word = false;
    while !rest.is_empty() {
        match rest.find("=?") {
            Some(start) => {
                let before = &rest[..start];
                let after = &rest[start + 2..];
                let word = (|| {
                    let (charset, r) = after.split_once('?')?;
                    let (enc, r) = r.split_once('?')?;
                    let end = r.find("?=")?;
                    let text = &r[..end];
                    let _ = charset;
                    let decoded = match enc.to_ascii_uppercase().as_str() {
                        "B" => base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .ok()
                            .map(|b| String::from_utf8_lossy(&b).into_owned())?,
                        "Q" => decode_qp(&text.replace('_', " ")),
                        _ => return None,
                    };
                    let consumed = charset.len() + 1 + enc.len() + 1 + end + 2;
                    Some((decoded, consumed))
                })();
                match word {
                    Some((decoded, consumed)) => {
                        if !(last_was_word && before.trim().is_empty()) {
                            out.push_str(before);
                        }
                        out.push_str(&decoded);
                        rest = &after[consumed..];
                        last_was_word = true;
                    }
                    None => {
                        out.push_str(&rest[..start + 2]);
                        rest = after;
                        last_was_word = false;
                    }
                }
            }
            None => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_encoded_words_and_qp() {
        assert_eq!(decode_rfc2047("=?utf-8?b?w5c=?= x"), "× x");
        assert_eq!(
            decode_rfc2047("=?utf-8?B?YWI=?= =?utf-8?Q?c=C3=97_d?="),
            "abc× d"
        );
        assert_eq!(decode_rfc2047("plain ascii"), "plain ascii");
        assert_eq!(decode_qp("a=3Db=\r\nc"), "a=bc");
        assert_eq!(
            path_arg("FROM:<a@b> BODY=8BITMIME", "FROM:"),
            Some("a@b".into())
        );
        assert_eq!(path_arg("from: <>", "FROM:"), Some(String::new()));
        assert_eq!(path_arg("TO:a@b", "TO:"), None);
    }
}
