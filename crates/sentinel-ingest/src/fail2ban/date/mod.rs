//! fail2ban's date detector: finding a line's time, turning it into a [`Timestamp`], and telling the caller which
//! span to cut from the line before the failregexes run (fail2ban matches the line without its date).
//!
//! [`DateMatcher::new`] reads a filter's `datepattern` as fail2ban 1.0.2 does: one pattern per line, each a
//! strptime-style pattern (`%b %d %H:%M:%S`, fail2ban's `%Ex…` and `%k`/`%l`, `%z`/`%Z`, `%f`, `%%`) mixed with
//! regex text, or a keyword: `{^LN-BEG}` (the default templates anchored at line start), `{DEFAULT}`, `{NONE}`,
//! `EPOCH`/`LEPOCH`/`TAI64N` (optionally `{^LN-BEG}`-prefixed), `{EPOCH}` inside a pattern, and `{DATE}` (each
//! default template inside the surrounding text, e.g. `^<W>{DATE}`). Without a `datepattern` the full default
//! list applies: every default template anchored at line start first, then each searched anywhere.
//!
//! Like fail2ban, the template that matched last is tried first; an anchored match is final, a match elsewhere
//! in the line is kept only when no other template finds a date further left. Year-less dates take the year of
//! `ParseCtx.reference`, or the previous one when that would put them more than a day ahead of it; dates without
//! a zone are in `ParseCtx.utc_offset_secs`. This module never touches the failregexes.

mod defaults;
mod strptime;
mod template;
mod zones;

use crate::ParseCtx;
use sentinel_core::Timestamp;
use std::sync::atomic::{AtomicUsize, Ordering};
use strptime::{Expander, Resolve};
use template::Template;

/// The compiled `datepattern` of one filter.
#[derive(Debug)]
pub struct DateMatcher {
    templates: Vec<Template>,
    /// Index + 1 of the template that matched last (0: none yet).
    last: AtomicUsize,
    /// Where its match started.
    last_at: AtomicUsize,
}

/// A found date: the span to remove from the line and the time, if the fields make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Start of the date's span (byte offset).
    pub start: usize,
    /// End of the date's span (byte offset).
    pub end: usize,
    /// The time, or `None` when the span is empty (`{NONE}`, an optional date) or the fields are not a valid
    /// date (e.g. `Feb 30`); fail2ban then uses the last known time or "now".
    pub ts: Option<Timestamp>,
}

impl DateMatcher {
    /// Builds from a `datepattern` value (one pattern per line), or fail2ban's default templates when `None` or
    /// blank. An unknown directive, a bad regex or an unterminated pattern is an error naming the pattern.
    pub fn new(datepattern: Option<&str>) -> Result<Self, String> {
        let current_year = time::OffsetDateTime::now_utc().year();
        let mut exp = Expander::new(current_year);
        let mut templates: Vec<Template> = Vec::new();
        let add = |t: Template, templates: &mut Vec<Template>| {
            if !templates.iter().any(|o| o.key == t.key) {
                templates.push(t);
            }
        };
        let lines: Vec<&str> = datepattern
            .map(|d| d.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
            .unwrap_or_default();
        if lines.is_empty() {
            for t in defaults::all(&mut exp)? {
                add(t, &mut templates);
            }
        }
        for line in lines {
            for t in defaults::from_line(line, &mut exp)? {
                add(t, &mut templates);
            }
        }
        Ok(Self {
            templates,
            last: AtomicUsize::new(0),
            last_at: AtomicUsize::new(0),
        })
    }

    /// How many templates the pattern compiled to.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Finds the date in `line`.
    pub fn find(&self, line: &str, ctx: &ParseCtx) -> Option<Found> {
        let r = Resolve {
            now_ms: ctx.reference.as_millis(),
            default_offset: ctx.utc_offset_secs,
        };
        let mut tried = usize::MAX;
        // (template, whole match) of the best unanchored candidate: only the winner's groups are resolved.
        let mut best: Option<(usize, (usize, usize))> = None;
        if let Some(i) = self.last.load(Ordering::Relaxed).checked_sub(1) {
            if let Some(t) = self.templates.get(i) {
                tried = i;
                if let Some(whole) = t.locate(line) {
                    if t.anchored
                        || self.templates.len() == 1
                        || whole.0 == self.last_at.load(Ordering::Relaxed)
                    {
                        return Some(self.win(i, t, line, whole, r));
                    }
                    best = Some((i, whole));
                }
            }
        }
        for (i, t) in self.templates.iter().enumerate() {
            if i == tried {
                continue;
            }
            let Some(whole) = t.locate(line) else {
                continue;
            };
            if t.anchored || whole.0 == 0 {
                return Some(self.win(i, t, line, whole, r));
            }
            if best.is_none_or(|(_, b)| whole.0 < b.0) {
                best = Some((i, whole));
            }
        }
        let (i, whole) = best?;
        let t = self.templates.get(i)?;
        Some(self.win(i, t, line, whole, r))
    }

    fn win(&self, i: usize, t: &Template, line: &str, whole: (usize, usize), r: Resolve) -> Found {
        let (m, ts) = t.resolve(line, whole, r);
        self.last.store(i + 1, Ordering::Relaxed);
        self.last_at.store(m.at, Ordering::Relaxed);
        Found {
            start: m.start,
            end: m.end,
            ts,
        }
    }
}

#[cfg(test)]
mod tests;
