//! The daemon: open the store, make sure an admin key exists, start the pipeline and the API, and on
//! shutdown stop intake, drain every queue, flush the store, and return.
//!
//! Each run has its own trace id (logged with `evt=ready` as `run_trace`): the audit records of the
//! configuration loaded, an admin key created, the start and the clean stop are written in it.
//!
//! The audit trail is the Merkle log in `<data_dir>/audit` (`sentinel_audit::Log`), opened before
//! anything records; the store keeps an index of it, caught up from the log at start-up. A log that
//! cannot be opened (damaged, or not matching its signed checkpoints) stops start-up: it is never
//! replaced by a new one. At a clean stop the log signs a final checkpoint before the store closes.

use anyhow::Context;
use sentinel_api::auth::{self, Auth};
use sentinel_api::{ApiSettings, AppState, SystemInfo};
use sentinel_config::{StoreSync, ValidatedConfig};
use sentinel_core::{AuditKind, Redactor, TraceId};
use sentinel_detect::Heuristic;
use sentinel_pipeline::metrics::{FalcoMetrics, Metrics};
use sentinel_pipeline::policy::{allowlist, heuristic_settings, policy_matrix};
use sentinel_pipeline::recorder::{catch_up_index, LogAudit, Recorder};
use sentinel_pipeline::stages::Detectors;
use sentinel_store::{Store, StoreOptions, SyncMode, WriterOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The file the bound API address is written to (useful with port 0).
pub const ADDR_FILE: &str = "api.addr";
/// The variable that turns off authentication (insecure).
pub const BYPASS_VAR: &str = "SENTINEL_ALLOW_INSECURE_NO_AUTH";

/// Where the configuration came from, for its audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOrigin {
    /// The configuration file read, if any.
    pub yaml_path: Option<PathBuf>,
    /// Its text, exactly as loaded; with no file, the embedded defaults were loaded.
    pub yaml: Option<String>,
    /// The `.env` file read over it, if any.
    pub dotenv_path: Option<PathBuf>,
}

/// Runs until `shutdown` completes, then drains and returns.
pub async fn run(
    cfg: ValidatedConfig,
    origin: ConfigOrigin,
    roles: crate::fleet::RoleSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let system_started = (sentinel_core::Timestamp::now(), std::time::Instant::now());
    let cfg = expand_jails(cfg)?;
    // The unsigned test webhook turns any body into an event: like the auth bypass, never on an
    // address other hosts can reach (refused before anything is created).
    if crate::ratehook::webhook_settings(&cfg.api.webhooks).enable_test
        && !cfg.api.listen.ip().to_canonical().is_loopback()
    {
        anyhow::bail!(
            "{}=true is refused with api.listen {}: the unsigned /webhook/test route is for a \
             loopback address only",
            sentinel_api::webhook::ENABLE_TEST_ENV,
            cfg.api.listen
        );
    }
    // The port first: with it taken, fail before anything is created or printed (no data dir, no
    // admin key). Connections wait in the backlog until the server starts.
    // The bus next: roles it cannot join are refused before anything is created.
    let mut fleet = crate::fleet::Fleet::open(&cfg, roles)?;
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.api.listen))?;
    // Many open connections need many descriptors: the soft limit up to the hard one.
    sentinel_api::serve::raise_nofile_limit();
    let data_dir = cfg.data_dir.clone();
    // The data directory holds secrets: private whatever the umask (see `private`).
    crate::private::restrict_umask();
    crate::private::prepare_data_dir(&data_dir)?;
    let store = open_store(&cfg).await?;
    // One daemon per PostgreSQL database (a no-op on the SQLite file of this data directory).
    let hold = store
        .hold_exclusive(&fleet.node)
        .await
        .context("cannot take the store")?;
    let redactor = Arc::new(Redactor::new(cfg.logging.redact_keys.iter()));
    let metrics = Arc::new(Metrics::default());
    sentinel_pipeline::otel::start(&metrics, &cfg.tracing);
    let (audit_log, log_task) = open_audit_log(&cfg).await?;
    metrics.audit_log.set(audit_log.clone());
    let witness = start_witness(&cfg, &audit_log, &metrics)?;
    let caught_up = catch_up_index(&audit_log, &store)
        .await
        .map_err(anyhow::Error::msg)
        .context("cannot catch the audit index up from the audit log")?;
    if caught_up.ahead > 0 {
        // The store remembers audit records the log no longer holds: the log was rolled back or put
        // back from an older copy. Appending would reuse those sequence numbers for new records.
        anyhow::bail!(
            "the store indexes {} audit record(s) the audit log does not hold (the log has {}): \
             the audit log in {} was rolled back or restored from an older copy. Sentinel will not \
             append to it; check with `sentinel audit verify --store` and restore the audit \
             directory that belongs to this store",
            caught_up.ahead,
            caught_up.log_size,
            data_dir.join("audit").display()
        );
    }
    let (writer, writer_task) = store.writer(writer_options(&cfg));
    let _ = metrics.store_writer.set(writer.monitor());
    let pending_writes = writer.clone();
    let (audit, index_task) = LogAudit::start(audit_log.clone(), writer.clone(), metrics.clone());
    let recorder = Recorder::new(writer, Arc::new(audit), redactor.clone(), metrics.clone());
    let run_trace = TraceId::new();
    let anchors = anchor_log_chain(recorder.clone(), run_trace.clone());
    note_config(&recorder, &run_trace, &cfg, &origin)
        .await
        .map_err(anyhow::Error::msg)?;
    let auth = open_auth(&cfg, &store, &recorder, &run_trace).await?;
    for w in cfg.warnings() {
        tracing::warn!(evt = "unsafe_setting", warning = %w);
    }

    let scenarios = sentinel_pipeline::scenarios::engine(&cfg, &redactor)?;
    let _ = metrics.scenarios.set(scenarios.tally());
    let falco = cfg.detect.falco.build();
    let falco_tally = falco.tally();
    metrics.register(|r| r.register_collector(Box::new(FalcoMetrics(falco_tally))));
    // Only a responder touches this host's firewall, containers and files.
    let ledger = match roles.responder {
        true => {
            let ledger = Arc::new(sentinel_respond::Ledger::new(
                sentinel_pipeline::ledger::responder(&cfg, allowlist(&cfg)).await?,
                sentinel_pipeline::ledger::ledger_config(&cfg),
            ));
            sentinel_pipeline::ledger::reconcile(&ledger, &store, &recorder).await?;
            Some(ledger)
        }
        false => None,
    };
    let (stop_expiry, expiry_stopped) = tokio::sync::watch::channel(false);
    let desk = ledger.as_ref().map(|ledger| {
        Arc::new(sentinel_pipeline::ledger::Desk {
            ledger: ledger.clone(),
            recorder: recorder.clone(),
            mode: cfg.policy.mode,
            limits: sentinel_pipeline::ledger::action_limits(&cfg),
        })
    });
    let history: Arc<dyn sentinel_intel::History> =
        Arc::new(sentinel_pipeline::history::StoreHistory::new(store.clone()));
    // Each feed's load is logged by the feeds themselves (a feed serving nothing is an error).
    let (intel, _feed_reports) = sentinel_intel::build(&cfg.intel, Some(history))
        .map_err(anyhow::Error::msg)
        .context("cannot start the investigation")?;
    metrics.intel.set(intel.clone());
    // `offline=true` alone does not say why, nor what it changes; a new operator reads it here.
    let investigation = if !intel.is_offline() {
        "online: remote providers are asked, within the deadline"
    } else if cfg.intel.offline {
        "offline (intel.offline is set): local feeds and the store's history only"
    } else {
        "offline (no provider key is set): local feeds and the store's history only"
    };
    tracing::info!(
        evt = "intel_ready",
        offline = intel.is_offline(),
        investigation,
        providers = ?intel.provider_names(),
        proxy = intel.proxy().unwrap_or("none"),
        feeds = cfg.intel.feeds.len(),
        cache = %cfg.intel.cache.redis.as_ref().map_or("memory".to_owned(), |u| format!("memory + {u}")),
        deadline_ms = cfg.intel.deadline.as_millis() as u64,
    );
    // Notifications: the outbox lives in the store; a channel that cannot be built stops start-up.
    let (notifications, notice_tasks) = crate::notices::start(
        &cfg.notify,
        store.clone(),
        Some(intel.clone()),
        Some(audit_log.clone()),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the notifications: {e}"))?;
    metrics.register(|r| {
        r.register_collector(Box::new(crate::notices::NotifyMetrics(
            notifications.clone(),
        )))
    });
    let feed_watcher = intel
        .feeds()
        .spawn_watcher(cfg.intel.feed_poll, stop_expiry.subscribe());
    let expiry = ledger.as_ref().map(|ledger| {
        sentinel_pipeline::ledger::spawn_fleet_expiry(
            ledger.clone(),
            recorder.clone(),
            expiry_stopped,
            Some(Arc::new(notifications.clone())),
            fleet.redis().map(|r| r.lease()),
            fleet.reporter(),
        )
    });
    let parts = crate::fleet::Parts {
        detectors: Detectors::new(Heuristic::new(heuristic_settings(&cfg)), scenarios).with(falco),
        investigator: intel.investigator(),
        policy: policy_matrix(&cfg),
        ledger: ledger.clone(),
        notifier: Box::new(notifications.clone()),
        recorder: recorder.clone(),
        metrics: metrics.clone(),
        redactor: (*redactor).clone(),
    };
    let (intake, running) = fleet.start(parts, cfg.pipeline.queue_capacity).await?;
    crate::fleet::register_metrics(&fleet, &metrics);

    // Log sources feed a sensor.
    let sources = match roles.sensor {
        true => Some(
            sentinel_pipeline::sources::start(
                &cfg,
                intake.clone(),
                metrics.clone(),
                redactor.clone(),
            )
            .await?,
        ),
        false => None,
    };
    // The supervisor (a `supervise:` section) runs its children under the daemon's notifier.
    let (supervisor, children) =
        match crate::supervised::start(cfg.supervise.clone(), Arc::new(notifications.clone()))
            .await?
        {
            Some((sup, hook)) => (Some(sup), Some(hook)),
            None => (None, None),
        };
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        store: store.clone(),
        intake,
        auth,
        metrics: metrics.clone(),
        ready: ready.clone(),
        redactor,
        settings: ApiSettings {
            server_id: Some(crate::local::server_id(&data_dir)?),
            no_intake: (!roles.sensor).then(|| {
                format!(
                    "this node takes no events (roles: {}): send them to a sensor, a node started \
                     with --role sensor",
                    roles.names().join(",")
                )
            }),
            ..api_settings(&cfg)
        },
        audit: Some(audit_log.clone()),
        decisions: desk.map(|d| d as Arc<dyn sentinel_api::decisions::Decisions>),
        intel: Some(intel.clone()),
        notify: Some(notifications.clone()),
        operator_audit: Some(recorder.clone()),
        system: SystemInfo {
            started_at: system_started.0,
            started: system_started.1,
            store_writer: Some(pending_writes),
            children,
            notify: Some(crate::notices::heartbeat_hook(notifications.clone())),
        },
        ui: sentinel_api::ui::UiState::new(ui_settings(&cfg)),
    };
    if let Some(ledger) = &ledger {
        tracing::info!(evt = "allowlist", nets = ?ledger.responder().allowlist().nets().iter().map(|n| n.to_string()).collect::<Vec<_>>());
    }
    let addr: SocketAddr = listener.local_addr()?;
    write_addr_file(&data_dir, addr);
    let retention = sentinel_pipeline::retention::spawn_retention(
        store.clone(),
        cfg.store.event_retention,
        cfg.store.max_events,
    );
    // One set of rate limits for every door (TCP, the socket, gRPC): one budget per client and key.
    let rate = sentinel_api::ratelimit::RateLimits::new(&state.settings.rate, &metrics);
    let grpc =
        sentinel_grpc::start(cfg.api.grpc_listen, state.clone(), rate.clone(), &data_dir).await?;
    let edge = sentinel_api::serve::Edge::new(state.settings.edge.clone(), &metrics);
    // `api.tls`: the files were checked by the configuration; one changed since is refused here.
    let tls = match &cfg.api.tls {
        Some(t) => Some(
            sentinel_api::tls::Tls::new(sentinel_api::tls::TlsSettings::new(t), &metrics)
                .context("cannot serve TLS (api.tls)")?,
        ),
        None => None,
    };
    let local_edge = crate::local::edge(&state.settings.edge, &metrics);
    let app = sentinel_api::router_with_limits(state, rate);
    let (local_listener, local_path) = crate::local::bind(&data_dir).await?;
    let local = crate::local::LocalServer::start(
        crate::local::PeerChecked::new(local_listener, &metrics),
        local_path,
        app.clone(),
        local_edge,
    );
    ready.store(true, Ordering::Release);
    tracing::info!(
        evt = "ready",
        addr = %addr,
        tls = cfg.api.tls.is_some(),
        mode = cfg.policy.mode.as_str(),
        data_dir = %data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        run_trace = run_trace.as_str(),
    );
    // A failure is logged and counted by the recorder; the daemon runs on.
    let _ = recorder
        .note(
            AuditKind::Started,
            "sentinel",
            &run_trace,
            format!(
                "sentinel {} started: pid {}, mode {}, api {addr}",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                cfg.policy.mode.as_str()
            ),
            None,
        )
        .await;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        match tls {
            Some(tls) => sentinel_api::serve::serve_tls(listener, app, edge, tls, stop).await,
            None => sentinel_api::serve::serve(listener, app, edge, stop).await,
        }
    });
    // A fleet's nodes beat in Redis (`sentinel cluster status`).
    let heartbeat = fleet.redis().map(|r| {
        sentinel_bus::Heartbeat::start(
            r.config(),
            sentinel_bus::NodeInfo {
                node: fleet.node.clone(),
                roles: fleet
                    .roles
                    .names()
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                api: Some(addr.to_string()),
            },
            cfg.fleet.heartbeat,
        )
    });
    let collect =
        crate::fleet::spawn_checkpoint_collection(&fleet, &audit_log, stop_expiry.subscribe());
    let (sd, watchdog) = tell_systemd_ready(
        &addr,
        cfg.policy.mode.as_str(),
        &store,
        &metrics,
        running.stages(),
    );
    shutdown.await;
    let started = std::time::Instant::now();
    tracing::info!(evt = "shutting_down");
    if let Some(sd) = &sd {
        sd_send(sd.stopping(), "STOPPING=1");
        sd_send(sd.status("stopping: draining the queues"), "STATUS");
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    ready.store(false, Ordering::Release);
    // Supervised children stop before the pipeline drains (their crash notices are queued first).
    crate::supervised::stop(supervisor).await;
    // Sources stop first and hand over what they read; then HTTP intake stops.
    if let Some(sources) = sources {
        sources.stop().await;
    }
    stop_server(server, stop_tx).await;
    if let Some(g) = grpc {
        g.stop().await;
    }
    local.stop().await;
    retention.abort();
    let _ = stop_expiry.send(true);
    if let Some(Err(e)) = match expiry {
        Some(t) => Some(t.await),
        None => None,
    } {
        tracing::error!(evt = "expiry_task_failed", error = %e);
    }
    if let Err(e) = feed_watcher.await {
        tracing::error!(evt = "feed_watcher_failed", error = %e);
    }
    // A connection that outlived the deadline (aborting the server does not end the connections it
    // spawned: a client sending its headers slowly keeps one) still holds intake and writer handles:
    // close both queues instead of waiting for them, so what was queued is committed and nothing hangs.
    running.close_intake();
    running.join().await;
    if let Some(c) = collect {
        if let Err(e) = c.await {
            tracing::error!(evt = "checkpoint_collection_failed", error = %e);
        }
    }
    if let Some(h) = heartbeat {
        if let Err(e) = h.stop().await {
            tracing::warn!(evt = "heartbeat_stop_failed", error = %e);
        }
    }
    fleet.close().await;
    if let Some(a) = anchors {
        a.stop().await;
    }
    // The pipeline has drained; the store still takes this last record.
    let _ = recorder
        .note(
            AuditKind::Stopped,
            "sentinel",
            &run_trace,
            format!(
                "sentinel {} stopped: pid {}, {} events accepted, drained in {} ms",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                metrics.events_accepted.get(),
                started.elapsed().as_millis()
            ),
            None,
        )
        .await;
    drop(recorder);
    // The pipeline's last notices are in the outbox; undelivered rows go out at the next start.
    notice_tasks.stop().await;
    // The index rows of queued audit records, then the log's final checkpoint, then the store.
    let indexed = index_task.close().await;
    let log_closed = log_task.finish().await;
    if let Some(w) = witness {
        w.stop().await;
    }
    let stats = writer_task.close().await.context("flushing the store")?;
    store.close().await;
    drop(hold);
    let _ = std::fs::remove_file(data_dir.join(ADDR_FILE));
    tracing::info!(
        evt = "stopped",
        records = stats.records,
        batches = stats.batches,
        failed_batches = stats.failed_batches,
        events_accepted = metrics.events_accepted.get(),
        drain_ms = started.elapsed().as_millis() as u64,
    );
    match log_closed {
        Ok(cp) => tracing::info!(
            evt = "audit_log_closed",
            size = cp.checkpoint.size,
            root = cp.text.lines().nth(2).unwrap_or_default(),
            // Rows this run's queued path indexed (operators' committed records and earlier runs
            // are not in it): not a count of the whole index.
            queued_rows_indexed_this_run = indexed,
        ),
        Err(e) => {
            tracing::error!(evt = "audit_log_close_failed", error = %e);
            anyhow::bail!("the audit log could not sign its final checkpoint: {e}");
        }
    }
    Ok(())
}

/// Tells systemd (when it started us with `Type=notify`: `$NOTIFY_SOCKET`) that the daemon is ready and
/// what it serves, and starts the watchdog pings when `WatchdogSec=` is set. A ping is sent only while
/// every pipeline stage runs and the store answers a ping within a quarter of the interval: a daemon
/// that is up but wedged stops pinging and systemd restarts it.
fn tell_systemd_ready(
    addr: &SocketAddr,
    mode: &str,
    store: &Store,
    metrics: &Arc<Metrics>,
    expected_stages: u64,
) -> (
    Option<sentinel_supervise::sdnotify::SdNotify>,
    Option<tokio::task::JoinHandle<()>>,
) {
    let Some(sd) = sentinel_supervise::sdnotify::SdNotify::from_env() else {
        return (None, None);
    };
    sd_send(sd.ready(), "READY=1");
    sd_send(
        sd.status(&format!(
            "ready: api on {addr}, mode {mode}, pid {}",
            std::process::id()
        )),
        "STATUS",
    );
    let store = store.clone();
    let tasks = metrics.tasks.clone();
    let limit = sd.watchdog_interval().unwrap_or(Duration::from_secs(4)) / 4;
    let watchdog = sd.spawn_watchdog(move || {
        let store = store.clone();
        let stages = tasks
            .by_kind()
            .get(sentinel_pipeline::stages::STAGE_TASK)
            .copied()
            .unwrap_or(0);
        async move {
            if stages < expected_stages {
                tracing::error!(
                    evt = "watchdog_unhealthy",
                    stages_running = stages,
                    "a pipeline stage has ended"
                );
                return false;
            }
            match tokio::time::timeout(limit, store.ping()).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::error!(evt = "watchdog_unhealthy", error = %e, "the store does not answer");
                    false
                }
                Err(_) => {
                    tracing::error!(
                        evt = "watchdog_unhealthy",
                        timeout_ms = limit.as_millis() as u64,
                        "the store ping timed out"
                    );
                    false
                }
            }
        }
    });
    tracing::info!(
        evt = "sd_notify_ready",
        watchdog_ms = sd.watchdog_interval().map(|d| d.as_millis() as u64),
    );
    (Some(sd), watchdog)
}

/// Logs a notification systemd did not get (the daemon runs on).
fn sd_send(r: std::io::Result<()>, what: &str) {
    if let Err(e) = r {
        tracing::error!(evt = "sd_notify_failed", state = what, error = %e);
    }
}

/// The webhook witness task, sent every new signed checkpoint.
struct WitnessTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    counters: Arc<sentinel_audit::witness::WitnessCounters>,
}

impl WitnessTask {
    /// Stops it once the log's final checkpoint is signed: that one gets a last attempt (bounded).
    async fn stop(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .is_err()
        {
            abort.abort();
            tracing::error!(
                evt = "audit_witness_stop_timeout",
                "the audit witness did not finish its last attempt in 30 s"
            );
        }
        tracing::info!(
            evt = "audit_witness_stopped",
            sent = self.counters.sent(),
            failed = self.counters.failed(),
        );
    }
}

/// Starts the webhook witness when `audit.witness_url` is set: every new signed checkpoint of the log
/// is posted to it (`sentinel_audit::witness`), its counters exported as `sentinel_audit_witness_*`.
fn start_witness(
    cfg: &ValidatedConfig,
    log: &sentinel_audit::Log,
    metrics: &Metrics,
) -> anyhow::Result<Option<WitnessTask>> {
    let Some(w) = &cfg.audit.witness else {
        return Ok(None);
    };
    let settings = sentinel_audit::witness::WitnessSettings::new(&w.url, &w.secret);
    let witness = sentinel_audit::witness::Witness::new(settings)
        .map_err(|e| anyhow::anyhow!("cannot start the audit witness: {e}"))?;
    let counters = witness.counters();
    metrics.audit_log.set_witness(counters.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(witness.run(log.subscribe_checkpoints(), async move {
        let _ = stopped.await;
    }));
    // The URL is not logged: its path or query may hold a token.
    tracing::info!(evt = "audit_witness_started");
    Ok(Some(WitnessTask {
        stop,
        task,
        counters,
    }))
}

/// The task anchoring the process log's hash chain in the audit log.
struct Anchors {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Anchors {
    /// Anchors the seals already handed out, then stops. Seals made later (the final one, at exit)
    /// are in the process log only.
    async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(evt = "log_chain_anchor_task_failed", error = %e);
        }
    }
}

/// Appends one `AuditKind::LogChain` record per sealed block of the process log's hash chain
/// ([`crate::logs::take_seals`]), its content hash the block's seal, in the run's trace: a shipped log
/// file is then anchored in the signed Merkle log. `None` when the chain is off.
fn anchor_log_chain(recorder: Recorder, trace: TraceId) -> Option<Anchors> {
    let mut seals = crate::logs::take_seals()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let seal = tokio::select! {
                biased;
                s = seals.recv() => s,
                _ = stopped.changed() => None,
            };
            let Some(seal) = seal else { break };
            anchor_seal(&recorder, &trace, &seal).await;
        }
        while let Ok(seal) = seals.try_recv() {
            anchor_seal(&recorder, &trace, &seal).await;
        }
    });
    Some(Anchors { stop, task })
}

async fn anchor_seal(
    recorder: &Recorder,
    trace: &TraceId,
    seal: &sentinel_audit::chain::BlockSeal,
) {
    let hex: String = seal.seal.iter().map(|b| format!("{b:02x}")).collect();
    let summary = format!(
        "process log chain block {} sealed after {} line(s){}",
        seal.block,
        seal.lines,
        if seal.last { " (final)" } else { "" }
    );
    // A failure is counted and logged by the recorder.
    let _ = recorder
        .note(
            AuditKind::LogChain,
            &format!("log_chain/{}", seal.block),
            trace,
            summary,
            Some(hex),
        )
        .await;
}

/// The name of an existing log's key (`audit/key.pub`): with `audit.origin` not set, a log keeps the
/// name it was created with when the host is renamed.
fn existing_origin(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("key.pub")).ok()?;
    let v = sentinel_audit::note::Verifier::parse(text.trim()).ok()?;
    Some(v.name().to_owned())
}

/// With `audit.origin` set and an existing audit log whose key has another name, why the daemon would
/// refuse to start (`sentinel config check` reports it before a start fails on it).
pub fn audit_origin_problem(cfg: &ValidatedConfig) -> Option<String> {
    let configured = cfg.audit.origin.as_ref()?;
    let dir = sentinel_audit::format::audit_dir(&cfg.data_dir);
    let existing = existing_origin(&dir)?;
    (existing != *configured).then(|| {
        format!(
            "`audit.origin`: {configured:?} is not the name of the existing audit log in {} \
             ({existing:?}, from its key.pub): the daemon would refuse to start; leave audit.origin \
             unset (an existing log keeps its name) or set it to {existing:?}",
            dir.display()
        )
    })
}

/// The name of a new audit log when `audit.origin` is not set: `sentinel/<hostname>`.
fn default_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    origin_for_host(&host)
}

/// `sentinel/<host>`, the host name made a valid key name (no '+', spaces or control characters).
fn origin_for_host(host: &str) -> String {
    let host: String = host
        .trim()
        .chars()
        .map(|c| match c == '+' || c.is_whitespace() || c.is_control() {
            true => '-',
            false => c,
        })
        .collect();
    match host.is_empty() {
        true => "sentinel/localhost".to_owned(),
        false => format!("sentinel/{host}"),
    }
}

/// Opens (creating on first start) and recovers the audit log in `<data_dir>/audit`. Any failure stops
/// start-up with the log's own words: damage is never papered over with a new log.
async fn open_audit_log(
    cfg: &ValidatedConfig,
) -> anyhow::Result<(sentinel_audit::Log, sentinel_audit::LogTask)> {
    let dir = sentinel_audit::format::audit_dir(&cfg.data_dir);
    let origin = match &cfg.audit.origin {
        Some(o) => o.clone(),
        None => existing_origin(&dir).unwrap_or_else(default_origin),
    };
    let new_key = !dir.join("key.pub").exists();
    let mut settings = sentinel_audit::AuditSettings::new(&dir, origin.clone());
    settings.checkpoint_every = cfg.audit.checkpoint_every;
    settings.checkpoint_interval = cfg.audit.checkpoint_interval;
    settings.segment_bytes = cfg.audit.segment_bytes;
    let (log, task) = sentinel_audit::Log::open(settings).await.map_err(|e| {
        let hint = match e {
            sentinel_audit::LogError::Corrupt { .. } | sentinel_audit::LogError::Mismatch(_) => {
                "; the log is left as it is (check it with `sentinel audit verify`, restore it from a backup)"
            }
            _ => "",
        };
        anyhow::anyhow!("cannot open the audit log {}: {e}{hint}", dir.display())
    })?;
    let latest = log.latest_checkpoint();
    tracing::info!(
        evt = "audit_log_open",
        dir = %dir.display(),
        origin = %origin,
        size = log.size(),
        checkpoint_size = latest.checkpoint.size,
        verifier_key = %log.verifier_key(),
    );
    if new_key && dir.join("key.pub").exists() {
        // Like the admin key: said once, where the operator sees it. The copy in key.pub is only as
        // trustworthy as the host; a copy kept elsewhere is what `verify --key` needs.
        eprintln!(
            "Sentinel created the audit log's signing key. Keep a copy of its verifier key off this \
             host (it is also in {}) and check the log with `sentinel audit verify --key KEY`:\n\n    {}\n",
            dir.join("key.pub").display(),
            log.verifier_key()
        );
    }
    Ok((log, task))
}

/// Stops accepting requests. In-flight ones get a bounded time; after that the server task is aborted
/// (the connections it spawned live on until the process ends; the caller closes the queues so they
/// cannot hold it).
async fn stop_server(
    mut server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
) {
    let _ = stop.send(());
    let abort = server.abort_handle();
    match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(evt = "server_error", error = %e),
        Ok(Err(e)) => tracing::error!(evt = "server_task_failed", error = %e),
        Err(_) => {
            tracing::warn!(
                evt = "server_drain_timeout",
                note = "aborting the requests still open"
            );
            abort.abort();
            let _ = server.await;
        }
    }
}

/// fail2ban jails become ordinary sources, scenarios and rules before anything is built.
fn expand_jails(cfg: ValidatedConfig) -> anyhow::Result<ValidatedConfig> {
    let (expanded, warnings) = sentinel_pipeline::jails::expand(&cfg);
    for w in warnings {
        tracing::warn!(evt = "fail2ban_jails", warning = %w);
    }
    expanded.map_err(|errors| {
        anyhow::anyhow!(
            "the fail2ban jails have {} problem(s):\n{}",
            errors.len(),
            errors.join("\n")
        )
    })
}

fn store_options(cfg: &ValidatedConfig) -> StoreOptions {
    StoreOptions {
        sync: match cfg.store.sync {
            StoreSync::Normal => SyncMode::Normal,
            StoreSync::Full => SyncMode::Full,
        },
    }
}

fn writer_options(cfg: &ValidatedConfig) -> WriterOptions {
    WriterOptions {
        queue_capacity: cfg.pipeline.queue_capacity.max(cfg.store.batch_size * 4),
        batch_size: cfg.store.batch_size,
        flush_interval: cfg.store.flush_interval,
    }
}

/// Notes the configuration loaded: its content hash is SHA-256 of the configuration file's text as
/// loaded (of the embedded defaults when there was no file); the summary names the file, a `.env`
/// read over it, and the hash of the effective configuration (environment overrides included).
async fn note_config(
    recorder: &sentinel_pipeline::recorder::Recorder,
    trace: &TraceId,
    cfg: &ValidatedConfig,
    origin: &ConfigOrigin,
) -> Result<(), String> {
    let (source, text) = match (&origin.yaml_path, &origin.yaml) {
        (Some(p), Some(text)) => (
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            text.as_str(),
        ),
        _ => (
            "the embedded defaults".to_owned(),
            sentinel_config::DEFAULT_YAML,
        ),
    };
    let mut detail = Vec::new();
    if let Some(p) = &origin.dotenv_path {
        detail.push(format!(".env {} layered over it", p.display()));
    }
    match serde_json::to_vec(cfg) {
        Ok(effective) => detail.push(format!(
            "effective configuration sha256 {}",
            sentinel_store::sha256_hex(&effective)
        )),
        Err(e) => tracing::warn!(evt = "config_hash_failed", error = %e),
    }
    recorder
        .config_loaded(trace, &source, text.as_bytes(), &detail.join("; "))
        .await
}

/// The key registry: the hashing secret from the data directory, and an admin key made on first start
/// (noted in the audit trail in `trace`).
async fn open_auth(
    cfg: &ValidatedConfig,
    store: &Store,
    recorder: &sentinel_pipeline::recorder::Recorder,
    trace: &TraceId,
) -> anyhow::Result<Arc<Auth>> {
    let bypass = cfg.api.allow_insecure_no_auth;
    // Validation refuses it already; the daemon checks again rather than trust every caller to validate.
    if bypass && !cfg.api.listen.ip().is_loopback() {
        anyhow::bail!(
            "{BYPASS_VAR} is refused with api.listen {} (not loopback): without keys the API must \
             not be reachable from another host",
            cfg.api.listen
        );
    }
    let secret_path = cfg.data_dir.join("auth.secret");
    let secret_is_new = !secret_path.exists();
    let auth = Auth::new(auth::load_or_create_secret(&secret_path)?, bypass);
    let auth = Arc::new(match &cfg.api.jwt {
        Some(j) => auth.with_jwt(crate::jwt_setup::jwt(j)?),
        None => auth,
    });
    sentinel_api::keys::bootstrap_keys(store, &auth, &cfg.data_dir, recorder, trace, secret_is_new)
        .await?;
    if bypass {
        spawn_bypass_warning();
    }
    Ok(auth)
}

fn api_settings(cfg: &ValidatedConfig) -> ApiSettings {
    ApiSettings {
        max_body_bytes: cfg.api.max_body_bytes,
        defend_timeout: cfg.pipeline.defend_timeout,
        intake_wait: cfg.pipeline.defend_timeout,
        request_timeout: cfg.api.request_timeout,
        max_in_flight: cfg.api.max_connections,
        max_notify_pending: cfg.notify.max_pending,
        // Read from the data directory by `run` (see local.rs).
        server_id: None,
        paging: sentinel_api::PagingSettings {
            max_page_bytes: cfg.api.max_page_bytes,
        },
        rate: crate::ratehook::rate_settings(&cfg.api.rate_limit),
        webhooks: crate::ratehook::webhook_settings(&cfg.api.webhooks),
        edge: edge_settings(cfg),
        // Set by `run` from the roles.
        no_intake: None,
    }
}

/// The dashboard's settings (`api.ui`).
fn ui_settings(cfg: &ValidatedConfig) -> sentinel_api::ui::UiSettings {
    let u = &cfg.api.ui;
    sentinel_api::ui::UiSettings {
        enabled: u.enabled,
        session_ttl: u.session_ttl,
        idle_timeout: u.idle_timeout,
        max_sessions: u.max_sessions,
        // `Secure` (and `__Host-`) whenever browsers reach the dashboard over TLS: ours, or a proxy's.
        secure_cookie: u.secure_cookie || cfg.api.tls.is_some(),
        public_origins: u.public_origins.clone(),
    }
}

/// The connection server's limits: `api.max_connections` caps open connections (the server lowers it
/// below the open-files limit), `api.edge` the rest; `api.stream` the live WebSocket stream's.
fn edge_settings(cfg: &ValidatedConfig) -> sentinel_api::serve::EdgeSettings {
    let e = &cfg.api.edge;
    let ws = &cfg.api.stream;
    sentinel_api::serve::EdgeSettings {
        max_connections: cfg.api.max_connections,
        fd_reserve: e.fd_reserve,
        header_read_timeout: e.header_read_timeout,
        idle_timeout: e.idle_timeout,
        stream_min_bytes: e.stream_min_bytes,
        stream_window: e.stream_window,
        max_streams: e.max_streams,
        ws_max_streams: ws.max_streams,
        ws_send_timeout: ws.send_timeout,
        ws_ping_interval: ws.ping_interval,
        ..Default::default()
    }
}

fn spawn_bypass_warning() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            tracing::warn!(
                evt = "auth_bypass_on",
                msg = "SENTINEL_ALLOW_INSECURE_NO_AUTH is true: the API accepts requests without a key",
            );
        }
    });
}

fn write_addr_file(data_dir: &Path, addr: SocketAddr) {
    if let Err(e) =
        crate::private::write_private(&data_dir.join(ADDR_FILE), format!("{addr}\n").as_bytes())
    {
        tracing::warn!(evt = "addr_file_failed", error = %e);
    }
}

/// The store `store.url` names (PostgreSQL), else the SQLite file `<data_dir>/sentinel.db`. The log
/// says which, with a PostgreSQL URL's credentials masked.
async fn open_store(cfg: &ValidatedConfig) -> anyhow::Result<Store> {
    match &cfg.store.url {
        Some(url) => {
            let shown = sentinel_config::mask_url(url);
            let store = Store::open_url_with(url, store_options(cfg))
                .await
                .with_context(|| format!("cannot open the store at {shown}"))?;
            tracing::info!(evt = "store_opened", backend = "postgresql", url = %shown);
            Ok(store)
        }
        None => {
            let path = cfg.data_dir.join("sentinel.db");
            let store = Store::open_with(&path, store_options(cfg))
                .await
                .context("cannot open the store")?;
            tracing::info!(evt = "store_opened", backend = "sqlite", path = %path.display());
            Ok(store)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default origin is a valid key name whatever the host is called.
    #[test]
    fn the_default_origin_is_a_valid_key_name() {
        assert_eq!(origin_for_host("web-1.example\n"), "sentinel/web-1.example");
        assert_eq!(origin_for_host("a+b c\td"), "sentinel/a-b-c-d");
        assert_eq!(origin_for_host(" \n"), "sentinel/localhost");
        let o = default_origin();
        assert!(
            o.starts_with("sentinel/") && !o.contains('+') && !o.contains(char::is_whitespace),
            "{o}"
        );
        assert!(sentinel_audit::note::Signer::generate(&o).is_ok(), "{o}");
    }

    /// `api.stream` reaches the live stream's limits.
    #[test]
    fn the_stream_limits_come_from_api_stream() {
        let cfg = sentinel_config::load_str(
            "api:\n  stream:\n    max_streams: 3\n    send_timeout: 1500ms\n    ping_interval: 45s\n",
            None,
            &[],
        )
        .expect("a valid config");
        let e = edge_settings(&cfg);
        assert_eq!(e.ws_max_streams, 3);
        assert_eq!(e.ws_send_timeout, Duration::from_millis(1500));
        assert_eq!(e.ws_ping_interval, Duration::from_secs(45));
    }
}
