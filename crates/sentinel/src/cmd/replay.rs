//! `sentinel replay`: turn the arguments into [`ReplayOptions`] and run
//! [`sentinel_pipeline::replay::run`]; the exit code says whether every file could be read.

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use sentinel_ingest::config::{Fail2banFilterConfig, LineFormat, LogFormat};
use sentinel_pipeline::replay::ReplayOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

/// A line format on the command line: the ingest crate's [`LogFormat`] (the list lives there only).
#[derive(Clone, Copy, Debug)]
pub struct Format(LogFormat);

impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<Format>> =
            LazyLock::new(|| LogFormat::ALL.iter().copied().map(Format).collect());
        &ALL
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.as_str()))
    }
}

/// `sentinel replay` arguments.
#[derive(Args)]
pub struct ReplayArgs {
    /// Log files, plain or gzip; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Line format (default: auto).
    #[arg(long, conflicts_with = "fail2ban_filter")]
    format: Option<Format>,
    /// Use a fail2ban filter file (filter.d/*.conf) instead of the built-in parsers.
    #[arg(long)]
    fail2ban_filter: Option<PathBuf>,
    /// The fail2ban filter's mode (normal, aggressive, ddos, extra: each filter names its own).
    #[arg(long, requires = "fail2ban_filter", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    mode: Option<String>,
    /// More scenarios: a YAML file or a directory of them.
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Run only the scenarios given with --scenarios (alone: parse only, like fail2ban-regex).
    #[arg(long)]
    no_builtin: bool,
    /// Never count these sources (CIDR or address; repeatable).
    #[arg(long = "whitelist", value_parser = parse_net)]
    whitelist: Vec<ipnet::IpNet>,
    /// Count IPv6 sources per prefix of this length (e.g. 64).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=128))]
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

fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "not an address or CIDR".to_owned())
}

/// Exit 0; 1 when some file could not be read (the others' results stand); 2 on a usage or
/// configuration error, or when no file could be read at all.
pub fn run(a: ReplayArgs) -> ExitCode {
    let opts = ReplayOptions {
        files: a.files,
        format: match a.fail2ban_filter {
            Some(path) => LineFormat::Fail2ban(Fail2banFilterConfig {
                path,
                mode: a.mode,
                vars: Vec::new(),
            }),
            None => LineFormat::Named(a.format.map_or(LogFormat::Auto, |f| f.0)),
        },
        scenarios: a.scenarios,
        builtin: !a.no_builtin,
        whitelist: a.whitelist,
        ipv6_prefix: a.ipv6_prefix,
        max_keys: a.max_keys,
        matches: a.matches,
        json: a.json,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = sentinel_pipeline::replay::run(&opts, &mut out);
    let _ = out.flush();
    match result {
        Ok(summary) if summary.nothing_read() => ExitCode::from(2),
        Ok(summary) if summary.is_partial() => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        // The reader closed the pipe (`sentinel replay --matches auth.log | head`): it has what it
        // wanted. Exit 0 quietly, as ripgrep does, not with an error the reader did not make.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sentinel replay: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether writing the output failed because its reader went away (EPIPE), in the matches or the
/// summary (the JSON summary's error wraps the I/O error).
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind())
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}
