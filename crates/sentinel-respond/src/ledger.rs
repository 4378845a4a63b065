//! The action ledger: what Sentinel has applied, until when, and how to undo it.
//!
//! The ledger decides each action's effective mode (the actuator's own `observe | enforce`), stretches
//! TTLs for repeat offenders (like fail2ban's `bantime.increment`), refuses past a per-kind cap of live
//! actions (blast radius), applies through the actuators, and remembers every live action so the expiry
//! loop can revert it on time. At start-up, [`Ledger::reconcile`] compares the records with what the
//! kernel or engine really holds (`observe`), re-applies what should still be there, reverts what has
//! expired or is orphaned (only Sentinel's own), and reports each correction. It returns every record it
//! changes; storing them is the caller's job.

use crate::responder::Responder;
use sentinel_core::{
    ActError, ActionId, ActionKind, ActionRecord, ActionSpec, ActionState, Applied, Mode, Origin,
    Plan, Preview, Timestamp, TraceId,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Repeat offenders get longer TTLs: `ttl × factor^(earlier actions within window)`, at most `max_ttl`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Escalation {
    /// Multiplier per earlier action.
    pub factor: u32,
    /// How far back earlier actions count.
    pub window: Duration,
    /// The longest TTL escalation may reach.
    pub max_ttl: Duration,
}

/// The ledger's settings.
#[derive(Debug, Clone, Default)]
pub struct LedgerConfig {
    /// Effective mode per kind; a kind not listed uses the plan's mode.
    pub modes: HashMap<ActionKind, Mode>,
    /// Live actions allowed per kind; a kind not listed is unlimited.
    pub max_live: HashMap<ActionKind, usize>,
    /// TTL escalation for repeat offenders.
    pub escalation: Option<Escalation>,
    /// The longest TTL any action may have (`policy.max_ttl`): matrix plans, escalation and manual
    /// decisions alike are capped to it.
    pub max_ttl: Option<Duration>,
}

/// One correction made by reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    /// The record after the correction.
    pub record: ActionRecord,
    /// What was done and why.
    pub note: String,
}

/// An action screened and previewed, waiting to be applied (or already settled).
struct Prepared {
    rec: ActionRecord,
    spec: ActionSpec,
    notes: Vec<String>,
    apply: bool,
    track: bool,
    /// The action this one replaced (already reverted), to be recorded too.
    superseded: Option<ActionRecord>,
}

impl Prepared {
    /// An action that ends here (refused or failed before applying), with why.
    fn settled(
        mut rec: ActionRecord,
        spec: ActionSpec,
        notes: Vec<String>,
        state: ActionState,
        why: String,
    ) -> Self {
        rec.state = state;
        rec.error = Some(why);
        Prepared {
            rec,
            spec,
            notes,
            apply: false,
            track: false,
            superseded: None,
        }
    }
}

/// What an action acts on: its kind, subject and range (if any). One live action per target.
type Target = (ActionKind, String, Option<String>);

fn target_of(spec: &ActionSpec) -> Target {
    match (spec.kind, spec.params.cidr()) {
        // A range is one set element whatever address inside it was the subject: two blocks of the
        // same range are the same target (the second would only overwrite the first's timeout, and
        // reverting either would lift both).
        (ActionKind::BlockIp, Some(c)) => (spec.kind, "range".into(), Some(c.to_string())),
        (_, cidr) => (spec.kind, spec.subject.key(), cidr.map(|c| c.to_string())),
    }
}

/// What reconcile matches records and observed state on: the kind, the subject and, for a block, the
/// set element (a range's element is listed under its network address, not the subject's).
type Found = (ActionKind, String, Option<String>);

fn found_key(a: &Applied) -> Found {
    let element = match a.kind {
        ActionKind::BlockIp => a
            .token
            .get("element")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    (a.kind, a.subject.key(), element)
}

fn record_key(rec: &ActionRecord) -> Found {
    match (&rec.applied, rec.spec.kind) {
        (Some(a), ActionKind::BlockIp) if a.token.get("element").is_some() => found_key(a),
        _ => (rec.spec.kind, rec.spec.subject.key(), None),
    }
}

/// Live actions and their history.
pub struct Ledger {
    responder: Responder,
    cfg: LedgerConfig,
    live: Mutex<BTreeMap<ActionId, ActionRecord>>,
    history: Mutex<History>,
    /// Failed reverts: attempts so far and when to try next (exponential backoff, capped).
    retry: Mutex<HashMap<ActionId, (u32, i64)>>,
    /// Serialises deciding-and-applying, so caps and one-action-per-target hold between the act stage
    /// and manual decisions arriving at the same time.
    applying: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct History {
    by_subject: HashMap<String, VecDeque<i64>>,
    order: VecDeque<String>,
}

const MAX_HISTORY_SUBJECTS: usize = 100_000;
/// Live records kept in memory at most (observe-mode ones are dropped from tracking past this).
const MAX_TRACKED: usize = 200_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// A ledger over a responder's actuators and allowlist.
    pub fn new(responder: Responder, cfg: LedgerConfig) -> Self {
        Self {
            responder,
            cfg,
            live: Mutex::new(BTreeMap::new()),
            history: Mutex::new(History::default()),
            retry: Mutex::new(HashMap::new()),
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// The longest TTL any action gets (`policy.max_ttl`), if one is set.
    pub fn max_ttl(&self) -> Option<Duration> {
        self.cfg.max_ttl
    }

    /// The responder (allowlist and actuators).
    pub fn responder(&self) -> &Responder {
        &self.responder
    }

    /// The mode an action of this kind runs in, given the plan's.
    pub fn mode_for(&self, kind: ActionKind, plan_mode: Mode) -> Mode {
        self.cfg.modes.get(&kind).copied().unwrap_or(plan_mode)
    }

    /// Live (applied, not yet reverted) actions, soonest expiry first.
    pub fn live(&self) -> Vec<ActionRecord> {
        let mut v: Vec<ActionRecord> = lock(&self.live).values().cloned().collect();
        v.sort_by_key(|r| r.expires_at);
        v
    }

    /// One page of live actions, newest first (by id): at most `limit` after (older than) `before`,
    /// and whether more follow. Only the page is cloned, however many are live (a listing of 100,000
    /// decisions must not copy them all per request).
    pub fn live_page(&self, before: Option<ActionId>, limit: usize) -> (Vec<ActionRecord>, bool) {
        let live = lock(&self.live);
        let mut it = match before {
            Some(b) => live.range(..b),
            None => live.range(..),
        }
        .rev()
        .map(|(_, r)| r);
        let page: Vec<ActionRecord> = it.by_ref().take(limit).cloned().collect();
        let more = it.next().is_some();
        (page, more)
    }

    /// When the next live action expires.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        let retry = lock(&self.retry);
        lock(&self.live)
            .values()
            .map(|r| {
                let at = retry.get(&r.id).map_or(i64::MIN, |(_, at)| *at);
                Timestamp::from_millis(r.expires_at.as_millis().max(at))
            })
            .min()
    }

    /// How many earlier actions against a subject fall in the window, without recording one (what a
    /// dry run escalates by, so it shows the TTL the same decision would really get).
    fn earlier(&self, subject: &str, now: i64) -> u32 {
        let Some(esc) = self.cfg.escalation else {
            return 0;
        };
        let window = i64::try_from(esc.window.as_millis()).unwrap_or(i64::MAX);
        lock(&self.history).by_subject.get(subject).map_or(0, |q| {
            q.iter().filter(|t| t.saturating_add(window) >= now).count() as u32
        })
    }

    /// Records an action against a subject and returns how many earlier ones fall in the window.
    fn remember(&self, subject: &str, now: i64) -> u32 {
        let Some(esc) = self.cfg.escalation else {
            return 0;
        };
        let window = i64::try_from(esc.window.as_millis()).unwrap_or(i64::MAX);
        let mut h = lock(&self.history);
        if !h.by_subject.contains_key(subject) {
            if h.order.len() >= MAX_HISTORY_SUBJECTS {
                if let Some(old) = h.order.pop_front() {
                    h.by_subject.remove(&old);
                }
            }
            h.order.push_back(subject.to_owned());
        }
        let q = h.by_subject.entry(subject.to_owned()).or_default();
        while q.front().is_some_and(|t| t.saturating_add(window) < now) {
            q.pop_front();
        }
        let earlier = q.len() as u32;
        q.push_back(now);
        if q.len() > 64 {
            q.pop_front();
        }
        earlier
    }

    fn escalate(&self, ttl_secs: u64, earlier: u32) -> (u64, Option<String>) {
        let Some(esc) = self.cfg.escalation else {
            return (ttl_secs, None);
        };
        if earlier == 0 {
            return (ttl_secs, None);
        }
        let factor = u64::from(esc.factor.max(1)).saturating_pow(earlier.min(32));
        let ttl = ttl_secs
            .saturating_mul(factor)
            .min(esc.max_ttl.as_secs().max(ttl_secs));
        (ttl, Some(format!("repeat offender ({earlier} earlier within {}): TTL {ttl_secs}s × {factor} → {ttl}s", humantime::format_duration(esc.window))))
    }

    fn new_record(by: &By<'_>, spec: &ActionSpec, mode: Mode, now: Timestamp) -> ActionRecord {
        ActionRecord {
            id: ActionId::new(),
            origin: by.origin.clone(),
            spec: spec.clone(),
            mode,
            state: ActionState::Planned,
            created: now,
            updated: now,
            expires_at: now.plus(Duration::from_secs(spec.ttl_secs)),
            preview: Preview {
                kind: spec.kind,
                operations: Vec::new(),
            },
            applied: None,
            error: None,
            trace_id: by.trace_id.clone(),
        }
    }

    /// Carries out a plan: one record per action. Enforced actions that apply become live.
    pub async fn execute(&self, plan: &Plan) -> Vec<ActionRecord> {
        let mut out = Vec::with_capacity(plan.actions.len());
        for spec in &plan.actions {
            let mode = self.mode_for(spec.kind, plan.mode);
            let (rec, superseded) = self
                .execute_one(&By::plan(plan), spec.clone(), mode, false)
                .await;
            out.extend(superseded);
            out.push(rec);
        }
        out
    }

    async fn execute_one(
        &self,
        by: &By<'_>,
        spec: ActionSpec,
        mode: Mode,
        dry_run: bool,
    ) -> (ActionRecord, Option<ActionRecord>) {
        let _one_at_a_time = self.applying.lock().await;
        let mut pending = HashMap::new();
        let mut targets = std::collections::HashSet::new();
        let p = self
            .prepare(by, spec, mode, dry_run, &mut pending, &mut targets)
            .await;
        let result = match (p.apply, self.responder.actuator(p.spec.kind)) {
            (true, Some(act)) => Some(act.apply(&p.spec).await),
            _ => None,
        };
        self.finish(p, result)
    }

    /// Carries out many plans at once (what the act stage found queued together): every action is
    /// screened and previewed as in [`Ledger::execute`], then the enforced ones are applied with one
    /// `apply_batch` per kind — one nftables transaction for all the blocks. One record list per plan.
    pub async fn execute_many(&self, plans: &[Plan]) -> Vec<Vec<ActionRecord>> {
        let _one_at_a_time = self.applying.lock().await;
        let mut pending_per_kind = HashMap::new();
        let mut targets = std::collections::HashSet::new();
        let mut prepared: Vec<(usize, Prepared)> = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            let by = By::plan(plan);
            for spec in &plan.actions {
                let mode = self.mode_for(spec.kind, plan.mode);
                let p = self
                    .prepare(
                        &by,
                        spec.clone(),
                        mode,
                        false,
                        &mut pending_per_kind,
                        &mut targets,
                    )
                    .await;
                prepared.push((i, p));
            }
        }
        let mut results: Vec<Option<Result<Applied, ActError>>> =
            prepared.iter().map(|_| None).collect();
        for kind in ActionKind::ALL {
            let idx: Vec<usize> = (0..prepared.len())
                .filter(|j| prepared[*j].1.apply && prepared[*j].1.spec.kind == kind)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let Some(act) = self.responder.actuator(kind) else {
                continue;
            };
            let specs: Vec<ActionSpec> = idx.iter().map(|j| prepared[*j].1.spec.clone()).collect();
            for (j, r) in idx.into_iter().zip(act.apply_batch(&specs).await) {
                results[j] = Some(r);
            }
        }
        let mut out: Vec<Vec<ActionRecord>> = plans
            .iter()
            .map(|p| Vec::with_capacity(p.actions.len()))
            .collect();
        for ((i, p), r) in prepared.into_iter().zip(results) {
            let (rec, superseded) = self.finish(p, r);
            out[i].extend(superseded);
            out[i].push(rec);
        }
        out
    }

    /// Everything before applying: allowlist, escalation, preview, cap. `pending` counts the enforced
    /// actions of each kind already prepared in this batch, so the cap holds across it.
    async fn prepare(
        &self,
        by: &By<'_>,
        mut spec: ActionSpec,
        mode: Mode,
        dry_run: bool,
        pending: &mut HashMap<ActionKind, usize>,
        batch_targets: &mut std::collections::HashSet<Target>,
    ) -> Prepared {
        let now = Timestamp::now();
        let mut notes = Vec::new();
        // Every action is checked again here, whatever its origin: parameters kept from a record
        // stored before they were typed (`ActionParams::Stored`) are never applied.
        if let Err(e) = spec.check() {
            let rec = Self::new_record(by, &spec, mode, now);
            return Prepared::settled(rec, spec, notes, ActionState::Refused, e.to_string());
        }
        if let Some(why) = self.responder.screen(&spec) {
            let rec = Self::new_record(by, &spec, mode, now);
            return Prepared::settled(rec, spec, notes, ActionState::Refused, why);
        }
        {
            // A dry run escalates as the real decision would, without counting as an offence.
            let key = format!("{}:{}", spec.kind, spec.subject.key());
            let earlier = if dry_run {
                self.earlier(&key, now.as_millis())
            } else {
                self.remember(&key, now.as_millis())
            };
            let (ttl, note) = self.escalate(spec.ttl_secs, earlier);
            spec.ttl_secs = ttl;
            notes.extend(note);
        }
        if let Some(max) = self.cfg.max_ttl {
            let max = max.as_secs().max(1);
            if spec.ttl_secs > max {
                notes.push(format!(
                    "TTL {}s capped at policy.max_ttl ({max}s)",
                    spec.ttl_secs
                ));
                spec.ttl_secs = max;
            }
        }
        let mut rec = Self::new_record(by, &spec, mode, now);
        let Some(act) = self.responder.actuator(spec.kind) else {
            let why = format!("no actuator for {}", spec.kind);
            return Prepared::settled(rec, spec, notes, ActionState::Failed, why);
        };
        match act.plan(&spec).await {
            Ok(p) => rec.preview = p,
            Err(e) => {
                return Prepared::settled(rec, spec, notes, ActionState::Refused, e.to_string())
            }
        }
        if mode == Mode::Enforce && !dry_run {
            // One live action per target: a longer one replaces the one in force (reverted first,
            // recorded as superseded), a shorter or equal one is refused as already in force.
            let target = target_of(&spec);
            let in_force = lock(&self.live)
                .values()
                .find(|r| r.state == ActionState::Applied && target_of(&r.spec) == target)
                .cloned();
            let mut superseded = None;
            if let Some(ex) = in_force {
                if ex.expires_at >= rec.expires_at {
                    let why = format!(
                        "already in force until {} (action {})",
                        ex.expires_at, ex.id
                    );
                    return Prepared::settled(rec, spec, notes, ActionState::Refused, why);
                }
                if let Some(mut old) = self.revert(ex.id, ActionState::Reverted).await {
                    old.error = Some(format!(
                        "superseded by action {} (until {})",
                        rec.id, rec.expires_at
                    ));
                    superseded = Some(old);
                }
            }
            if let Some(why) = self.range_clash(&spec, &target, batch_targets) {
                return Prepared::settled(rec, spec, notes, ActionState::Refused, why);
            }
            if !batch_targets.insert(target) {
                let why = "an action on the same target is already in this batch".to_string();
                return Prepared::settled(rec, spec, notes, ActionState::Refused, why);
            }
            let queued = pending.entry(spec.kind).or_insert(0);
            if let Some(cap) = self.cfg.max_live.get(&spec.kind) {
                let live = lock(&self.live)
                    .values()
                    .filter(|r| r.spec.kind == spec.kind && r.state == ActionState::Applied)
                    .count();
                if live + *queued >= *cap {
                    let why = format!("cap of {cap} live {} actions reached", spec.kind);
                    return Prepared::settled(rec, spec, notes, ActionState::Refused, why);
                }
            }
            *queued += 1;
            return Prepared {
                rec,
                spec,
                notes,
                apply: true,
                track: false,
                superseded,
            };
        }
        let track = mode == Mode::Observe && !dry_run;
        Prepared {
            rec,
            spec,
            notes,
            apply: false,
            track,
            superseded: None,
        }
    }

    /// Why a range cannot be added next to what is in force or queued in this batch: nftables refuses a
    /// range overlapping another one of the same set ("conflicting intervals"), which would fail the
    /// apply, or the whole batch's transaction, after its dry run had passed.
    fn range_clash(
        &self,
        spec: &ActionSpec,
        target: &Target,
        batch_targets: &std::collections::HashSet<Target>,
    ) -> Option<String> {
        let net = match (spec.kind, spec.params.cidr()) {
            (ActionKind::BlockIp, Some(c)) => c.net(),
            _ => return None,
        };
        let overlaps = |o: ipnet::IpNet| o.contains(&net.network()) || net.contains(&o.network());
        let live = lock(&self.live)
            .values()
            .filter(|r| r.state == ActionState::Applied && target_of(&r.spec) != *target)
            .filter_map(|r| match (r.spec.kind, r.spec.params.cidr()) {
                (ActionKind::BlockIp, Some(o)) if overlaps(o.net()) => {
                    Some(format!("overlaps range {o} of live action {}", r.id))
                }
                _ => None,
            })
            .next();
        let queued = || {
            batch_targets.iter().find_map(|(kind, _, cidr)| {
                let o: ipnet::IpNet = cidr.as_deref()?.parse().ok()?;
                (*kind == ActionKind::BlockIp && overlaps(o))
                    .then(|| format!("overlaps range {o} already in this batch"))
            })
        };
        live.or_else(queued).map(|why| format!("range {net} {why}"))
    }

    /// Everything after applying: the record's state, the live map, the notes.
    fn finish(
        &self,
        p: Prepared,
        result: Option<Result<Applied, ActError>>,
    ) -> (ActionRecord, Option<ActionRecord>) {
        let Prepared {
            mut rec,
            notes,
            track,
            superseded,
            ..
        } = p;
        match result {
            Some(Ok(applied)) => {
                rec.state = ActionState::Applied;
                rec.applied = Some(applied);
                rec.updated = Timestamp::now();
                lock(&self.live).insert(rec.id, rec.clone());
            }
            Some(Err(e)) => {
                rec.state = ActionState::Failed;
                rec.error = Some(e.to_string());
                rec.updated = Timestamp::now();
            }
            None => {}
        }
        if track && rec.state == ActionState::Planned {
            // Observe-mode decisions are tracked too (listed, expired on time), within a bound.
            let mut live = lock(&self.live);
            if live.len() < MAX_TRACKED {
                live.insert(rec.id, rec.clone());
            }
        }
        if !notes.is_empty() {
            let joined = notes.join("; ");
            rec.error = Some(match rec.error.take() {
                Some(e) => format!("{e}; {joined}"),
                None => joined,
            });
        }
        (rec, superseded)
    }

    /// A manual decision (CLI or API): applied now in the actuator's mode, or only previewed.
    /// The second record, if any, is the action this one superseded (already reverted).
    /// `mode` is the one manual decisions start from (the actuator's own mode still wins); the
    /// record's origin is [`Origin::Operator`] and its trace is the request's.
    pub async fn decide(
        &self,
        mode: Mode,
        trace_id: &TraceId,
        spec: ActionSpec,
        dry_run: bool,
    ) -> (ActionRecord, Option<ActionRecord>) {
        let mode = self.mode_for(spec.kind, mode);
        let by = By {
            origin: Origin::Operator,
            trace_id,
        };
        self.execute_one(&by, spec, mode, dry_run).await
    }

    /// Reverts one live action (`Reverted` by an operator, `Expired` by the clock).
    pub async fn revert(&self, id: ActionId, state: ActionState) -> Option<ActionRecord> {
        let rec = lock(&self.live).remove(&id)?;
        Some(self.undo(rec, state).await)
    }

    async fn undo(&self, mut rec: ActionRecord, state: ActionState) -> ActionRecord {
        let result = match (&rec.applied, self.responder.actuator(rec.spec.kind)) {
            (Some(token), Some(act)) => act.revert(token).await,
            _ => Ok(()),
        };
        rec.updated = Timestamp::now();
        match result {
            Ok(()) => {
                rec.state = state;
                lock(&self.retry).remove(&rec.id);
            }
            Err(e) => {
                // Keep it live and retry later, backing off (1 s, 2 s, 4 s … at most 10 min).
                let mut retry = lock(&self.retry);
                let attempts = retry.get(&rec.id).map_or(0, |(n, _)| *n) + 1;
                let wait_ms = 1000i64.saturating_mul(1 << attempts.min(10)).min(600_000);
                retry.insert(
                    rec.id,
                    (attempts, rec.updated.as_millis().saturating_add(wait_ms)),
                );
                rec.error = Some(format!(
                    "revert failed (attempt {attempts}), retrying in {}s: {e}",
                    wait_ms / 1000
                ));
                lock(&self.live).insert(rec.id, rec.clone());
            }
        }
        rec
    }

    /// Reverts every live action whose time is up.
    pub async fn expire_due(&self, now: Timestamp) -> Vec<ActionRecord> {
        let retry = lock(&self.retry).clone();
        let due: Vec<ActionId> = lock(&self.live)
            .values()
            .filter(|r| r.expires_at <= now)
            .filter(|r| {
                retry
                    .get(&r.id)
                    .is_none_or(|(_, at)| *at <= now.as_millis())
            })
            .map(|r| r.id)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            if let Some(r) = self.revert(id, ActionState::Expired).await {
                out.push(r);
            }
        }
        out
    }

    /// Start-up: tracks again the observe-mode decisions the store holds as planned (so they are listed
    /// and expire on time after a restart, as before it), within the same bound as at run time.
    /// Returns how many are tracked.
    pub fn track_planned(&self, records: Vec<ActionRecord>) -> usize {
        let mut live = lock(&self.live);
        let mut n = 0;
        for r in records {
            if r.state != ActionState::Planned || r.mode != Mode::Observe {
                continue;
            }
            if live.len() >= MAX_TRACKED {
                break;
            }
            if live.insert(r.id, r).is_none() {
                n += 1;
            }
        }
        n
    }

    /// Start-up: takes the records the store says are applied, compares them with what each actuator
    /// observes, and makes the two agree. Returns every correction.
    pub async fn reconcile(&self, records: Vec<ActionRecord>) -> Result<Vec<Correction>, ActError> {
        let now = Timestamp::now();
        let mut observed: HashMap<Found, Applied> = HashMap::new();
        let mut unreadable: Vec<(ActionKind, String)> = Vec::new();
        for kind in ActionKind::ALL {
            if let Some(act) = self.responder.actuator(kind) {
                match act.observe().await {
                    Ok(found) => {
                        for a in found {
                            observed.insert(found_key(&a), a);
                        }
                    }
                    // One backend that cannot be read must not keep the others (or start-up) down.
                    Err(e) => unreadable.push((kind, e.to_string())),
                }
            }
        }
        let mut out = Vec::new();
        for mut rec in records {
            if rec.state != ActionState::Applied {
                continue;
            }
            let present = observed.remove(&record_key(&rec));
            if rec.expires_at <= now {
                let r = self.undo(rec, ActionState::Expired).await;
                let note = if present.is_some() {
                    "expired while Sentinel was down: reverted"
                } else {
                    "expired while Sentinel was down: already gone"
                };
                out.push(Correction {
                    record: r,
                    note: note.into(),
                });
                continue;
            }
            if present.is_none() {
                let Some(act) = self.responder.actuator(rec.spec.kind) else {
                    continue;
                };
                let remaining =
                    (rec.expires_at.as_millis() - now.as_millis()).max(1000) as u64 / 1000;
                let mut spec = rec.spec.clone();
                spec.ttl_secs = remaining.max(1);
                if let Err(e) = spec.check() {
                    rec.state = ActionState::Failed;
                    rec.error = Some(format!("not re-applied at start-up: {e}"));
                    rec.updated = Timestamp::now();
                    out.push(Correction {
                        record: rec,
                        note: "missing, and its stored parameters cannot be applied".into(),
                    });
                    continue;
                }
                match act.apply(&spec).await {
                    Ok(applied) => {
                        rec.applied = Some(applied);
                        rec.updated = Timestamp::now();
                        lock(&self.live).insert(rec.id, rec.clone());
                        out.push(Correction {
                            record: rec,
                            note: format!(
                                "missing from the {}: re-applied for the remaining {remaining}s",
                                backend(spec.kind)
                            ),
                        });
                    }
                    Err(e) => {
                        rec.state = ActionState::Failed;
                        rec.error = Some(format!("re-apply at start-up failed: {e}"));
                        rec.updated = Timestamp::now();
                        out.push(Correction {
                            record: rec,
                            note: "missing and could not be re-applied".into(),
                        });
                    }
                }
                continue;
            }
            lock(&self.live).insert(rec.id, rec);
        }
        // What is in place with no live record is an orphan of Sentinel's own: remove it.
        for ((kind, subject, _), token) in observed {
            if let Some(act) = self.responder.actuator(kind) {
                let removed = act.revert(&token).await;
                let state = if removed.is_ok() {
                    ActionState::Reverted
                } else {
                    ActionState::Failed
                };
                let error = removed.as_ref().err().map(|e| e.to_string());
                let plan_less =
                    start_up_record(kind, token.subject.clone(), state, Some(token), error, now);
                let note = match &removed {
                    Ok(()) => format!("orphan {kind} on {subject} with no live record: removed"),
                    Err(e) => format!(
                        "orphan {kind} on {subject} with no live record: could not remove: {e}"
                    ),
                };
                out.push(Correction {
                    record: plan_less,
                    note,
                });
            }
        }
        for (kind, why) in unreadable {
            let me = sentinel_core::Subject::User("sentinel".into());
            out.push(Correction {
                record: start_up_record(kind, me, ActionState::Failed, None, Some(why.clone()), now),
                note: format!("could not observe what is in place ({kind}: {why}); its records are kept as they are"),
            });
        }
        Ok(out)
    }
}

/// A record of something reconcile did outside any plan (an orphan removed, a backend unreadable).
fn start_up_record(
    kind: ActionKind,
    subject: sentinel_core::Subject,
    state: ActionState,
    applied: Option<Applied>,
    error: Option<String>,
    now: Timestamp,
) -> ActionRecord {
    ActionRecord {
        id: ActionId::new(),
        origin: Origin::Reconcile,
        spec: ActionSpec::plain(kind, subject, 0),
        mode: Mode::Enforce,
        state,
        created: now,
        updated: Timestamp::now(),
        expires_at: now,
        preview: Preview {
            kind,
            operations: Vec::new(),
        },
        applied,
        error,
        trace_id: sentinel_core::TraceId::new(),
    }
}

/// Who an action is taken for: its origin and the trace it continues.
struct By<'a> {
    origin: Origin,
    trace_id: &'a TraceId,
}

impl<'a> By<'a> {
    fn plan(plan: &'a Plan) -> Self {
        By {
            origin: Origin::of_plan(plan),
            trace_id: &plan.trace_id,
        }
    }
}

fn backend(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::BlockIp | ActionKind::RateLimit | ActionKind::RedirectToHoneypot => "kernel",
        ActionKind::IsolateContainer => "Docker engine",
        ActionKind::QuarantineFile => "quarantine",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Allowlist;
    use async_trait::async_trait;
    use sentinel_core::{
        ActionParams, Actuator, AlertId, InvestigationId, PlanId, Severity, Subject, TraceId,
    };
    use std::sync::Arc;

    /// An in-memory stand-in for a kernel set, to test the ledger's bookkeeping (the real actuators
    /// have their own tests against nftables, Docker and the file system).
    #[derive(Default, Clone)]
    struct Table(Arc<Mutex<HashMap<String, Applied>>>);

    #[async_trait]
    impl Actuator for Table {
        fn kind(&self) -> ActionKind {
            ActionKind::BlockIp
        }
        async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
            Ok(Preview {
                kind: a.kind,
                operations: vec![format!("add {}", a.subject)],
            })
        }
        async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
            let t = Applied {
                kind: a.kind,
                subject: a.subject.clone(),
                token: serde_json::json!({"ttl": a.ttl_secs}),
                operations: vec![format!("add {}", a.subject)],
            };
            lock(&self.0).insert(a.subject.key(), t.clone());
            Ok(t)
        }
        async fn revert(&self, t: &Applied) -> Result<(), ActError> {
            lock(&self.0).remove(&t.subject.key());
            Ok(())
        }
        async fn observe(&self) -> Result<Vec<Applied>, ActError> {
            Ok(lock(&self.0).values().cloned().collect())
        }
    }

    fn plan(mode: Mode, ip: &str, ttl: u64) -> Plan {
        Plan {
            id: PlanId::new(),
            ts: Timestamp::now(),
            alert_id: AlertId::new(),
            investigation_id: InvestigationId::new(),
            mode,
            severity: Severity::High,
            risk_band: "high".into(),
            confidence_band: "high".into(),
            actions: vec![ActionSpec::plain(
                ActionKind::BlockIp,
                Subject::Ip(ip.parse().unwrap()),
                ttl,
            )],
            reason: "test".into(),
            trace_id: TraceId::new(),
            scope: sentinel_core::Scope::Global,
        }
    }

    fn ledger(table: &Table, cfg: LedgerConfig) -> Ledger {
        let r = Responder::new(Allowlist::new(["192.0.2.0/24".parse().unwrap()]))
            .with_actuator(Box::new(table.clone()));
        Ledger::new(r, cfg)
    }

    #[tokio::test]
    async fn enforced_actions_go_live_and_expire() {
        let t = Table::default();
        let l = ledger(&t, LedgerConfig::default());
        let recs = l.execute(&plan(Mode::Enforce, "203.0.113.7", 60)).await;
        assert_eq!(recs[0].state, ActionState::Applied);
        // Several plans at once: one batch, the cap and allowlist still hold per action.
        let many = l
            .execute_many(&[
                plan(Mode::Enforce, "203.0.113.8", 60),
                plan(Mode::Enforce, "192.0.2.7", 60),
                plan(Mode::Observe, "203.0.113.9", 60),
            ])
            .await;
        assert_eq!(many[0][0].state, ActionState::Applied);
        assert_eq!(many[1][0].state, ActionState::Refused);
        assert_eq!(many[2][0].state, ActionState::Planned);
        assert!(lock(&t.0).contains_key("ip:203.0.113.8"));
        l.revert(many[0][0].id, ActionState::Reverted)
            .await
            .unwrap();
        l.revert(many[2][0].id, ActionState::Reverted)
            .await
            .unwrap();
        assert_eq!(l.live().len(), 1);
        assert!(lock(&t.0).contains_key("ip:203.0.113.7"));
        assert!(l.expire_due(Timestamp::now()).await.is_empty(), "not yet");
        let later = Timestamp::now().plus(Duration::from_secs(61));
        let expired = l.expire_due(later).await;
        assert_eq!(expired[0].state, ActionState::Expired);
        assert!(l.live().is_empty());
        assert!(lock(&t.0).is_empty(), "reverted in the backend");
    }

    #[tokio::test]
    async fn per_kind_mode_allowlist_and_cap() {
        let t = Table::default();
        let mut cfg = LedgerConfig::default();
        cfg.max_live.insert(ActionKind::BlockIp, 2);
        let l = ledger(&t, cfg.clone());
        assert_eq!(
            l.execute(&plan(Mode::Enforce, "192.0.2.9", 60)).await[0].state,
            ActionState::Refused
        );
        for ip in ["203.0.113.1", "203.0.113.2"] {
            assert_eq!(
                l.execute(&plan(Mode::Enforce, ip, 60)).await[0].state,
                ActionState::Applied
            );
        }
        let third = l.execute(&plan(Mode::Enforce, "203.0.113.3", 60)).await;
        assert_eq!(third[0].state, ActionState::Refused);
        assert!(third[0].error.as_deref().unwrap().contains("cap of 2"));
        cfg.modes.insert(ActionKind::BlockIp, Mode::Observe);
        let observe = ledger(&Table::default(), cfg);
        let r = observe
            .execute(&plan(Mode::Enforce, "203.0.113.4", 60))
            .await;
        assert_eq!(
            (r[0].state, r[0].mode),
            (ActionState::Planned, Mode::Observe)
        );
    }

    /// A backend whose reverts always fail.
    #[derive(Clone, Default)]
    struct Stuck(Table);

    #[async_trait]
    impl Actuator for Stuck {
        fn kind(&self) -> ActionKind {
            ActionKind::BlockIp
        }
        async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
            self.0.plan(a).await
        }
        async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
            self.0.apply(a).await
        }
        async fn revert(&self, _t: &Applied) -> Result<(), ActError> {
            Err(ActError::Backend("stuck".into()))
        }
        async fn observe(&self) -> Result<Vec<Applied>, ActError> {
            self.0.observe().await
        }
    }

    #[tokio::test]
    async fn failed_reverts_back_off_instead_of_spinning() {
        let r = Responder::new(Allowlist::new([])).with_actuator(Box::new(Stuck::default()));
        let l = Ledger::new(r, LedgerConfig::default());
        let rec = l
            .execute(&plan(Mode::Enforce, "203.0.113.60", 1))
            .await
            .remove(0);
        let at = rec.expires_at;
        let first = l.expire_due(at).await;
        assert_eq!(first.len(), 1);
        assert!(first[0].error.as_deref().unwrap().contains("attempt 1"));
        assert!(l.expire_due(at).await.is_empty(), "not again at once");
        assert!(
            l.next_expiry().unwrap() > at,
            "the loop waits for the retry"
        );
        let later = Timestamp::from_millis(at.as_millis() + 2_500);
        assert!(l.expire_due(later).await[0]
            .error
            .as_deref()
            .unwrap()
            .contains("attempt 2"));
    }

    #[tokio::test]
    async fn live_decisions_are_paged_newest_first_copying_only_the_page() {
        let t = Table::default();
        let l = ledger(&t, LedgerConfig::default());
        for i in 1..=25u8 {
            let r = l
                .execute(&plan(Mode::Enforce, &format!("203.0.113.{i}"), 600))
                .await;
            assert_eq!(r[0].state, ActionState::Applied);
        }
        let mut all = l.live();
        all.sort_by_key(|r| std::cmp::Reverse(r.id));
        let mut walked = Vec::new();
        let mut before = None;
        loop {
            let (page, more) = l.live_page(before, 10);
            assert!(page.len() <= 10);
            walked.extend(page.iter().map(|r| r.id));
            if !more {
                break;
            }
            before = page.last().map(|r| r.id);
        }
        assert_eq!(walked, all.iter().map(|r| r.id).collect::<Vec<_>>());
        let (last, more) = l.live_page(Some(all[19].id), 10);
        assert_eq!((last.len(), more), (5, false));
    }

    #[tokio::test]
    async fn one_live_action_per_target() {
        let t = Table::default();
        let l = ledger(&t, LedgerConfig::default());
        let first = l.execute(&plan(Mode::Enforce, "203.0.113.70", 60)).await;
        assert_eq!(first.len(), 1);
        // Longer: the first is reverted (recorded as superseded), the new one is live.
        let longer = l.execute(&plan(Mode::Enforce, "203.0.113.70", 600)).await;
        assert_eq!(longer.len(), 2);
        assert_eq!(longer[0].id, first[0].id);
        assert_eq!(longer[0].state, ActionState::Reverted);
        assert!(longer[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("superseded by action"));
        assert_eq!(longer[1].state, ActionState::Applied);
        assert_eq!(l.live().len(), 1);
        assert!(lock(&t.0).contains_key("ip:203.0.113.70"), "still blocked");
        // Shorter: refused, nothing changes; expiring the live one later is what unblocks.
        let shorter = l.execute(&plan(Mode::Enforce, "203.0.113.70", 30)).await;
        assert_eq!(shorter[0].state, ActionState::Refused);
        assert!(shorter[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("already in force until"));
        assert_eq!(l.live().len(), 1);
        // The same target twice in one batch: the second is refused.
        let many = l
            .execute_many(&[
                plan(Mode::Enforce, "203.0.113.71", 60),
                plan(Mode::Enforce, "203.0.113.71", 90),
            ])
            .await;
        assert_eq!(many[0][0].state, ActionState::Applied);
        assert_eq!(many[1][0].state, ActionState::Refused);
    }

    #[tokio::test]
    async fn repeat_offenders_get_longer_ttls_up_to_the_cap() {
        let t = Table::default();
        let cfg = LedgerConfig {
            escalation: Some(Escalation {
                factor: 2,
                window: Duration::from_secs(3600),
                max_ttl: Duration::from_secs(300),
            }),
            ..Default::default()
        };
        let l = ledger(&t, cfg);
        let ttls: Vec<u64> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                let r = l.execute(&plan(Mode::Observe, "203.0.113.50", 60)).await;
                v.push(r[0].spec.ttl_secs);
            }
            v
        };
        assert_eq!(ttls, [60, 120, 240, 300]);
    }

    /// A manual dry run shows the TTL the same decision would really get (escalated for a repeat
    /// offender), and does not itself count as an offence.
    #[tokio::test]
    async fn dry_runs_escalate_as_the_real_decision_would() {
        let t = Table::default();
        let cfg = LedgerConfig {
            escalation: Some(Escalation {
                factor: 2,
                window: Duration::from_secs(3600),
                max_ttl: Duration::from_secs(10_000),
            }),
            ..Default::default()
        };
        let l = ledger(&t, cfg);
        let p = plan(Mode::Observe, "203.0.113.51", 60);
        let spec = p.actions[0].clone();
        let (dry, _) = l.decide(p.mode, &p.trace_id, spec.clone(), true).await;
        assert_eq!(dry.spec.ttl_secs, 60);
        let (real, _) = l.decide(p.mode, &p.trace_id, spec.clone(), false).await;
        assert_eq!(real.spec.ttl_secs, 60);
        for _ in 0..2 {
            let (dry, _) = l.decide(p.mode, &p.trace_id, spec.clone(), true).await;
            assert_eq!(
                dry.spec.ttl_secs, 120,
                "one earlier offence, not counting dry runs"
            );
        }
        let (real, _) = l.decide(p.mode, &p.trace_id, spec, false).await;
        assert_eq!(real.spec.ttl_secs, 120, "the dry run showed what it got");
    }

    #[tokio::test]
    async fn max_ttl_caps_every_action_escalated_or_not() {
        let t = Table::default();
        let cfg = LedgerConfig {
            escalation: Some(Escalation {
                factor: 10,
                window: Duration::from_secs(3600),
                max_ttl: Duration::from_secs(100_000),
            }),
            max_ttl: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        let l = ledger(&t, cfg);
        let first = l
            .execute(&plan(Mode::Enforce, "203.0.113.51", 86_400))
            .await;
        assert_eq!(first[0].spec.ttl_secs, 600);
        assert!(first[0]
            .error
            .as_deref()
            .unwrap()
            .contains("policy.max_ttl"));
        assert_eq!(
            first[0].expires_at.as_millis() - first[0].created.as_millis(),
            600_000
        );
        let again = l.execute(&plan(Mode::Observe, "203.0.113.52", 120)).await;
        assert_eq!(again[0].spec.ttl_secs, 120);
        let escalated = l.execute(&plan(Mode::Observe, "203.0.113.52", 120)).await;
        assert_eq!(escalated[0].spec.ttl_secs, 600, "min(120 s x 10, max_ttl)");
    }

    #[tokio::test]
    async fn reconcile_reapplies_missing_removes_orphans_and_expires_late_ones() {
        let t = Table::default();
        let l = ledger(&t, LedgerConfig::default());
        let a = l
            .execute(&plan(Mode::Enforce, "203.0.113.10", 600))
            .await
            .remove(0);
        let b = l
            .execute(&plan(Mode::Enforce, "203.0.113.11", 600))
            .await
            .remove(0);
        let mut late = l
            .execute(&plan(Mode::Enforce, "203.0.113.12", 600))
            .await
            .remove(0);
        late.expires_at = Timestamp::from_millis(0);
        // "Restart": a new ledger over the same backend; behind Sentinel's back one element was deleted
        // and one was added.
        lock(&t.0).remove("ip:203.0.113.10");
        lock(&t.0).insert(
            "ip:198.51.100.99".into(),
            Applied {
                kind: ActionKind::BlockIp,
                subject: Subject::Ip("198.51.100.99".parse().unwrap()),
                token: serde_json::Value::Null,
                operations: Vec::new(),
            },
        );
        let l2 = ledger(&t, LedgerConfig::default());
        let fixes = l2
            .reconcile(vec![a.clone(), b.clone(), late.clone()])
            .await
            .unwrap();
        let notes: Vec<&str> = fixes.iter().map(|c| c.note.as_str()).collect();
        assert_eq!(fixes.len(), 3, "{notes:?}");
        assert!(notes
            .iter()
            .any(|n| n.starts_with("missing from the kernel: re-applied")));
        assert!(notes
            .iter()
            .any(|n| n.starts_with("expired while Sentinel was down")));
        assert!(notes
            .iter()
            .any(|n| n.starts_with("orphan block_ip on ip:198.51.100.99")));
        let mut keys: Vec<String> = lock(&t.0).keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["ip:203.0.113.10", "ip:203.0.113.11"]);
        let live: Vec<ActionId> = l2.live().iter().map(|r| r.id).collect();
        assert!(live.contains(&a.id) && live.contains(&b.id) && !live.contains(&late.id));
    }

    /// A record stored before parameters were typed (params that no longer parse) is readable but is
    /// never applied: not by a plan, not by reconcile at start-up.
    #[tokio::test]
    async fn stored_params_that_no_longer_parse_are_never_applied() {
        let t = Table::default();
        let l = ledger(&t, LedgerConfig::default());
        let mut rec = l
            .execute(&plan(Mode::Enforce, "203.0.113.20", 600))
            .await
            .remove(0);
        assert_eq!(rec.state, ActionState::Applied);
        rec.spec.params =
            ActionParams::from_stored(ActionKind::BlockIp, &serde_json::json!({"anything": 1}));
        assert!(matches!(rec.spec.params, ActionParams::Stored(_)));
        lock(&t.0).clear();
        let l2 = ledger(&t, LedgerConfig::default());
        let fixes = l2.reconcile(vec![rec.clone()]).await.unwrap();
        assert_eq!(fixes.len(), 1);
        assert_eq!(fixes[0].record.state, ActionState::Failed);
        assert!(
            fixes[0].note.contains("cannot be applied"),
            "{}",
            fixes[0].note
        );
        assert!(lock(&t.0).is_empty(), "nothing re-applied");
        let mut p = plan(Mode::Enforce, "203.0.113.21", 600);
        p.actions[0].params = rec.spec.params.clone();
        let r = l2.execute(&p).await.remove(0);
        assert_eq!(r.state, ActionState::Refused);
        assert!(lock(&t.0).is_empty(), "nothing applied");
    }
}
