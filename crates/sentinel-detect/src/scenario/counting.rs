//! Counting: the per-key state of each kind of counting (leaky buckets, distinct windows, spaced
//! observations, triggers) and how one matching observation is poured into it. A compiled scenario
//! owns its state; the engine decides which scenarios an observation reaches.

use crate::scenario::def::{
    Counting, FieldSpec, ScenarioDef, MAX_SPACED, MAX_TALLIED_SOURCES, SOURCE,
};
use crate::scenario::filter::CompiledFilter;
use crate::scenario::state::{Entry, KeyMap};
use crate::scenario::views::{part_of, ViewSpec, Views};
use rustc_hash::FxHasher;
use sentinel_core::Observed;
use std::borrow::Cow;
use std::hash::Hasher;
use std::net::IpAddr;

/// A leaky bucket as a theoretical arrival time: the bucket is empty at `tat`, and holds
/// `ceil((tat - now) / leak)` units at `now`.
#[derive(Debug, Clone)]
struct Leaky {
    tat: i64,
    cooldown_until: i64,
    /// Only for buckets with `distinct` or not per source (kept out of line so plain buckets stay small).
    extra: Option<Box<LeakyExtra>>,
}

#[derive(Debug, Clone, Default)]
struct LeakyExtra {
    /// Hashes of the distinct values in the bucket (with `distinct`).
    recent: Vec<u64>,
    /// Sources seen while the bucket filled, with their counts (for groups not per source).
    tally: Vec<(IpAddr, u32)>,
}

/// The last observation times of a spaced count, inline (at most [`MAX_SPACED`]).
#[derive(Debug, Clone)]
struct Spaced {
    times: [i64; MAX_SPACED],
    len: usize,
    cooldown_until: i64,
    expire_ms: i64,
}

impl Spaced {
    fn last(&self) -> Option<i64> {
        self.len.checked_sub(1).map(|i| self.times[i])
    }
    fn push(&mut self, t: i64, keep: usize) {
        let keep = keep.clamp(1, MAX_SPACED);
        if self.len >= keep {
            self.times.copy_within(self.len + 1 - keep..self.len, 0);
            self.len = keep - 1;
        }
        self.times[self.len] = t;
        self.len += 1;
    }
}

impl Entry for Spaced {
    fn idle(&self, now: i64) -> bool {
        self.cooldown_until <= now
            && self
                .last()
                .is_none_or(|t| t.saturating_add(self.expire_ms) <= now)
    }
    fn freshness(&self) -> i64 {
        let last = self
            .last()
            .map_or(i64::MIN, |t| t.saturating_add(self.expire_ms));
        last.max(self.cooldown_until)
    }
}

impl Entry for Leaky {
    fn idle(&self, now: i64) -> bool {
        self.tat <= now && self.cooldown_until <= now
    }
    fn freshness(&self) -> i64 {
        self.tat.max(self.cooldown_until)
    }
}

#[derive(Debug, Clone)]
struct Distinct {
    seen: Vec<(u64, i64)>,
    window_ms: i64,
    cooldown_until: i64,
}

impl Entry for Distinct {
    fn idle(&self, now: i64) -> bool {
        self.cooldown_until <= now
            && self
                .seen
                .iter()
                .all(|(_, t)| t.saturating_add(self.window_ms) <= now)
    }
    fn freshness(&self) -> i64 {
        let last = self
            .seen
            .iter()
            .map(|(_, t)| t.saturating_add(self.window_ms))
            .max()
            .unwrap_or(i64::MIN);
        last.max(self.cooldown_until)
    }
}

#[derive(Debug, Clone, Copy)]
struct Cooldown(i64);

impl Entry for Cooldown {
    fn idle(&self, now: i64) -> bool {
        self.0 <= now
    }
    fn freshness(&self) -> i64 {
        self.0
    }
}

/// The times of the last matching observations of a sliding window (at most `threshold`), oldest first.
#[derive(Debug, Clone)]
struct Window {
    times: std::collections::VecDeque<i64>,
    window_ms: i64,
    cooldown_until: i64,
}

impl Entry for Window {
    fn idle(&self, now: i64) -> bool {
        self.cooldown_until <= now
            && self
                .times
                .back()
                .is_none_or(|t| t.saturating_add(self.window_ms) < now)
    }
    fn freshness(&self) -> i64 {
        let last = self
            .times
            .back()
            .map_or(i64::MIN, |t| t.saturating_add(self.window_ms));
        last.max(self.cooldown_until)
    }
}

/// Per-key state, one map per scenario, of the kind its counting needs.
#[derive(Debug)]
enum State {
    Leaky(KeyMap<Leaky>),
    Distinct(KeyMap<Distinct>),
    Trigger(KeyMap<Cooldown>),
    Spaced(KeyMap<Spaced>),
    Window(KeyMap<Window>),
}

impl State {
    /// Live keys, keys expired, keys evicted.
    fn counters(&self) -> (usize, u64, u64) {
        match self {
            State::Leaky(m) => (m.len(), m.expired, m.evicted),
            State::Distinct(m) => (m.len(), m.expired, m.evicted),
            State::Trigger(m) => (m.len(), m.expired, m.evicted),
            State::Spaced(m) => (m.len(), m.expired, m.evicted),
            State::Window(m) => (m.len(), m.expired, m.evicted),
        }
    }

    /// Drops the keys idle at `now`.
    fn expire_idle(&mut self, now: i64) {
        match self {
            State::Leaky(m) => m.expire_idle(now),
            State::Distinct(m) => m.expire_idle(now),
            State::Trigger(m) => m.expire_idle(now),
            State::Spaced(m) => m.expire_idle(now),
            State::Window(m) => m.expire_idle(now),
        }
    }

    /// Forgets a key; whether it was there.
    fn remove(&mut self, key: u128) -> bool {
        match self {
            State::Leaky(m) => m.remove(key),
            State::Distinct(m) => m.remove(key),
            State::Trigger(m) => m.remove(key),
            State::Spaced(m) => m.remove(key),
            State::Window(m) => m.remove(key),
        }
    }
}

/// A scenario ready to run: its definition, compiled filters and per-key state.
#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) def: ScenarioDef,
    pub(super) filter: CompiledFilter,
    pub(super) cancel: Option<CompiledFilter>,
    /// Counting is per source (possibly together with `group`).
    pub(super) per_source: bool,
    /// Fields the counting is per (besides the source).
    pub(super) group: Vec<FieldSpec>,
    /// Leaky buckets pour only new values of this field.
    pub(super) distinct: Option<FieldSpec>,
    /// The views of the group fields and of the distinct field.
    pub(super) group_views: Vec<usize>,
    pub(super) distinct_view: Option<usize>,
    state: State,
    pub(super) cooldown_ms: i64,
}

/// What the first pass over an observation decided for one scenario.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub(super) idx: usize,
    pub(super) cancel: bool,
    pub(super) group: u64,
    pub(super) distinct: u64,
}

pub(super) fn spec_value<'a, O: Observed + ?Sized>(
    o: &'a O,
    spec: &FieldSpec,
) -> Option<Cow<'a, str>> {
    o.field(&spec.field).map(|v| part_of(v, spec.part))
}

/// Compiles one scenario: its filters (registering the views they read), its group and distinct
/// fields, and its empty per-key state.
pub(super) fn compile(def: ScenarioDef, views: &mut Views, cap: usize) -> Result<Compiled, String> {
    let state = match def.counting {
        Counting::Leaky { .. } => State::Leaky(KeyMap::new(cap)),
        Counting::Distinct { .. } => State::Distinct(KeyMap::new(cap)),
        Counting::Trigger => State::Trigger(KeyMap::new(cap)),
        Counting::Spaced { .. } => State::Spaced(KeyMap::new(cap)),
        Counting::Window { .. } => State::Window(KeyMap::new(cap)),
    };
    let group = def
        .group_by
        .iter()
        .filter(|g| g.as_str() != SOURCE)
        .map(|g| FieldSpec::parse(g))
        .collect::<Result<Vec<_>, _>>()?;
    let distinct = match &def.counting {
        Counting::Leaky {
            distinct: Some(d), ..
        } => Some(FieldSpec::parse(d)?),
        _ => None,
    };
    let mut view = |s: &FieldSpec| {
        views.id(ViewSpec {
            field: s.field.clone(),
            part: s.part,
            decode: false,
        })
    };
    let group_views = group.iter().map(&mut view).collect();
    let distinct_view = distinct.as_ref().map(&mut view);
    Ok(Compiled {
        group_views,
        distinct_view,
        filter: CompiledFilter::new(&def.filter, views)?,
        cancel: def
            .cancel_on
            .as_ref()
            .map(|c| CompiledFilter::new(c, views))
            .transpose()?,
        per_source: def.group_by.iter().any(|g| g == SOURCE),
        group,
        distinct,
        cooldown_ms: ms(def.cooldown),
        state,
        def,
    })
}

pub(super) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Compiled {
    /// Live keys, keys expired, keys evicted.
    pub(super) fn counters(&self) -> (usize, u64, u64) {
        self.state.counters()
    }

    /// Drops the keys idle at `now` (the clock's tick, not an event).
    pub(super) fn expire_idle(&mut self, now: i64) {
        self.state.expire_idle(now);
    }

    /// Forgets a key (a cancelled count); whether it was there.
    pub(super) fn forget(&mut self, key: u128) -> bool {
        self.state.remove(key)
    }

    /// Pours one matching observation into the key's state: the alert detail and subject when the
    /// scenario fires, and whether the key is close to firing (its lines are worth keeping).
    pub(super) fn pour<O: Observed + ?Sized>(
        &mut self,
        hit: &Hit,
        key: u128,
        source: IpAddr,
        now: i64,
        o: &O,
    ) -> (Option<(String, IpAddr)>, bool) {
        let sc = self;
        let cooldown = sc.cooldown_ms;
        let tallied = !sc.per_source;
        let min_sources = sc.def.min_sources as usize;
        let mut subject = source;
        let (fired, hot) = match (&mut sc.state, &sc.def.counting) {
            (State::Leaky(m), Counting::Leaky { capacity, leak, .. }) => {
                let leak = ms(*leak).max(1);
                let cap = i64::from(*capacity);
                let b = m.entry(key, now, || Leaky {
                    tat: i64::MIN,
                    cooldown_until: i64::MIN,
                    extra: None,
                });
                if now < b.cooldown_until {
                    return (None, false);
                }
                let needs_extra = sc.distinct.is_some() || tallied;
                let empty = b.tat <= now;
                let mut none = LeakyExtra::default();
                let x: &mut LeakyExtra = if needs_extra {
                    b.extra.get_or_insert_with(Box::default)
                } else {
                    &mut none
                };
                if empty {
                    // What it held has leaked away.
                    x.recent.clear();
                    x.tally.clear();
                }
                if sc.distinct.is_some() {
                    if x.recent.contains(&hit.distinct) {
                        return (None, false);
                    }
                    if x.recent.len() > *capacity as usize {
                        x.recent.remove(0);
                    }
                    x.recent.push(hit.distinct);
                }
                if tallied {
                    let room = x.tally.len() < MAX_TALLIED_SOURCES as usize;
                    match x.tally.iter_mut().find(|(ip, _)| *ip == source) {
                        Some(t) => t.1 += 1,
                        None if room => x.tally.push((source, 1)),
                        None => {}
                    }
                }
                b.tat = b.tat.max(now).saturating_add(leak);
                let units = ((i128::from(b.tat) - i128::from(now) + i128::from(leak) - 1)
                    / i128::from(leak)) as i64;
                if units > cap && x.tally.len() < min_sources {
                    // Full, but from too few sources: stay full without firing.
                    b.tat = now.saturating_add(cap.saturating_mul(leak));
                    (None, true)
                } else if units > cap {
                    b.tat = now;
                    b.cooldown_until = now.saturating_add(cooldown);
                    x.recent.clear();
                    let every =
                        humantime::format_duration(std::time::Duration::from_millis(leak as u64));
                    let what = match &sc.distinct {
                        Some(d) => format!("{units} distinct `{}` values", d.field),
                        None => format!("{units} matching lines"),
                    };
                    let detail = if tallied {
                        let mut tally = std::mem::take(&mut x.tally);
                        tally.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                        if let Some((top, _)) = tally.first() {
                            subject = *top;
                        }
                        let group: Vec<String> = sc
                            .group
                            .iter()
                            .map(|g| spec_value(o, g).unwrap_or_default().into_owned())
                            .collect();
                        let top: Vec<String> = tally
                            .iter()
                            .take(5)
                            .map(|(ip, n)| format!("{ip} ({n})"))
                            .collect();
                        let sources = if tally.len() as u32 >= MAX_TALLIED_SOURCES {
                            format!("{}+", tally.len())
                        } else {
                            tally.len().to_string()
                        };
                        format!(
                            "{what} for `{}` from {sources} sources (bucket capacity {cap}, one leaks every {every}); top sources: {}",
                            group.join(" "),
                            top.join(", ")
                        )
                    } else {
                        format!("{what} from one source (bucket capacity {cap}, one leaks every {every})")
                    };
                    (Some(detail), false)
                } else {
                    (None, units * 2 >= cap)
                }
            }
            (State::Window(m), Counting::Window { threshold, window }) => {
                let window_ms = ms(*window);
                let threshold = (*threshold).max(1) as usize;
                let w = m.entry(key, now, || Window {
                    times: std::collections::VecDeque::new(),
                    window_ms,
                    cooldown_until: i64::MIN,
                });
                if now < w.cooldown_until {
                    return (None, false);
                }
                // Lines can arrive slightly out of order: keep the times sorted.
                let at = w.times.partition_point(|t| *t <= now);
                w.times.insert(at, now);
                let newest = w.times.back().copied().unwrap_or(now);
                // fail2ban's findtime is inclusive: a time exactly `window` before the newest counts.
                while w
                    .times
                    .front()
                    .is_some_and(|t| t.saturating_add(window_ms) < newest)
                {
                    w.times.pop_front();
                }
                while w.times.len() > threshold {
                    w.times.pop_front();
                }
                let n = w.times.len();
                if n >= threshold {
                    w.times.clear();
                    w.cooldown_until = now.saturating_add(cooldown);
                    (
                        Some(format!(
                            "{n} matching lines from one source within {}",
                            humantime::format_duration(*window)
                        )),
                        false,
                    )
                } else {
                    (None, n * 2 >= threshold)
                }
            }
            (
                State::Spaced(m),
                Counting::Spaced {
                    count,
                    median_interval,
                    expire,
                },
            ) => {
                let expire_ms = ms(*expire);
                let need = *count as usize;
                let s = m.entry(key, now, || Spaced {
                    times: [0; MAX_SPACED],
                    len: 0,
                    cooldown_until: i64::MIN,
                    expire_ms,
                });
                if now < s.cooldown_until {
                    return (None, false);
                }
                if s.last().is_some_and(|t| t.saturating_add(expire_ms) < now) {
                    s.len = 0;
                }
                s.push(now, need);
                if s.len >= need {
                    let mut gaps: Vec<i64> =
                        s.times[..s.len].windows(2).map(|w| w[1] - w[0]).collect();
                    gaps.sort_unstable();
                    let n = gaps.len();
                    let median = if n % 2 == 1 {
                        gaps[n / 2]
                    } else {
                        (gaps[n / 2 - 1] + gaps[n / 2]) / 2
                    };
                    if median > ms(*median_interval) {
                        s.len = 0;
                        s.cooldown_until = now.saturating_add(cooldown);
                        (
                            Some(format!(
                                "{need} matching lines from one source spaced by a median of {} (more than {}, none more than {} apart)",
                                humantime::format_duration(std::time::Duration::from_millis(median.max(0) as u64)),
                                humantime::format_duration(*median_interval),
                                humantime::format_duration(*expire),
                            )),
                            false,
                        )
                    } else {
                        (None, true)
                    }
                } else {
                    (None, s.len + 1 >= need)
                }
            }
            (
                State::Distinct(m),
                Counting::Distinct {
                    field,
                    threshold,
                    window,
                },
            ) => {
                let Some(value) = o.field(field) else {
                    return (None, false);
                };
                let window_ms = ms(*window);
                let mut h = FxHasher::default();
                h.write(value.as_bytes());
                let hv = h.finish();
                let d = m.entry(key, now, || Distinct {
                    seen: Vec::new(),
                    window_ms,
                    cooldown_until: i64::MIN,
                });
                if now < d.cooldown_until {
                    return (None, false);
                }
                d.seen.retain(|(_, t)| t.saturating_add(window_ms) > now);
                match d.seen.iter_mut().find(|(v, _)| *v == hv) {
                    Some(e) => e.1 = e.1.max(now),
                    None => d.seen.push((hv, now)),
                }
                let n = d.seen.len() as u32;
                if n >= *threshold {
                    d.seen.clear();
                    d.cooldown_until = now.saturating_add(cooldown);
                    (
                        Some(format!(
                            "{n} distinct `{field}` values from one source within {}",
                            humantime::format_duration(*window)
                        )),
                        false,
                    )
                } else {
                    (None, n * 2 >= *threshold)
                }
            }
            (State::Trigger(m), _) => {
                if m.get_mut(key).is_some_and(|c| now < c.0) {
                    return (None, false);
                }
                let c = m.entry(key, now, || Cooldown(i64::MIN));
                c.0 = now.saturating_add(cooldown);
                (Some("matched on first sight".to_string()), false)
            }
            _ => return (None, false),
        };
        (fired.map(|d| (d, subject)), hot)
    }
}
