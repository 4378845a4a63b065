//! Telemetry as applications post it, turned into a redacted [`Event`].
//!
//! Known fields are type-checked (an error names the field); every other field is kept as an attribute.
//! Secrets are masked before anything is stored, logged or answered; the event as posted is kept
//! aside (when redaction changed it) for the detector alone, so an attack under a secret-looking key
//! (`password=' OR 1=1 --`) is still seen.

use crate::extract::typed;
use sentinel_core::{Event, EventId, EventKind, Redactor, Timestamp, TraceId};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Why a telemetry object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TelemetryError(pub String);

/// The fields Sentinel understands; everything else becomes an attribute.
#[derive(Debug, Deserialize)]
struct Known {
    kind: Option<String>,
    ts: Option<Timestamp>,
    source: Option<String>,
    src_ip: Option<IpAddr>,
    target: Option<String>,
    #[allow(dead_code)]
    failed_logins: Option<u64>,
    #[allow(dead_code)]
    request_rate: Option<f64>,
    #[allow(dead_code)]
    bytes_out: Option<u64>,
    #[allow(dead_code)]
    dst_port: Option<u16>,
    #[allow(dead_code)]
    payload: Option<String>,
    #[allow(dead_code)]
    path: Option<String>,
    #[allow(dead_code)]
    user_agent: Option<String>,
    #[allow(dead_code)]
    user: Option<String>,
}

/// How far ahead of the clock a reported time may be before it is replaced by the time of receipt.
const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

/// Fields lifted out of the attributes into the event itself.
const LIFTED: [&str; 5] = ["kind", "ts", "source", "src_ip", "target"];

/// One posted object, redacted, with what the detector scores.
#[derive(Debug)]
pub(crate) struct Posted {
    /// The redacted event (stored, logged, answered).
    pub(crate) event: Event,
    /// The event as posted, when redaction changed it (for the detector only).
    pub(crate) raw: Option<Event>,
    /// How many values or spans were masked.
    pub(crate) masked: usize,
}

/// Turns one posted object into an event. `prefix` names its place in the request (`[3]`), if any.
pub(crate) fn to_event(
    v: Value,
    trace: &TraceId,
    redactor: &Redactor,
    require_ip: bool,
    prefix: &str,
) -> Result<Posted, TelemetryError> {
    let mut obj: Map<String, Value> = match v {
        Value::Object(m) => m,
        other => {
            return Err(TelemetryError(format!(
                "{}expected a JSON object, found {}",
                if prefix.is_empty() {
                    String::new()
                } else {
                    format!("`{prefix}`: ")
                },
                kind_of(&other)
            )))
        }
    };
    let mut raw = obj.clone();
    let masked = redactor.redact_map(&mut obj);
    // Known fields are typed from the redacted object: an error quoting a value quotes it masked.
    let known: Known = typed(Value::Object(obj.clone())).map_err(|e| {
        TelemetryError(if prefix.is_empty() {
            e
        } else {
            e.replacen('`', &format!("`{prefix}."), 1)
        })
    })?;
    if require_ip && known.src_ip.is_none() {
        return Err(TelemetryError(format!(
            "`{}src_ip`: missing field",
            dotted(prefix)
        )));
    }
    for k in LIFTED {
        obj.remove(k);
        raw.remove(k);
    }
    // A time far in the future would push detectors' windows and cooldowns ahead and blind them for
    // that source: such times are replaced by the time of receipt (the reported one is kept).
    let now = Timestamp::now();
    let ts = match known.ts {
        Some(t) if t.as_millis() > now.as_millis() + MAX_FUTURE_MS => {
            obj.insert("reported_ts".into(), t.to_rfc3339().into());
            raw.insert("reported_ts".into(), t.to_rfc3339().into());
            now
        }
        Some(t) => t,
        None => now,
    };
    let event = Event {
        id: EventId::new(),
        kind: EventKind(known.kind.unwrap_or_else(|| "telemetry".into())),
        ts,
        source: known.source.unwrap_or_else(|| "api".into()),
        src_ip: known.src_ip,
        target: known.target,
        attrs: obj,
        trace_id: trace.clone(),
    };
    // The lifted fields are the redacted ones: only the attributes differ.
    let raw = (masked > 0).then(|| Event {
        id: event.id,
        kind: event.kind.clone(),
        ts: event.ts,
        source: event.source.clone(),
        src_ip: event.src_ip,
        target: event.target.clone(),
        attrs: raw,
        trace_id: event.trace_id.clone(),
    });
    Ok(Posted { event, raw, masked })
}

fn dotted(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}.")
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_fields_are_lifted_and_secrets_masked() {
        let r = Redactor::default();
        let Posted {
            event: ev,
            raw,
            masked: n,
        } = to_event(
            json!({"src_ip": "203.0.113.7", "kind": "login", "failed_logins": 3, "password": "hunter2", "ctx": {"token": "t"}}),
            &TraceId::new(),
            &r,
            true,
            "",
        )
        .unwrap();
        assert_eq!(n, 2);
        // The detector's copy is the event as posted, with the same identity.
        let raw = raw.expect("redaction changed the event");
        assert_eq!(raw.id, ev.id);
        assert_eq!(raw.attrs["password"], "hunter2");
        assert!(!raw.attrs.contains_key("src_ip"));
        assert_eq!(ev.kind.0, "login");
        assert_eq!(ev.src_ip, Some("203.0.113.7".parse().unwrap()));
        assert!(!ev.attrs.contains_key("src_ip"));
        assert_eq!(ev.attrs["password"], "***");
        assert_eq!(ev.attrs["ctx"]["token"], "***");
    }

    #[test]
    fn far_future_times_are_replaced_by_the_time_of_receipt() {
        let r = Redactor::default();
        let Posted { event: ev, .. } = to_event(
            json!({"src_ip": "203.0.113.7", "ts": "2999-01-01T00:00:00Z"}),
            &TraceId::new(),
            &r,
            true,
            "",
        )
        .unwrap();
        assert!(ev.ts.as_millis() <= Timestamp::now().as_millis());
        assert_eq!(ev.attrs["reported_ts"], "2999-01-01T00:00:00.000Z");
        let Posted { event: ev, .. } = to_event(
            json!({"src_ip": "203.0.113.7", "ts": "2020-01-01T00:00:00Z"}),
            &TraceId::new(),
            &r,
            true,
            "",
        )
        .unwrap();
        assert_eq!(
            ev.ts.to_rfc3339(),
            "2020-01-01T00:00:00.000Z",
            "past times are the event's own"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let r = Redactor::default();
        let t = TraceId::new();
        let e = to_event(json!({"src_ip": "not-an-ip"}), &t, &r, true, "").unwrap_err();
        assert!(e.0.starts_with("`src_ip`:"), "{e}");
        let e = to_event(json!({"failed_logins": "many"}), &t, &r, false, "[4]").unwrap_err();
        assert!(e.0.starts_with("`[4].failed_logins`:"), "{e}");
        let e = to_event(json!({}), &t, &r, true, "").unwrap_err();
        assert_eq!(e.0, "`src_ip`: missing field");
        let e = to_event(json!([1]), &t, &r, true, "").unwrap_err();
        assert!(e.0.contains("expected a JSON object"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,24}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("password".to_string()),
                        Just("X-Api-Key".to_string()),
                        Just("src_ip".to_string()),
                        Just("ts".to_string()),
                        "[a-z_]{1,10}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn secret_leaks(v: &Value, r: &Redactor) -> bool {
        match v {
            // Under a secret key only the mask (an authorization scheme may stay in front of it), a
            // boolean or a null may remain.
            Value::Object(m) => m.iter().any(|(k, v)| {
                let masked = match v {
                    Value::String(s) => {
                        s == "***" || s.split_once(' ').is_some_and(|(_, t)| t == "***")
                    }
                    Value::Bool(_) | Value::Null => true,
                    _ => false,
                };
                (r.is_secret_key(k) && !masked) || secret_leaks(v, r)
            }),
            Value::Array(a) => a.iter().any(|v| secret_leaks(v, r)),
            _ => false,
        }
    }

    proptest! {
        /// Any JSON value is either refused with a message or becomes an event with no secret left.
        #[test]
        fn any_input_is_an_event_or_a_clear_error(v in arb_json(), require_ip in any::<bool>()) {
            let r = Redactor::default();
            match to_event(v, &TraceId::new(), &r, require_ip, "") {
                Ok(Posted { event: ev, raw, masked }) => {
                    prop_assert!(!secret_leaks(&Value::Object(ev.attrs.clone()), &r));
                    prop_assert_eq!(raw.is_some(), masked > 0);
                    prop_assert!(!require_ip || ev.src_ip.is_some());
                }
                Err(e) => prop_assert!(!e.0.is_empty()),
            }
        }
    }
}
