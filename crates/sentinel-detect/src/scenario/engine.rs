//! The scenario engine: runs every scenario over each observation and raises alerts on overflow.

use crate::scenario::def::{Counting, FieldSpec, ScenarioDef, ScenarioError, SOURCE};
use crate::scenario::filter::{part_of, CompiledFilter, Memo, MemoBuf, ViewSpec, Views};
use crate::scenario::state::{Entry, KeyMap};
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHasher};
use sentinel_core::{
    Alert, AlertId, Detector, Event, EventId, EventKind, Observed, Reason, Redactor, Severity,
    Subject, Timestamp, TraceId,
};
use std::borrow::Cow;
use std::hash::Hasher;
use std::net::{IpAddr, Ipv6Addr};

/// Evidence of a key with no new line for this long (event time) may be dropped when space is needed.
const EVIDENCE_IDLE_MS: i64 = 3_600_000;

/// Limits and shared settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Sources never counted (checked only for observations a scenario would count).
    pub whitelist: Vec<IpNet>,
    /// Count IPv6 sources per prefix of this length (e.g. 64), so one host cannot rotate addresses.
    pub ipv6_prefix: Option<u8>,
    /// Keys kept per scenario before the stalest are evicted.
    pub max_keys_per_scenario: usize,
    /// Log lines kept per hot key as alert evidence.
    pub evidence_lines: usize,
    /// Hot keys whose lines are kept at once (bounded memory for evidence).
    pub max_evidence_keys: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            whitelist: Vec::new(),
            ipv6_prefix: None,
            max_keys_per_scenario: 250_000,
            evidence_lines: 5,
            max_evidence_keys: 10_000,
        }
    }
}

/// Counters of the engine's work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Observations looked at.
    pub observed: u64,
    /// Observations some scenario counted.
    pub matched: u64,
    /// Observations skipped because their source is whitelisted.
    pub whitelisted: u64,
    /// Alerts raised, per scenario.
    pub alerts: std::collections::BTreeMap<String, u64>,
    /// Keys dropped because they were idle (by event time).
    pub expired_keys: u64,
    /// Live keys evicted because a scenario reached its key cap.
    pub evicted_keys: u64,
    /// Keys currently held, all scenarios together.
    pub live_keys: u64,
}

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

use crate::scenario::def::MAX_SPACED;

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

#[derive(Debug)]
enum State {
    Leaky(KeyMap<Leaky>),
    Distinct(KeyMap<Distinct>),
    Trigger(KeyMap<Cooldown>),
    Spaced(KeyMap<Spaced>),
}

#[derive(Debug)]
struct Compiled {
    def: ScenarioDef,
    filter: CompiledFilter,
    cancel: Option<CompiledFilter>,
    /// Counting is per source (possibly together with `group`).
    per_source: bool,
    /// Fields the counting is per (besides the source).
    group: Vec<FieldSpec>,
    /// Leaky buckets pour only new values of this field.
    distinct: Option<FieldSpec>,
    /// The views of the group fields and of the distinct field.
    group_views: Vec<usize>,
    distinct_view: Option<usize>,
    state: State,
    cooldown_ms: i64,
}

/// What the first pass over an observation decided for one scenario.
#[derive(Debug, Clone, Copy)]
struct Hit {
    idx: usize,
    cancel: bool,
    group: u64,
    distinct: u64,
}

/// Runs scenarios over observations.
#[derive(Debug)]
pub struct ScenarioEngine {
    scenarios: Vec<Compiled>,
    views: Views,
    /// Scenarios by the kinds they look at (their filter's and their `cancel_on`'s), each with whether
    /// its filter (not only its `cancel_on`) takes the kind.
    by_kind: FxHashMap<String, Vec<(usize, bool)>>,
    /// Scenarios that look at every kind (with whether their filter does).
    any_kind: Vec<(usize, bool)>,
    hits: Vec<Hit>,
    memo: MemoBuf,
    rejected: Vec<ScenarioError>,
    opts: EngineOptions,
    evidence: FxHashMap<(usize, u128), Vec<(i64, String)>>,
    redactor: Redactor,
    stats: EngineStats,
}

fn hash_str(h: &mut FxHasher, s: &str) {
    h.write(s.as_bytes());
    h.write_u8(0xff);
}

/// A 128-bit key from a source key and a group hash.
fn mix(source: u128, group: u64) -> u128 {
    let half = |seed: u64| {
        let mut h = FxHasher::default();
        h.write_u64(seed);
        h.write_u128(source);
        h.write_u64(group);
        h.finish()
    };
    (u128::from(half(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(half(0xc2b2_ae3d_27d4_eb4f))
}

fn spec_value<'a, O: Observed + ?Sized>(o: &'a O, spec: &FieldSpec) -> Option<Cow<'a, str>> {
    o.field(&spec.field).map(|v| part_of(v, spec.part))
}

fn compile(def: ScenarioDef, views: &mut Views, cap: usize) -> Result<Compiled, String> {
    let state = match def.counting {
        Counting::Leaky { .. } => State::Leaky(KeyMap::new(cap)),
        Counting::Distinct { .. } => State::Distinct(KeyMap::new(cap)),
        Counting::Trigger => State::Trigger(KeyMap::new(cap)),
        Counting::Spaced { .. } => State::Spaced(KeyMap::new(cap)),
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

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The score an alert of this severity carries.
fn score(s: Severity) -> u8 {
    match s {
        Severity::Info => 10,
        Severity::Low => 30,
        Severity::Medium => 50,
        Severity::High => 75,
        Severity::Critical => 95,
    }
}

impl ScenarioEngine {
    /// An engine over the enabled scenarios in `defs`. A scenario that does not compile (which
    /// [`parse_scenarios`](crate::scenario::parse_scenarios) rules out) is left out and listed by
    /// [`ScenarioEngine::rejected`]; [`ScenarioEngine::try_new`] refuses instead.
    pub fn new(defs: Vec<ScenarioDef>, opts: EngineOptions) -> Self {
        let cap = opts.max_keys_per_scenario;
        let mut views = Views::default();
        let mut scenarios = Vec::new();
        let mut rejected = Vec::new();
        for def in defs.into_iter().filter(|d| d.enabled) {
            let name = def.name.clone();
            match compile(def, &mut views, cap) {
                Ok(c) => scenarios.push(c),
                Err(message) => rejected.push(ScenarioError {
                    origin: format!("scenario `{name}`"),
                    message,
                }),
            }
        }
        if let Err(message) = views.finalize() {
            // Only a pattern set too large for an automaton gets here: nothing can run safely.
            rejected.push(ScenarioError {
                origin: "scenarios".into(),
                message,
            });
            scenarios.clear();
        }
        let mut by_kind: FxHashMap<String, Vec<(usize, bool)>> = FxHashMap::default();
        let mut any_kind = Vec::new();
        for (i, c) in scenarios.iter().enumerate() {
            let cancel_kinds = c.cancel.as_ref().map(|f| f.kinds());
            if c.filter.kinds().is_empty() || cancel_kinds.is_some_and(|k| k.is_empty()) {
                any_kind.push((i, c.filter.kinds().is_empty()));
                continue;
            }
            let kinds = c.filter.kinds().iter().chain(cancel_kinds.unwrap_or(&[]));
            for k in kinds {
                let list = by_kind.entry(k.clone()).or_default();
                if list.last().map(|l| l.0) != Some(i) {
                    list.push((i, c.filter.kind_matches(k)));
                }
            }
        }
        // Every kind's list also holds the any-kind scenarios, in definition order.
        for (kind, list) in by_kind.iter_mut() {
            list.extend(
                any_kind
                    .iter()
                    .map(|&(i, _)| (i, scenarios[i].filter.kind_matches(kind))),
            );
            list.sort_unstable();
            list.dedup_by_key(|l| l.0);
        }
        Self {
            scenarios,
            views,
            by_kind,
            any_kind,
            hits: Vec::new(),
            memo: MemoBuf::default(),
            rejected,
            opts,
            evidence: FxHashMap::default(),
            redactor: Redactor::default(),
            stats: EngineStats::default(),
        }
    }

    /// Like [`ScenarioEngine::new`], but refuses when any enabled scenario does not compile.
    pub fn try_new(
        defs: Vec<ScenarioDef>,
        opts: EngineOptions,
    ) -> Result<Self, Vec<ScenarioError>> {
        let e = Self::new(defs, opts);
        if e.rejected.is_empty() {
            Ok(e)
        } else {
            Err(e.rejected)
        }
    }

    /// Scenarios left out because they did not compile.
    pub fn rejected(&self) -> &[ScenarioError] {
        &self.rejected
    }

    /// Masks secrets in evidence lines with this redactor (the default masks the built-in keys).
    pub fn with_redactor(mut self, r: Redactor) -> Self {
        self.redactor = r;
        self
    }

    /// The names of the scenarios that run.
    pub fn names(&self) -> Vec<&str> {
        self.scenarios.iter().map(|s| s.def.name.as_str()).collect()
    }

    /// Counters, with the current number of live keys.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        let (mut live, mut expired, mut evicted) = (0u64, 0u64, 0u64);
        for c in &self.scenarios {
            let (l, x, e) = match &c.state {
                State::Leaky(m) => (m.len(), m.expired, m.evicted),
                State::Distinct(m) => (m.len(), m.expired, m.evicted),
                State::Trigger(m) => (m.len(), m.expired, m.evicted),
                State::Spaced(m) => (m.len(), m.expired, m.evicted),
            };
            live += l as u64;
            expired += x;
            evicted += e;
        }
        s.live_keys = live;
        s.expired_keys = expired;
        s.evicted_keys = evicted;
        s
    }

    fn key(&self, ip: IpAddr) -> (u128, IpAddr) {
        match ip {
            IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), ip),
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return (u128::from(v4.to_ipv6_mapped()), IpAddr::V4(v4));
                }
                match self.opts.ipv6_prefix {
                    Some(p) if p < 128 => {
                        let mask = if p == 0 {
                            0
                        } else {
                            u128::MAX << (128 - u32::from(p))
                        };
                        let k = u128::from(v6) & mask;
                        (k, IpAddr::V6(Ipv6Addr::from(k)))
                    }
                    _ => (u128::from(v6), ip),
                }
            }
        }
    }

    /// Looks at one observation; `line` is its raw text, kept (redacted) as evidence.
    pub fn observe<O: Observed + ?Sized>(
        &mut self,
        o: &O,
        line: Option<&str>,
        out: &mut Vec<Alert>,
    ) {
        self.stats.observed += 1;
        let Some(ip) = o.src_ip() else {
            return;
        };
        let kind = o.kind();
        let candidates: &[(usize, bool)] = match self.by_kind.get(kind) {
            Some(list) => list,
            None => &self.any_kind,
        };
        if candidates.is_empty() {
            return;
        }
        // First pass, read-only: which scenarios count (or cancel), and their group and distinct values.
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        {
            let views = &self.views;
            let mut memo = Memo::new(o, &mut self.memo, views);
            let value_hash = |memo: &mut Memo<'_, '_, O>, h: &mut FxHasher, view: usize| {
                hash_str(h, memo.get(view, views).map_or("", |f| f[0].as_str()));
            };
            for &(idx, kind_ok) in candidates {
                let sc = &self.scenarios[idx];
                let cancel = sc
                    .cancel
                    .as_ref()
                    .is_some_and(|c| c.matches(&mut memo, views));
                if !cancel && !(kind_ok && sc.filter.rest_matches(&mut memo, views)) {
                    continue;
                }
                let mut group = 0;
                if !sc.group_views.is_empty() {
                    let mut h = FxHasher::default();
                    for &g in &sc.group_views {
                        value_hash(&mut memo, &mut h, g);
                    }
                    group = h.finish();
                }
                let mut distinct = 0;
                if let Some(d) = sc.distinct_view {
                    let mut h = FxHasher::default();
                    value_hash(&mut memo, &mut h, d);
                    distinct = h.finish();
                }
                hits.push(Hit {
                    idx,
                    cancel,
                    group,
                    distinct,
                });
            }
        }
        let now = o.ts().as_millis();
        let mut whitelisted: Option<bool> = None;
        let mut matched = false;
        let (ip_key, subject_ip) = self.key(ip);
        for hit in &hits {
            let sc = &self.scenarios[hit.idx];
            let key = match (sc.per_source, sc.group.is_empty()) {
                (true, true) => ip_key,
                (true, false) => mix(ip_key, hit.group),
                (false, _) => mix(0, hit.group),
            };
            if hit.cancel {
                self.cancel(hit.idx, key);
                continue;
            }
            let wl = *whitelisted.get_or_insert_with(|| {
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
                    v4 => v4,
                };
                self.opts.whitelist.iter().any(|n| n.contains(&ip))
            });
            if wl {
                continue;
            }
            matched = true;
            if let Some((detail, subject)) = self.count(hit, key, subject_ip, now, o, line) {
                let evidence = self.evidence.remove(&(hit.idx, key)).unwrap_or_default();
                out.push(self.alert(hit.idx, subject, o, detail, evidence, line));
            }
        }
        self.hits = hits;
        if whitelisted == Some(true) && !matched {
            self.stats.whitelisted += 1;
        }
        if matched {
            self.stats.matched += 1;
        }
    }

    fn cancel(&mut self, idx: usize, key: u128) {
        let sc = &mut self.scenarios[idx];
        let had = match &mut sc.state {
            State::Leaky(m) => m.remove(key),
            State::Distinct(m) => m.remove(key),
            State::Trigger(m) => m.remove(key),
            State::Spaced(m) => m.remove(key),
        };
        if had {
            self.evidence.remove(&(idx, key));
        }
    }

    /// Counts one matching observation; returns the alert detail when the scenario fires.
    /// Counts one matching observation; returns the alert detail and subject when the scenario fires.
    fn count<O: Observed + ?Sized>(
        &mut self,
        hit: &Hit,
        key: u128,
        source: IpAddr,
        now: i64,
        o: &O,
        line: Option<&str>,
    ) -> Option<(String, IpAddr)> {
        let idx = hit.idx;
        let sc = &mut self.scenarios[idx];
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
                    return None;
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
                        return None;
                    }
                    if x.recent.len() > *capacity as usize {
                        x.recent.remove(0);
                    }
                    x.recent.push(hit.distinct);
                }
                if tallied {
                    let room = x.tally.len() < crate::scenario::def::MAX_TALLIED_SOURCES as usize;
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
                        let sources =
                            if tally.len() as u32 >= crate::scenario::def::MAX_TALLIED_SOURCES {
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
                    return None;
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
                let value = o.field(field)?;
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
                    return None;
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
                    return None;
                }
                let c = m.entry(key, now, || Cooldown(i64::MIN));
                c.0 = now.saturating_add(cooldown);
                (Some("matched on first sight".to_string()), false)
            }
            _ => return None,
        };
        if hot {
            if let Some(line) = line {
                self.keep_evidence(idx, key, now, line);
            }
        }
        fired.map(|d| (d, subject))
    }

    fn keep_evidence(&mut self, idx: usize, key: u128, now: i64, line: &str) {
        let max_lines = self.opts.evidence_lines;
        if max_lines == 0 {
            return;
        }
        if !self.evidence.contains_key(&(idx, key))
            && self.evidence.len() >= self.opts.max_evidence_keys
        {
            // Full: drop the evidence of keys that went quiet (no line for an hour of event time),
            // which will most likely never alert; if none did, this line goes without evidence.
            self.evidence.retain(|_, lines| {
                lines
                    .last()
                    .is_some_and(|(t, _)| t.saturating_add(EVIDENCE_IDLE_MS) > now)
            });
            if self.evidence.len() >= self.opts.max_evidence_keys {
                return;
            }
        }
        let lines = self.evidence.entry((idx, key)).or_default();
        if lines.len() >= max_lines {
            lines.remove(0);
        }
        lines.push((now, self.redactor.redact_text(line).into_owned()));
    }

    fn alert<O: Observed + ?Sized>(
        &mut self,
        idx: usize,
        ip: IpAddr,
        o: &O,
        detail: String,
        mut evidence: Vec<(i64, String)>,
        line: Option<&str>,
    ) -> Alert {
        let def = &self.scenarios[idx].def;
        *self.stats.alerts.entry(def.name.clone()).or_default() += 1;
        if let Some(line) = line {
            if evidence.len() >= self.opts.evidence_lines.max(1) {
                evidence.remove(0);
            }
            evidence.push((
                o.ts().as_millis(),
                self.redactor.redact_text(line).into_owned(),
            ));
        }
        let trace = TraceId::new();
        let events = evidence
            .into_iter()
            .map(|(ts, text)| {
                let mut attrs = serde_json::Map::new();
                attrs.insert("line".into(), text.into());
                if !o.service().is_empty() {
                    attrs.insert("service".into(), o.service().into());
                }
                Event {
                    id: EventId::new(),
                    kind: EventKind("log_line".into()),
                    ts: Timestamp::from_millis(ts),
                    source: "scenario".into(),
                    src_ip: Some(ip),
                    target: None,
                    attrs,
                    trace_id: trace.clone(),
                }
            })
            .collect();
        let sc = score(def.severity);
        Alert {
            id: AlertId::new(),
            ts: o.ts(),
            detector: "scenario".into(),
            scenario: def.name.clone(),
            severity: def.severity,
            score: sc,
            confidence: def.confidence,
            subject: Subject::Ip(ip),
            reasons: vec![Reason {
                code: def.name.clone(),
                detail,
                weight: sc,
            }],
            evidence: events,
            trace_id: trace,
        }
    }
}

impl Detector for ScenarioEngine {
    fn id(&self) -> &str {
        "scenarios"
    }

    fn observe(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        let line = ev.attrs.get("line").and_then(|v| v.as_str());
        ScenarioEngine::observe(self, ev, line, out);
    }

    fn tick(&mut self, _now: Timestamp, _out: &mut Vec<Alert>) {}
}
