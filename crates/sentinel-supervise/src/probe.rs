//! Health probes: an HTTP GET answered 2xx, a TCP connection accepted, a command exiting 0, each
//! within the probe's timeout. Docker's own health status is read by the container watcher, not
//! here. A probe only answers ok or why not; counting failures is the child task's job.

use crate::config::{Check, ProbeConfig};
use std::process::Stdio;
use std::time::Duration;

/// Runs one child's probe.
#[derive(Debug, Clone)]
pub(crate) struct Prober {
    pub cfg: ProbeConfig,
    http: Option<reqwest::Client>,
}

impl Prober {
    pub fn new(cfg: ProbeConfig) -> Result<Prober, String> {
        let http = match &cfg.check {
            Check::Http { .. } => Some(
                reqwest::Client::builder()
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("http client: {e}"))?,
            ),
            _ => None,
        };
        Ok(Prober { cfg, http })
    }

    /// One probe: `Ok` or the reason it failed. `DockerHealth` is answered by the caller.
    pub async fn check(&self) -> Result<(), String> {
        let t = self.cfg.timeout;
        match &self.cfg.check {
            Check::Http { url } => {
                let Some(client) = &self.http else {
                    return Err("no http client".into());
                };
                match tokio::time::timeout(t, client.get(url).send()).await {
                    Err(_) => Err(format!("GET timed out after {}", crate::notice::human(t))),
                    Ok(Err(e)) => Err(format!("GET failed: {}", e.without_url())),
                    Ok(Ok(r)) if r.status().is_success() => Ok(()),
                    Ok(Ok(r)) => Err(format!("GET answered {}", r.status())),
                }
            }
            Check::Tcp { addr } => {
                match tokio::time::timeout(t, tokio::net::TcpStream::connect(addr)).await {
                    Err(_) => Err(format!("connect to {addr} timed out")),
                    Ok(Err(e)) => Err(format!("connect to {addr}: {e}")),
                    Ok(Ok(_)) => Ok(()),
                }
            }
            Check::Exec { command, args } => exec(command, args, t).await,
            Check::DockerHealth => Err("docker_health applies to containers only".into()),
        }
    }
}

async fn exec(command: &str, args: &[String], t: Duration) -> Result<(), String> {
    let mut child = tokio::process::Command::new(command)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{command}: {e}"))?;
    match tokio::time::timeout(t, child.wait()).await {
        Ok(Ok(st)) if st.success() => Ok(()),
        Ok(Ok(st)) => Err(format!("{command} exited with {st}")),
        Ok(Err(e)) => Err(format!("{command}: {e}")),
        Err(_) => {
            if let Some(pid) = child
                .id()
                .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            Err(format!(
                "{command} timed out after {} (killed)",
                crate::notice::human(t)
            ))
        }
    }
}
