//! `sentinel egress-proxy`: the HTTP CONNECT proxy of a network whose only way out it is (the proxy
//! itself is [`sentinel::egress`]). Parses the flags, builds the policy (by default the threat-
//! intelligence providers' default hosts on their https ports), serves until SIGTERM or SIGINT.
//!
//! Exit code 0 after a clean stop; 1 when it cannot listen; 2 on a usage error.

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use sentinel::egress::policy::{Destination, Policy};
use sentinel::egress::{EgressProxy, Settings};
use sentinel_core::Redactor;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `sentinel egress-proxy` arguments.
#[derive(Args)]
pub struct EgressProxyArgs {
    /// Address to listen on (e.g. 0.0.0.0:3128).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// A destination clients may tunnel to, HOST:PORT (a name, exactly, case-insensitively; an
    /// address literal, or [IPv6]:PORT). Repeat for more. Default: the threat-intelligence providers'
    /// default hosts on 443.
    #[arg(long = "allow", value_name = "HOST:PORT", value_parser = parse_destination)]
    allow: Vec<Destination>,
    /// A client network served (CIDR or address). Repeat for more. Default: any client.
    #[arg(long = "allow-from", value_name = "CIDR", value_parser = parse_net)]
    allow_from: Vec<IpNet>,
    /// Client connections open at once; more are answered 503.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_connections: u32,
    /// From a client's connection to its tunnel being up (request head, resolution, connect).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// A tunnel with no traffic either way for this long is closed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Log level.
    #[arg(long, default_value = "info", value_parser = ["trace", "debug", "info", "warn", "error"])]
    log_level: String,
}

fn parse_destination(s: &str) -> Result<Destination, String> {
    s.parse()
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is neither a CIDR network nor an address"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err("at least 100ms".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The providers' default `base_url`s (the configuration's defaults) as `host:port` destinations.
fn provider_defaults() -> anyhow::Result<Vec<Destination>> {
    let intel = sentinel_intel::IntelConfig::default();
    [&intel.abuseipdb, &intel.virustotal, &intel.otx]
        .iter()
        .map(|p| {
            let url = reqwest::Url::parse(&p.base_url)
                .with_context(|| format!("default base_url {:?}", p.base_url))?;
            let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                anyhow::bail!("default base_url {:?} has no host or port", p.base_url);
            };
            format!("{host}:{port}")
                .parse::<Destination>()
                .map_err(anyhow::Error::msg)
        })
        .collect()
}

/// Runs the proxy.
pub fn run(a: EgressProxyArgs) -> ExitCode {
    let allow = if a.allow.is_empty() {
        match provider_defaults() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("sentinel egress-proxy: {e:#}");
                return ExitCode::from(2);
            }
        }
    } else {
        a.allow
    };
    let policy = match Policy::new(allow, a.allow_from) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sentinel egress-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = Settings {
        listen: a.listen,
        policy,
        max_connections: a.max_connections as usize,
        handshake_timeout: a.handshake_timeout,
        idle_timeout: a.idle_timeout,
    };
    sentinel::logs::init(&a.log_level, Arc::new(Redactor::default()), 0);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sentinel egress-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(evt = "fatal", error = format!("{e:#}"));
            eprintln!("sentinel egress-proxy: {e:#}");
            ExitCode::FAILURE
        }
    };
    drop(rt);
    sentinel::logs::finish();
    code
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let allowed: Vec<String> = settings
        .policy
        .allowed()
        .iter()
        .map(ToString::to_string)
        .collect();
    let clients = sentinel::egress::describe_clients(&settings.policy);
    let (max, handshake, idle) = (
        settings.max_connections,
        settings.handshake_timeout,
        settings.idle_timeout,
    );
    let wanted = settings.listen;
    let proxy = EgressProxy::bind(settings)
        .await
        .with_context(|| format!("cannot listen on {wanted}"))?;
    let listen = proxy.local_addr().context("no local address")?;
    tracing::info!(
        evt = "egress_ready",
        listen = %listen,
        allow = allowed.join(","),
        allow_from = clients,
        max_connections = max,
        handshake_timeout_ms = handshake.as_millis() as u64,
        idle_timeout_ms = idle.as_millis() as u64,
    );
    let counts = proxy.counts();
    let report = counts.clone();
    // The counts once a minute while they move, and at the end.
    let ticker = tokio::spawn(async move {
        let mut last = report.get();
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = report.get();
            if now != last {
                log_counts(now);
                last = now;
            }
        }
    });
    proxy.serve(shutdown_signal()).await;
    ticker.abort();
    log_counts(counts.get());
    Ok(())
}

fn log_counts((allowed, refused, failed): (u64, u64, u64)) {
    tracing::info!(evt = "egress_counts", allowed, refused, failed);
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(evt = "signal_handler_failed", signal = "SIGTERM", error = %e);
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!(evt = "signal", signal = "SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!(evt = "signal", signal = "SIGINT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allow_list_is_the_providers_default_hosts() {
        let shown: Vec<String> = provider_defaults()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "api.abuseipdb.com:443",
                "www.virustotal.com:443",
                "otx.alienvault.com:443"
            ]
        );
    }
}
