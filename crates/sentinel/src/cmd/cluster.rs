//! `sentinel cluster status`: the fleet as Redis sees it, from any host that reaches the bus's Redis:
//! every node's heartbeat (alive, gone, stopped; roles, pid, version) and every topic's stream with
//! its consumer groups (consumers, pending, lag). Reads only; changes nothing.
//!
//! Exit codes: 0 Redis answered (whatever it said about the nodes); 1 Redis cannot be reached or
//! refused; 2 a usage or configuration error, or `bus: memory` (one process, no fleet).

use super::Common;
use clap::{Args, Subcommand};
use sentinel_config::BusSetting;
use std::process::ExitCode;
use std::time::Duration;

/// `sentinel cluster …`.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// The nodes (from their heartbeats) and the streams' consumer groups (pending, lag) on the
    /// configured Redis bus.
    ///
    /// Exit code 0 when Redis answered; 1 when it cannot be reached; 2 on a configuration error or
    /// when `bus` is `memory` (a single process: there is no fleet).
    Status(StatusArgs),
}

/// `sentinel cluster status` arguments.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
    /// Print the whole status as JSON.
    #[arg(long)]
    json: bool,
}

/// How long connecting to Redis, or one command, may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs a `cluster` subcommand.
pub fn run(command: ClusterCommand) -> ExitCode {
    let ClusterCommand::Status(args) = command;
    let cfg = match args.common.load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let url = match &cfg.bus {
        BusSetting::Redis(url) => url.clone(),
        BusSetting::Memory => {
            eprintln!(
                "no fleet: `bus` is `memory`, so every stage runs in a single process and there is no \
                 cluster to show; set `bus: redis://host:6379/0` (or BUS=redis://…) to run roles as a fleet"
            );
            return ExitCode::from(2);
        }
    };
    let mut bus = sentinel_bus::RedisBusConfig::new(url.as_str());
    bus.prefix = cfg.fleet.prefix.clone();
    bus.timeout = TIMEOUT;
    let runtime = match super::small_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let status = match runtime.block_on(sentinel_bus::status(&bus, cfg.fleet.heartbeat)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "cannot read the cluster status from Redis at {}: {e}",
                sentinel_config::mask_url(&url)
            );
            return ExitCode::from(1);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&status) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("cannot write the status as JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", status.render_text());
    }
    ExitCode::SUCCESS
}
