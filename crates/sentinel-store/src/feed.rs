//! The feed: what the store committed after a cursor, in commit order (the live stream's reads).
//!
//! A [`FeedCursor`] is a position in the store's commit order, in two parts:
//! - `audit_seq`, the `audit` table's `seq` (AUTOINCREMENT): alerts, investigations, plans and action
//!   changes are followed through the audit rows that note them (`alert_raised`,
//!   `investigation_concluded`, `plan_decided`, `action_changed`), joined to the record by
//!   `subject_id`;
//! - `event_rowid`, the `events` table's `rowid` (SQLite's implicit one; an identity column on
//!   PostgreSQL): events have no audit row.
//!
//! Both grow in commit order: the store has one writer at a time (SQLite's write lock; on PostgreSQL
//! the advisory lock every transaction adding events or audit rows holds until it commits, whichever
//! process runs it), and a row's `seq`/`rowid` is assigned inside the transaction that commits it. The pipeline's recorder queues a
//! record on the batched writer before it appends the audit entry noting it, and the audit index row
//! reaches the same FIFO writer after that, so an audit row is committed in the same transaction as
//! its record (where it is written last) or a later one: when an audit row is visible, its record is.
//! A record whose write failed for good (the writer logged and counted it as dropped) never arrives;
//! its audit row is skipped and counted in [`FeedPage::missing`] rather than waited for.
//!
//! Each read is bounded (`LIMIT`), filters are applied in SQL, and a read never goes past the head it
//! saw first, so a row committed during the read is not skipped but read next time.

use crate::backend::on_backend;
use crate::error::StoreError;
use crate::filter::subject_key;
use crate::store::Store;
use sqlx::QueryBuilder;
use std::fmt;
use std::str::FromStr;

/// Most items one [`Store::feed_after`] call returns.
pub const FEED_MAX_LIMIT: usize = 1000;

/// What a feed item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedKind {
    /// An event (telemetry).
    Event,
    /// An alert raised.
    Alert,
    /// An investigation concluded.
    Investigation,
    /// A plan decided.
    Plan,
    /// An action made or changed (its current state).
    Action,
}

impl FeedKind {
    /// Every kind.
    pub const ALL: [FeedKind; 5] = [
        FeedKind::Event,
        FeedKind::Alert,
        FeedKind::Investigation,
        FeedKind::Plan,
        FeedKind::Action,
    ];

    /// The lower-case name (`event`, `alert`, `investigation`, `plan`, `action`).
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Event => "event",
            FeedKind::Alert => "alert",
            FeedKind::Investigation => "investigation",
            FeedKind::Plan => "plan",
            FeedKind::Action => "action",
        }
    }

    /// The audit kind that notes it (none for events).
    fn audit_kind(self) -> Option<&'static str> {
        match self {
            FeedKind::Event => None,
            FeedKind::Alert => Some("alert_raised"),
            FeedKind::Investigation => Some("investigation_concluded"),
            FeedKind::Plan => Some("plan_decided"),
            FeedKind::Action => Some("action_changed"),
        }
    }

    fn from_audit_kind(k: &str) -> Option<Self> {
        FeedKind::ALL
            .into_iter()
            .find(|f| f.audit_kind() == Some(k))
    }
}

impl fmt::Display for FeedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FeedKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeedKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown kind {s:?} (event, alert, investigation, plan, action)")
            })
    }
}

/// A position in the store's commit order; the feed answers what comes after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedCursor {
    /// The last `audit.seq` read.
    pub audit_seq: i64,
    /// The last `events.rowid` read.
    pub event_rowid: i64,
}

impl fmt::Display for FeedCursor {
    /// The opaque form clients hold: `st_<audit_seq>_<event_rowid>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "st_{}_{}", self.audit_seq, self.event_rowid)
    }
}

impl FromStr for FeedCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("not a stream cursor: {s:?}");
        let rest = s.strip_prefix("st_").ok_or_else(bad)?;
        let (a, e) = rest.split_once('_').ok_or_else(bad)?;
        let num = |v: &str| -> Result<i64, String> {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            v.parse::<i64>().map_err(|_| bad())
        };
        Ok(FeedCursor {
            audit_seq: num(a)?,
            event_rowid: num(e)?,
        })
    }
}

/// Which items the feed returns. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    /// Kinds wanted (empty: none at all).
    pub kinds: Vec<FeedKind>,
    /// Only items tied to an alert of one of these severities (`low`, `high`, ...): events and
    /// operators' actions (no alert) are left out when it is given.
    pub severities: Vec<String>,
    /// Only items tied to an alert of this scenario (events and operators' actions are left out).
    pub scenario: Option<String>,
    /// Only this subject (a key such as `ip:203.0.113.7`, or a bare IP): an event's `src_ip`, an
    /// alert's subject (also for its investigation and plan), an action's subject.
    pub subject: Option<String>,
}

/// One item of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    /// What it is.
    pub kind: FeedKind,
    /// Resume after this item with this cursor.
    pub cursor: FeedCursor,
    /// The record as stored (its JSON body).
    pub data: serde_json::Value,
}

/// One read of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// The items, audit-noted records first (in `audit.seq` order), then events (in `rowid` order).
    pub items: Vec<FeedItem>,
    /// Where the next read starts (past every row read, matched or not, up to the head seen).
    pub next: FeedCursor,
    /// Whether a limit was reached (read again at once).
    pub more: bool,
    /// Audit rows whose record is not stored (its write failed for good): skipped.
    pub missing: u64,
}

/// The head of the feed's read of audit-noted records: each audit row with the body of the record it
/// notes (NULL when that record is not stored) and, through `ra`, the alert that record is tied to
/// (for the severity, scenario and subject filters). The caller appends the seq range and filters.
const FEED_AUDIT_HEAD: &str = "SELECT au.seq, au.kind, CASE au.kind \
       WHEN 'alert_raised' THEN al.body \
       WHEN 'investigation_concluded' THEN inv.body \
       WHEN 'plan_decided' THEN pl.body \
       WHEN 'action_changed' THEN ac.body END \
     FROM audit au \
     LEFT JOIN alerts al ON au.kind = 'alert_raised' AND al.id = au.subject_id \
     LEFT JOIN investigations inv ON au.kind = 'investigation_concluded' AND inv.id = au.subject_id \
     LEFT JOIN plans pl ON au.kind = 'plan_decided' AND pl.id = au.subject_id \
     LEFT JOIN actions ac ON au.kind = 'action_changed' AND ac.id = au.subject_id \
     LEFT JOIN alerts ra ON ra.id = CASE au.kind \
       WHEN 'alert_raised' THEN au.subject_id \
       WHEN 'investigation_concluded' THEN inv.alert_id \
       WHEN 'plan_decided' THEN pl.alert_id \
       WHEN 'action_changed' THEN ac.alert_id END \
     WHERE au.seq > ";

impl Store {
    /// The head of the feed now: a cursor after everything committed.
    pub async fn feed_head(&self) -> Result<FeedCursor, StoreError> {
        let (audit_seq, event_rowid): (Option<i64>, Option<i64>) = on_backend!(self, |pool| {
            sqlx::query_as("SELECT (SELECT MAX(seq) FROM audit), (SELECT MAX(rowid) FROM events)")
                .fetch_one(pool)
                .await?
        });
        Ok(FeedCursor {
            audit_seq: audit_seq.unwrap_or(0),
            event_rowid: event_rowid.unwrap_or(0),
        })
    }

    /// What was committed after `after` that `filter` matches: at most `limit` audit-noted records
    /// and at most `limit` events (`limit` is clamped to 1..=[`FEED_MAX_LIMIT`]).
    pub async fn feed_after(
        &self,
        after: FeedCursor,
        filter: &FeedFilter,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let limit = limit.clamp(1, FEED_MAX_LIMIT);
        let head = self.feed_head().await?;
        let mut items = Vec::new();
        let mut more = false;
        let mut missing = 0u64;
        let subject = filter.subject.as_deref().map(subject_key);

        // Audit-noted records.
        let audit_kinds: Vec<&'static str> =
            filter.kinds.iter().filter_map(|k| k.audit_kind()).collect();
        let mut next_audit = after.audit_seq.max(head.audit_seq);
        if !audit_kinds.is_empty() && head.audit_seq > after.audit_seq {
            let rows: Vec<(i64, String, Option<String>)> = on_backend!(self, |pool| {
                let mut q = QueryBuilder::new(FEED_AUDIT_HEAD);
                q.push_bind(after.audit_seq);
                q.push(" AND au.seq <= ");
                q.push_bind(head.audit_seq);
                q.push(" AND au.kind IN (");
                let mut sep = q.separated(", ");
                for k in &audit_kinds {
                    sep.push_bind(*k);
                }
                q.push(")");
                if !filter.severities.is_empty() {
                    q.push(" AND ra.severity IN (");
                    let mut sep = q.separated(", ");
                    for s in &filter.severities {
                        sep.push_bind(s.clone());
                    }
                    q.push(")");
                }
                if let Some(s) = &filter.scenario {
                    q.push(" AND ra.scenario = ");
                    q.push_bind(self.text_param(s));
                }
                if let Some(s) = &subject {
                    q.push(" AND (CASE au.kind WHEN 'action_changed' THEN ac.subject ");
                    q.push("ELSE ra.subject END) = ");
                    q.push_bind(s.clone());
                }
                q.push(" ORDER BY au.seq ASC LIMIT ");
                q.push_bind(limit as i64);
                q.build_query_as().fetch_all(pool).await?
            });
            if rows.len() == limit {
                more = true;
                next_audit = rows.last().map(|r| r.0).unwrap_or(next_audit);
            }
            for (seq, kind, body) in rows {
                let Some(kind) = FeedKind::from_audit_kind(&kind) else {
                    continue;
                };
                let Some(body) = body else {
                    missing += 1;
                    tracing::warn!(evt = "feed_record_missing", seq, kind = %kind, "an audit row notes a record the store does not hold; skipped");
                    continue;
                };
                let data = serde_json::from_str(&body).map_err(|e| {
                    StoreError::Corrupt(format!("{kind} noted by audit seq {seq}: {e}"))
                })?;
                items.push(FeedItem {
                    kind,
                    cursor: FeedCursor {
                        audit_seq: seq,
                        event_rowid: after.event_rowid,
                    },
                    data,
                });
            }
        }

        // Events. Tied to no alert: a severity or scenario filter leaves them out.
        let mut next_event = after.event_rowid.max(head.event_rowid);
        let event_ip = subject
            .as_deref()
            .map(|s| s.strip_prefix("ip:").unwrap_or(s).to_owned());
        let events_wanted = filter.kinds.contains(&FeedKind::Event)
            && filter.severities.is_empty()
            && filter.scenario.is_none();
        if events_wanted && head.event_rowid > after.event_rowid {
            let rows: Vec<(i64, String)> = on_backend!(self, |pool| {
                let mut q = QueryBuilder::new("SELECT rowid, body FROM events WHERE rowid > ");
                q.push_bind(after.event_rowid);
                q.push(" AND rowid <= ");
                q.push_bind(head.event_rowid);
                if let Some(ip) = &event_ip {
                    q.push(" AND src_ip = ");
                    q.push_bind(ip.clone());
                }
                q.push(" ORDER BY rowid ASC LIMIT ");
                q.push_bind(limit as i64);
                q.build_query_as().fetch_all(pool).await?
            });
            if rows.len() == limit {
                more = true;
                next_event = rows.last().map(|r| r.0).unwrap_or(next_event);
            }
            for (rowid, body) in rows {
                let data = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("event rowid {rowid}: {e}")))?;
                items.push(FeedItem {
                    kind: FeedKind::Event,
                    cursor: FeedCursor {
                        audit_seq: next_audit,
                        event_rowid: rowid,
                    },
                    data,
                });
            }
        }
        Ok(FeedPage {
            items,
            next: FeedCursor {
                audit_seq: next_audit,
                event_rowid: next_event,
            },
            more,
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let c = FeedCursor {
            audit_seq: 12,
            event_rowid: 345,
        };
        assert_eq!(c.to_string(), "st_12_345");
        assert_eq!("st_12_345".parse::<FeedCursor>(), Ok(c));
        for bad in [
            "", "st_", "st_1", "st_1_", "st__2", "st_-1_2", "xx_1_2", "st_1_2_3", "st_a_1",
        ] {
            assert!(bad.parse::<FeedCursor>().is_err(), "{bad}");
        }
    }
}
