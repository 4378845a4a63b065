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
    let rt = super::small_runtime()?;
    let (base, client) = match a.url {
        Some(u) => (u.trim_end_matches('/').to_owned(), None),
        None => {
            let cfg = a.common.load().map_err(anyhow::Error::msg)?;
            // The local socket first: a liveness probe must not queue behind a flood on the TCP
            // port (and over the socket nobody else can answer for the daemon).
            match rt.block_on(super::client::local_socket(&cfg.data_dir))? {
                Some((_, http)) => ("http://localhost".to_owned(), Some(http)),
                None => {
                    let cert = cfg.api.tls.as_ref().map(|t| t.cert.as_path());
                    (
                        super::daemon_url(None, &cfg.data_dir, cfg.api.listen, cert.is_some())?,
                        Some(super::client::tcp_client(cert, None)?),
                    )
                }
            }
        }
    };
    rt.block_on(async {
        let client = match client {
            Some(c) => c,
            None => reqwest::Client::builder().build()?,
        };
        let resp = client
            .get(format!("{base}/ready"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .context("the daemon does not answer")?;
        Ok(resp.status().is_success())
    })
}
