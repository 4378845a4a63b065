//! `sentinel gen-logs`: write synthetic logs with a known answer to standard output, to try `sentinel
//! replay` on (the README does), for the benchmarks in `bench/` and for tests. The generators live in
//! [`sentinel::loggen`].

use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;

/// What to generate.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogKind {
    /// An sshd auth log with attacking and benign sources.
    Sshd,
    /// An sshd log in which every line comes from a different source.
    SshdDistinct,
}

/// `sentinel gen-logs` arguments.
#[derive(Args)]
pub struct GenArgs {
    /// What to write.
    kind: LogKind,
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

/// Writes the log to standard output (a summary of an sshd log to standard error).
pub fn run(a: GenArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let written = match a.kind {
        LogKind::Sshd => sentinel::loggen::sshd(&mut out, a.lines, a.attackers, a.benign, a.seed)
            .map(|log| {
                eprintln!(
                    "{} lines, {} attackers, {} benign sources",
                    log.lines,
                    log.attackers.len(),
                    log.benign.len()
                );
            }),
        LogKind::SshdDistinct => sentinel::loggen::sshd_distinct(&mut out, a.lines),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-logs: {e}");
            ExitCode::FAILURE
        }
    }
}
