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
    /// Every node's latest audit checkpoint, as collected in Redis: printed, or written to
    /// `<DIR>/<node>.checkpoint` with `--out`, to check that node's log against it later
    /// (`sentinel audit verify --data-dir … --checkpoint FILE`).
    ///
    /// Exit code 0 when Redis answered; 1 when it cannot be reached or a file cannot be written;
    /// 2 on a configuration error or when `bus` is `memory`.
    Checkpoints(CheckpointsArgs),
}

/// `sentinel cluster checkpoints` arguments.
#[derive(Args)]
pub struct CheckpointsArgs {
    #[command(flatten)]
    common: Common,
    /// Write each node's checkpoint note to `<DIR>/<node>.checkpoint`.
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Print them as JSON.
    #[arg(long)]
    json: bool,
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
    match command {
        ClusterCommand::Status(args) => status(args),
        ClusterCommand::Checkpoints(args) => checkpoints(args),
    }
}

fn checkpoints(args: CheckpointsArgs) -> ExitCode {
    let (bus, url, runtime, _) = match connect(&args.common) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let got = sentinel_bus::CheckpointBoard::new(&bus)
        .and_then(|b| runtime.block_on(async move { b.latest().await }));
    let all = match got {
        Ok(all) => all,
        Err(e) => {
            eprintln!(
                "cannot read the checkpoints from Redis at {}: {e}",
                sentinel_config::mask_url(&url)
            );
            return ExitCode::from(1);
        }
    };
    if let Some(dir) = &args.out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::from(1);
        }
        for cp in &all {
            let path = dir.join(format!("{}.checkpoint", cp.node));
            if let Err(e) = std::fs::write(&path, &cp.text) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
            println!("{}: size {} -> {}", cp.node, cp.size, path.display());
        }
        return ExitCode::SUCCESS;
    }
    if args.json {
        match serde_json::to_string_pretty(&all) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("cannot write JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else if all.is_empty() {
        println!("no checkpoints collected yet");
    } else {
        for cp in &all {
            println!("# {} (size {})\n{}", cp.node, cp.size, cp.text);
        }
    }
    ExitCode::SUCCESS
}

type Connected = (
    sentinel_bus::RedisBusConfig,
    String,
    tokio::runtime::Runtime,
    Duration,
);

/// The bus config of the configuration's Redis, its URL, a runtime and the heartbeat interval; or the exit code.
fn connect(common: &Common) -> Result<Connected, ExitCode> {
    let cfg = match common.load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return Err(ExitCode::from(2));
        }
    };
    let url = match &cfg.bus {
        BusSetting::Redis(url) => url.clone(),
        BusSetting::Memory => {
            eprintln!(
                "no fleet: `bus` is `memory`, so every stage runs in a single process and there is no \
                 cluster to show; set `bus: redis://host:6379/0` (or BUS=redis://…) to run roles as a fleet"
            );
            return Err(ExitCode::from(2));
        }
    };
    let mut bus = sentinel_bus::RedisBusConfig::new(url.as_str());
    bus.prefix = cfg.fleet.prefix.clone();
    bus.timeout = TIMEOUT;
    match super::small_runtime() {
        Ok(r) => Ok((bus, url, r, cfg.fleet.heartbeat)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn status(args: StatusArgs) -> ExitCode {
    let (bus, url, runtime, heartbeat) = match connect(&args.common) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let status = match runtime.block_on(sentinel_bus::status(&bus, heartbeat)) {
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
