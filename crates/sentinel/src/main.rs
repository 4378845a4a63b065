//! `sentinel`: the command line. Parses arguments, loads the configuration, and calls into the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sentinel::daemon;
use sentinel_core::Redactor;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "sentinel",
    version,
    about = "Autonomous detection and response for Linux servers and Docker hosts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process on the embedded defaults (SQLite, in-memory queues).
    Run(Common),
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manual decisions on the running daemon (add, list, delete), like `cscli decisions`.
    Decisions {
        #[command(subcommand)]
        command: DecisionsCommand,
        #[command(flatten)]
        common: Common,
        /// The daemon's base URL (default: <data-dir>/api.addr, else api.listen).
        #[arg(long, global = true)]
        url: Option<String>,
        /// API key (default: <data-dir>/admin.key).
        #[arg(long, env = "SENTINEL_API_KEY", global = true, hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Print the sentinel.yml section equivalent to another tool's configuration.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Replay log files offline through the parsers and scenarios (event time, not wall time).
    ///
    /// Exit code 0; 1 when some file could not be read (the others' results stand, PARTIAL); 2 on a usage
    /// or configuration error, or when no file could be read at all.
    Replay(ReplayArgs),
    /// Write synthetic logs with a known answer (for benchmarks and tests).
    #[command(hide = true)]
    GenLogs(GenArgs),
    /// Exit 0 when the running daemon is ready, 1 otherwise (for container health checks).
    Healthcheck {
        #[command(flatten)]
        common: Common,
        /// The daemon's base URL (default: from the configuration).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum DecisionsCommand {
    /// Add a decision (block an address or range by default).
    Add {
        /// Address or CIDR.
        #[arg(long)]
        ip: Option<String>,
        /// Container name or id (isolate_container).
        #[arg(long)]
        container: Option<String>,
        /// Absolute file path (quarantine_file).
        #[arg(long)]
        file: Option<String>,
        /// block_ip, rate_limit, redirect_to_honeypot, isolate_container, quarantine_file.
        #[arg(long)]
        kind: Option<String>,
        /// How long (4h, 30m, 7d).
        #[arg(long, default_value = "4h")]
        duration: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print the exact nftables, Docker or file operations and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List live decisions.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Delete (revert) decisions.
    Delete {
        /// Every live decision on this address.
        #[arg(long)]
        ip: Option<String>,
        /// One decision by id.
        #[arg(long)]
        id: Option<String>,
        /// Every live decision.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
struct ReplayArgs {
    /// Log files, plain or gzip; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Line format: auto, sshd, nginx, apache, access, vhost_combined, nginx-error, apache-error, traefik,
    /// caddy, haproxy, postfix, dovecot, json.
    #[arg(long, default_value = "auto")]
    format: String,
    /// Use a fail2ban filter file (filter.d/*.conf) instead of the built-in parsers.
    #[arg(long)]
    fail2ban_filter: Option<PathBuf>,
    /// The fail2ban filter's mode (normal, aggressive, ddos, extra).
    #[arg(long, requires = "fail2ban_filter")]
    mode: Option<String>,
    /// More scenarios: a YAML file or a directory of them.
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Run only the scenarios given with --scenarios.
    #[arg(long)]
    no_builtin: bool,
    /// Never count these sources (CIDR or address; repeatable).
    #[arg(long = "whitelist")]
    whitelist: Vec<String>,
    /// Count IPv6 sources per prefix of this length (e.g. 64).
    #[arg(long)]
    ipv6_prefix: Option<u8>,
    /// Keys kept per scenario before the stalest are evicted.
    #[arg(long, default_value_t = 250_000)]
    max_keys: usize,
    /// Print every matched line (file:line, parser, kind, time, fields) instead of the summary.
    #[arg(long)]
    matches: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenArgs {
    /// What to write: sshd or sshd-distinct.
    kind: String,
    /// Lines to write.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Attacking sources (sshd).
    #[arg(long, default_value_t = 1_000)]
    attackers: u32,
    /// Benign sources (sshd).
    #[arg(long, default_value_t = 10_000)]
    benign: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// fail2ban's enabled jails (jail.conf, jail.d/, jail.local): sources, scenarios and block TTLs.
    Fail2ban {
        /// fail2ban's configuration directory.
        #[arg(default_value = "/etc/fail2ban")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate, then print the effective configuration (secrets as ***) and a WARNING per unsafe setting.
    Check(Common),
}

#[derive(Args, Clone)]
struct Common {
    /// Configuration file (default: ./sentinel.yml when it exists).
    #[arg(long, env = "SENTINEL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// A .env file layered over the configuration file.
    #[arg(long, default_value = ".env", global = true)]
    env_file: PathBuf,
    /// Where Sentinel keeps its data (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address the API listens on (overrides `api.listen`).
    #[arg(long, global = true)]
    listen: Option<String>,
}

impl Common {
    fn load(&self) -> Result<sentinel_config::ValidatedConfig, String> {
        let default = PathBuf::from("sentinel.yml");
        let yaml = self
            .config
            .clone()
            .or_else(|| default.exists().then_some(default));
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        if let Some(d) = &self.data_dir {
            env.push(("SENTINEL__DATA_DIR".into(), d.display().to_string()));
        }
        if let Some(l) = &self.listen {
            env.push(("SENTINEL__API__LISTEN".into(), l.clone()));
        }
        sentinel_config::load(&sentinel_config::Sources {
            yaml_path: yaml.as_deref(),
            dotenv_path: Some(&self.env_file),
            env: &env,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(common) => run(common),
        Command::Config {
            command: ConfigCommand::Check(common),
        } => match common.load() {
            Ok(cfg) => {
                print!("{}", cfg.effective_yaml());
                for w in cfg.warnings() {
                    println!("WARNING: {w}");
                }
                let (notes, errors) = sentinel_pipeline::sources::preflight(&cfg);
                for n in notes {
                    println!("{n}");
                }
                if errors.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    eprintln!("the configuration has {} problem(s):", errors.len());
                    for e in errors {
                        eprintln!(
                            "{}",
                            sentinel_core::redact::builtin().redact_text(&e.to_string())
                        );
                    }
                    ExitCode::from(2)
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Import {
            command: ImportCommand::Fail2ban { dir },
        } => match sentinel::import::fail2ban(&dir) {
            Ok(i) => {
                print!("{}", i.yaml);
                for w in &i.warnings {
                    eprintln!("WARNING: {w}");
                }
                for e in &i.errors {
                    eprintln!("ERROR: {e}");
                }
                if i.errors.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("sentinel import: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Healthcheck { common, url } => healthcheck(common, url),
        Command::Replay(args) => replay(args),
        Command::Decisions {
            command,
            common,
            url,
            api_key,
        } => decisions(command, common, url, api_key),
        Command::GenLogs(args) => gen_logs(args),
    }
}

fn run(common: Common) -> ExitCode {
    let cfg = match common.load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let redactor = Arc::new(Redactor::new(cfg.logging.redact_keys.iter()));
    sentinel::logs::init(cfg.logging.level.as_str(), redactor);
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
    match rt.block_on(daemon::run(cfg, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(evt = "fatal", error = format!("{e:#}"));
            eprintln!("sentinel: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn healthcheck(common: Common, url: Option<String>) -> ExitCode {
    let result = (|| -> anyhow::Result<bool> {
        let base = match url {
            Some(u) => u,
            None => {
                let cfg = common.load().map_err(anyhow::Error::msg)?;
                let from_file = std::fs::read_to_string(cfg.data_dir.join(daemon::ADDR_FILE)).ok();
                let mut addr = match from_file.and_then(|s| s.trim().parse().ok()) {
                    Some(a) => a,
                    None => cfg.api.listen,
                };
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?;
            let resp = client
                .get(format!("{}/ready", base.trim_end_matches('/')))
                .send()
                .await
                .context("the daemon does not answer")?;
            Ok(resp.status().is_success())
        })
    })();
    match result {
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

fn replay(a: ReplayArgs) -> ExitCode {
    let mut whitelist = Vec::new();
    for w in &a.whitelist {
        let net = w
            .parse::<ipnet::IpNet>()
            .or_else(|_| w.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match net {
            Ok(n) => whitelist.push(n),
            Err(_) => {
                eprintln!("--whitelist {w}: not an address or CIDR");
                return ExitCode::from(2);
            }
        }
    }
    let opts = sentinel_pipeline::replay::ReplayOptions {
        files: a.files,
        format: a.format,
        fail2ban_filter: a.fail2ban_filter,
        mode: a.mode,
        scenarios: a.scenarios,
        builtin: !a.no_builtin,
        whitelist,
        ipv6_prefix: a.ipv6_prefix,
        max_keys: a.max_keys,
        matches: a.matches,
        json: a.json,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match sentinel_pipeline::replay::run(&opts, &mut out) {
        Ok(summary) => {
            use std::io::Write;
            let _ = out.flush();
            if summary.nothing_read() {
                ExitCode::from(2)
            } else if summary.is_partial() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            use std::io::Write;
            let _ = out.flush();
            eprintln!("sentinel replay: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn gen_logs(a: GenArgs) -> ExitCode {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let r = match a.kind.as_str() {
        "sshd" => {
            sentinel::loggen::sshd(&mut out, a.lines, a.attackers, a.benign, a.seed).map(|log| {
                eprintln!(
                    "{} lines, {} attackers, {} benign sources",
                    log.lines,
                    log.attackers.len(),
                    log.benign.len()
                );
            })
        }
        "sshd-distinct" => sentinel::loggen::sshd_distinct(&mut out, a.lines),
        other => {
            eprintln!("unknown kind `{other}` (sshd, sshd-distinct)");
            return ExitCode::from(2);
        }
    };
    match r.and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-logs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn decisions(
    cmd: DecisionsCommand,
    common: Common,
    url: Option<String>,
    api_key: Option<String>,
) -> ExitCode {
    use sentinel::cli_decisions::{add_body, table, Target};
    let result = (|| -> anyhow::Result<String> {
        let cfg = common.load().map_err(anyhow::Error::msg)?;
        let target = Target::resolve(url, api_key, &cfg.data_dir, cfg.api.listen)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            match cmd {
                DecisionsCommand::Add {
                    ip,
                    container,
                    file,
                    kind,
                    duration,
                    reason,
                    dry_run,
                } => {
                    let r = target
                        .add(add_body(
                            ip, container, file, kind, &duration, &reason, dry_run,
                        ))
                        .await?;
                    if dry_run {
                        let ops: Vec<&str> = r["preview"]["operations"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|o| o.as_str()).collect())
                            .unwrap_or_default();
                        Ok(format!(
                            "dry run ({} mode), would run:\n{}\n",
                            r["mode"].as_str().unwrap_or("-"),
                            ops.join("\n")
                        ))
                    } else {
                        Ok(format!(
                            "{} {} {} ({} mode) until {} [id {}]\n",
                            r["spec"]["kind"].as_str().unwrap_or("-"),
                            r["spec"]["subject"]["value"].as_str().unwrap_or("-"),
                            r["state"].as_str().unwrap_or("-"),
                            r["mode"].as_str().unwrap_or("-"),
                            r["expires_at"].as_str().unwrap_or("-"),
                            r["id"].as_str().unwrap_or("-"),
                        ))
                    }
                }
                DecisionsCommand::List { json } => {
                    let v = target.list().await?;
                    if json {
                        Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
                    } else {
                        Ok(table(v.as_array().map(Vec::as_slice).unwrap_or(&[])))
                    }
                }
                DecisionsCommand::Delete { ip, id, all } => {
                    let q: Vec<(&str, String)> = match (ip, id, all) {
                        (Some(ip), None, false) => vec![("ip", ip)],
                        (None, Some(id), false) => vec![("id", id)],
                        (None, None, true) => vec![("all", "true".into())],
                        _ => anyhow::bail!("give exactly one of --ip, --id or --all"),
                    };
                    let v = target.delete(&q).await?;
                    let n = v.as_array().map(|a| a.len()).unwrap_or(0);
                    Ok(format!("{n} decision(s) deleted\n"))
                }
            }
        })
    })();
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sentinel decisions: {e:#}");
            ExitCode::FAILURE
        }
    }
}
