//! The wire form of what crosses the bus between roles: versioned JSON envelopes of the core types,
//! one message kind per topic.
//!
//! Every message is `{"v": 1, "kind": "<kind>", "body": {…}}`, the body being the serde form the
//! store already keeps for the same type (an [`Alert`], a [`Plan`], [`ActionRecord`]s), so a message
//! reads as a stored record does and a field added later with a serde default still reads. The head
//! (`v`, `kind`) is read first, so a message of another version or kind is reported as such rather
//! than as a parse failure. Decoding never panics: anything too large, not JSON, of another version or
//! kind, or with a body that does not parse is a [`WireError`], which the consuming link counts, logs
//! and acknowledges (dead-lettered into a counter). This module does no I/O.

use sentinel_core::{ActionRecord, Alert, AlertId, Investigation, Plan, PlanId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The envelope version this build writes and reads.
pub const VERSION: u32 = 1;
/// The largest message decoded; larger ones are malformed (a plan or alert is a few kilobytes).
pub const MAX_MESSAGE: usize = 4 << 20;

/// Topic of alerts, detect → investigate (sensors publish, investigators consume).
pub const ALERTS: &str = "alerts";
/// Topic of plans, decide → act (investigators publish, every responder consumes).
pub const PLANS: &str = "plans";
/// Topic of responders' action records, reported back (responders publish).
pub const DECISIONS: &str = "decisions";
/// Topic of investigations (investigators publish, for the API nodes' picture of the fleet).
pub const INVESTIGATIONS: &str = "investigations";

/// A message type carried on one topic.
pub trait WireMessage: Serialize + DeserializeOwned + Send + 'static {
    /// The envelope's `kind`.
    const KIND: &'static str;
    /// The topic it travels on.
    const TOPIC: &'static str;
}

/// An alert a sensor raised (and stored), for an investigator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMsg {
    /// The alert as stored on the sensor.
    pub alert: Alert,
    /// The node of the sensor that raised it: host-local actions (isolating a container,
    /// quarantining a file) decided from it are for that host's responder only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl WireMessage for AlertMsg {
    const KIND: &'static str = "alert";
    const TOPIC: &'static str = ALERTS;
}

/// A plan an investigator decided (and stored), for every responder its scope includes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanMsg {
    /// The plan, with its [`sentinel_core::Scope`].
    pub plan: Plan,
    /// The de-duplication key of the notice the responder sends (the alert's scenario, else its
    /// detector), which the responder cannot derive without the alert.
    pub notice_key: String,
}

impl WireMessage for PlanMsg {
    const KIND: &'static str = "plan";
    const TOPIC: &'static str = PLANS;
}

/// An investigation an investigator made (and stored), for the API nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvestigationMsg {
    /// The investigation as stored on the investigator.
    pub investigation: Investigation,
}

impl WireMessage for InvestigationMsg {
    const KIND: &'static str = "investigation";
    const TOPIC: &'static str = INVESTIGATIONS;
}

/// What one responder did with one plan: its action records, once queued to its store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionMsg {
    /// The responder's node name.
    pub node: String,
    /// The plan carried out.
    pub plan_id: PlanId,
    /// The alert behind it.
    pub alert_id: AlertId,
    /// One record per action (empty when the plan asked for nothing).
    pub records: Vec<ActionRecord>,
}

impl WireMessage for DecisionMsg {
    const KIND: &'static str = "decision";
    const TOPIC: &'static str = DECISIONS;
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE`].
    #[error("message of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// Not an envelope, or its body does not parse as the kind says.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// An envelope of a version this build does not read.
    #[error("envelope version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
    /// Another kind of message than the topic carries.
    #[error("a `{found}` message where `{expected}` was expected")]
    Kind {
        /// The kind the topic carries.
        expected: &'static str,
        /// The kind found (at most 32 characters of it).
        found: String,
    },
    /// The message could not be written (a value serde cannot represent).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The message's signature is missing or does not match the fleet's key.
    #[error("message refused: {0}")]
    Forged(&'static str),
}

/// What a signed message starts with, before the hex HMAC and a `:`.
const SIGNED: &[u8] = b"sig1:";
/// Hex digits of an HMAC-SHA256.
const MAC_HEX: usize = 64;

/// Signs and checks the bus messages of a fleet that shares one key (`fleet.secret`): a message is
/// `sig1:<hex HMAC-SHA256(key, topic NUL envelope)>:<envelope>`, so a message cannot be forged
/// without the key, nor moved to another topic. (A copy of a signed message published again is
/// caught by the consumers' act-once marks.)
pub struct Sealer {
    key: hmac::Hmac<sha2::Sha256>,
}

impl Sealer {
    /// A sealer with `key` (HMAC takes a key of any length: the error cannot happen in practice).
    pub fn new(key: &[u8]) -> Result<Sealer, WireError> {
        use hmac::Mac;
        let key = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
            .map_err(|e| WireError::Encode(format!("bad fleet key: {e}")))?;
        Ok(Sealer { key })
    }

    fn mac(&self, topic: &str, envelope: &[u8]) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        let mut m = self.key.clone();
        m.update(topic.as_bytes());
        m.update(&[0]);
        m.update(envelope);
        m
    }

    /// `envelope`, signed for `topic`.
    pub fn seal(&self, topic: &str, envelope: &[u8]) -> Vec<u8> {
        use hmac::Mac;
        let tag = hex::encode(self.mac(topic, envelope).finalize().into_bytes());
        let mut out = Vec::with_capacity(SIGNED.len() + MAC_HEX + 1 + envelope.len());
        out.extend_from_slice(SIGNED);
        out.extend_from_slice(tag.as_bytes());
        out.push(b':');
        out.extend_from_slice(envelope);
        out
    }

    /// The envelope of a message on `topic`, once its signature checks.
    pub fn open<'a>(&self, topic: &str, payload: &'a [u8]) -> Result<&'a [u8], WireError> {
        use hmac::Mac;
        let (tag, envelope) = split_signed(payload).ok_or(WireError::Forged("not signed"))?;
        let tag = hex::decode(tag).map_err(|_| WireError::Forged("a malformed signature"))?;
        self.mac(topic, envelope)
            .verify_slice(&tag)
            .map_err(|_| WireError::Forged("the signature does not match this fleet's key"))?;
        Ok(envelope)
    }
}

/// The hex tag and the envelope of a signed message.
fn split_signed(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = payload.strip_prefix(SIGNED)?;
    if rest.len() <= MAC_HEX || rest[MAC_HEX] != b':' {
        return None;
    }
    Some((&rest[..MAC_HEX], &rest[MAC_HEX + 1..]))
}

/// A message as published: signed when the fleet has a key.
pub fn seal(sealer: Option<&Sealer>, topic: &str, envelope: Vec<u8>) -> Vec<u8> {
    match sealer {
        Some(s) => s.seal(topic, &envelope),
        None => envelope,
    }
}

/// The envelope of a message as read: with a key, only a message signed with it; without one, a
/// signature (which cannot be checked here) is set aside.
pub fn unseal<'a>(
    sealer: Option<&Sealer>,
    topic: &str,
    payload: &'a [u8],
) -> Result<&'a [u8], WireError> {
    match sealer {
        Some(s) => s.open(topic, payload),
        None => Ok(split_signed(payload).map_or(payload, |(_, envelope)| envelope)),
    }
}

#[derive(Serialize)]
struct Out<'a, T> {
    v: u32,
    kind: &'static str,
    body: &'a T,
}

#[derive(Deserialize)]
struct Head {
    v: u32,
    kind: String,
}

#[derive(Deserialize)]
struct In<T> {
    body: T,
}

/// The envelope of `m`.
pub fn encode<T: WireMessage>(m: &T) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(&Out {
        v: VERSION,
        kind: T::KIND,
        body: m,
    })
    .map_err(|e| WireError::Encode(e.to_string()))
}

/// Reads an envelope of kind `T`.
pub fn decode<T: WireMessage>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    if head.v != VERSION {
        return Err(WireError::Version(head.v));
    }
    if head.kind != T::KIND {
        return Err(WireError::Kind {
            expected: T::KIND,
            found: head.kind.chars().take(32).collect(),
        });
    }
    let m: In<T> =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok(m.body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_core::{AlertId, PlanId};

    fn decision() -> DecisionMsg {
        DecisionMsg {
            node: "web-1".into(),
            plan_id: PlanId::new(),
            alert_id: AlertId::new(),
            records: Vec::new(),
        }
    }

    /// A message reads back as written, inside a `v`/`kind`/`body` envelope.
    #[test]
    fn a_message_round_trips_in_its_envelope() {
        let m = decision();
        let bytes = encode(&m).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["kind"], "decision");
        assert_eq!(v["body"]["node"], "web-1");
        assert_eq!(decode::<DecisionMsg>(&bytes).unwrap(), m);
    }

    /// A v1 plan envelope as the first release writes it (a golden fixture: a change that stops it
    /// reading breaks every node still running the older build).
    #[test]
    fn a_v1_plan_envelope_still_reads() {
        let golden = br#"{"v":1,"kind":"plan","body":{"plan":{
            "id":"01J0000000000000000000000B","ts":"2026-12-01T03:00:00.000Z",
            "alert_id":"01J0000000000000000000000C","investigation_id":"01J0000000000000000000000D",
            "mode":"enforce","severity":"high","risk_band":"high","confidence_band":"medium",
            "actions":[{"kind":"block_ip","subject":{"type":"ip","value":"203.0.113.7"},"ttl_secs":600}],
            "reason":"high risk, medium confidence","trace_id":"t-1","scope":{"host":"web-2"}},
            "notice_key":"ssh_bruteforce"}}"#;
        let m = decode::<PlanMsg>(golden).unwrap();
        assert_eq!(m.plan.id.to_string(), "01J0000000000000000000000B");
        assert_eq!(m.plan.scope, sentinel_core::Scope::Host("web-2".into()));
        assert_eq!(m.plan.actions.len(), 1);
        assert_eq!(m.notice_key, "ssh_bruteforce");
        let again = decode::<PlanMsg>(&encode(&m).unwrap()).unwrap();
        assert_eq!(again, m);
    }

    /// A signed message opens with the key on its topic only; unsigned, altered, moved or signed
    /// with another key, it is refused; without a key the signature is set aside.
    #[test]
    fn signed_messages_open_only_with_the_fleet_key() {
        let s = Sealer::new(b"fleet-secret-0123456789").unwrap();
        let env = encode(&decision()).unwrap();
        let signed = seal(Some(&s), DECISIONS, env.clone());
        assert!(signed.starts_with(b"sig1:"));
        assert_eq!(unseal(Some(&s), DECISIONS, &signed).unwrap(), &env[..]);
        assert_eq!(unseal(None, DECISIONS, &signed).unwrap(), &env[..]);
        assert_eq!(
            unseal(Some(&s), DECISIONS, &env),
            Err(WireError::Forged("not signed"))
        );
        assert!(matches!(
            unseal(Some(&s), PLANS, &signed),
            Err(WireError::Forged(_))
        ));
        let other = Sealer::new(b"another-fleet-secret-000").unwrap();
        assert!(matches!(
            unseal(Some(&other), DECISIONS, &signed),
            Err(WireError::Forged(_))
        ));
        let mut altered = signed.clone();
        let last = altered.len() - 2;
        altered[last] ^= 1;
        assert!(matches!(
            unseal(Some(&s), DECISIONS, &altered),
            Err(WireError::Forged(_))
        ));
        assert!(matches!(
            unseal(Some(&s), DECISIONS, b"sig1:zz:{}"),
            Err(WireError::Forged(_))
        ));
    }

    /// Garbage, another version, another kind, a bad body and an oversized message are each
    /// reported for what they are.
    #[test]
    fn what_cannot_be_read_says_why() {
        assert!(matches!(
            decode::<DecisionMsg>(b"\xff not json"),
            Err(WireError::Malformed(_))
        ));
        let v2 = br#"{"v":2,"kind":"decision","body":{}}"#;
        assert_eq!(decode::<DecisionMsg>(v2), Err(WireError::Version(2)));
        let other = encode(&decision()).unwrap();
        assert!(matches!(
            decode::<PlanMsg>(&other),
            Err(WireError::Kind {
                expected: "plan",
                ..
            })
        ));
        let bad_body = br#"{"v":1,"kind":"plan","body":{"plan":7}}"#;
        assert!(matches!(
            decode::<PlanMsg>(bad_body),
            Err(WireError::Malformed(_))
        ));
        let big = vec![b' '; MAX_MESSAGE + 1];
        assert_eq!(
            decode::<AlertMsg>(&big),
            Err(WireError::TooLarge(MAX_MESSAGE + 1))
        );
    }
}
