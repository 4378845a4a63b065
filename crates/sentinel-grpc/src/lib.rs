//! Sentinel's gRPC API: the REST API's capabilities (event intake, alerts, actions, a live stream of
//! both, manual decisions) over tonic, served on `api.grpc_listen` (off unless set).
//!
//! It is a second front end of the same service, not a second service: it takes the REST router's
//! [`AppState`] (the same store, intake queue, decisions desk, keys and metrics), authenticates with
//! the same [`sentinel_api::auth::Auth`] (`authorization: Bearer …` or `x-api-key` metadata) and
//! the same roles (viewer reads, operator writes), and checks, masks and counts input with the REST
//! crate's own functions. Records carry their JSON exactly as REST answers them, so the two APIs
//! cannot disagree about a record.
//!
//! Limits, as at the REST edge: the same rate limits (one instance shared with the REST router: per
//! client address before authentication, per key after it; `RESOURCE_EXHAUSTED` with a
//! `retry-after` in seconds), requests served at once are capped by `max_in_flight` (more are
//! refused at once with `RESOURCE_EXHAUSTED`, never queued), a unary call is bounded by the request
//! timeout, an ingest stream that sends nothing for [`INGEST_IDLE`] is ended (what it sent is kept
//! and reported), messages are bounded by `max_body_bytes`, and live streams have a cap of their own
//! so they can never hold every in-flight slot. Every refusal is counted in
//! `sentinel_api_grpc_refused_total{reason}` and logged with `evt=grpc_refused`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod convert;
mod live;
mod service;

pub use service::{GrpcService, GrpcSettings};

/// The messages, server and client generated from `proto/sentinel.proto`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod proto {
    tonic::include_proto!("sentinel.v1");
}

use sentinel_api::ratelimit::RateLimits;
use sentinel_api::AppState;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// An ingest stream that sends nothing for this long is ended; what it sent before is kept (as REST's
/// NDJSON stream).
pub const INGEST_IDLE: Duration = Duration::from_secs(30);

/// The file in the data directory that holds the gRPC address actually bound (for port 0).
pub const ADDR_FILE: &str = "grpc.addr";

/// A running gRPC server.
pub struct GrpcServer {
    addr: SocketAddr,
    addr_file: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl GrpcServer {
    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets calls in progress end (at most 5 s: a live stream is cut then), and
    /// removes the address file.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(evt = "grpc_server_failed", error = %e),
            Ok(Err(e)) => tracing::error!(evt = "grpc_server_failed", error = %e),
            Err(_) => {
                tracing::warn!(evt = "grpc_stop_timeout", "calls still open after 5s: cut");
                task.abort();
            }
        }
        let _ = std::fs::remove_file(&self.addr_file);
    }
}

/// Starts the gRPC API on `listen` (nothing when `None`: it is off by default) over the REST
/// router's state, and writes the address bound to `<data_dir>/grpc.addr`. This is the one call the
/// daemon makes; a port that cannot be bound fails the start with the address named.
///
/// `rate` are the rate limits the REST router applies (the daemon makes one [`RateLimits`] for both,
/// so a client's budget is shared between the two APIs).
pub async fn start(
    listen: Option<SocketAddr>,
    state: AppState,
    rate: Arc<RateLimits>,
    data_dir: &Path,
) -> anyhow::Result<Option<GrpcServer>> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for gRPC on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let addr_file = data_dir.join(ADDR_FILE);
    let _ = std::fs::remove_file(&addr_file);
    if let Err(e) = sentinel_api::auth::write_private(&addr_file, format!("{addr}\n").as_bytes()) {
        tracing::warn!(evt = "grpc_addr_file_failed", error = %e);
    }
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let settings = GrpcSettings::from_api(&state.settings);
    let task = tokio::spawn(serve(listener, state, settings, rate, async {
        let _ = stop_rx.await;
    }));
    tracing::info!(evt = "grpc_listening", addr = %addr);
    Ok(Some(GrpcServer {
        addr,
        addr_file,
        stop,
        task,
    }))
}

/// Serves the gRPC API on `listener` until `shutdown` completes (then calls in progress finish),
/// limited by `rate` (per client address, the TCP peer, and per key).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    settings: GrpcSettings,
    rate: Arc<RateLimits>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let max_message = settings.max_message_bytes;
    let svc = proto::sentinel_server::SentinelServer::new(GrpcService::new(state, settings, rate))
        .max_decoding_message_size(max_message);
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}
