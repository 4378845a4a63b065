//! The detectors' own configuration values and the `build` that turns them into running detectors: the
//! heuristic's thresholds ([`HeuristicSettings`], as written under `detect.heuristic`) and what the Falco
//! detector ignores ([`crate::FalcoSettings`], under `detect.falco`, built by its own `build`). The configuration
//! crate reads and validates them and composes them; this module never reads configuration text.

use crate::{Heuristic, HeuristicSettings};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

impl HeuristicSettings {
    /// The heuristic detector with these thresholds.
    pub fn build(&self) -> Heuristic {
        Heuristic::new(self.clone())
    }
}

/// Written as the configuration spells it (`detect.heuristic`).
impl Serialize for HeuristicSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("HeuristicSettings", 5)?;
        st.serialize_field("min_score", &self.min_score)?;
        st.serialize_field("failed_logins_threshold", &self.failed_logins_threshold)?;
        st.serialize_field("request_rate_threshold", &self.request_rate_threshold)?;
        st.serialize_field("bytes_out_threshold", &self.bytes_out_threshold)?;
        st.serialize_field("bad_ports", &self.bad_ports)?;
        st.end()
    }
}
