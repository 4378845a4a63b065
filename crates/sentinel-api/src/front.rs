//! What another front end of the same service (the gRPC API, crate `sentinel-grpc`) needs from this
//! crate so it checks, masks and counts exactly as the REST routes do, instead of a second copy of
//! those rules that would drift.

use crate::state::AppState;
use sentinel_core::{Event, TraceId};

/// One telemetry object as `POST /v1/events` takes an item: checked and redacted (masked secrets
/// counted in `sentinel_secrets_redacted_total`). `Ok((event, raw))`: the redacted event and, when
/// redaction changed it, the event as posted (for the detector alone). `Err`: the item's error, as
/// REST reports it (the caller counts it as invalid).
pub fn telemetry_event(
    state: &AppState,
    value: serde_json::Value,
    trace: &TraceId,
) -> Result<(Event, Option<Event>), String> {
    let posted =
        crate::telemetry::to_event(value, trace, &state.redactor, false, "").map_err(|e| e.0)?;
    state.metrics.secrets_redacted.add(posted.masked as u64);
    Ok((posted.event, posted.raw))
}
