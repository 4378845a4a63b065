//! Shared set-up for the nftables actuator tests: a Lan in namespaces and specs. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use sentinel_core::{ActionKind, ActionParams, ActionSpec, Subject};
use sentinel_respond::actuators::nft::NftTable;
use sentinel_testkit::netns::Netns;
use std::net::IpAddr;
use std::time::Duration;

/// How long a connection that should work may take.
pub const OK: Duration = Duration::from_secs(3);
/// How long to wait before calling a connection blocked.
pub const BLOCKED: Duration = Duration::from_millis(800);

/// Sentinel's table, inside `ns`.
pub fn table(ns: &Netns) -> NftTable {
    NftTable::default().in_netns(ns.name()).unwrap()
}

/// A spec for `ip`, its parameters parsed into their types; whether they fit the subject is left to the
/// actuator (some tests give a range that does not hold the address on purpose).
pub fn spec(kind: ActionKind, ip: IpAddr, ttl_secs: u64, params: serde_json::Value) -> ActionSpec {
    ActionSpec {
        kind,
        subject: Subject::Ip(ip),
        ttl_secs,
        params: ActionParams::parse(kind, &params).unwrap(),
    }
}
