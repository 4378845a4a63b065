//! What a validated configuration shows to an operator: the effective configuration as YAML with
//! secret-looking values masked, and the list of unsafe settings to warn about at start-up.
//! It never changes the configuration and never prints anything itself.

use crate::model::ValidatedConfig;
use sentinel_core::{Mode, Redactor};

impl ValidatedConfig {
    /// The effective configuration as YAML, with every value under a secret-looking key (the built-in
    /// fragments plus `logging.redact_keys`) replaced by `***`.
    pub fn effective_yaml(&self) -> String {
        let mut tree = match serde_json::to_value(self) {
            Ok(tree) => tree,
            Err(e) => return format!("# cannot render the configuration: {e}\n"),
        };
        // `api.jwt` holds no secret value (the HS256 secret and the JWKS are in files), but its
        // name is a built-in secret word, which masked the whole section (issuer, audience, files,
        // leeway) as one `***`: redact its fields one by one instead, the file paths shown as
        // every other `*_file` path is.
        let jwt = tree
            .get_mut("api")
            .and_then(|a| a.get_mut("jwt"))
            .map(serde_json::Value::take);
        // `api.tls` holds two paths and a version, no secret, but `key` is a built-in secret word:
        // shown as it is.
        let tls = tree
            .get_mut("api")
            .and_then(|a| a.get_mut("tls"))
            .map(serde_json::Value::take);
        let redactor = Redactor::new(&self.logging.redact_keys);
        redactor.redact(&mut tree);
        if let Some(tls) = tls {
            if let Some(api) = tree.get_mut("api").and_then(|a| a.as_object_mut()) {
                api.insert("tls".into(), tls);
            }
        }
        if let Some(mut jwt) = jwt {
            if let serde_json::Value::Object(fields) = &mut jwt {
                for (k, v) in fields.iter_mut().filter(|(k, _)| !k.ends_with("_file")) {
                    let mut one = serde_json::Map::new();
                    one.insert(k.clone(), v.take());
                    let mut one = serde_json::Value::Object(one);
                    redactor.redact(&mut one);
                    *v = one[k.as_str()].take();
                }
            }
            if let Some(api) = tree.get_mut("api").and_then(|a| a.as_object_mut()) {
                api.insert("jwt".into(), jwt);
            }
        }
        serde_norway::to_string(&tree)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// One line per unsafe setting (the caller prefixes `WARNING: `); empty for the defaults.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.api.allow_insecure_no_auth {
            out.push(
                "api.allow_insecure_no_auth is true: the API accepts requests without a key"
                    .to_string(),
            );
        }
        if !self.api.listen.ip().is_loopback()
            && !self.api.tls_terminated_by_proxy
            && self.api.tls.is_none()
        {
            out.push(format!(
                "api.listen {} is not loopback and no TLS is in front (set api.tls, or api.tls_terminated_by_proxy once a proxy terminates it)",
                self.api.listen
            ));
        }
        if let Some(g) = self.api.grpc_listen.filter(|g| !g.ip().is_loopback()) {
            if !self.api.tls_terminated_by_proxy {
                // api.tls covers the HTTP listener only: the gRPC listener stays plaintext.
                out.push(format!(
                    "api.grpc_listen {g} is not loopback and no TLS is in front (gRPC is plaintext even with api.tls; set api.tls_terminated_by_proxy once a proxy terminates it)"
                ));
            }
        }
        if self.bus.redis_url().is_some() && self.fleet.secret.is_none() {
            out.push(
                "bus is Redis and fleet.secret is not set: bus messages are not signed, so anyone \
                 who can write to that Redis can have every responder block an address or isolate \
                 a container (set fleet.secret or fleet.secret_file, the same on every node)"
                    .to_string(),
            );
        }
        for (i, src) in self.sources.iter().enumerate() {
            if let crate::SourceConfig::Syslog { syslog, .. } = src {
                let allowed_peers = &syslog.allowed_peers;
                if let Some(all) = allowed_peers.iter().find(|n| n.prefix_len() == 0) {
                    out.push(format!(
                        "sources[{i}].allowed_peers has {all}: the syslog source accepts every \
                         sender, and anyone who can send it lines can make Sentinel act"
                    ));
                }
            }
        }
        if self.policy.mode == Mode::Enforce && self.policy.allowlist.is_empty() {
            out.push("policy.mode is enforce and policy.allowlist is empty".to_string());
        } else if self.policy.allowlist.is_empty() {
            let enforced: Vec<&str> = self
                .respond
                .actuators
                .iter()
                .filter(|(_, a)| a.mode == Some(Mode::Enforce))
                .map(|(k, _)| k.as_str())
                .collect();
            if !enforced.is_empty() {
                out.push(format!(
                    "respond.actuators {} enforce and policy.allowlist is empty",
                    enforced.join(", ")
                ));
            }
        }
        crate::notify::warnings(&self.notify, "notify", &mut out);
        if let Some(sup) = &self.supervise {
            crate::notify::crash_route_warnings(
                &self.notify,
                "notify",
                sup.children.len(),
                &mut out,
            );
        }
        out
    }
}
