//! `sentinel healthcheck`: exit 0 when the running daemon answers `/ready` with success, 1 otherwise
//! (for container health checks).

use super::Common;
use anyhow::Context;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// `sentinel healthcheck` arguments.
#[derive(Args)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    common: Common,
    /// The daemon's base URL (default: from the configuration).
    #[arg(long)]
    url: Option<String>,
}

/// Asks the daemon whether it is ready.
pub fn run(a: HealthcheckArgs) -> ExitCode {
    match ready(a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("not ready");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("not ready: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ready(a: HealthcheckArgs) -> anyhow::Result<bool> {
    let base = match a.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let cfg = a.common.load().map_err(anyhow::Error::msg)?;
            super::daemon_url(None, &cfg.data_dir, cfg.api.listen)?
        }
    };
    super::small_runtime()?.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()?;
        let resp = client
            .get(format!("{base}/ready"))
            .send()
            .await
            .context("the daemon does not answer")?;
        Ok(resp.status().is_success())
    })
}
