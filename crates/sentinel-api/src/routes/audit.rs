//! The Merkle audit log over HTTP: its records, inclusion proofs, consistency proofs and signed
//! checkpoints, in the forms a client needs to check them itself (hex hashes, the signed note text).
//!
//! Reads touch files, so each runs on the blocking pool.

use super::query::Checked;
use crate::error::ApiError;
use crate::extract::StrictQuery;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sentinel_audit::format::LogEntry;
use sentinel_audit::{Log, LogError};
use serde::Serialize;

type Params = StrictQuery;

/// Most records one `GET /v1/audit/records` answers.
const MAX_RECORDS: u32 = 1000;

fn log(s: &AppState) -> Result<Log, ApiError> {
    s.audit
        .clone()
        .ok_or_else(|| ApiError::Unavailable("this node keeps no audit log".into()))
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::OutOfRange { .. } => ApiError::BadRequest(e.to_string()),
            LogError::Archived { .. } => ApiError::Gone(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `limit`: 1..=1000, 100 when not given.
fn limit(c: &Checked<'_>) -> Result<usize, ApiError> {
    match c.parsed::<u32>("limit")? {
        Some(n) if !(1..=MAX_RECORDS).contains(&n) => Err(ApiError::BadRequest(format!(
            "`limit`: must be between 1 and {MAX_RECORDS}"
        ))),
        Some(n) => Ok(n as usize),
        None => Ok(100),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("audit read task failed: {e}")))?
        .map_err(ApiError::from)
}

/// One record as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct RecordView {
    seq: u64,
    leaf_hash: String,
    /// The leaf's bytes exactly as hashed: SHA-256(0x00 ‖ payload) is `leaf_hash`.
    payload: String,
    entry: LogEntry,
}

/// The leaf's bytes as text (the payload is JSON, so UTF-8).
fn payload(e: &LogEntry) -> String {
    String::from_utf8_lossy(&e.to_payload()).into_owned()
}

/// A page of records.
#[derive(Debug, Serialize)]
pub(crate) struct RecordsPage {
    records: Vec<serde_json::Value>,
    /// The `from` of the next page; `None` at the end of what is committed.
    next: Option<u64>,
    /// Records committed now.
    size: u64,
    /// Why the page ends before `size`: `count` (`limit`) or `bytes` (`api.max_page_bytes`).
    truncated_by: Option<&'static str>,
}

/// `GET /v1/audit/records?from=SEQ&limit=N`: records in order, from `from` (default 0).
#[utoipa::path(get, path = "/v1/audit/records", tag = "audit",
    params(
        ("from" = Option<u64>, Query, description = "The first record (default 0)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)."),
    ),
    responses((status = 200, description = "Records in order. Role: viewer.", body = super::openapi::AuditRecords)))]
pub(crate) async fn records(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Json<RecordsPage>, ApiError> {
    let c = Checked::new(&q, &["from", "limit"])?;
    let from = c.parsed::<u64>("from")?.unwrap_or(0);
    let limit = limit(&c)?;
    let log = log(&s)?;
    let size = log.size();
    if from > size {
        return Err(ApiError::BadRequest(format!(
            "`from`: {from} is past the committed size {size}"
        )));
    }
    let read = log.clone();
    let rows = blocking(move || read.read(from, limit)).await?;
    let views = rows.into_iter().map(|r| RecordView {
        seq: r.seq,
        leaf_hash: hex::encode(r.leaf),
        payload: payload(&r.entry),
        entry: r.entry,
    });
    let (records, by_bytes) = crate::paging::fit(
        views,
        s.settings.paging.max_page_bytes,
        |r, bytes| serde_json::json!({"seq": r.seq, "leaf_hash": r.leaf_hash, "elided": true, "bytes": bytes}),
    )?;
    let next = records
        .last()
        .and_then(|r| r["seq"].as_u64())
        .map(|seq| seq + 1)
        .filter(|&n| n < size);
    let truncated_by = next.map(|_| if by_bytes { "bytes" } else { "count" });
    Ok(Json(RecordsPage {
        records,
        next,
        size,
        truncated_by,
    }))
}

/// An inclusion proof with what it proves.
#[derive(Debug, Serialize)]
pub(crate) struct InclusionView {
    seq: u64,
    tree_size: u64,
    leaf_hash: String,
    root_hash: String,
    proof: Vec<String>,
    /// The signed checkpoint for `tree_size` (the root a client checks against), when one exists.
    checkpoint: Option<String>,
    /// The leaf's bytes exactly as hashed.
    payload: String,
    entry: LogEntry,
}

/// Callers may ask for a checkpoint at most this often; more wait for the next one.
const ON_DEMAND_CHECKPOINT_GAP_MS: u64 = 1000;

/// The latest checkpoint covering `size_needed` records: the newest one, or a new one when records
/// arrived since. A caller cannot make the log sign (and fsync) more than once a second: within a
/// second of the latest checkpoint it waits out the second first, by which time the next request's
/// checkpoint (or an interval one) usually covers it already.
async fn covering(
    log: &Log,
    size_needed: u64,
) -> Result<sentinel_audit::note::SignedCheckpoint, ApiError> {
    let latest = log.latest_checkpoint();
    if latest.checkpoint.size >= size_needed {
        return Ok(latest);
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let age = now_ms.saturating_sub(latest.checkpoint.time_ms);
    if age < ON_DEMAND_CHECKPOINT_GAP_MS {
        tokio::time::sleep(std::time::Duration::from_millis(
            ON_DEMAND_CHECKPOINT_GAP_MS - age,
        ))
        .await;
        let latest = log.latest_checkpoint();
        if latest.checkpoint.size >= size_needed {
            return Ok(latest);
        }
    }
    Ok(log.checkpoint_now().await?)
}

/// `GET /v1/audit/proof/{seq}?tree_size=N`: the inclusion proof of record `seq` in the tree of `N`
/// records (default: the latest signed checkpoint, signing a new one if the record is newer).
#[utoipa::path(get, path = "/v1/audit/proof/{seq}", tag = "audit",
    params(
        ("seq" = u64, Path, description = "The record."),
        ("tree_size" = Option<u64>, Query, description = "The tree to prove it in (default: the latest checkpoint)."),
    ),
    responses(
        (status = 200, description = "The inclusion proof. Role: viewer.", body = super::openapi::InclusionProof),
        (status = 404, description = "No such record.", body = super::openapi::Error),
        (status = 410, description = "The record's segment was archived.", body = super::openapi::Error),
    ))]
pub(crate) async fn proof(
    State(s): State<AppState>,
    Path(seq): Path<String>,
    StrictQuery(q): Params,
) -> Result<Json<InclusionView>, ApiError> {
    let c = Checked::new(&q, &["tree_size"])?;
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`seq`: not a record number: {seq:?}")))?;
    let log = log(&s)?;
    if seq >= log.size() {
        return Err(ApiError::NotFound);
    }
    let (tree_size, checkpoint) = match c.parsed::<u64>("tree_size")? {
        Some(n) => {
            if n <= seq {
                return Err(ApiError::BadRequest(format!(
                    "`tree_size`: record {seq} is not in a tree of {n} records"
                )));
            }
            let read = log.clone();
            let cp = blocking(move || read.checkpoint_at(n)).await?;
            (n, cp.map(|c| c.text))
        }
        None => {
            let cp = covering(&log, seq + 1).await?;
            (cp.checkpoint.size, Some(cp.text))
        }
    };
    let read = log.clone();
    let (entry, proof, root) = blocking(move || {
        let entry = read
            .read(seq, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| LogError::OutOfRange {
                what: format!("record {seq}"),
                size: read.size(),
            })?;
        let proof = read.inclusion_proof(seq, tree_size)?;
        let root = read.root_at(tree_size)?;
        Ok((entry, proof, root))
    })
    .await?;
    Ok(Json(InclusionView {
        seq,
        tree_size,
        leaf_hash: hex::encode(entry.leaf),
        root_hash: hex::encode(root),
        proof: proof.iter().map(hex::encode).collect(),
        checkpoint,
        payload: payload(&entry.entry),
        entry: entry.entry,
    }))
}

/// A consistency proof with the checkpoints at both ends.
#[derive(Debug, Serialize)]
pub(crate) struct ConsistencyView {
    from: u64,
    to: u64,
    from_root: String,
    to_root: String,
    proof: Vec<String>,
    from_checkpoint: Option<String>,
    to_checkpoint: Option<String>,
}

/// `GET /v1/audit/consistency?from=M&to=N`: proof that the tree of `M` records is a prefix of the tree
/// of `N` (default: the latest checkpoint).
#[utoipa::path(get, path = "/v1/audit/consistency", tag = "audit",
    params(
        ("from" = u64, Query, description = "The smaller tree."),
        ("to" = Option<u64>, Query, description = "The larger tree (default: the latest checkpoint)."),
    ),
    responses(
        (status = 200, description = "The consistency proof. Role: viewer.", body = super::openapi::ConsistencyProof),
        (status = 410, description = "A segment needed was archived.", body = super::openapi::Error),
    ))]
pub(crate) async fn consistency(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Json<ConsistencyView>, ApiError> {
    let c = Checked::new(&q, &["from", "to"])?;
    let from = c
        .parsed::<u64>("from")?
        .ok_or_else(|| ApiError::BadRequest("`from`: missing".into()))?;
    let log = log(&s)?;
    let to = match c.parsed::<u64>("to")? {
        Some(n) => n,
        None => log.latest_checkpoint().checkpoint.size,
    };
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "`from`: {from} is larger than `to` {to}"
        )));
    }
    let read = log.clone();
    let view = blocking(move || {
        let proof = read.consistency_proof(from, to)?;
        Ok(ConsistencyView {
            from,
            to,
            from_root: hex::encode(read.root_at(from)?),
            to_root: hex::encode(read.root_at(to)?),
            proof: proof.iter().map(hex::encode).collect(),
            from_checkpoint: read.checkpoint_at(from)?.map(|c| c.text),
            to_checkpoint: read.checkpoint_at(to)?.map(|c| c.text),
        })
    })
    .await?;
    Ok(Json(view))
}

/// A page of stored checkpoints.
#[derive(Debug, Serialize)]
pub(crate) struct CheckpointsPage {
    /// The signed notes, by tree size.
    checkpoints: Vec<serde_json::Value>,
    /// The `from` of the next page, if there may be more.
    next: Option<u64>,
    /// Why there may be more: `count` (`limit`) or `bytes` (`api.max_page_bytes`).
    truncated_by: Option<&'static str>,
}

/// One stored checkpoint: its size, root and note.
#[derive(Debug, Serialize)]
pub(crate) struct CheckpointSummary {
    size: u64,
    root_hash: String,
    time_ms: u64,
    note: String,
}

/// `GET /v1/audit/checkpoints?from=SIZE&limit=N`: the stored checkpoints with size ≥ `from`, by size
/// (the sizes a client can ask consistency proofs between).
#[utoipa::path(get, path = "/v1/audit/checkpoints", tag = "audit",
    params(
        ("from" = Option<u64>, Query, description = "The smallest tree size (default 0)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)."),
    ),
    responses((status = 200, description = "Stored checkpoints by size. Role: viewer.", body = super::openapi::Checkpoints)))]
pub(crate) async fn checkpoints(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Json<CheckpointsPage>, ApiError> {
    let c = Checked::new(&q, &["from", "limit"])?;
    let from = c.parsed::<u64>("from")?.unwrap_or(0);
    let limit = limit(&c)?;
    let read = log(&s)?;
    let cps = blocking(move || read.checkpoints(from, limit)).await?;
    let full = cps.len() == limit;
    let summaries = cps.into_iter().map(|c| CheckpointSummary {
        size: c.checkpoint.size,
        root_hash: hex::encode(c.checkpoint.root),
        time_ms: c.checkpoint.time_ms,
        note: c.text,
    });
    let (checkpoints, by_bytes) = crate::paging::fit(
        summaries,
        s.settings.paging.max_page_bytes,
        |c, bytes| serde_json::json!({"size": c.size, "root_hash": c.root_hash, "elided": true, "bytes": bytes}),
    )?;
    let next = (full || by_bytes)
        .then(|| {
            checkpoints
                .last()
                .and_then(|c| c["size"].as_u64())
                .map(|n| n + 1)
        })
        .flatten();
    let truncated_by = next.map(|_| if by_bytes { "bytes" } else { "count" });
    Ok(Json(CheckpointsPage {
        checkpoints,
        next,
        truncated_by,
    }))
}

/// The latest checkpoint as JSON.
#[derive(Debug, Serialize)]
struct CheckpointView {
    origin: String,
    size: u64,
    root_hash: String,
    time_ms: u64,
    note: String,
    verifier_key: String,
}

/// `GET /v1/audit/checkpoint`: the latest signed checkpoint as its note text (`?format=json` for JSON
/// with the verifier key).
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit",
    params(("format" = Option<String>, Query, description = "`note` (default, the signed note as text) or `json`.")),
    responses((status = 200, description = "The latest signed checkpoint. Role: viewer.", content(
        (String = "text/plain"),
        (super::openapi::Object = "application/json"),
    ))))]
pub(crate) async fn checkpoint(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Response, ApiError> {
    let c = Checked::new(&q, &["format"])?;
    let log = log(&s)?;
    let cp = log.latest_checkpoint();
    match c.text("format").as_deref() {
        None | Some("note") => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            cp.text,
        )
            .into_response()),
        Some("json") => Ok(Json(CheckpointView {
            origin: cp.checkpoint.origin.clone(),
            size: cp.checkpoint.size,
            root_hash: hex::encode(cp.checkpoint.root),
            time_ms: cp.checkpoint.time_ms,
            note: cp.text,
            verifier_key: log.verifier_key(),
        })
        .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`format`: {other:?} is not note or json"
        ))),
    }
}
