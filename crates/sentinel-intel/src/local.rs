//! Local context: facts Sentinel knows without asking anyone — what kind of address a subject is, and
//! how often it raised alerts recently (bounded memory).

use async_trait::async_trait;
use sentinel_core::{Alert, EnrichError, Enricher, Evidence, Subject, Verdict};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// What kind of address an IP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, unique-local, link-local, CGNAT.
    Private,
    /// Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
    Documentation,
    /// Anything else.
    Public,
}

impl AddressClass {
    /// Classifies an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                if v4.is_loopback() {
                    AddressClass::Loopback
                } else if v4.is_private()
                    || v4.is_link_local()
                    || (o[0] == 100 && (64..128).contains(&o[1]))
                {
                    AddressClass::Private
                } else if v4.is_documentation() {
                    AddressClass::Documentation
                } else {
                    AddressClass::Public
                }
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return Self::of(IpAddr::V4(v4));
                }
                let s = v6.segments();
                if v6.is_loopback() {
                    AddressClass::Loopback
                } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80 {
                    AddressClass::Private
                } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                    AddressClass::Documentation
                } else {
                    AddressClass::Public
                }
            }
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::Documentation => "documentation",
            AddressClass::Public => "public",
        }
    }
}

/// Remembers recent alerts per subject (bounded) and classifies addresses.
#[derive(Debug)]
pub struct LocalContext {
    window_ms: i64,
    max_subjects: usize,
    /// False: addresses are only classified (the store keeps the history instead).
    remember: bool,
    history: Mutex<History>,
}

#[derive(Debug, Default)]
struct History {
    seen: HashMap<String, VecDeque<i64>>,
    order: VecDeque<String>,
}

impl LocalContext {
    /// Remembers alerts for `window_ms`, for at most `max_subjects` subjects (oldest forgotten first).
    pub fn new(window_ms: i64, max_subjects: usize) -> Self {
        Self {
            window_ms,
            max_subjects: max_subjects.max(1),
            remember: true,
            history: Mutex::new(History::default()),
        }
    }

    /// Classifies addresses and remembers nothing: for when the source's history comes from the store,
    /// so that nothing (a one-off `sentinel intel lookup` above all) is counted twice or counted as an
    /// offence.
    pub fn addresses_only() -> Self {
        Self {
            window_ms: 0,
            max_subjects: 1,
            remember: false,
            history: Mutex::new(History::default()),
        }
    }

    /// Records this alert and returns how many earlier alerts the subject had within the window.
    fn record(&self, key: String, now: i64) -> usize {
        if !self.remember {
            return 0;
        }
        let Ok(mut h) = self.history.lock() else {
            return 0;
        };
        // Saturating: an alert's time comes from a parsed log line, and may be absurdly early.
        let cutoff = now.saturating_sub(self.window_ms);
        if !h.seen.contains_key(&key) {
            while h.seen.len() >= self.max_subjects {
                match h.order.pop_front() {
                    Some(old) => {
                        h.seen.remove(&old);
                    }
                    None => break,
                }
            }
            h.order.push_back(key.clone());
        }
        let q = h.seen.entry(key).or_default();
        while q.front().is_some_and(|t| *t < cutoff) {
            q.pop_front();
        }
        let prior = q.len();
        q.push_back(now);
        if q.len() > 1024 {
            q.pop_front();
        }
        prior
    }
}

#[async_trait]
impl Enricher for LocalContext {
    fn name(&self) -> &str {
        "local_context"
    }

    async fn enrich(&self, subject: &Subject, alert: &Alert) -> Result<Evidence, EnrichError> {
        let prior = self.record(subject.key(), alert.ts.as_millis());
        let class = subject.ip().map(AddressClass::of);
        let (verdict, score) = match (class, prior) {
            (Some(AddressClass::Loopback), _) => (Verdict::Benign, 0),
            (_, n) if n >= 3 => (Verdict::Malicious, 80),
            (_, n) if n >= 1 => (Verdict::Suspicious, 50),
            _ => (Verdict::Unknown, 0),
        };
        Ok(Evidence {
            provider: "local_context".into(),
            verdict,
            score: Some(score),
            details: if self.remember {
                json!({
                    "address_class": class.map(AddressClass::as_str),
                    "prior_alerts": prior,
                    "window_secs": self.window_ms / 1000,
                })
            } else {
                json!({ "address_class": class.map(AddressClass::as_str) })
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let c = |s: &str| AddressClass::of(s.parse().unwrap());
        assert_eq!(c("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(c("10.1.2.3"), AddressClass::Private);
        assert_eq!(c("100.64.0.1"), AddressClass::Private);
        assert_eq!(c("203.0.113.9"), AddressClass::Documentation);
        assert_eq!(c("2001:db8::1"), AddressClass::Documentation);
        assert_eq!(c("fd00::1"), AddressClass::Private);
        assert_eq!(c("::ffff:192.168.1.1"), AddressClass::Private);
        assert_eq!(c("8.8.8.8"), AddressClass::Public);
    }

    #[test]
    fn addresses_only_remembers_nothing() {
        let l = LocalContext::addresses_only();
        for t in 0..5 {
            assert_eq!(l.record("a".into(), t), 0);
        }
        assert!(l.history.lock().unwrap().seen.is_empty());
    }

    #[test]
    fn history_is_bounded_and_windowed() {
        let l = LocalContext::new(1000, 2);
        assert_eq!(l.record("a".into(), 0), 0);
        assert_eq!(l.record("a".into(), 10), 1);
        assert_eq!(l.record("a".into(), 2000), 0, "outside the window");
        l.record("b".into(), 2000);
        l.record("c".into(), 2000); // evicts a
        assert_eq!(l.record("a".into(), 2001), 0);
        let h = l.history.lock().unwrap();
        assert!(h.seen.len() <= 2);
    }

    #[test]
    fn an_absurdly_early_alert_time_is_no_overflow() {
        let l = LocalContext::new(24 * 3600 * 1000, 10);
        assert_eq!(l.record("a".into(), i64::MIN), 0);
        assert_eq!(l.record("a".into(), i64::MIN + 1), 1);
    }
}
