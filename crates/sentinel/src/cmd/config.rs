//! `sentinel config check`: validate, print the effective configuration (secrets as `***`), a WARNING
//! per unsafe setting, whether investigations are offline, a WARNING per local feed that does not load
//! or has malformed lines, what the sources' preflight finds (globs, files), and an `audit.origin` an
//! existing audit log would refuse. Exit 2 on any problem.

use super::Common;
use clap::Subcommand;
use std::process::ExitCode;

/// `sentinel config …`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate, then print the effective configuration (secrets as ***), a WARNING per unsafe setting and per intel feed that does not load, and whether investigations are offline.
    Check(Common),
}

/// Runs a `config` subcommand.
pub fn run(command: ConfigCommand) -> ExitCode {
    let ConfigCommand::Check(common) = command;
    let cfg = match common.load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", cfg.effective_yaml());
    for w in cfg.warnings() {
        println!("WARNING: {w}");
    }
    // Feeds and offline mode are not errors (the daemon starts without a feed that does not load,
    // and offline is the default), but a check that passes them silently hides why a listed
    // address is not scored or why no provider is asked.
    if cfg.intel.is_offline() {
        println!(
            "intel: offline ({}): investigations use the local feeds and the store's history only",
            if cfg.intel.offline {
                "intel.offline is set"
            } else {
                "no provider key is set"
            }
        );
    }
    let (_feeds, reports) = sentinel_intel::Feeds::load(&cfg.intel.feeds);
    for (i, r) in reports.iter().enumerate() {
        if let Some(e) = &r.error {
            println!(
                "WARNING: `intel.feeds[{i}]` ({}): {e}; the daemon starts without it (details: `sentinel intel feeds`)",
                r.feed
            );
        } else if r.malformed > 0 {
            println!(
                "WARNING: `intel.feeds[{i}]` ({}): {} malformed line(s), skipped (details: `sentinel intel feeds`)",
                r.feed, r.malformed
            );
        }
    }
    let (notes, mut errors) = sentinel_pipeline::sources::preflight(&cfg);
    for n in notes {
        println!("{n}");
    }
    errors.extend(sentinel::daemon::audit_origin_problem(&cfg));
    errors.extend(super::notify::channel_build_problems(&cfg.notify));
    // The daemon reads api.jwt's files at start and refuses to start when one does not load. Its
    // message names a path and a reason only, so it is printed as is (redacting it would leave
    // "`api.jwt.hs256_secret_file`: ***", which says nothing).
    let jwt = sentinel::jwt_setup::jwt_problem(&cfg);
    if errors.is_empty() && jwt.is_none() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "the configuration has {} problem(s):",
        errors.len() + usize::from(jwt.is_some())
    );
    for e in errors {
        eprintln!("{}", sentinel_core::redact::builtin().redact_text(&e));
    }
    if let Some(e) = jwt {
        eprintln!("{e}");
    }
    ExitCode::from(2)
}
