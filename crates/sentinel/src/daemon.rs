//! The daemon: open the store, make sure an admin key exists, start the pipeline and the API, and on
//! shutdown stop intake, drain every queue, flush the store, and return.

use crate::pipeline::{self, LogNotifier, Stages};
use anyhow::Context;
use sentinel_api::auth::{self, Auth, Principal, Role};
use sentinel_api::metrics::Metrics;
use sentinel_api::{ApiSettings, AppState};
use sentinel_config::{Band as CfgBand, StoreSync, ValidatedConfig};
use sentinel_core::{Redactor, Timestamp};
use sentinel_detect::{EngineOptions, Heuristic, HeuristicSettings, ScenarioEngine};
use sentinel_intel::{Investigator, LocalContext};
use sentinel_respond::{ActionTemplate, Allowlist, Band, Bands, MatrixRule, PolicyMatrix};
use sentinel_store::{ApiKeyRow, Store, StoreOptions, SyncMode, WriterOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The file the admin key is written to on first start.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// The file the bound API address is written to (useful with port 0).
pub const ADDR_FILE: &str = "api.addr";
/// The variable that turns off authentication (insecure).
pub const BYPASS_VAR: &str = "SENTINEL_ALLOW_INSECURE_NO_AUTH";

/// Runs until `shutdown` completes, then drains and returns.
pub async fn run(
    cfg: ValidatedConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // fail2ban jails become ordinary sources, scenarios and rules before anything is built.
    let (expanded, warnings) = crate::jails::expand(&cfg);
    for w in warnings {
        tracing::warn!(evt = "fail2ban_jails", warning = %w);
    }
    let cfg = match expanded {
        Ok(cfg) => cfg,
        Err(errors) => anyhow::bail!(
            "the fail2ban jails have {} problem(s):\n{}",
            errors.len(),
            errors.join("\n")
        ),
    };
    let data_dir = cfg.data_dir.clone();
    // The data directory holds secrets: private whatever the umask (see `private`).
    crate::private::restrict_umask();
    crate::private::prepare_data_dir(&data_dir)?;
    let store_opts = StoreOptions {
        sync: match cfg.store.sync {
            StoreSync::Normal => SyncMode::Normal,
            StoreSync::Full => SyncMode::Full,
        },
    };
    let store = Store::open_with(&data_dir.join("sentinel.db"), store_opts)
        .await
        .context("cannot open the store")?;
    let redactor = Arc::new(Redactor::new(cfg.logging.redact_keys.iter()));
    let bypass = cfg.api.allow_insecure_no_auth;
    let auth = Arc::new(Auth::new(
        auth::load_or_create_secret(&data_dir.join("auth.secret"))?,
        bypass,
    ));
    bootstrap_keys(&store, &auth, &data_dir).await?;
    if bypass {
        spawn_bypass_warning();
    }
    for w in cfg.warnings() {
        tracing::warn!(evt = "unsafe_setting", warning = %w);
    }

    let metrics = Arc::new(Metrics::default());
    let (writer, writer_task) = store.writer(WriterOptions {
        queue_capacity: cfg.pipeline.queue_capacity.max(cfg.store.batch_size * 4),
        batch_size: cfg.store.batch_size,
        flush_interval: cfg.store.flush_interval,
    });
    let _ = metrics.store_writer.set(writer.monitor());
    let sc = &cfg.detect.scenarios;
    let scenario_dir = (!sc.dir.is_empty()).then(|| std::path::PathBuf::from(&sc.dir));
    let scenarios = ScenarioEngine::new(
        crate::scenarios::load_defs(sc.builtin, scenario_dir.as_deref(), &sc.define)?,
        EngineOptions {
            whitelist: crate::scenarios::resolve_whitelist(&sc.whitelist)?,
            ipv6_prefix: (sc.ipv6_prefix > 0).then_some(sc.ipv6_prefix),
            max_keys_per_scenario: sc.max_keys,
            ..EngineOptions::default()
        },
    )
    .with_redactor((*redactor).clone());
    let ledger = Arc::new(sentinel_respond::Ledger::new(
        crate::ledger_tasks::responder(&cfg, allowlist(&cfg)).await?,
        crate::ledger_tasks::ledger_config(&cfg),
    ));
    crate::ledger_tasks::reconcile(&ledger, &store, &writer).await?;
    let (stop_expiry, expiry_stopped) = tokio::sync::watch::channel(false);
    let expiry = crate::ledger_tasks::spawn_expiry(ledger.clone(), writer.clone(), expiry_stopped);
    let desk = Arc::new(crate::ledger_tasks::Desk {
        ledger: ledger.clone(),
        writer: writer.clone(),
        mode: cfg.policy.mode,
        limits: crate::ledger_tasks::action_limits(&cfg),
    });
    let stages = Stages {
        detector: Heuristic::new(heuristic_settings(&cfg)),
        scenarios,
        investigator: Investigator::new(
            vec![Box::new(LocalContext::new(24 * 3600 * 1000, 100_000))],
            Duration::from_secs(2),
        ),
        policy: policy_matrix(&cfg),
        ledger: ledger.clone(),
        notifier: Box::new(LogNotifier),
        writer,
        metrics: metrics.clone(),
        redactor: (*redactor).clone(),
    };
    let (intake, running) = pipeline::start(stages, cfg.pipeline.queue_capacity);

    let sources =
        crate::sources::start(&cfg, intake.clone(), metrics.clone(), redactor.clone()).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        store: store.clone(),
        intake,
        auth,
        metrics: metrics.clone(),
        ready: ready.clone(),
        redactor,
        settings: ApiSettings {
            max_body_bytes: cfg.api.max_body_bytes,
            defend_timeout: cfg.pipeline.defend_timeout,
            intake_wait: cfg.pipeline.defend_timeout,
            request_timeout: cfg.api.request_timeout,
            max_in_flight: cfg.api.max_connections,
        },
        decisions: Some(desk),
    };
    tracing::info!(evt = "allowlist", nets = ?ledger.responder().allowlist().nets().iter().map(|n| n.to_string()).collect::<Vec<_>>());
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.api.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    write_addr_file(&data_dir, addr);
    let retention = spawn_retention(
        store.clone(),
        cfg.store.event_retention,
        cfg.store.max_events,
    );
    let app = sentinel_api::router(state);
    ready.store(true, Ordering::Release);
    tracing::info!(
        evt = "ready",
        addr = %addr,
        mode = cfg.policy.mode.as_str(),
        data_dir = %data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    shutdown.await;
    let started = std::time::Instant::now();
    tracing::info!(evt = "shutting_down");
    ready.store(false, Ordering::Release);
    // Sources stop first and hand over what they read; then HTTP intake stops.
    sources.stop().await;
    let _ = stop_tx.send(());
    // In-flight requests get a bounded time; after that the server task is aborted (the connections
    // it spawned live on until the process ends; the queues are closed below so they cannot hold it).
    let abort = server.abort_handle();
    let mut server = server;
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
    retention.abort();
    let _ = stop_expiry.send(true);
    if let Err(e) = expiry.await {
        tracing::error!(evt = "expiry_task_failed", error = %e);
    }
    // A connection that outlived the deadline (aborting the server does not end the connections it
    // spawned: a client sending its headers slowly keeps one) still holds intake and writer handles:
    // close both queues instead of waiting for them, so what was queued is committed and nothing hangs.
    running.close_intake();
    running.join().await;
    let stats = writer_task.close().await.context("flushing the store")?;
    store.close().await;
    let _ = std::fs::remove_file(data_dir.join(ADDR_FILE));
    tracing::info!(
        evt = "stopped",
        records = stats.records,
        batches = stats.batches,
        failed_batches = stats.failed_batches,
        events_accepted = metrics.events_accepted.get(),
        drain_ms = started.elapsed().as_millis() as u64,
    );
    Ok(())
}

/// Loads the API keys; on first start (no key at all) creates the admin key, prints it once and writes it
/// to `<data-dir>/admin.key` with mode 0600.
async fn bootstrap_keys(store: &Store, auth: &Auth, data_dir: &Path) -> anyhow::Result<()> {
    let mut rows = store.api_keys().await?;
    if rows.is_empty() {
        let key = Auth::generate_key();
        let row = ApiKeyRow {
            id: ulid::Ulid::new().to_string(),
            name: "admin".into(),
            role: Role::Admin.as_str().into(),
            hash: auth.hash(&key),
            created: Timestamp::now(),
        };
        let path = data_dir.join(ADMIN_KEY_FILE);
        let _ = std::fs::remove_file(&path);
        auth::write_private(&path, format!("{key}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        store.insert_api_key(&row).await?;
        eprintln!(
            "Sentinel created an admin API key. It is shown only this once and saved to {} (mode 0600):\n\n    {key}\n",
            path.display()
        );
        tracing::info!(evt = "admin_key_created", key_id = %row.id, file = %path.display());
        rows.push(row);
    }
    for r in rows {
        let role = match r.role.parse::<Role>() {
            Ok(role) => role,
            Err(e) => {
                tracing::error!(evt = "api_key_skipped", key_id = %r.id, error = %e);
                continue;
            }
        };
        let p = Principal {
            key_id: r.id.clone(),
            name: r.name.clone(),
            role,
        };
        if !auth.insert(&r.hash, p) {
            tracing::error!(evt = "api_key_skipped", key_id = %r.id, error = "stored hash is not 64 hex digits");
        }
    }
    Ok(())
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

fn spawn_retention(
    store: Store,
    retention: Duration,
    max_events: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let cutoff =
                Timestamp::from_millis(Timestamp::now().as_millis() - retention.as_millis() as i64);
            match store.prune_events(cutoff, max_events).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(evt = "events_pruned", count = n),
                Err(e) => tracing::error!(evt = "prune_failed", error = %e),
            }
        }
    })
}

fn write_addr_file(data_dir: &Path, addr: SocketAddr) {
    if let Err(e) =
        crate::private::write_private(&data_dir.join(ADDR_FILE), format!("{addr}\n").as_bytes())
    {
        tracing::warn!(evt = "addr_file_failed", error = %e);
    }
}

fn heuristic_settings(cfg: &ValidatedConfig) -> HeuristicSettings {
    let h = &cfg.detect.heuristic;
    HeuristicSettings {
        min_score: h.min_score,
        failed_logins_threshold: u64::from(h.failed_logins_threshold),
        request_rate_threshold: u64::from(h.request_rate_threshold),
        bytes_out_threshold: h.bytes_out_threshold,
        bad_ports: h.bad_ports.clone(),
    }
}

fn band(b: CfgBand) -> Band {
    match b {
        CfgBand::Low => Band::Low,
        CfgBand::Medium => Band::Medium,
        CfgBand::High => Band::High,
    }
}

/// The policy: one matrix per scenario that some rule names (its own rules and the general ones, in
/// order), and the general rules for every other alert.
#[derive(Debug, Clone)]
pub struct ScenarioPolicy {
    general: PolicyMatrix,
    by_scenario: std::collections::HashMap<String, PolicyMatrix>,
}

impl ScenarioPolicy {
    /// The mode plans are made in.
    pub fn mode(&self) -> sentinel_core::Mode {
        self.general.mode()
    }
}

impl sentinel_core::Policy for ScenarioPolicy {
    fn decide(&self, inv: &sentinel_core::Investigation) -> sentinel_core::Plan {
        self.by_scenario
            .get(&inv.alert.scenario)
            .unwrap_or(&self.general)
            .decide(inv)
    }
}

/// The policy the configuration describes.
pub fn policy_matrix(cfg: &ValidatedConfig) -> ScenarioPolicy {
    let general = matrix(cfg, |r| r.scenario.is_empty());
    let mut by_scenario = std::collections::HashMap::new();
    for name in cfg.policy.rules.iter().flat_map(|r| r.scenario.iter()) {
        if !by_scenario.contains_key(name) {
            let m = matrix(cfg, |r| r.scenario.is_empty() || r.scenario.contains(name));
            by_scenario.insert(name.clone(), m);
        }
    }
    ScenarioPolicy {
        general,
        by_scenario,
    }
}

fn matrix(cfg: &ValidatedConfig, keep: impl Fn(&sentinel_config::Rule) -> bool) -> PolicyMatrix {
    let p = &cfg.policy;
    let rules = p
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| keep(r))
        .map(|(i, r)| MatrixRule {
            name: r.name.clone().unwrap_or_else(|| format!("rule #{}", i + 1)),
            severity: r.severity.clone(),
            risk: r.risk.iter().copied().map(band).collect(),
            confidence: r.confidence.iter().copied().map(band).collect(),
            actions: r
                .actions
                .iter()
                .map(|a| ActionTemplate {
                    kind: a.kind,
                    ttl: p.ttl_for(a),
                    params: a.params.clone(),
                })
                .collect(),
        })
        .collect();
    PolicyMatrix::new(
        rules,
        Bands {
            medium: f64::from(p.risk_bands.medium),
            high: f64::from(p.risk_bands.high),
        },
        Bands {
            medium: p.confidence_bands.medium,
            high: p.confidence_bands.high,
        },
        p.mode,
    )
}

/// The allowlist: loopback, the configured networks, and the address the API listens on.
pub fn allowlist(cfg: &ValidatedConfig) -> Allowlist {
    let mut a = Allowlist::new(cfg.policy.allowlist.iter().copied());
    let ip = cfg.api.listen.ip();
    if !ip.is_unspecified() {
        a.add(ipnet::IpNet::from(ip));
    } else {
        // Listening on every address: every address of this host is a management address.
        match local_addresses() {
            Ok(addrs) => {
                for ip in addrs {
                    a.add(ipnet::IpNet::from(ip));
                }
            }
            Err(e) => {
                tracing::warn!(evt = "local_addresses_unknown", error = %e, note = "only loopback and policy.allowlist protect this host's own addresses")
            }
        }
    }
    a
}

/// This host's own addresses, from `ip -j addr` (iproute2).
fn local_addresses() -> anyhow::Result<Vec<std::net::IpAddr>> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr"])
        .output()?;
    anyhow::ensure!(out.status.success(), "ip -j addr failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("addr_info").and_then(|a| a.as_array()))
        .flatten()
        .filter_map(|a| {
            a.get("local")
                .and_then(|l| l.as_str())
                .and_then(|l| l.parse().ok())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wildcard_listen_protects_every_local_address() {
        let cfg = sentinel_config::load_str("api:\n  listen: 0.0.0.0:8000\n", None, &[]).unwrap();
        let a = super::allowlist(&cfg);
        for ip in super::local_addresses().unwrap() {
            assert!(a.covering(ip).is_some(), "{ip} not protected");
        }
        let cfg = sentinel_config::load_str("api:\n  listen: 127.0.0.2:8000\n", None, &[]).unwrap();
        assert!(super::allowlist(&cfg)
            .covering("127.0.0.2".parse().unwrap())
            .is_some());
    }
}
