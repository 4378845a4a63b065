//! TLS for the HTTP API (`api.tls`): the rustls server configuration, the certificate in force and
//! its reload when the files change, and the handshake counters.
//!
//! The connection server ([`crate::serve::serve_tls`]) hands each accepted socket to [`Tls::accept`]
//! inside the connection's own task, under the header-read timeout, so a peer that never finishes
//! its handshake holds one slot of the connection cap (and is evicted like any idle connection),
//! never the accept loop. Failures are counted in `sentinel_api_tls_handshake_failures_total{reason}`.
//! The certificate and key files are polled ([`TlsSettings::reload_every`], 5 s by default) and
//! re-read when their bytes change: a good pair replaces the one in force for new handshakes; a bad one
//! (unreadable, not PEM, key not the certificate's, key readable by others) is logged as an error and
//! the pair in force stays. Both are counted in `sentinel_api_tls_reloads_total{result}`. The checks are
//! the configuration's own ([`sentinel_config::certified_key`]), so `sentinel config check` and a
//! reload refuse the same files. HTTP/1.1 only (ALPN `http/1.1`), like the plaintext server.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sentinel_config::{
    certified_key, read_tls_files, TlsConfig, TlsFileError, TlsFiles, TlsVersion,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The `Strict-Transport-Security` value of every answer over TLS (one year; subdomains are not
/// this server's to speak for).
pub const HSTS: &str = "max-age=31536000";

/// How often the files are checked for a change unless told otherwise.
pub const DEFAULT_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// What the TLS server needs: the files, the oldest version, and how often to look for new files.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// The oldest protocol version accepted.
    pub min_version: TlsVersion,
    /// How often the files are checked for a change.
    pub reload_every: Duration,
}

impl TlsSettings {
    /// The settings of `api.tls`, checked every [`DEFAULT_RELOAD_EVERY`].
    pub fn new(cfg: &TlsConfig) -> Self {
        Self {
            cert: cfg.cert.clone(),
            key: cfg.key.clone(),
            min_version: cfg.min_version,
            reload_every: DEFAULT_RELOAD_EVERY,
        }
    }
}

/// The certificate in force, handed to each handshake.
#[derive(Debug)]
struct InForce(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for InForce {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// What the last look at the files saw.
#[derive(Default)]
struct Seen {
    /// The files' bytes last parsed (good or bad): unchanged bytes are not parsed again.
    files: Option<TlsFiles>,
    /// The last read error, so a file that stays missing is reported once, not every poll.
    read_error: Option<String>,
}

/// What [`Tls::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were.
    Unchanged,
    /// New files are in force.
    Loaded,
    /// The files could not be used; the certificate in force stays.
    Failed(TlsFileError),
}

/// The TLS side of the API server: clone it freely (one per daemon).
#[derive(Clone)]
pub struct Tls {
    settings: Arc<TlsSettings>,
    acceptor: tokio_rustls::TlsAcceptor,
    in_force: Arc<InForce>,
    seen: Arc<Mutex<Seen>>,
    handshake_failures: Family<Vec<(String, String)>, Counter>,
    reloads: Family<Vec<(String, String)>, Counter>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a TLS server could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate or key file.
    #[error(transparent)]
    Files(#[from] TlsFileError),
    /// rustls refused the protocol settings.
    #[error("TLS settings refused: {0}")]
    Settings(#[from] rustls::Error),
}

impl Tls {
    /// Reads and checks the files, builds the server configuration, and registers the counters on
    /// `metrics` (`sentinel_api_tls_handshake_failures_total{reason}`,
    /// `sentinel_api_tls_reloads_total{result}`).
    pub fn new(
        settings: TlsSettings,
        metrics: &sentinel_pipeline::metrics::Metrics,
    ) -> Result<Self, TlsError> {
        let files = read_tls_files(&settings.cert, &settings.key)?;
        let key = certified_key(&files)?;
        let in_force = Arc::new(InForce(RwLock::new(Arc::new(key))));
        let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.min_version {
            TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(in_force.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = Self {
            settings: Arc::new(settings),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            in_force,
            seen: Arc::new(Mutex::new(Seen {
                files: Some(files),
                read_error: None,
            })),
            handshake_failures: Family::default(),
            reloads: Family::default(),
        };
        // Every reason and result shows from the start (at 0), so a rate over them needs no first event.
        for r in HANDSHAKE_REASONS {
            let _ = tls.handshake_failures.get_or_create(&label("reason", r));
        }
        for r in ["ok", "error"] {
            let _ = tls.reloads.get_or_create(&label("result", r));
        }
        metrics.register(|r| {
            r.register(
                "sentinel_api_tls_handshake_failures",
                "TLS handshakes on the API that failed, by reason (not_tls: plaintext or garbage; \
                 peer_alert: the client gave up, e.g. it does not trust the certificate; \
                 incompatible: no common version or cipher; timeout; eof; other).",
                tls.handshake_failures.clone(),
            );
            r.register(
                "sentinel_api_tls_reloads",
                "Reloads of the API's certificate and key after their files changed, by result \
                 (error: the certificate in force stays).",
                tls.reloads.clone(),
            );
        });
        tracing::info!(
            evt = "tls_on",
            cert = %tls.settings.cert.display(),
            min_version = ?tls.settings.min_version,
        );
        Ok(tls)
    }

    /// Completes the server side of a handshake on `io`; a failure is counted and returned as its
    /// reason. The caller bounds the time.
    pub(crate) async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<tokio_rustls::server::TlsStream<IO>, &'static str>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.acceptor.accept(io).await.map_err(|e| {
            let reason = handshake_reason(&e);
            self.failed(reason);
            tracing::debug!(evt = "tls_handshake_failed", reason, error = %e);
            reason
        })
    }

    /// Counts a handshake that failed for `reason` (one of [`HANDSHAKE_REASONS`]).
    pub(crate) fn failed(&self, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&label("reason", reason))
            .inc();
    }

    /// Reads the files again; when their bytes changed, checks them and puts them in force (or logs
    /// why not, keeping the pair in force).
    pub fn reload(&self) -> Reload {
        let s = &self.settings;
        let read = read_tls_files(&s.cert, &s.key);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let files = match read {
            Ok(f) => f,
            Err(e) => {
                // A file being replaced may be missing for an instant; a lasting problem is reported
                // once, until it changes.
                let msg = e.to_string();
                if seen.read_error.as_deref() != Some(msg.as_str()) {
                    seen.read_error = Some(msg);
                    self.reloaded("error");
                    tracing::error!(evt = "tls_reload_failed", error = %e, msg = "the certificate in force stays");
                }
                return Reload::Failed(e);
            }
        };
        seen.read_error = None;
        if seen.files.as_ref() == Some(&files) {
            return Reload::Unchanged;
        }
        let parsed = certified_key(&files);
        seen.files = Some(files);
        drop(seen);
        match parsed {
            Ok(key) => {
                *self
                    .in_force
                    .0
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                self.reloaded("ok");
                tracing::info!(evt = "tls_reloaded", cert = %s.cert.display());
                Reload::Loaded
            }
            Err(e) => {
                self.reloaded("error");
                tracing::error!(evt = "tls_reload_failed", error = %e, msg = "the certificate in force stays");
                Reload::Failed(e)
            }
        }
    }

    fn reloaded(&self, result: &str) {
        self.reloads.get_or_create(&label("result", result)).inc();
    }

    /// Checks the files every [`TlsSettings::reload_every`] until the task is aborted.
    pub(crate) fn spawn_watch(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tls.settings.reload_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = tls.clone();
                // File reads block: off the runtime's worker.
                if let Err(e) = tokio::task::spawn_blocking(move || t.reload()).await {
                    tracing::error!(evt = "tls_reload_task_failed", error = %e);
                }
            }
        })
    }
}

/// Every reason a handshake failure is counted under.
pub const HANDSHAKE_REASONS: [&str; 6] = [
    "not_tls",
    "peer_alert",
    "incompatible",
    "timeout",
    "eof",
    "other",
];

fn label(k: &str, v: &str) -> Vec<(String, String)> {
    vec![(k.to_owned(), v.to_owned())]
}

/// The counted reason of a failed handshake.
fn handshake_reason(e: &std::io::Error) -> &'static str {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidMessage(_)) => "not_tls",
        Some(rustls::Error::AlertReceived(_)) => "peer_alert",
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible",
        Some(_) => "other",
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => "eof",
        None => "other",
    }
}
