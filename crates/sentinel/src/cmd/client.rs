//! Talking to the running daemon's API, for the subcommands that do (`decisions`, `intel lookup`,
//! `notify`): where it is, which key to present, and — before any key leaves — that the other end
//! is this install's daemon.
//!
//! The order, and why: a key is sent only to a peer that proved itself.
//! 1. No `--url`: the Unix socket `<data-dir>/api.sock` when it exists. Its file must be owned by
//!    root, by us, or by the data directory's owner (the daemon's user), and the process at the other
//!    end (`SO_PEERCRED`) likewise; anything else is refused with an error, never "tried anyway".
//! 2. Otherwise TCP (`--url`, else `<data-dir>/api.addr`, else `api.listen`). Unless both the address
//!    and the key were given explicitly (`--url` with `--api-key`/`SENTINEL_API_KEY`: the caller
//!    chose both), the server must first answer `POST /v1/identity` with the HMAC of a fresh nonce
//!    under `<data-dir>/server.id`. A stale `api.addr`, or whatever holds `127.0.0.1:8000` while the
//!    daemon is down, cannot, and receives no key: the command fails with exit code 1.
//!
//! With `api.tls`, TCP is https and the certificates in `api.tls.cert` are trusted (besides the usual
//! roots): the certificate must name the address connected to (`127.0.0.1` for the defaults), or give
//! `--url https://NAME:PORT` with a name it holds.

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach the daemon (flattened into the subcommands that talk to it).
#[derive(Args, Clone)]
pub struct Remote {
    /// The daemon's base URL (default: the Unix socket <data-dir>/api.sock, else <data-dir>/api.addr,
    /// else api.listen; a server not given here with its key must prove it is this install's daemon).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// API key (default: <data-dir>/admin.key).
    #[arg(long, env = "SENTINEL_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
}

/// How the daemon is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The data directory's Unix socket (peer checked).
    Socket(PathBuf),
    /// TCP to a server that answered the identity challenge.
    Proven,
    /// TCP to an address and with a key both given explicitly (nothing proven).
    Explicit,
}

/// Where and how to reach the daemon.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL (`http://127.0.0.1:8000`; `http://localhost` over the socket).
    pub base: String,
    /// API key.
    pub key: String,
    /// How the daemon is reached.
    pub via: Via,
    /// The HTTP client bound to that route (over the socket, every request goes to it).
    http: reqwest::Client,
}

impl Target {
    /// Finds the daemon and proves it is this install's before the key can be used (see the module
    /// documentation); an error says why nothing was sent.
    pub fn resolve(
        remote: Remote,
        data_dir: &Path,
        api: &sentinel_config::ApiConfig,
    ) -> anyhow::Result<Self> {
        let tls_cert = api.tls.as_ref().map(|t| t.cert.as_path());
        let key_path = data_dir.join(sentinel_api::keys::ADMIN_KEY_FILE);
        let explicit_key = remote.api_key.is_some();
        let key = match remote.api_key {
            Some(k) => k,
            None => std::fs::read_to_string(&key_path)
                .map(|k| k.trim().to_owned())
                .with_context(|| {
                    format!("no API key: pass --api-key, set SENTINEL_API_KEY, or run where {} is readable", key_path.display())
                })?,
        };
        let rt = super::small_runtime()?;
        if remote.url.is_none() {
            if let Some((path, http)) = rt.block_on(local_socket(data_dir))? {
                return Ok(Self {
                    base: "http://localhost".into(),
                    key,
                    via: Via::Socket(path),
                    http,
                });
            }
        }
        let explicit = remote.url.is_some() && explicit_key;
        let base = super::daemon_url(remote.url, data_dir, api.listen, tls_cert.is_some())?;
        let http = tcp_client(tls_cert, None)?;
        if explicit {
            return Ok(Self {
                base,
                key,
                via: Via::Explicit,
                http,
            });
        }
        // The key then goes to the very address that proved itself: a host name is not looked up
        // again (it could answer another address the second time).
        let proven = rt.block_on(prove(&http, &base, data_dir))?;
        let (base, http) = pinned(&base, proven, tls_cert, http)?;
        Ok(Self {
            base,
            key,
            via: Via::Proven,
            http,
        })
    }

    /// The HTTP client for this target (bound to the socket when that is the route).
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(self.http.clone())
    }

    /// The answer's JSON body, or an error quoting the API's message.
    pub async fn check(resp: reqwest::Response) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"]
                .as_str()
                .unwrap_or("request failed");
            bail!("{status}: {msg}");
        }
        Ok(body)
    }
}

impl std::fmt::Display for Target {
    /// Where the daemon was reached, for messages (the socket's path rather than `http://localhost`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.via {
            Via::Socket(p) => write!(f, "{}", p.display()),
            Via::Proven | Via::Explicit => f.write_str(&self.base),
        }
    }
}

/// A TCP client that never follows a redirect (a key must not travel on to another address). With
/// `tls_cert` (`api.tls.cert`), the certificates in that file are trusted besides the usual roots (a
/// self-signed certificate then verifies); with `pin`, that host name is connected to that address
/// only.
pub(crate) fn tcp_client(
    tls_cert: Option<&Path>,
    pin: Option<(&str, std::net::SocketAddr)>,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = tls_cert {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the API's certificate {} (api.tls.cert)",
                path.display()
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!(
                "{} (api.tls.cert): not a PEM certificate chain",
                path.display()
            )
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some((host, at)) = pin {
        b = b.resolve(host, at);
    }
    Ok(b.build()?)
}

/// The uids the CLI trusts at the other end of the socket: root, itself, and the owner of the data
/// directory (the daemon's user: only it, or root, can put a socket there).
fn trusted_uids(data_dir: &Path) -> Vec<u32> {
    let mut uids = vec![0, rustix::process::geteuid().as_raw()];
    if let Ok(owner) = sentinel::local::owner(data_dir) {
        uids.push(owner);
    }
    uids
}

/// A client bound to `<data_dir>/api.sock` when a trusted daemon answers there; `None` when there is
/// no socket or nothing listens on it (a daemon that died: the caller falls back to TCP, where the
/// daemon must prove itself); an error when the socket or its peer is not trusted.
pub(crate) async fn local_socket(
    data_dir: &Path,
) -> anyhow::Result<Option<(PathBuf, reqwest::Client)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let path = data_dir.join(sentinel::local::SOCKET_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    let trusted = trusted_uids(data_dir);
    if !meta.file_type().is_socket() {
        bail!(
            "{} is not a socket: refusing to talk through it (no key was sent)",
            path.display()
        );
    }
    if !trusted.contains(&meta.uid()) {
        bail!(
            "{} is owned by uid {}, neither root, you, nor the data directory's owner: it is not \
             this install's daemon; refusing to send a key to it",
            path.display(),
            meta.uid()
        );
    }
    let stream = match tokio::net::UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot connect to {}", path.display())),
    };
    let peer = stream
        .peer_cred()
        .with_context(|| format!("cannot read the peer credentials of {}", path.display()))?;
    if !trusted.contains(&peer.uid()) {
        bail!(
            "the process serving {} runs as uid {}, neither root, you, nor the data directory's \
             owner: refusing to send a key to it",
            path.display(),
            peer.uid()
        );
    }
    drop(stream);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .unix_socket(path.as_path())
        .build()?;
    Ok(Some((path, http)))
}

/// `base` bound to the address that proved itself: its host replaced by that address, or over https
/// to a host name (which the certificate names), that name pinned to the address in a new client.
fn pinned(
    base: &str,
    at: std::net::SocketAddr,
    tls_cert: Option<&Path>,
    http: reqwest::Client,
) -> anyhow::Result<(String, reqwest::Client)> {
    let mut url = reqwest::Url::parse(base).with_context(|| format!("{base}: not a URL"))?;
    if url.scheme() == "https" {
        if let Some(name) = url.domain() {
            let pinned = tcp_client(tls_cert, Some((name, at)))?;
            return Ok((base.to_owned(), pinned));
        }
    }
    url.set_ip_host(at.ip())
        .map_err(|()| anyhow::anyhow!("{base}: cannot address {at}"))?;
    url.set_port(Some(at.port()))
        .map_err(|()| anyhow::anyhow!("{base}: cannot address {at}"))?;
    Ok((url.as_str().trim_end_matches('/').to_owned(), http))
}

/// Asks the server at `base` to prove it holds this install's `server.id` (no key is sent); the proof
/// must be bound to the address this connection reached (so a relay to the daemon fails), which is
/// returned.
async fn prove(
    http: &reqwest::Client,
    base: &str,
    data_dir: &Path,
) -> anyhow::Result<std::net::SocketAddr> {
    let id_path = data_dir.join(sentinel::local::SERVER_ID_FILE);
    let refuse = |why: String| {
        anyhow::anyhow!(
            "the server at {base} did not prove it is this install's daemon ({why}); no key was \
             sent. Is the daemon running? (a stale {} or another program on the port would explain \
             it) To use a daemon elsewhere, pass both --url and --api-key",
            data_dir.join(sentinel::daemon::ADDR_FILE).display()
        )
    };
    let id = match std::fs::read_to_string(&id_path) {
        Ok(text) => sentinel_api::ServerId::parse(&text)
            .ok_or_else(|| refuse(format!("{} does not hold an identity", id_path.display())))?,
        Err(e) => return Err(refuse(format!("cannot read {}: {e}", id_path.display()))),
    };
    let mut nonce = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let resp = http
        .post(format!("{base}/v1/identity"))
        .timeout(Duration::from_secs(10))
        .json(&serde_json::json!({ "nonce": hex_encode(&nonce) }))
        .send()
        .await
        .map_err(|e| {
            refuse(if e.is_connect() {
                "connection refused".into()
            } else {
                format!("no answer: {e}")
            })
        })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(refuse(format!("it answered {status}")));
    }
    let at = resp
        .remote_addr()
        .ok_or_else(|| refuse("the address it answered from is unknown".into()))?;
    let body: Value = resp
        .json()
        .await
        .map_err(|_| refuse("its answer is not JSON".into()))?;
    match body["proof"].as_str() {
        Some(p) if id.verify(&nonce, Some(at), p) => Ok(at),
        Some(_) => Err(refuse(format!(
            "wrong proof for {at}: not the daemon, or one relaying it"
        ))),
        None => Err(refuse("no proof in its answer".into())),
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
