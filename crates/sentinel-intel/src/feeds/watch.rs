//! Reloading feeds when their files change: each poll compares every file's modification time, length
//! and inode with the last read, re-reads only the changed ones off to the side, and swaps the new
//! snapshot in whole. A reload that fails keeps what the feed served before and is reported loudly.

use super::{load_one, now_ms, FeedReport, Feeds, Snapshot, MAX_FEEDS};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a feed file looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    /// Not looked at (a feed that is never loaded).
    Never,
    /// Present: modification time, length, inode.
    Stamp(Option<SystemTime>, u64, u64),
    /// Could not be looked at, and why.
    Missing(String),
}

/// The file's current look.
pub(super) fn observe(path: &Path) -> Seen {
    match std::fs::metadata(path) {
        Ok(m) => Seen::Stamp(m.modified().ok(), m.len(), inode(&m)),
        Err(e) => Seen::Missing(e.kind().to_string()),
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

impl Feeds {
    /// Re-reads the feeds whose files changed since they were last read and swaps the result in
    /// atomically (lookups see either the old or the new contents, never a mix). Returns one report
    /// per feed re-read; a failed one keeps the previous contents (`kept_previous`). Blocking file I/O:
    /// call it off the async runtime's worker threads ([`Feeds::spawn_watcher`] does).
    pub fn reload_changed(&self) -> Vec<FeedReport> {
        // Held throughout, so two reloads never interleave.
        let mut seen = self.shared.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut reports = Vec::new();
        let mut fresh = Vec::new();
        for (i, cfg) in self.shared.configs.iter().enumerate().take(MAX_FEEDS) {
            let before = observe(&cfg.path);
            if seen.get(i) == Some(&before) {
                continue;
            }
            let (report, data, took) = load_one(cfg);
            if observe(&cfg.path) != before {
                // Still being written: read it on a later poll, once it holds still.
                continue;
            }
            if let Some(s) = seen.get_mut(i) {
                *s = before;
            }
            fresh.push((i, report, data, took));
        }
        if fresh.is_empty() {
            return reports;
        }
        let old = self.snapshot();
        let mut feeds = old.feeds.clone();
        let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut swapped = false;
        for (i, mut report, data, took) in fresh {
            let st = stats.get_mut(i);
            match data {
                Some(data) => {
                    if let Some(slot) = feeds.get_mut(i) {
                        *slot = Some(Arc::new(data));
                        swapped = true;
                    }
                    if let Some(st) = st {
                        if st.loaded_at_ms.is_some() {
                            st.reloads += 1;
                        }
                        st.entries = report.entries;
                        st.malformed = report.malformed;
                        st.loaded_at_ms = Some(now_ms());
                        st.last_load_ms = took;
                        st.last_error = None;
                    }
                }
                None => {
                    let previous = feeds.get(i).and_then(|f| f.as_ref());
                    report.kept_previous = previous.is_some();
                    report.entries = previous.map_or(0, |f| f.entries.len());
                    if let Some(st) = st {
                        st.load_errors += 1;
                        st.last_error = report.error.clone();
                    }
                }
            }
            report.log();
            reports.push(report);
        }
        drop(stats);
        if swapped {
            // Built off to the side; the write lock is held only for the pointer swap.
            let next = Arc::new(Snapshot::build(feeds));
            *self
                .shared
                .snapshot
                .write()
                .unwrap_or_else(|e| e.into_inner()) = next;
        }
        reports
    }

    /// Polls the files every `poll` and reloads the changed ones, until `shutdown` turns true or its
    /// sender is dropped. Reading and indexing run on the blocking pool.
    pub fn spawn_watcher(
        &self,
        poll: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let feeds = self.clone();
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                }
                let f = feeds.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || f.reload_changed()).await {
                    tracing::error!(evt = "intel_feed_reload_failed", error = %e);
                }
            }
        })
    }
}
