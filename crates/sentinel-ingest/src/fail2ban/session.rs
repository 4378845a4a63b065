//! fail2ban's multi-line state, kept inside a filter: the buffer of the last `maxlines` lines that multi-line
//! failregexes search, and the `<F-MLFID>` sessions that carry a host, users and flags from one line of a
//! connection to a later one (`<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>`). Both are bounded: the buffer by
//! `maxlines`, the sessions by a count (oldest evicted, counted) and by age in log time.
//! This module holds state and fail2ban's merge rules; it does not run regexes.

use super::pyregex::Key;
use sentinel_core::Timestamp;
use std::collections::HashMap;

/// A failure's values by fail2ban's key (`ip4`, `user`, `fid`, …), in the order they were set.
pub(crate) type Groups = Vec<(Key, String)>;

/// Sessions kept at most; the oldest is evicted (and counted) to make room.
pub(crate) const MAX_SESSIONS: usize = 1000;
/// Distinct users remembered per session (fail2ban only needs to know whether there was more than one; the
/// cap keeps a session that tries thousands of names from growing without bound). Further names are counted.
pub(crate) const MAX_USERS: usize = 64;
/// A session not continued for this long (in log time) is forgotten, as fail2ban's 5-minute cache.
const SESSION_TTL_MS: i64 = 5 * 60 * 1000;

/// One failure, possibly merged over several lines of a session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Failure {
    pub groups: Groups,
    /// `<F-NOFAIL>` (or a gained session): the line is not a failure.
    pub nofail: bool,
    /// `<F-MLFGAINED>`: the session gained access.
    pub gained: bool,
    /// A failure was seen before the session's host was known.
    pub pending: bool,
    /// Every user the session tried.
    pub users: Vec<String>,
    /// Distinct users beyond [`MAX_USERS`], not remembered.
    pub users_dropped: u64,
    /// Lines that make up the failure.
    pub matches: usize,
    /// Lines of the session seen while it was not failing.
    pub nofail_matches: usize,
}

impl Failure {
    /// The value of `key`, if the group took part.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.groups
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: Key, value: String) {
        match self.groups.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.groups.push((key, value)),
        }
    }

    fn add_user(&mut self, user: Option<&str>) {
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            if !self.users.iter().any(|x| x == u) {
                if self.users.len() < MAX_USERS {
                    self.users.push(u.to_string());
                } else {
                    self.users_dropped += 1;
                }
            }
        }
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    last: Option<Timestamp>,
    failure: Failure,
}

/// The live `<F-MLFID>` sessions of one filter.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: HashMap<String, Entry>,
    seq: u64,
    /// Sessions evicted because [`MAX_SESSIONS`] were live.
    pub evicted: u64,
    /// Sessions forgotten because they were idle longer than the TTL.
    pub expired: u64,
    /// Lines held as pending failures (their session's host not yet known).
    pub pending: u64,
    /// User names not remembered because their session already had [`MAX_USERS`].
    pub users_dropped: u64,
}

/// What merging a line into its session decided.
#[derive(Debug)]
pub(crate) struct Merged {
    /// The session's failure as of this line.
    pub failure: Failure,
    /// Whether the session is kept for later lines (false after `<F-MLFFORGET>`).
    pub keep: bool,
}

impl Sessions {
    /// Merges the line's failure `cur` into session `mlfid` (fail2ban's rules: a gained or no-failure line
    /// suspends the session's failures, several users or a pending failure revive them, `forget` ends it).
    /// `lines` is how many lines the current match spans. The caller decides the host and then calls
    /// [`Sessions::put`] when [`Merged::keep`] says so.
    pub(crate) fn merge(
        &mut self,
        mlfid: &str,
        mut cur: Failure,
        forget: bool,
        lines: usize,
        now: Option<Timestamp>,
    ) -> Merged {
        let mut flags = 0u8;
        if cur.gained {
            flags |= 8 | 1;
            cur.nofail = true;
        } else if cur.nofail {
            flags |= 1;
        }
        if forget {
            flags |= 2;
        }
        let keep = flags & 2 == 0;
        let mut f = match self.take(mlfid, now) {
            Some(mut s) => {
                let before = s.users_dropped;
                s.add_user(cur.get("user"));
                self.users_dropped += s.users_dropped - before;
                if std::mem::take(&mut s.nofail) {
                    flags |= 4;
                }
                if std::mem::take(&mut s.gained) {
                    flags |= 4;
                }
                if flags & 8 != 0 {
                    s.pending = false;
                }
                if flags & 4 == 0 && !s.pending {
                    s.matches = 0;
                }
                for (k, v) in cur.groups {
                    s.set(k, v);
                }
                s.nofail = cur.nofail;
                s.gained = cur.gained;
                s
            }
            None => {
                if keep {
                    let user = cur.get("user").map(str::to_string);
                    cur.add_user(user.as_deref());
                }
                cur
            }
        };
        if std::mem::take(&mut f.pending) || f.users.len() > 1 {
            f.nofail = false;
            f.gained = false;
            flags &= !(8 | 1);
        }
        if flags & 1 == 0 {
            f.matches += std::mem::take(&mut f.nofail_matches);
            if flags & 8 == 0 {
                f.matches += lines;
            }
        } else if flags & 3 == 1 {
            f.nofail_matches += lines;
        }
        Merged { failure: f, keep }
    }

    /// Stores session `mlfid`, evicting the least recently continued one when full.
    pub(crate) fn put(&mut self, mlfid: &str, failure: Failure, now: Option<Timestamp>) {
        if self.map.len() >= MAX_SESSIONS && !self.map.contains_key(mlfid) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.seq)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
                self.evicted += 1;
            }
        }
        self.seq += 1;
        self.map.insert(
            mlfid.to_string(),
            Entry {
                seq: self.seq,
                last: now,
                failure,
            },
        );
    }

    fn take(&mut self, mlfid: &str, now: Option<Timestamp>) -> Option<Failure> {
        let e = self.map.remove(mlfid)?;
        if let (Some(now), Some(last)) = (now, e.last) {
            if now.as_millis().saturating_sub(last.as_millis()) > SESSION_TTL_MS {
                self.expired += 1;
                return None;
            }
        }
        Some(e.failure)
    }

    /// How many sessions are live.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(pairs: &[(&'static str, &str)]) -> Failure {
        Failure {
            groups: pairs
                .iter()
                .map(|(k, v)| (Key::Known(k), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn host_carries_over_and_forget_ends_the_session() {
        let mut s = Sessions::default();
        let mut first = fail(&[("mlfid", "1"), ("ip4", "192.0.2.1")]);
        first.nofail = true;
        let m = s.merge("1", first, false, 1, None);
        assert!(m.failure.nofail && m.keep);
        s.put("1", m.failure, None);
        let m = s.merge(
            "1",
            fail(&[("mlfid", "1"), ("user", "root")]),
            true,
            1,
            None,
        );
        assert!(!m.failure.nofail && !m.keep);
        assert_eq!(m.failure.get("ip4"), Some("192.0.2.1"));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn users_per_session_are_bounded_and_the_rest_counted() {
        let mut s = Sessions::default();
        for i in 0..MAX_USERS + 10 {
            let cur = Failure {
                groups: vec![
                    (Key::Known("user"), format!("u{i}")),
                    (Key::Known("ip4"), "198.51.100.9".into()),
                ],
                ..Default::default()
            };
            let m = s.merge("pid1", cur, false, 1, None);
            assert!(m.keep);
            s.put("pid1", m.failure, None);
        }
        let f = s.take("pid1", None).unwrap();
        assert_eq!(f.users.len(), MAX_USERS);
        assert_eq!(f.users_dropped, 10);
        assert_eq!(s.users_dropped, 10);
        // Still counted as a multi-user session (failures revived), as fail2ban does.
        assert!(f.users.len() > 1);
    }

    #[test]
    fn sessions_are_bounded_and_evictions_counted() {
        let mut s = Sessions::default();
        for i in 0..MAX_SESSIONS + 5 {
            s.put(&i.to_string(), Failure::default(), None);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(s.evicted, 5);
        assert!(s.take("0", None).is_none() && s.take("10", None).is_some());
    }
}
