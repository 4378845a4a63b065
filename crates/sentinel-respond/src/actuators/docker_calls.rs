//! The Docker Engine API calls container isolation makes, as values: `plan()` renders the list, `apply()`
//! runs the very same list. Every path segment is built from a name validated to Docker's grammar (or
//! an id the engine itself returned) and percent-encoded on top; nothing a caller sends is pasted in.

use super::docker::QUARANTINE_LABEL;
use bollard::network::CreateNetworkOptions;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sentinel_core::params::{ContainerName, NetworkName};
use std::collections::HashMap;

/// Characters left as they are in a URL path segment: RFC 3986's unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A name as one URL path segment, percent-encoded. Names Sentinel sends are validated to Docker's
/// grammar (which needs no encoding) or come from the engine itself; encoding is the second guard.
pub(crate) fn seg(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// One Engine API call isolation makes, built only from validated names and the engine's own ids.
/// `plan()` renders these; `apply()` runs the very same list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EngineCall {
    /// `GET /containers/{c}/json`.
    Inspect(ContainerName),
    /// `POST /networks/create` (an internal bridge, inter-container traffic off, labelled).
    CreateNetwork(NetworkName),
    /// `POST /networks/{net}/disconnect`.
    Disconnect {
        network: String,
        container_id: String,
    },
    /// `POST /networks/{net}/connect`.
    Connect {
        network: NetworkName,
        container_id: String,
    },
}

impl EngineCall {
    pub(crate) fn render(&self) -> String {
        match self {
            EngineCall::Inspect(c) => format!("GET /containers/{}/json", seg(c.as_str())),
            EngineCall::CreateNetwork(q) => {
                let body = serde_json::to_string(&quarantine_network_options(q.as_str()))
                    .unwrap_or_default();
                format!("POST /networks/create {body}")
            }
            EngineCall::Disconnect {
                network,
                container_id,
            } => format!(
                "POST /networks/{}/disconnect {}",
                seg(network),
                serde_json::json!({"Container": container_id, "Force": false})
            ),
            EngineCall::Connect {
                network,
                container_id,
            } => format!(
                "POST /networks/{}/connect {}",
                seg(network.as_str()),
                serde_json::json!({"Container": container_id, "EndpointConfig": {}})
            ),
        }
    }
}

/// The quarantine network Sentinel creates: an internal bridge, inter-container traffic off, labelled.
pub(crate) fn quarantine_network_options(q: &str) -> CreateNetworkOptions<String> {
    CreateNetworkOptions {
        name: q.to_string(),
        check_duplicate: true,
        driver: "bridge".into(),
        internal: true,
        labels: HashMap::from([(QUARANTINE_LABEL.to_string(), "true".to_string())]),
        options: HashMap::from([(
            "com.docker.network.bridge.enable_icc".to_string(),
            "false".to_string(),
        )]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn calls_are_rendered_from_validated_names_only() {
        assert_eq!(seg("a/../b?c=1"), "a%2F..%2Fb%3Fc%3D1");
        assert_eq!(seg("web_1.v-2"), "web_1.v-2");
        let c: ContainerName = "web".parse().unwrap();
        assert_eq!(EngineCall::Inspect(c).render(), "GET /containers/web/json");
        let d = EngineCall::Disconnect {
            network: "odd name/x".into(),
            container_id: "abc".into(),
        };
        assert_eq!(
            d.render(),
            "POST /networks/odd%20name%2Fx/disconnect {\"Container\":\"abc\",\"Force\":false}"
        );
    }
}
