//! Container isolation through the Docker Engine API: cut a container off every network it is on, and put
//! it back exactly as it was on revert.
//!
//! It owns only the network attachments of the containers it isolates and the quarantine network it
//! creates (an `internal` bridge with inter-container traffic off). It never isolates a protected container
//! (configured names or ids, and Sentinel's own container), never touches containers sharing the host's or
//! another container's network stack, and never stops, restarts or changes a container otherwise.
//!
//! `observe` reports what the engine shows: containers attached to a quarantine network, plus containers
//! this process isolated that still have no network at all. Labels would be the natural marker, but a
//! container's labels cannot change after creation, so the revert token (kept by the ledger, and in memory
//! here) is the record of what the container was attached to; a container found only through the engine
//! is reported with a `partial` token.
//!
//! `plan()` and `apply()` share one builder: after inspecting the container, both compute the same list
//! of Engine API calls (see `docker_calls`); the dry run renders it, apply runs it and records it in
//! [`Applied::operations`]. Container and network names are typed (Docker's grammar) before they get here.

use super::docker_calls::{quarantine_network_options, seg, EngineCall};
use super::docker_token::is_protected;
pub use super::docker_token::{own_container_id, IsolationToken, NetworkAttachment};
use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, EndpointSettings};
use bollard::network::{ConnectNetworkOptions, DisconnectNetworkOptions, InspectNetworkOptions};
use bollard::{Docker, API_DEFAULT_VERSION};
use sentinel_core::params::{ContainerName, NetworkName};
use sentinel_core::{
    ActError, ActionKind, ActionParams, ActionSpec, Actuator, Applied, Preview, Subject,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The label put on the quarantine networks Sentinel creates.
pub const QUARANTINE_LABEL: &str = "io.sentinel.quarantine";

/// How to reach the engine and what never to isolate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// The engine's Unix socket.
    pub socket: PathBuf,
    /// Container names or ids (at least 12 hex digits) that are never isolated.
    pub protect: Vec<String>,
    /// Also protect the container Sentinel itself runs in, if any.
    pub protect_self: bool,
    /// The quarantine network to attach isolated containers to when the action does not name one
    /// (param `quarantine_network`); `None` leaves them with no network at all.
    pub quarantine_network: Option<String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/var/run/docker.sock"),
            protect: Vec::new(),
            protect_self: true,
            quarantine_network: None,
        }
    }
}

/// What a revert found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertReport {
    /// The container no longer exists; nothing to restore.
    pub container_gone: bool,
    /// Networks reconnected.
    pub reconnected: Vec<String>,
    /// Networks it was already attached to.
    pub already_connected: Vec<String>,
    /// Anything restored differently from the original (e.g. a static address that was taken).
    pub notes: Vec<String>,
}

/// The [`ActionKind::IsolateContainer`] actuator.
pub struct IsolateContainer {
    /// `None`: the engine's socket is not there (a role that only plans).
    docker: Option<Docker>,
    protect: Vec<String>,
    quarantine_network: Option<NetworkName>,
    isolated: Arc<Mutex<HashMap<String, Applied>>>,
}

fn engine(what: &str, e: DockerError) -> ActError {
    ActError::Backend(format!("docker {what}: {e}"))
}

fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The parts of an inspect the actuator needs.
struct Target {
    id: String,
    name: String,
    network_mode: String,
    networks: Vec<(String, EndpointSettings)>,
}

impl Target {
    fn from_inspect(info: ContainerInspectResponse) -> Self {
        let mut networks: Vec<_> = info
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default()
            .into_iter()
            .collect();
        networks.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            id: info.id.unwrap_or_default(),
            name: info
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            network_mode: info
                .host_config
                .and_then(|h| h.network_mode)
                .unwrap_or_default(),
            networks,
        }
    }

    /// The networks to cut: all but `none` and the quarantine network itself.
    fn to_cut<'a>(&'a self, qnet: Option<&'a str>) -> impl Iterator<Item = &'a String> + 'a {
        self.networks
            .iter()
            .map(|(n, _)| n)
            .filter(move |n| n.as_str() != "none" && Some(n.as_str()) != qnet)
    }
}

impl IsolateContainer {
    /// Connects to the engine (negotiating the API version) and builds the protect list.
    pub async fn connect(cfg: DockerConfig) -> Result<Self, ActError> {
        let mut me = Self::offline(cfg)?;
        let docker = me.docker.take().ok_or_else(|| {
            ActError::Backend("docker connect: the engine's socket is not there".into())
        })?;
        me.docker = Some(
            docker
                .negotiate_version()
                .await
                .map_err(|e| engine("version negotiation", e))?,
        );
        Ok(me)
    }

    /// The actuator without talking to the engine: what a role that only plans uses. Its dry run
    /// still inspects the container when the engine's socket is there (read-only), to list the exact
    /// networks it would cut; without the engine it lists the calls in general terms.
    pub fn offline(cfg: DockerConfig) -> Result<Self, ActError> {
        let quarantine_network = match &cfg.quarantine_network {
            Some(q) => Some(q.parse::<NetworkName>().map_err(|e| {
                ActError::Refused(format!("respond.docker_quarantine_network: {e}"))
            })?),
            None => None,
        };
        let socket = cfg.socket.display().to_string();
        let docker = Docker::connect_with_unix(&socket, 120, API_DEFAULT_VERSION).ok();
        let mut protect = cfg.protect;
        if cfg.protect_self {
            protect.extend(own_container_id());
        }
        Ok(Self {
            docker,
            protect,
            quarantine_network,
            isolated: Arc::default(),
        })
    }

    fn api(&self) -> Result<&Docker, ActError> {
        self.docker
            .as_ref()
            .ok_or_else(|| ActError::Backend("the Docker Engine's socket is not there".into()))
    }

    /// The names and ids this actuator refuses to isolate.
    pub fn protected(&self) -> &[String] {
        &self.protect
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, Applied>> {
        self.isolated.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn container_of(a: &ActionSpec) -> Result<ContainerName, ActError> {
        match (&a.kind, &a.subject) {
            (ActionKind::IsolateContainer, Subject::Container(c)) => c
                .parse()
                .map_err(|e| ActError::Refused(format!("subject: {e}"))),
            (kind, subject) => Err(ActError::Refused(format!(
                "{kind} does not apply to {subject}"
            ))),
        }
    }

    fn qnet_of(&self, a: &ActionSpec) -> Result<Option<NetworkName>, ActError> {
        match &a.params {
            ActionParams::IsolateContainer(p) => Ok(p
                .quarantine_network
                .clone()
                .or_else(|| self.quarantine_network.clone())),
            other => Err(ActError::Refused(format!(
                "{} parameters given to isolate_container",
                other.kind()
            ))),
        }
    }

    async fn inspect(&self, c: &str) -> Result<Option<Target>, ActError> {
        match self.api()?.inspect_container(&seg(c), None).await {
            Ok(info) => Ok(Some(Target::from_inspect(info))),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine("inspect", e)),
        }
    }

    /// The calls isolating `target` makes after inspecting it, in order: create the quarantine network
    /// if it is missing, disconnect every other network, connect the quarantine network.
    fn isolation_calls(
        c: &ContainerName,
        target: &Target,
        qnet: Option<&NetworkName>,
        qnet_exists: bool,
    ) -> Result<Vec<EngineCall>, ActError> {
        let mut calls = vec![EngineCall::Inspect(c.clone())];
        if let (Some(q), false) = (qnet, qnet_exists) {
            calls.push(EngineCall::CreateNetwork(q.clone()));
        }
        let cut: Vec<&String> = target.to_cut(qnet.map(|q| q.as_str())).collect();
        if cut.is_empty() && qnet.is_none() {
            return Err(ActError::Refused(format!(
                "container {} has no networks to disconnect",
                target.name
            )));
        }
        for net in cut {
            calls.push(EngineCall::Disconnect {
                network: net.clone(),
                container_id: target.id.clone(),
            });
        }
        if let Some(q) = qnet {
            if !target.networks.iter().any(|(n, _)| n == q.as_str()) {
                calls.push(EngineCall::Connect {
                    network: q.clone(),
                    container_id: target.id.clone(),
                });
            }
        }
        Ok(calls)
    }

    /// Runs one call (the inspect is done by the caller, whose result the list was built from).
    async fn run(&self, call: &EngineCall) -> Result<(), ActError> {
        match call {
            EngineCall::Inspect(_) => Ok(()),
            EngineCall::CreateNetwork(q) => self.ensure_quarantine_network(q.as_str()).await,
            EngineCall::Disconnect {
                network,
                container_id,
            } => self
                .disconnect(network, container_id)
                .await
                .map_err(|e| engine(&format!("disconnect from {network}"), e)),
            EngineCall::Connect {
                network,
                container_id,
            } => self
                .connect_to(network.as_str(), container_id, EndpointSettings::default())
                .await
                .map_err(|e| engine(&format!("connect to {network}"), e)),
        }
    }

    /// Refuses protected containers and those whose network stack is not their own.
    fn screen(&self, t: &Target) -> Result<(), ActError> {
        if let Some(p) = is_protected(&self.protect, &t.id, &t.name) {
            return Err(ActError::Refused(format!(
                "container {} ({}) is protected (`{p}`)",
                t.name,
                t.id.get(..12).unwrap_or(&t.id)
            )));
        }
        let mode = t.network_mode.as_str();
        if mode == "host" || mode.starts_with("container:") {
            return Err(ActError::Refused(format!(
                "container {} uses network mode `{mode}`; it cannot be isolated by disconnecting networks",
                t.name
            )));
        }
        Ok(())
    }

    /// Whether the quarantine network exists; refuses one that exists but is not internal.
    async fn quarantine_network_exists(&self, q: &str) -> Result<bool, ActError> {
        match self
            .api()?
            .inspect_network(&seg(q), None::<InspectNetworkOptions<String>>)
            .await
        {
            Ok(n) if n.internal == Some(true) => Ok(true),
            Ok(_) => Err(ActError::Refused(format!(
                "quarantine network `{q}` exists but is not internal; refusing to use it"
            ))),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(engine(&format!("inspect network {q}"), e)),
        }
    }

    async fn ensure_quarantine_network(&self, q: &str) -> Result<(), ActError> {
        if self.quarantine_network_exists(q).await? {
            return Ok(());
        }
        match self
            .api()?
            .create_network(quarantine_network_options(q))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(409) => {
                self.quarantine_network_exists(q).await.map(|_| ())
            }
            Err(e) => Err(engine(&format!("create network {q}"), e)),
        }
    }

    async fn disconnect(&self, net: &str, id: &str) -> Result<(), DockerError> {
        let opts = DisconnectNetworkOptions {
            container: id.to_string(),
            force: false,
        };
        match &self.docker {
            Some(d) => d.disconnect_network(&seg(net), opts).await,
            None => Err(DockerError::SocketNotFoundError("docker".into())),
        }
    }

    async fn connect_to(
        &self,
        net: &str,
        id: &str,
        ep: EndpointSettings,
    ) -> Result<(), DockerError> {
        let opts = ConnectNetworkOptions {
            container: id.to_string(),
            endpoint_config: ep,
        };
        match &self.docker {
            Some(d) => d.connect_network(&seg(net), opts).await,
            None => Err(DockerError::SocketNotFoundError("docker".into())),
        }
    }

    /// Puts back attachments after a failed apply; best effort, the apply error is what is reported.
    async fn roll_back(&self, id: &str, done: &[NetworkAttachment]) {
        for att in done.iter().rev() {
            if self
                .connect_to(&att.network, id, att.endpoint(true))
                .await
                .is_err()
            {
                let _ = self.connect_to(&att.network, id, att.endpoint(false)).await;
            }
        }
    }

    /// Reverts and says what it found; [`Actuator::revert`] is this without the report.
    pub async fn revert_report(&self, t: &Applied) -> Result<RevertReport, ActError> {
        if t.kind != ActionKind::IsolateContainer {
            return Err(ActError::BadToken(format!(
                "a {} token given to docker",
                t.kind
            )));
        }
        let tok: IsolationToken = serde_json::from_value(t.token.clone())
            .map_err(|e| ActError::BadToken(e.to_string()))?;
        let mut report = RevertReport::default();
        let Some(now) = self.inspect(&tok.container_id).await? else {
            self.ledger().remove(&tok.container_id);
            report.container_gone = true;
            report.notes.push(format!(
                "container {} ({}) no longer exists; nothing to restore",
                tok.container_name, tok.container_id
            ));
            return Ok(report);
        };
        let attached: BTreeSet<&str> = now.networks.iter().map(|(n, _)| n.as_str()).collect();
        let mut failures = Vec::new();
        for att in &tok.networks {
            if attached.contains(att.network.as_str()) {
                report.already_connected.push(att.network.clone());
                continue;
            }
            match self
                .connect_to(&att.network, &now.id, att.endpoint(true))
                .await
            {
                Ok(()) => report.reconnected.push(att.network.clone()),
                Err(e) if att.has_static_ip() && status(&e) != Some(404) => {
                    match self
                        .connect_to(&att.network, &now.id, att.endpoint(false))
                        .await
                    {
                        Ok(()) => {
                            report.reconnected.push(att.network.clone());
                            report.notes.push(format!(
                                "{}: static address not restored ({e}); reconnected with a dynamic one",
                                att.network
                            ));
                        }
                        Err(e) => failures.push(format!("{}: {e}", att.network)),
                    }
                }
                Err(e) => failures.push(format!("{}: {e}", att.network)),
            }
        }
        if !failures.is_empty() {
            // Still on the quarantine network, if any: better cut off than half restored and unseen.
            return Err(ActError::Backend(format!(
                "could not reconnect {} to: {}",
                tok.container_name,
                failures.join("; ")
            )));
        }
        if let Some(q) = &tok.quarantine_network {
            if attached.contains(q.as_str()) {
                match self.disconnect(q, &now.id).await {
                    Ok(()) => {}
                    Err(e) if status(&e) == Some(404) => {}
                    Err(e) => return Err(engine(&format!("disconnect from {q}"), e)),
                }
            }
        }
        self.ledger().remove(&tok.container_id);
        Ok(report)
    }
}

#[async_trait]
impl Actuator for IsolateContainer {
    fn kind(&self) -> ActionKind {
        ActionKind::IsolateContainer
    }

    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
        let c = Self::container_of(a)?;
        let qnet = self.qnet_of(a)?;
        let target = match self.inspect(c.as_str()).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err(ActError::Refused("subject: no such container".into())),
            Err(_) => {
                // The engine is not reachable from here: the calls in general terms.
                let mut operations = vec![EngineCall::Inspect(c.clone()).render()];
                operations.push(format!(
                    "POST /networks/<each network>/disconnect {}",
                    serde_json::json!({"Container": "<id>", "Force": false})
                ));
                if let Some(q) = qnet {
                    operations.push(
                        EngineCall::Connect {
                            network: q,
                            container_id: "<id>".into(),
                        }
                        .render(),
                    );
                }
                return Ok(Preview {
                    kind: ActionKind::IsolateContainer,
                    operations,
                });
            }
        };
        self.screen(&target)?;
        let exists = match &qnet {
            Some(q) => self.quarantine_network_exists(q.as_str()).await?,
            None => false,
        };
        let calls = Self::isolation_calls(&c, &target, qnet.as_ref(), exists)?;
        Ok(Preview {
            kind: ActionKind::IsolateContainer,
            operations: calls.iter().map(EngineCall::render).collect(),
        })
    }

    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
        let c = Self::container_of(a)?;
        let qnet = self.qnet_of(a)?;
        let Some(target) = self.inspect(c.as_str()).await? else {
            return Err(ActError::Refused("subject: no such container".into()));
        };
        self.screen(&target)?;
        if let Some(prev) = self.ledger().get(&target.id) {
            return Ok(prev.clone());
        }
        let exists = match &qnet {
            Some(q) => self.quarantine_network_exists(q.as_str()).await?,
            None => false,
        };
        let calls = Self::isolation_calls(&c, &target, qnet.as_ref(), exists)?;
        let mut done: Vec<NetworkAttachment> = Vec::new();
        for call in &calls {
            if let Err(e) = self.run(call).await {
                self.roll_back(&target.id, &done).await;
                return Err(e);
            }
            if let EngineCall::Disconnect { network, .. } = call {
                if let Some((n, ep)) = target.networks.iter().find(|(n, _)| n == network) {
                    done.push(NetworkAttachment::from_endpoint(n, &target.id, ep));
                }
            }
        }
        let token = IsolationToken {
            container_id: target.id.clone(),
            container_name: target.name.clone(),
            networks: done,
            quarantine_network: qnet.map(|q| q.as_str().to_owned()),
            partial: false,
        };
        let applied = Applied {
            kind: ActionKind::IsolateContainer,
            subject: a.subject.clone(),
            token: serde_json::to_value(&token)
                .map_err(|e| ActError::Backend(format!("token: {e}")))?,
            operations: calls.iter().map(EngineCall::render).collect(),
        };
        self.ledger().insert(target.id, applied.clone());
        Ok(applied)
    }

    async fn revert(&self, t: &Applied) -> Result<(), ActError> {
        self.revert_report(t).await.map(|_| ())
    }

    async fn observe(&self) -> Result<Vec<Applied>, ActError> {
        let known = self.ledger().clone();
        let mut qnets: BTreeSet<String> = self
            .quarantine_network
            .iter()
            .map(|q| q.as_str().to_owned())
            .collect();
        for a in known.values() {
            if let Some(q) = a.token.get("quarantine_network").and_then(|v| v.as_str()) {
                qnets.insert(q.to_string());
            }
        }
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for q in &qnets {
            let net = match self
                .api()?
                .inspect_network(&seg(q), None::<InspectNetworkOptions<String>>)
                .await
            {
                Ok(n) => n,
                Err(e) if status(&e) == Some(404) => continue,
                Err(e) => return Err(engine(&format!("inspect network {q}"), e)),
            };
            for (id, c) in net.containers.unwrap_or_default() {
                if !seen.insert(id.clone()) {
                    continue;
                }
                if let Some(a) = known.get(&id) {
                    out.push(a.clone());
                    continue;
                }
                let name = c.name.unwrap_or_else(|| id.clone());
                let token = IsolationToken {
                    container_id: id,
                    container_name: name.clone(),
                    networks: Vec::new(),
                    quarantine_network: Some(q.clone()),
                    partial: true,
                };
                out.push(Applied {
                    kind: ActionKind::IsolateContainer,
                    subject: Subject::Container(name),
                    token: serde_json::to_value(&token)
                        .map_err(|e| ActError::Backend(format!("token: {e}")))?,
                    operations: Vec::new(),
                });
            }
        }
        for (id, a) in &known {
            if seen.contains(id) {
                continue;
            }
            if let Some(t) = self.inspect(id).await? {
                if t.to_cut(None).next().is_none() {
                    out.push(a.clone());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_are_checked() {
        assert!("sentinel-quarantine".parse::<NetworkName>().is_ok());
        assert!("../x".parse::<NetworkName>().is_err());
        assert!("".parse::<NetworkName>().is_err());
        assert!(super::super::docker_token::is_default_network("bridge"));
        assert!(IsolateContainer::offline(DockerConfig {
            quarantine_network: Some("x/../y".into()),
            ..DockerConfig::default()
        })
        .is_err());
    }
}
