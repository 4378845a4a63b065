//! Compiled filters: the checks a scenario applies to each observation, cheapest first.

use crate::scenario::def::Filter;
use sentinel_core::Observed;

/// A filter ready to run: lists lower-cased once, kinds first (the cheapest and most selective check).
#[derive(Debug, Clone)]
pub(crate) struct CompiledFilter {
    kinds: Vec<String>,
    services: Vec<String>,
    field_in: Vec<(String, Vec<String>)>,
    field_contains: Vec<(String, Vec<String>)>,
}

impl CompiledFilter {
    pub(crate) fn new(f: &Filter) -> Self {
        Self {
            kinds: f.kind.clone(),
            services: f.service.clone(),
            field_in: f
                .field_in
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            field_contains: f
                .field_contains
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|s| s.to_lowercase()).collect()))
                .collect(),
        }
    }

    /// Whether the kind passes (checked first, so most observations stop here).
    pub(crate) fn kind_matches(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }

    /// Whether the rest of the filter passes.
    pub(crate) fn rest_matches<O: Observed + ?Sized>(&self, o: &O) -> bool {
        if !self.services.is_empty() {
            let svc = o.service();
            let ok = self.services.iter().any(|s| {
                svc == s
                    || (svc.len() > s.len()
                        && svc.starts_with(s.as_str())
                        && svc.as_bytes()[s.len()] == b'-')
            });
            if !ok {
                return false;
            }
        }
        for (field, allowed) in &self.field_in {
            match o.field(field) {
                Some(v) if allowed.iter().any(|a| a == v.as_ref()) => {}
                _ => return false,
            }
        }
        for (field, needles) in &self.field_contains {
            let Some(v) = o.field(field) else {
                return false;
            };
            let v = v.to_lowercase();
            if !needles.iter().any(|n| v.contains(n.as_str())) {
                return false;
            }
        }
        true
    }
}
