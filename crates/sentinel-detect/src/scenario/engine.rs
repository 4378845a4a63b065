//! The scenario engine: runs every scenario over each observation and raises alerts on overflow.

use crate::scenario::counting::{compile, Compiled, Hit};
use crate::scenario::def::{ScenarioDef, ScenarioError};
use crate::scenario::views::{Memo, MemoBuf, Views};
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHasher};
use sentinel_core::{
    Alert, AlertId, Detector, Event, EventId, EventKind, Observed, Reason, Redactor, Severity,
    Subject, Timestamp, TraceId,
};
use std::hash::Hasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Per-scenario counters an engine keeps in atomics, readable from another task while the engine runs
/// (the dashboard's sources page): observations each scenario counted, and alerts it raised. The set of
/// scenarios is fixed when the engine is built (the configuration), never by input.
#[derive(Debug, Default)]
pub struct ScenarioTally {
    names: Vec<String>,
    matched: Vec<AtomicU64>,
    alerts: Vec<AtomicU64>,
}

/// One scenario's figures in a [`ScenarioTally::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioCounts {
    /// The scenario's name.
    pub name: String,
    /// Observations it counted (not whitelisted, not a cancel).
    pub matched: u64,
    /// Alerts it raised.
    pub alerts: u64,
}

impl ScenarioTally {
    fn new(names: Vec<String>) -> Self {
        let n = names.len();
        Self {
            names,
            matched: (0..n).map(|_| AtomicU64::new(0)).collect(),
            alerts: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn bump(v: &[AtomicU64], idx: usize) {
        if let Some(c) = v.get(idx) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every running scenario's figures now, in definition order.
    pub fn read(&self) -> Vec<ScenarioCounts> {
        self.names
            .iter()
            .zip(self.matched.iter().zip(&self.alerts))
            .map(|(name, (m, a))| ScenarioCounts {
                name: name.clone(),
                matched: m.load(Ordering::Relaxed),
                alerts: a.load(Ordering::Relaxed),
            })
            .collect()
    }
}

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
    tally: Arc<ScenarioTally>,
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
        let tally = Arc::new(ScenarioTally::new(
            scenarios.iter().map(|c| c.def.name.clone()).collect(),
        ));
        Self {
            tally,
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

    /// The per-scenario counters, shared: they keep moving while the engine runs elsewhere.
    pub fn tally(&self) -> Arc<ScenarioTally> {
        self.tally.clone()
    }

    /// Counters, with the current number of live keys.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        let (mut live, mut expired, mut evicted) = (0u64, 0u64, 0u64);
        for c in &self.scenarios {
            let (l, x, e) = c.counters();
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
                let counts = cancel || (kind_ok && sc.filter.rest_matches(&mut memo, views));
                if !counts {
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
            ScenarioTally::bump(&self.tally.matched, hit.idx);
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
        let had = sc.forget(key);
        if had {
            self.evidence.remove(&(idx, key));
        }
    }

    /// Counts one matching observation; returns the alert detail and subject when the scenario
    /// fires, and keeps the line as evidence while the key is close to firing.
    fn count<O: Observed + ?Sized>(
        &mut self,
        hit: &Hit,
        key: u128,
        source: IpAddr,
        now: i64,
        o: &O,
        line: Option<&str>,
    ) -> Option<(String, IpAddr)> {
        let (fired, hot) = self.scenarios[hit.idx].pour(hit, key, source, now, o);
        if hot {
            if let Some(line) = line {
                self.keep_evidence(hit.idx, key, now, line);
            }
        }
        fired
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
        ScenarioTally::bump(&self.tally.alerts, idx);
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

    /// Drops the keys idle at `now` (their window or bucket has run out) without waiting for a new
    /// key to make room: the state of an attacker who went quiet is freed on time. Raises nothing:
    /// a scenario fires on a counted event, never on silence.
    fn tick(&mut self, now: Timestamp, _out: &mut Vec<Alert>) {
        let now = now.as_millis();
        for c in &mut self.scenarios {
            c.expire_idle(now);
        }
    }

    fn state_counts(&self) -> sentinel_core::StateCounts {
        let st = self.stats();
        sentinel_core::StateCounts {
            expired: st.expired_keys,
            evicted: st.evicted_keys,
        }
    }
}
