//! `sentinel config check`: validate, print the effective configuration (secrets as `***`), a WARNING
//! per unsafe setting, what the sources' preflight finds (globs, files), and an `audit.origin` an
//! existing audit log would refuse. Exit 2 on any problem.

use super::Common;
use clap::Subcommand;
use std::process::ExitCode;

/// `sentinel config …`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate, then print the effective configuration (secrets as ***) and a WARNING per unsafe setting.
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
    let (notes, mut errors) = sentinel_pipeline::sources::preflight(&cfg);
    for n in notes {
        println!("{n}");
    }
    errors.extend(sentinel::daemon::audit_origin_problem(&cfg));
    if errors.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("the configuration has {} problem(s):", errors.len());
    for e in errors {
        eprintln!("{}", sentinel_core::redact::builtin().redact_text(&e));
    }
    ExitCode::from(2)
}
