//! One observation as a test or benchmark builds it by hand: the engine reads only the `Observed` view.
#![allow(dead_code)]

use sentinel_core::{Observed, Timestamp};
use std::borrow::Cow;
use std::net::IpAddr;

/// A hand-made observation.
#[derive(Clone, Debug)]
pub struct Obs {
    pub ts: i64,
    pub kind: &'static str,
    pub service: &'static str,
    pub ip: IpAddr,
    pub fields: Vec<(&'static str, String)>,
}

impl Observed for Obs {
    fn ts(&self) -> Timestamp {
        Timestamp::from_millis(self.ts)
    }
    fn kind(&self) -> &str {
        self.kind
    }
    fn service(&self) -> &str {
        self.service
    }
    fn src_ip(&self) -> Option<IpAddr> {
        Some(self.ip)
    }
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}
