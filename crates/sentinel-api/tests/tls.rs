//! The API over TLS (`sentinel_api::serve::serve_tls`) on a real loopback socket, with certificates
//! made by the test (a private CA, a server certificate for `localhost` and `127.0.0.1`): a real
//! https client gets answers with HSTS; failed handshakes (plaintext HTTP, a client that does not
//! trust the certificate, one that offers only TLS 1.2 to a 1.3-only server, one that never speaks)
//! are counted by reason and shown in `/metrics`; a new certificate is put in force when its files
//! change, a bad one is refused and the one in force stays; the live stream works as a WebSocket
//! over TLS; and the dashboard's login sets a `Secure` `__Host-` session cookie.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures::StreamExt;
use sentinel_api::serve::{serve_tls, Edge, EdgeSettings};
use sentinel_api::tls::{Reload, Tls, TlsSettings};
use sentinel_api::ui::{UiSettings, UiState};
use sentinel_api::ApiSettings;
use sentinel_config::TlsVersion;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(20);

/// A private CA and a server certificate it signed.
struct Pki {
    ca_pem: String,
    chain_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("sentinel test CA {name}"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// Writes `p`'s chain and key as `cert.pem` and `key.pem` (0600) in `dir`.
fn install(dir: &Path, p: &Pki) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    write_private(&cert, &p.chain_pem);
    write_private(&key, &p.key_pem);
    (cert, key)
}

/// Replaces `path` at once (a new file renamed over it), mode 0600.
fn write_private(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Served {
    h: Harness,
    addr: SocketAddr,
    tls: Tls,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    fn files(&self) -> (PathBuf, PathBuf) {
        (
            self._dir.path().join("cert.pem"),
            self._dir.path().join("key.pem"),
        )
    }

    /// The sum of every sample of `name` whose labels contain `label` (any when empty).
    fn metric(&self, name: &str, label: &str) -> f64 {
        self.h
            .state
            .metrics
            .render()
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                    && l.contains(label)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn until(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(
                start.elapsed() < SOON,
                "timed out waiting for {what}:\n{}",
                self.h.state.metrics.render()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Opts {
    min_version: TlsVersion,
    reload_every: Duration,
    header_read_timeout: Duration,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            min_version: TlsVersion::V1_2,
            // Long: a test calls `Tls::reload` itself unless it is about the watcher.
            reload_every: Duration::from_secs(3600),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

async fn start(p: &Pki, o: Opts) -> Served {
    let mut setup = Setup::default();
    setup.settings = ApiSettings {
        edge: EdgeSettings {
            header_read_timeout: o.header_read_timeout,
            ..EdgeSettings::default()
        },
        ..setup.settings
    };
    let mut h = harness_with(setup).await;
    // As the daemon sets it with api.tls on.
    h.state.ui = UiState::new(UiSettings {
        secure_cookie: true,
        ..UiSettings::default()
    });
    h.state.metrics = Arc::new(sentinel_pipeline::metrics::Metrics::default());
    h.app = sentinel_api::router(h.state.clone());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(dir.path(), p);
    let tls = Tls::new(
        TlsSettings {
            cert,
            key,
            min_version: o.min_version,
            reload_every: o.reload_every,
        },
        &h.state.metrics,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let edge = Edge::new(h.state.settings.edge.clone(), &h.state.metrics);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (app, t) = (h.app.clone(), tls.clone());
    tokio::spawn(async move {
        serve_tls(listener, app, edge, t, async {
            let _ = rx.await;
        })
        .await
    });
    Served {
        h,
        addr,
        tls,
        _dir: dir,
        _stop: tx,
    }
}

/// An https client trusting only `ca_pem`, reaching `localhost` at `addr`.
fn client(ca_pem: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(SOON)
        .build()
        .unwrap()
}

/// A rustls client configuration trusting only `ca_pem`.
fn rustls_client(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_with_hsts_and_shows_the_tls_counters() {
    let p = pki("a");
    let s = start(&p, Opts::default()).await;
    let c = client(&p.ca_pem, s.addr);
    let r = c.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000")
    );
    // The counters are in /metrics, every reason from the start.
    let text = c
        .get(s.url("/metrics"))
        .header("x-api-key", &s.h.viewer_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "sentinel_api_tls_handshake_failures_total{reason=\"not_tls\"} 0",
        "sentinel_api_tls_handshake_failures_total{reason=\"peer_alert\"} 0",
        "sentinel_api_tls_reloads_total{result=\"ok\"} 0",
        "sentinel_api_tls_reloads_total{result=\"error\"} 0",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    // Nothing changed: nothing to reload.
    assert_eq!(s.tls.reload(), Reload::Unchanged);
    assert_eq!(s.metric("sentinel_api_tls_reloads_total", ""), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_are_counted_by_reason() {
    let p = pki("a");
    let s = start(
        &p,
        Opts {
            header_read_timeout: Duration::from_millis(500),
            ..Opts::default()
        },
    )
    .await;
    let failures = "sentinel_api_tls_handshake_failures_total";
    // Plaintext HTTP to the TLS port: refused, no HTTP answer.
    let mut t = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    t.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(SOON, t.read_to_end(&mut got)).await;
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));
    s.until("not_tls", |s| s.metric(failures, "not_tls") == 1.0)
        .await;
    // A client that does not trust the certificate (another CA) gives up: its alert is counted.
    let stranger = pki("stranger");
    let err = client(&stranger.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    s.until("peer_alert", |s| s.metric(failures, "peer_alert") == 1.0)
        .await;
    // A client that never says anything is cut after the header timeout.
    let _idle = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    s.until("timeout", |s| s.metric(failures, "timeout") == 1.0)
        .await;
    assert_eq!(
        s.metric("sentinel_api_connections_closed_total", "tls_handshake"),
        3.0
    );
    // The server still answers a client that trusts it.
    let r = client(&p.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.metric(failures, ""), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls13_only_server_refuses_a_tls12_client() {
    let p = pki("a");
    let s = start(
        &p,
        Opts {
            min_version: TlsVersion::V1_3,
            ..Opts::default()
        },
    )
    .await;
    let connect = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let cfg = Arc::new(rustls_client(&p.ca_pem, versions));
        let addr = s.addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(cfg)
                .connect("localhost".try_into().unwrap(), tcp)
                .await
        }
    };
    assert!(connect(&[&rustls::version::TLS12]).await.is_err());
    s.until("incompatible", |s| {
        s.metric("sentinel_api_tls_handshake_failures_total", "incompatible") == 1.0
    })
    .await;
    let ok = connect(&[&rustls::version::TLS13]).await.unwrap();
    assert_eq!(
        ok.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(ok.get_ref().1.alpn_protocol(), None);
}

/// A changed certificate is put in force for new connections; a bad one (its key not the
/// certificate's, a key others may read, a missing file) is refused, counted once, and the one in
/// force stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_is_put_in_force_and_a_bad_one_is_refused() {
    let first = pki("first");
    let s = start(&first, Opts::default()).await;
    let (cert, key) = s.files();
    let ok = "sentinel_api_tls_reloads_total";
    let second = pki("second");
    write_private(&key, &second.key_pem);
    write_private(&cert, &second.chain_pem);
    assert_eq!(s.tls.reload(), Reload::Loaded);
    assert_eq!(s.metric(ok, "\"ok\""), 1.0);
    // New connections see the second certificate: a client trusting only the first CA fails.
    let r = client(&second.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(client(&first.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .is_err());

    // A certificate whose key is another's: refused, the second stays.
    let third = pki("third");
    write_private(&cert, &third.chain_pem);
    match s.tls.reload() {
        Reload::Failed(e) => assert!(e.to_string().contains("not the key"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.metric(ok, "\"error\""), 1.0);
    // The same bad files are not counted again.
    assert_eq!(s.tls.reload(), Reload::Unchanged);
    assert_eq!(s.metric(ok, "\"error\""), 1.0);
    let r = client(&second.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A key others may read: refused.
    write_private(&key, &third.key_pem);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    match s.tls.reload() {
        Reload::Failed(e) => assert!(e.to_string().contains("chmod 600"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.metric(ok, "\"error\""), 2.0);
    // A missing file: refused once, however many times it is looked at.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&cert).unwrap();
    assert!(matches!(s.tls.reload(), Reload::Failed(_)));
    assert!(matches!(s.tls.reload(), Reload::Failed(_)));
    assert_eq!(s.metric(ok, "\"error\""), 3.0);
    let r = client(&second.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Fixed: the third pair goes in force.
    write_private(&cert, &third.chain_pem);
    assert_eq!(s.tls.reload(), Reload::Loaded);
    assert_eq!(s.metric(ok, "\"ok\""), 2.0);
    let r = client(&third.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The server watches the files by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_are_watched() {
    let first = pki("first");
    let s = start(
        &first,
        Opts {
            reload_every: Duration::from_millis(50),
            ..Opts::default()
        },
    )
    .await;
    let (cert, key) = s.files();
    let second = pki("second");
    write_private(&key, &second.key_pem);
    write_private(&cert, &second.chain_pem);
    // (The watcher may see the new key with the old certificate first: counted as an error, then
    // the pair goes in force.)
    s.until("a reload", |s| {
        s.metric("sentinel_api_tls_reloads_total", "\"ok\"") == 1.0
    })
    .await;
    let r = client(&second.ca_pem, s.addr)
        .get(s.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_works_over_tls() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let p = pki("a");
    let s = start(&p, Opts::default()).await;
    let cfg = Arc::new(rustls_client(&p.ca_pem, rustls::DEFAULT_VERSIONS));
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let io = tokio_rustls::TlsConnector::from(cfg)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut req = format!("wss://localhost:{}/v1/stream", s.addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-api-key", s.h.viewer_key.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, io).await.unwrap();
    assert_eq!(resp.status(), 101);
    let frame = tokio::time::timeout(SOON, async {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => break serde_json::from_str::<serde_json::Value>(&t).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(frame["type"], "hello", "{frame}");
}

/// What a browser does: the form, then the post; the session cookie is `Secure`, `__Host-`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_login_sets_a_secure_host_cookie() {
    let p = pki("a");
    let s = start(&p, Opts::default()).await;
    let c = client(&p.ca_pem, s.addr);
    let form = c.get(s.url("/ui/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.headers().contains_key("strict-transport-security"));
    let csrf_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.contains("sentinel_login_csrf="))
        .expect("a login token cookie");
    let pair = csrf_cookie.split(';').next().unwrap().to_owned();
    let token = pair.split_once('=').unwrap().1.to_owned();
    let body = serde_urlencoded::to_string([
        ("key", s.h.viewer_key.as_str()),
        ("csrf", token.as_str()),
        ("next", "/ui/live"),
    ])
    .unwrap();
    let r = c
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", pair)
        .header("origin", format!("https://localhost:{}", s.addr.port()))
        .header("sec-fetch-site", "same-origin")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-sentinel_session="))
        .expect("a __Host- session cookie");
    for attr in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(session.contains(attr), "{attr} not in {session}");
    }
    assert!(
        !session.to_ascii_lowercase().contains("domain="),
        "{session}"
    );
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000")
    );
}
