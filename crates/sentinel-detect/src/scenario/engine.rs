//! The scenario engine: runs every scenario over each observation and raises alerts on overflow.

use crate::scenario::def::{Counting, ScenarioDef};
use crate::scenario::filter::CompiledFilter;
use crate::scenario::state::{Entry, KeyMap};
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHasher};
use sentinel_core::{
    Alert, AlertId, Detector, Event, EventId, EventKind, Observed, Reason, Redactor, Severity,
    Subject, Timestamp, TraceId,
};
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

#[derive(Debug, Clone, Copy)]
struct Leaky {
    tat: i64,
    cooldown_until: i64,
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

/// The times of the last matching observations (at most `threshold`), oldest first.
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
    Window(KeyMap<Window>),
    Trigger(KeyMap<Cooldown>),
}

#[derive(Debug)]
struct Compiled {
    def: ScenarioDef,
    filter: CompiledFilter,
    state: State,
    cooldown_ms: i64,
}

/// Runs scenarios over observations.
#[derive(Debug)]
pub struct ScenarioEngine {
    scenarios: Vec<Compiled>,
    opts: EngineOptions,
    evidence: FxHashMap<(usize, u128), Vec<(i64, String)>>,
    redactor: Redactor,
    stats: EngineStats,
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
    /// An engine over the enabled scenarios in `defs`.
    pub fn new(defs: Vec<ScenarioDef>, opts: EngineOptions) -> Self {
        let cap = opts.max_keys_per_scenario;
        let scenarios = defs
            .into_iter()
            .filter(|d| d.enabled)
            .map(|def| {
                let state = match def.counting {
                    Counting::Leaky { .. } => State::Leaky(KeyMap::new(cap)),
                    Counting::Distinct { .. } => State::Distinct(KeyMap::new(cap)),
                    Counting::Window { .. } => State::Window(KeyMap::new(cap)),
                    Counting::Trigger => State::Trigger(KeyMap::new(cap)),
                };
                Compiled {
                    filter: CompiledFilter::new(&def.filter),
                    cooldown_ms: ms(def.cooldown),
                    state,
                    def,
                }
            })
            .collect();
        Self {
            scenarios,
            opts,
            evidence: FxHashMap::default(),
            redactor: Redactor::default(),
            stats: EngineStats::default(),
        }
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
                State::Window(m) => (m.len(), m.expired, m.evicted),
                State::Trigger(m) => (m.len(), m.expired, m.evicted),
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
        let now = o.ts().as_millis();
        let mut whitelisted: Option<bool> = None;
        let mut matched = false;
        for idx in 0..self.scenarios.len() {
            let sc = &self.scenarios[idx];
            if !sc.filter.kind_matches(kind) || !sc.filter.rest_matches(o) {
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
            let (key, subject_ip) = self.key(ip);
            if let Some(detail) = self.count(idx, key, now, o, line) {
                let evidence = self.evidence.remove(&(idx, key)).unwrap_or_default();
                out.push(self.alert(idx, subject_ip, o, detail, evidence, line));
            }
        }
        if whitelisted == Some(true) && !matched {
            self.stats.whitelisted += 1;
        }
        if matched {
            self.stats.matched += 1;
        }
    }

    /// Counts one matching observation; returns the alert detail when the scenario fires.
    fn count<O: Observed + ?Sized>(
        &mut self,
        idx: usize,
        key: u128,
        now: i64,
        o: &O,
        line: Option<&str>,
    ) -> Option<String> {
        let sc = &mut self.scenarios[idx];
        let cooldown = sc.cooldown_ms;
        let (fired, hot) = match (&mut sc.state, &sc.def.counting) {
            (State::Leaky(m), Counting::Leaky { capacity, leak }) => {
                let leak = ms(*leak).max(1);
                let cap = i64::from(*capacity);
                let b = m.entry(key, now, || Leaky {
                    tat: i64::MIN,
                    cooldown_until: i64::MIN,
                });
                if now < b.cooldown_until {
                    return None;
                }
                b.tat = b.tat.max(now).saturating_add(leak);
                let units = ((i128::from(b.tat) - i128::from(now) + i128::from(leak) - 1)
                    / i128::from(leak)) as i64;
                if units > cap {
                    b.tat = now;
                    b.cooldown_until = now.saturating_add(cooldown);
                    (
                        Some(format!(
                            "{units} matching lines from one source (bucket capacity {cap}, one leaks every {})",
                            humantime::format_duration(std::time::Duration::from_millis(leak as u64))
                        )),
                        false,
                    )
                } else {
                    (None, units * 2 >= cap)
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
            (State::Window(m), Counting::Window { threshold, window }) => {
                let window_ms = ms(*window);
                let threshold = (*threshold).max(1) as usize;
                let w = m.entry(key, now, || Window {
                    times: std::collections::VecDeque::new(),
                    window_ms,
                    cooldown_until: i64::MIN,
                });
                if now < w.cooldown_until {
                    return None;
                }
                // Lines can arrive slightly out of order: keep the times sorted.
                let at = w.times.partition_point(|t| *t <= now);
                w.times.insert(at, now);
                let newest = w.times.back().copied().unwrap_or(now);
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
