//! One file per subcommand: each parses its own arguments (clap), calls into the library crates, and
//! turns the result into output and an exit code. Nothing here decides anything about security events.

pub mod audit;
mod audit_store;
pub mod backup;
pub mod client;
pub mod cluster;
pub mod config;
pub mod decisions;
pub mod demo_attack;
mod demo_receiver;
mod demo_ssh;
pub mod demo_target;
mod demo_web;
pub mod egress_proxy;
pub mod gen_logs;
pub mod healthcheck;
pub mod import;
pub mod intel;
pub mod keys;
pub mod notify;
pub mod replay;
pub mod run;
pub mod supervise;
pub mod whoami;

use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the configuration comes from, shared by the subcommands that read it.
#[derive(Args, Clone)]
pub struct Common {
    /// Configuration file (default: ./sentinel.yml when it exists).
    #[arg(long, env = "SENTINEL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// A .env file layered over the configuration file (default: ./.env when it exists).
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    /// Where Sentinel keeps its data (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address the API listens on (overrides `api.listen`).
    #[arg(long, global = true)]
    listen: Option<String>,
}

impl Common {
    /// Loads and validates the configuration; the error lists every problem (secrets masked).
    pub fn load(&self) -> Result<sentinel_config::ValidatedConfig, String> {
        self.load_with_origin().map(|(cfg, _)| cfg)
    }

    /// Like [`Common::load`], with what was read from where (for the daemon's audit record).
    pub fn load_with_origin(
        &self,
    ) -> Result<
        (
            sentinel_config::ValidatedConfig,
            sentinel::daemon::ConfigOrigin,
        ),
        String,
    > {
        let default = PathBuf::from("sentinel.yml");
        let yaml = self
            .config
            .clone()
            .or_else(|| default.exists().then_some(default));
        // A file named on the command line must exist; only the default `./.env` is optional.
        if let Some(p) = self.env_file.as_deref().filter(|p| !p.exists()) {
            return Err(format!(
                "the configuration has 1 problem(s):\n`{}`: cannot read: no such file (--env-file)",
                p.display()
            ));
        }
        let dotenv = self
            .env_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(".env"));
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        if let Some(d) = &self.data_dir {
            env.push(("SENTINEL__DATA_DIR".into(), d.display().to_string()));
        }
        if let Some(l) = &self.listen {
            env.push(("SENTINEL__API__LISTEN".into(), l.clone()));
        }
        sentinel_config::load_read(&sentinel_config::Sources {
            yaml_path: yaml.as_deref(),
            dotenv_path: Some(&dotenv),
            env: &env,
        })
        .map(|(cfg, read)| {
            let origin = sentinel::daemon::ConfigOrigin {
                dotenv_path: read.dotenv.is_some().then_some(dotenv),
                yaml_path: yaml.filter(|_| read.yaml.is_some()),
                yaml: read.yaml,
            };
            (cfg, origin)
        })
        // A problem quotes the value it refuses: a secret pasted into the wrong setting is masked.
        .map_err(|e| {
            sentinel_core::redact::builtin()
                .redact_text(&format!(
                    "the configuration has {} problem(s):\n{e}",
                    e.0.len()
                ))
                .into_owned()
        })
    }
}

/// The running daemon's base URL: `url` if given, else the address it wrote to `<data_dir>/api.addr`,
/// else (no such file) the configured `listen`; an unspecified address becomes loopback; `https` with `tls` (`api.tls`). An `api.addr`
/// that cannot be read or does not hold an address is an error, not a silent fall back to `listen`.
pub fn daemon_url(
    url: Option<String>,
    data_dir: &Path,
    listen: SocketAddr,
    tls: bool,
) -> anyhow::Result<String> {
    if let Some(u) = url {
        return Ok(u.trim_end_matches('/').to_owned());
    }
    let file = data_dir.join(sentinel::daemon::ADDR_FILE);
    let mut addr = match std::fs::read_to_string(&file) {
        Ok(text) => text
            .trim()
            .parse::<SocketAddr>()
            .map_err(|e| anyhow::anyhow!("{}: not an address ({e}); pass --url", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => listen,
        Err(e) => anyhow::bail!("cannot read {}: {e}; pass --url", file.display()),
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("{}://{addr}", if tls { "https" } else { "http" }))
}

/// A single-threaded runtime for the subcommands that make a few HTTP calls.
pub fn small_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
