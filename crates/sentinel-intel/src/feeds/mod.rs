//! Local feeds: IP and CIDR lists kept on disk (FireHOL netsets, Spamhaus DROP/EDROP, the Tor exit list,
//! CrowdSec exports), answered from memory as the `feeds` enricher.
//!
//! Every feed is loaded into one [`PrefixTable`] (which feeds list an address) plus, per feed, a
//! [`NetIndex`] naming the most specific listed prefix. The whole set is an immutable snapshot swapped
//! in atomically when a file changes (`watch`); a feed that fails to load or lists nothing is reported
//! loudly and, on reload, keeps its previous contents. Lookups never touch the disk and, when nothing
//! matches, never allocate.

pub mod parse;
pub mod table;
mod watch;

use crate::config::FeedConfig;
use async_trait::async_trait;
use ipnet::IpNet;
use parse::{BadLine, Entry, ParsedFeed};
use sentinel_core::{Alert, EnrichError, Enricher, Evidence, Subject, Verdict};
use serde::Serialize;
use serde_json::json;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
pub use table::{NetIndex, PrefixTable, MAX_FEEDS};
use watch::Seen;

/// One feed listing an address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedMatch {
    /// The feed's name.
    pub feed: String,
    /// What being listed in it means.
    pub verdict: Verdict,
    /// The row's score if it gave one, else the feed's.
    pub score: u8,
    /// The row's reason (an SBL id, a CrowdSec scenario), when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The most specific listed prefix holding the address.
    pub prefix: IpNet,
}

/// What loading (or reloading) one feed did. `error` set means the feed is not serving what the file
/// says: it could not be read, or listed nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedReport {
    /// The feed's name.
    pub feed: String,
    /// Its file.
    pub path: PathBuf,
    /// Nets now served from this feed.
    pub entries: usize,
    /// Lines that could not be read.
    pub malformed: u64,
    /// The first few of them.
    pub samples: Vec<ReportLine>,
    /// Lines read with a correction (host bits cleared, score ignored).
    pub warnings: u64,
    /// Notes about the file as a whole.
    pub notes: Vec<String>,
    /// Why the feed did not load, if it did not.
    pub error: Option<String>,
    /// On a failed reload: the previous contents are still served.
    pub kept_previous: bool,
}

/// A malformed line quoted in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportLine {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub why: String,
    /// The line, shortened.
    pub text: String,
}

impl From<BadLine> for ReportLine {
    fn from(b: BadLine) -> Self {
        ReportLine {
            line: b.line,
            why: b.why,
            text: b.text,
        }
    }
}

impl FeedReport {
    /// True when the feed failed to load or listed nothing.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }

    /// Logs the report: an error when the feed serves nothing from its file, a warning naming the
    /// first malformed line or carrying the notes, else what it loaded.
    fn log(&self) {
        if let Some(e) = &self.error {
            tracing::error!(
                evt = "intel_feed_failed",
                feed = %self.feed,
                path = %self.path.display(),
                kept_previous = self.kept_previous,
                entries = self.entries,
                error = %e,
            );
        } else if self.malformed > 0 {
            let first = self
                .samples
                .first()
                .map(|s| format!("line {}: {} ({})", s.line, s.why, s.text))
                .unwrap_or_default();
            tracing::warn!(
                evt = "intel_feed_malformed_lines",
                feed = %self.feed,
                path = %self.path.display(),
                entries = self.entries,
                malformed = self.malformed,
                first = %first,
                notes = %self.notes.join("; "),
            );
        } else if !self.notes.is_empty() {
            // A note is about the file as a whole (a Spamhaus file shorter than its metadata line
            // says: a cut download); served, but an operator must hear of it.
            tracing::warn!(
                evt = "intel_feed_loaded",
                feed = %self.feed,
                path = %self.path.display(),
                entries = self.entries,
                warnings = self.warnings,
                notes = %self.notes.join("; "),
            );
        } else {
            tracing::info!(
                evt = "intel_feed_loaded",
                feed = %self.feed,
                path = %self.path.display(),
                entries = self.entries,
                warnings = self.warnings,
            );
        }
    }
}

/// Counters of one feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    /// The feed's name.
    pub name: String,
    /// Nets served now.
    pub entries: usize,
    /// When the served contents were loaded (Unix ms); `None` if never.
    pub loaded_at_ms: Option<u64>,
    /// How long that load took (reading, parsing and indexing), in ms.
    pub last_load_ms: u64,
    /// Malformed lines in the served file.
    pub malformed: u64,
    /// Loads and reloads that failed (unreadable, nothing listed).
    pub load_errors: u64,
    /// Successful reloads after the first load.
    pub reloads: u64,
    /// The last failure, if the latest attempt failed.
    pub last_error: Option<String>,
}

/// One feed's loaded contents.
#[derive(Debug)]
struct FeedData {
    entries: Vec<Entry>,
    reasons: Vec<Box<str>>,
    index: NetIndex,
}

impl FeedData {
    fn new(parsed: ParsedFeed) -> Self {
        let nets: Vec<IpNet> = parsed.entries.iter().map(|e| e.net).collect();
        FeedData {
            index: NetIndex::build(&nets),
            entries: parsed.entries,
            reasons: parsed.reasons,
        }
    }
}

/// Everything served at one moment; replaced whole, never changed in place.
#[derive(Debug, Default)]
struct Snapshot {
    table: PrefixTable,
    feeds: Vec<Option<Arc<FeedData>>>,
}

impl Snapshot {
    fn build(feeds: Vec<Option<Arc<FeedData>>>) -> Self {
        let table = PrefixTable::build(feeds.iter().enumerate().flat_map(|(i, f)| {
            f.iter()
                .flat_map(move |f| f.entries.iter().map(move |e| (e.net, i as u8)))
        }));
        Snapshot { table, feeds }
    }
}

#[derive(Debug)]
struct Shared {
    configs: Vec<FeedConfig>,
    snapshot: RwLock<Arc<Snapshot>>,
    stats: Mutex<Vec<FeedStats>>,
    /// What each file looked like when last read (reloads only re-read files that changed).
    seen: Mutex<Vec<Seen>>,
}

/// The local feeds, as an enricher (`feeds`). Cloning shares the same feeds.
#[derive(Debug, Clone)]
pub struct Feeds {
    shared: Arc<Shared>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads one feed: its report, and its contents when it loaded.
fn load_one(cfg: &FeedConfig) -> (FeedReport, Option<FeedData>, u64) {
    let started = Instant::now();
    let mut report = FeedReport {
        feed: cfg.name.clone(),
        path: cfg.path.clone(),
        entries: 0,
        malformed: 0,
        samples: Vec::new(),
        warnings: 0,
        notes: Vec::new(),
        error: None,
        kept_previous: false,
    };
    let data = match parse::parse_file(&cfg.path, &cfg.format) {
        Err(e) => {
            report.error = Some(e);
            None
        }
        Ok(parsed) => {
            report.malformed = parsed.malformed;
            report.warnings = parsed.warnings;
            report.notes = parsed.notes.clone();
            report.samples = parsed
                .samples
                .iter()
                .cloned()
                .map(ReportLine::from)
                .collect();
            if parsed.entries.is_empty() {
                report.error = Some(format!(
                    "{} lists no address ({} malformed lines)",
                    cfg.path.display(),
                    parsed.malformed
                ));
                None
            } else {
                report.entries = parsed.entries.len();
                Some(FeedData::new(parsed))
            }
        }
    };
    let took = started.elapsed().as_millis() as u64;
    (report, data, took)
}

impl Feeds {
    /// Loads every feed. Never fails as a whole: a feed that cannot be read or lists nothing is
    /// reported (`FeedReport::is_error`) and served empty until its file changes and loads. Feeds past
    /// the [`MAX_FEEDS`]th are reported and not loaded.
    pub fn load(configs: &[FeedConfig]) -> (Feeds, Vec<FeedReport>) {
        let mut reports = Vec::with_capacity(configs.len());
        let mut datas = Vec::with_capacity(configs.len());
        let mut stats = Vec::with_capacity(configs.len());
        let mut seen = Vec::with_capacity(configs.len());
        for (i, cfg) in configs.iter().enumerate() {
            let mut st = FeedStats {
                name: cfg.name.clone(),
                ..FeedStats::default()
            };
            if i >= MAX_FEEDS {
                let r = FeedReport {
                    feed: cfg.name.clone(),
                    path: cfg.path.clone(),
                    entries: 0,
                    malformed: 0,
                    samples: Vec::new(),
                    warnings: 0,
                    notes: Vec::new(),
                    error: Some(format!(
                        "more than {MAX_FEEDS} feeds; this one is not loaded"
                    )),
                    kept_previous: false,
                };
                r.log();
                st.load_errors = 1;
                st.last_error = r.error.clone();
                reports.push(r);
                datas.push(None);
                stats.push(st);
                seen.push(Seen::Never);
                continue;
            }
            // Taken before reading, so a change during the read is seen as a change next time.
            seen.push(watch::observe(&cfg.path));
            let (report, data, took) = load_one(cfg);
            report.log();
            st.last_load_ms = took;
            match &data {
                Some(_) => {
                    st.entries = report.entries;
                    st.malformed = report.malformed;
                    st.loaded_at_ms = Some(now_ms());
                }
                None => {
                    st.load_errors = 1;
                    st.last_error = report.error.clone();
                }
            }
            datas.push(data.map(Arc::new));
            stats.push(st);
            reports.push(report);
        }
        let feeds = Feeds {
            shared: Arc::new(Shared {
                configs: configs.to_vec(),
                snapshot: RwLock::new(Arc::new(Snapshot::build(datas))),
                stats: Mutex::new(stats),
                seen: Mutex::new(seen),
            }),
        };
        (feeds, reports)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        let guard = self
            .shared
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// Every feed listing `ip`, in configuration order. Allocates only when something matches.
    pub fn lookup(&self, ip: IpAddr) -> Vec<FeedMatch> {
        let (snap, mut mask) = {
            let guard = self
                .shared
                .snapshot
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let mask = guard.table.lookup(ip);
            if mask == 0 {
                return Vec::new();
            }
            // Held past the lock so the slow part (names, reasons) never blocks a reload's swap.
            (Arc::clone(&guard), mask)
        };
        let mut out = Vec::with_capacity(mask.count_ones() as usize);
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let (Some(Some(data)), Some(cfg)) = (snap.feeds.get(i), self.shared.configs.get(i))
            else {
                continue;
            };
            let Some(entry) = data.index.innermost(ip).and_then(|k| data.entries.get(k)) else {
                continue;
            };
            out.push(FeedMatch {
                feed: cfg.name.clone(),
                verdict: cfg.verdict,
                score: entry.score.unwrap_or(cfg.score).min(100),
                reason: entry
                    .reason
                    .and_then(|r| data.reasons.get(r as usize))
                    .map(|r| r.to_string()),
                prefix: entry.net,
            });
        }
        out
    }

    /// True when some feed lists `ip` (no allocation at all).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let guard = self
            .shared
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner());
        guard.table.lookup(ip) != 0
    }

    /// Counters of every feed, in configuration order.
    pub fn stats(&self) -> Vec<FeedStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The evidence for an address: every listing feed under `details.matches`, the worst verdict
    /// (malicious, then suspicious, then benign, then unknown: any opinion beats none) and the highest
    /// score; `Unknown` with no matches when no feed lists it.
    pub fn evidence(&self, ip: IpAddr) -> Evidence {
        let matches = self.lookup(ip);
        let verdict = matches
            .iter()
            .map(|m| m.verdict)
            .max_by_key(|v| severity(*v))
            .unwrap_or(Verdict::Unknown);
        let score = matches.iter().map(|m| m.score).max();
        Evidence {
            provider: "feeds".into(),
            verdict,
            score,
            details: json!({ "matches": matches }),
        }
    }
}

/// How bad a verdict is, for picking the worst of several.
fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Malicious => 3,
        Verdict::Suspicious => 2,
        Verdict::Benign => 1,
        Verdict::Unknown => 0,
    }
}

#[async_trait]
impl Enricher for Feeds {
    fn name(&self) -> &str {
        "feeds"
    }

    async fn enrich(&self, subject: &Subject, _alert: &Alert) -> Result<Evidence, EnrichError> {
        match subject.ip() {
            Some(ip) => Ok(self.evidence(ip)),
            None => Err(EnrichError::NotApplicable),
        }
    }
}
