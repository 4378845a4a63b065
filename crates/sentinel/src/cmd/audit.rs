//! `sentinel audit …`: offline checks of Sentinel's tamper-evident records. For now `verify-logs`,
//! which checks the hash chain of a JSON process log file (`logging.chain_every`).

use clap::Subcommand;
use sentinel_audit::chain::{verify_log, verify_log_continued, ChainError, ChainReport};
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

/// `sentinel audit …`.
#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain of a JSON log file written by Sentinel: exit 0 when no chained line was
    /// removed, edited, inserted or reordered; 1 naming the first bad line (or when the file has no
    /// chained line at all); 2 when the file cannot be read.
    ///
    /// Lines after the last checkpoint are reported as an unsealed tail (a crash or a file cut short
    /// cannot be told from a truncation there); lines that are not chain lines are counted and listed.
    VerifyLogs {
        /// The log file ("-" for standard input).
        file: PathBuf,
        /// Also print every block's seal (what the audit log anchors as `log_chain` records).
        #[arg(long)]
        seals: bool,
        /// The file may begin in the middle of a run (it continues a rotated file): its first chained
        /// line is taken as given. Without it, a file must start where a run starts.
        #[arg(long)]
        continued: bool,
    },
}

/// Runs an `audit` subcommand.
pub fn run(command: AuditCmd) -> ExitCode {
    match command {
        AuditCmd::VerifyLogs {
            file,
            seals,
            continued,
        } => verify_logs(&file, seals, continued),
    }
}

fn verify_logs(file: &PathBuf, seals: bool, continued: bool) -> ExitCode {
    let check = |r: &mut dyn std::io::BufRead| match continued {
        true => verify_log_continued(r),
        false => verify_log(r),
    };
    let result = if file.as_os_str() == "-" {
        check(&mut std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => check(&mut BufReader::new(f)),
            Err(e) => {
                eprintln!("cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(r) if r.chain_lines == 0 => {
            print_foreign(&r);
            println!(
                "{}: FAILED: no chained line in {} line(s) (logging.chain_every = 0, or every `chain` was removed)",
                file.display(),
                r.total_lines
            );
            ExitCode::FAILURE
        }
        Ok(r) => {
            println!(
                "{}: intact: {} chained line(s) in {} run(s), {} sealed block(s)",
                file.display(),
                r.chain_lines,
                r.runs.len(),
                r.runs.iter().map(|r| r.sealed_blocks).sum::<u64>()
            );
            for (i, run) in r.runs.iter().enumerate() {
                let end = match (run.clean_end, run.unsealed_tail) {
                    (true, _) => "clean shutdown".to_owned(),
                    (false, 0) => "no final checkpoint (crashed or still running)".to_owned(),
                    (false, k) => format!(
                        "unsealed tail of {k} line(s) (after the last checkpoint: a truncation there does not show)"
                    ),
                };
                println!(
                    "run {} from line {}{}: {} line(s), {} block(s), {end}",
                    i + 1,
                    run.first_line,
                    if run.continued {
                        " (continues an earlier file: its first line is taken as given)"
                    } else {
                        ""
                    },
                    run.lines,
                    run.sealed_blocks
                );
                if seals {
                    for s in &run.seals {
                        println!(
                            "  block {} lines {} seal {}{}",
                            s.block,
                            s.lines,
                            hex_of(&s.seal),
                            if s.last { " (final)" } else { "" }
                        );
                    }
                }
            }
            print_foreign(&r);
            ExitCode::SUCCESS
        }
        Err(ChainError::Bad { line, problem }) => {
            println!("{}: FAILED at line {line}: {problem}", file.display());

            ExitCode::FAILURE
        }
        Err(e @ ChainError::Io(_)) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

fn print_foreign(r: &ChainReport) {
    if r.foreign_lines > 0 {
        let first: Vec<String> = r.foreign_examples.iter().map(u64::to_string).collect();
        println!(
            "{} line(s) are not chain lines (not covered by the chain; first: {})",
            r.foreign_lines,
            first.join(", ")
        );
    }
}

fn hex_of(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
