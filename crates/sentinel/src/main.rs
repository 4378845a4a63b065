//! `sentinel`: the command line. Parses arguments and hands each subcommand to its file in `cmd/`;
//! the daemon's wiring is in the library half ([`sentinel::daemon`]), everything else in the library crates.

mod cmd;

// The global allocator, chosen by measurement (bench/edge.sh, release build, 2 cores; bench/README.md):
// RSS idle / peak / 30 s after three /v1/defend floods of 1,000 connections: jemalloc 32.6 / 192.6 /
// 131.3 MiB, glibc 29.9 / 184.1 / 184.4 (nothing given back), mimalloc 59.2 / 210.7 / 187.1. jemalloc
// (with its background purge threads) returns the most, 53 MiB more than glibc; what it keeps is live
// allocations held above the allocator, not free pages.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Run the daemon: every role in one process on the embedded defaults (SQLite, in-memory
    /// queues), or the roles given with `--role` on a shared bus (`bus: redis://…`).
    Run(cmd::run::RunArgs),
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        command: cmd::config::ConfigCommand,
    },
    /// Manual decisions on the running daemon (add, list, delete), like `cscli decisions`.
    Decisions(cmd::decisions::DecisionsArgs),
    /// Investigate an address (providers, feeds, cache state, risk score) or check the local feeds.
    ///
    /// Exit code 0; 1 when the daemon cannot be reached (start it, or use --local) or a feed did not
    /// load; 2 on a usage or configuration error.
    Intel(cmd::intel::IntelArgs),
    /// Print the sentinel.yml section equivalent to another tool's configuration.
    Import {
        #[command(subcommand)]
        command: cmd::import::ImportCommand,
    },
    /// Replay log files offline through the parsers and scenarios (event time, not wall time).
    ///
    /// Exit code 0; 1 when some file could not be read (the others' results stand, PARTIAL); 2 on a usage
    /// or configuration error, or when no file could be read at all.
    Replay(cmd::replay::ReplayArgs),
    /// Write synthetic logs with a known answer, to try `replay` on (and for benchmarks and tests).
    GenLogs(cmd::gen_logs::GenArgs),
    /// Check Sentinel's tamper-evident records offline: the audit log (verify, show, tail, archive)
    /// and the JSON log file's hash chain (verify-logs). Works without the daemon.
    Audit(cmd::audit::AuditArgs),
    /// Copy the store and the audit log, consistently, while the daemon runs (the copy holds the
    /// audit signing key and the API key secret: keep it private).
    ///
    /// The store first (SQLite VACUUM INTO), then the audit log's checkpoints and segments up to their
    /// last complete frame, so the copy verifies (`sentinel audit verify --data-dir DIR`) and holds
    /// every record its store refers to. A daemon starts from the copy (`sentinel run --data-dir
    /// DIR`) and accepts the same API keys (`auth.secret` is copied; `admin.key` is not). Exit 0 with
    /// what was copied; 1 when the log is damaged; 2 on a usage or I/O error.
    Backup(cmd::backup::BackupArgs),
    /// Notifications: send a notice, show the counters and dead letters, retry one (through the
    /// daemon), or send a test message to one configured channel (`notify test --channel NAME`).
    ///
    /// Exit code 0; 1 when the daemon or the channel fails (with the reason).
    Notify(cmd::notify::NotifyArgs),
    /// Exit 0 when the running daemon is ready, 1 otherwise (for container health checks).
    Healthcheck(cmd::healthcheck::HealthcheckArgs),
    /// Run and watch processes and Docker containers from supervise.yml: health probes, restarts
    /// with backoff, crash-loop detection, crash notices, graceful stop (`--check` validates the
    /// file; `status` shows the children of the running supervisor).
    ///
    /// Exit code 0 after a clean stop (SIGTERM or SIGINT); 1 when it cannot start; 2 on a
    /// configuration error.
    Supervise(cmd::supervise::SuperviseArgs),
    /// API keys on the running daemon: create (with a role and an expiry), list, revoke (admin key).
    ///
    /// Exit code 0; 1 when the daemon refuses or cannot be reached (with its message).
    Keys(cmd::keys::KeysArgs),
    /// The fleet on the Redis bus: nodes (alive, gone, stopped) and consumer groups (pending, lag).
    ///
    /// Exit code 0 when Redis answered; 1 when it cannot be reached; 2 on a configuration error or
    /// with `bus: memory` (one process, no fleet).
    Cluster {
        #[command(subcommand)]
        command: cmd::cluster::ClusterCommand,
    },
    /// Demonstration network: a target that logs like the real software (web app, ssh-like login,
    /// webhook receiver). Exit 0 after SIGTERM/SIGINT; 1 when it cannot run; 2 on a usage error.
    DemoTarget(cmd::demo_target::DemoTargetArgs),
    /// Demonstration network: failed logins, an exploit or a reachability probe against a target
    /// (one JSON line). Exit 0 when reached; 1 when nothing could be; 2 on a usage error.
    DemoAttack(cmd::demo_attack::DemoAttackArgs),
    /// An HTTP CONNECT proxy tunnelling only to the allowed HOST:PORT pairs (`GET /ready` for health
    /// checks). Exit 0 after SIGTERM/SIGINT; 1 when it cannot listen; 2 on a usage error.
    EgressProxy(cmd::egress_proxy::EgressProxyArgs),
}

fn main() -> ExitCode {
    // Multi-call: scratch images link /usr/bin/whoami to this binary.
    if cmd::whoami::called_as_whoami() {
        return cmd::whoami::run();
    }
    match Cli::parse().command {
        Command::Run(args) => cmd::run::run(args),
        Command::Config { command } => cmd::config::run(command),
        Command::Decisions(args) => cmd::decisions::run(args),
        Command::Intel(args) => cmd::intel::run(args),
        Command::Import { command } => cmd::import::run(command),
        Command::Replay(args) => cmd::replay::run(args),
        Command::GenLogs(args) => cmd::gen_logs::run(args),
        Command::Healthcheck(args) => cmd::healthcheck::run(args),
        Command::Notify(args) => cmd::notify::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Backup(args) => cmd::backup::run(args),
        Command::Supervise(args) => cmd::supervise::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Cluster { command } => cmd::cluster::run(command),
        Command::DemoTarget(args) => cmd::demo_target::run(args),
        Command::DemoAttack(args) => cmd::demo_attack::run(args),
        Command::EgressProxy(args) => cmd::egress_proxy::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
