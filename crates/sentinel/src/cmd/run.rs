//! `sentinel run`: load the configuration, start the logger and the runtime, and run the daemon until
//! SIGTERM or SIGINT.

use super::Common;
use sentinel_core::Redactor;
use std::process::ExitCode;
use std::sync::Arc;

/// `sentinel run`'s arguments.
#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// The roles this process runs: sensor, investigator, responder, api (repeat the flag or list
    /// them comma-separated; default: all). Roles in separate processes need `bus: redis://…`.
    #[arg(long = "role", env = "SENTINEL_ROLE", value_delimiter = ',')]
    roles: Vec<String>,
}

/// Runs the daemon in the foreground.
pub fn run(args: RunArgs) -> ExitCode {
    let RunArgs { common, roles } = args;
    let roles = match sentinel::fleet::RoleSet::parse(&roles) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sentinel run: {e}");
            return ExitCode::from(2);
        }
    };
    let (cfg, origin) = match common.load_with_origin() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let redactor = Arc::new(Redactor::new(cfg.logging.redact_keys.iter()));
    sentinel::logs::init(
        cfg.logging.level.as_str(),
        redactor,
        cfg.logging.chain_every,
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(sentinel::daemon::run(cfg, origin, roles, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(evt = "fatal", error = format!("{e:#}"));
            eprintln!("sentinel: {e:#}");
            ExitCode::FAILURE
        }
    };
    // The runtime's tasks are gone (they may log as they are dropped), then the log chain's last block
    // is sealed (`"final":true`) so a verifier sees a clean end.
    drop(rt);
    sentinel::logs::finish();
    code
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!(evt = "signal", signal = "SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!(evt = "signal", signal = "SIGINT"),
    }
}
