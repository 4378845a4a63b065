//! The nftables table Sentinel owns, and the runner every nftables actuator goes through.
//!
//! Sentinel keeps all its state in one table (`inet sentinel` by default) and never reads, changes or
//! flushes any other table or rule: other firewalls, Docker's chains and the operator's rules stay as they
//! are. The table holds hash sets of single addresses (`blocked_v4`, `blocked_v6`) and interval sets of ranges
//! (`blocked_net_v4`, `blocked_net_v6`), all with per-element timeouts, filter
//! chains at the configured hooks (input and forward by default) that drop the sets and jump to the
//! `ratelimit` chain, a filter chain at prerouting priority -150 that drops the sets before Docker's DNAT
//! (-100) rewrites traffic to published container ports, and a nat chain `honeypot` at prerouting
//! priority -110 for redirects.
//!
//! Scripts run as one atomic transaction each, optionally inside a network namespace
//! (`ip netns exec NS nft …`, used by tests): through the table's resident `nft -j -a -i` session (see
//! `nft_session`), or, for scripts too long for it, fed to a fresh `nft -f -` on stdin. State is read
//! back as nft's JSON, through the same session.
//! Nothing untrusted is ever interpolated: addresses are parsed and re-formatted, ports and rates are
//! integers, comments are generated, and table and namespace names are validated.

use super::nft_session::{one_line, NftProgram, NftSession};
use sentinel_core::ActError;
use serde_json::Value;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

pub use super::nft_block::NftBlockIp;
pub use super::nft_ratelimit::NftRateLimit;
pub use super::nft_redirect::NftHoneypotRedirect;

/// The IPv4 block set.
pub const SET_V4: &str = "blocked_v4";
/// The IPv6 block set.
pub const SET_V6: &str = "blocked_v6";
/// The set of blocked IPv4 ranges (interval, per-element timeouts).
pub const SET_NET_V4: &str = "blocked_net_v4";
/// The set of blocked IPv6 ranges (interval, per-element timeouts).
pub const SET_NET_V6: &str = "blocked_net_v6";
/// Every set of blocked sources: single addresses in hash sets (O(1) lookups and inserts however
/// large), ranges in interval sets.
pub const BLOCK_SETS: [&str; 4] = [SET_V4, SET_V6, SET_NET_V4, SET_NET_V6];
/// The regular chain holding per-source rate limits.
pub const CHAIN_RATELIMIT: &str = "ratelimit";
/// The nat chain holding honeypot redirects.
pub const CHAIN_HONEYPOT: &str = "honeypot";
/// The filter chain at prerouting -150, ahead of Docker's DNAT.
pub const CHAIN_PREROUTING: &str = "prerouting";
/// The prefix of every comment Sentinel puts on a rule it owns.
pub const COMMENT_PREFIX: &str = "sentinel:";

/// Scripts longer than this go to a fresh `nft -f -` instead of the resident session. `nft -i` reads
/// its input through libedit a character at a time: measured on the 2-core bench machine, a 16 KiB
/// line (400 elements) costs ≈ 55 ms there against ≈ 35 ms spawned, a 3.5 MiB one (100,000 elements)
/// 5.4 s against 1.1 s; below ≈ 8 KiB the session wins (0.2 ms for one element against ≈ 10 ms).
pub const SESSION_MAX_SCRIPT: usize = 8 * 1024;

/// What can go wrong talking to nftables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// The table configuration is not acceptable.
    #[error("invalid nftables config: {0}")]
    Config(String),
    /// An action's subject or parameters are not acceptable.
    #[error("invalid action: {0}")]
    Invalid(String),
    /// `nft` (or `ip`) could not be started.
    #[error("could not run nft: {0}")]
    Spawn(#[from] std::io::Error),
    /// `nft` ran and refused.
    #[error("nft failed: {0}")]
    Nft(String),
    /// The transaction was sent and the session lost before nft answered: it may or may not be
    /// committed (the caller can look).
    #[error("nft outcome unknown: {0}")]
    Unknown(String),
    /// `nft -j` printed something we do not understand.
    #[error("unexpected nft output: {0}")]
    Output(String),
    /// A revert token could not be understood.
    #[error("bad revert token: {0}")]
    Token(String),
}

impl NftError {
    /// Whether nft refused because the object is not there (which revert treats as done).
    pub fn is_absent(&self) -> bool {
        match self {
            NftError::Nft(msg) => {
                msg.contains("No such file or directory") || msg.contains("does not exist")
            }
            _ => false,
        }
    }

    /// Whether the transaction may or may not have been committed.
    pub fn is_unknown(&self) -> bool {
        matches!(self, NftError::Unknown(_))
    }
}

impl From<NftError> for ActError {
    fn from(e: NftError) -> Self {
        match e {
            NftError::Config(_) | NftError::Invalid(_) => ActError::Refused(e.to_string()),
            NftError::Token(m) => ActError::BadToken(m),
            NftError::Spawn(_) | NftError::Nft(_) | NftError::Output(_) | NftError::Unknown(_) => {
                ActError::Backend(e.to_string())
            }
        }
    }
}

/// A netfilter hook a filter chain of the table attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterHook {
    /// Traffic to this host.
    Input,
    /// Traffic routed through this host (containers behind Docker's bridges, VMs).
    Forward,
}

impl FilterHook {
    /// The hook's (and the chain's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterHook::Input => "input",
            FilterHook::Forward => "forward",
        }
    }
}

/// Sentinel's nftables table and how to reach it.
#[derive(Debug, Clone)]
pub struct NftTable {
    name: String,
    hooks: Vec<FilterHook>,
    netns: Option<String>,
    nft: String,
    /// The resident `nft -i` every clone writes through.
    session: Arc<NftSession>,
    /// Whether transactions go through the session (else each spawns `nft -f -`).
    resident: bool,
    /// Serialises `ensure` between clones, so two applies never both add a missing fixed rule.
    ensuring: Arc<Mutex<()>>,
    /// Set once `ensure` has succeeded; cleared when nft reports the table or a set missing, so the
    /// next apply rebuilds it. Listing the chains is costly once the sets hold many elements.
    ensured: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for NftTable {
    fn default() -> Self {
        Self {
            name: "sentinel".into(),
            hooks: vec![FilterHook::Input, FilterHook::Forward],
            netns: None,
            nft: "nft".into(),
            session: Arc::new(NftSession::new(NftProgram {
                program: "nft".into(),
                prefix: Vec::new(),
            })),
            resident: true,
            ensuring: Arc::new(Mutex::new(())),
            ensured: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl NftTable {
    /// The table `inet <name>` in the host's own namespace, with input and forward chains.
    pub fn new(name: &str) -> Result<Self, NftError> {
        if !valid_ident(name) {
            return Err(NftError::Config(format!(
                "table name `{name}` must be 1-32 letters, digits or `_`, starting with a letter"
            )));
        }
        Ok(Self {
            name: name.into(),
            ..Self::default()
        })
    }

    /// Runs every nft command inside the network namespace `ns` (`ip netns exec ns nft …`).
    pub fn in_netns(mut self, ns: &str) -> Result<Self, NftError> {
        let ok = !ns.is_empty()
            && ns.len() <= 64
            && ns
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !ns.starts_with('.');
        if !ok {
            return Err(NftError::Config(format!("bad namespace name `{ns}`")));
        }
        self.netns = Some(ns.into());
        self.session = Arc::new(NftSession::new(self.program()));
        Ok(self)
    }

    /// Runs every transaction in an `nft -f -` process of its own instead of the resident session:
    /// the way Sentinel wrote before the session, kept as the baseline `bench/enforce.sh` compares with.
    pub fn without_session(mut self) -> Self {
        self.resident = false;
        self
    }

    /// The filter hooks that get a blocking chain (input and forward by default).
    pub fn with_hooks(mut self, hooks: &[FilterHook]) -> Result<Self, NftError> {
        if hooks.is_empty() {
            return Err(NftError::Config(
                "at least one filter hook is needed".into(),
            ));
        }
        self.hooks = hooks.to_vec();
        self.hooks.dedup();
        Ok(self)
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `inet <name>`, as nft commands spell the table.
    pub fn spec(&self) -> String {
        format!("inet {}", self.name)
    }

    /// The fixed rules of each base chain: (chain, tag, rule body). The tag goes in the rule's comment.
    fn base_rules(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut rules = Vec::new();
        let drops = [
            ("v4", format!("ip saddr @{SET_V4} counter drop")),
            ("v6", format!("ip6 saddr @{SET_V6} counter drop")),
            ("net_v4", format!("ip saddr @{SET_NET_V4} counter drop")),
            ("net_v6", format!("ip6 saddr @{SET_NET_V6} counter drop")),
        ];
        for hook in &self.hooks {
            for (tag, body) in &drops {
                rules.push((hook.as_str(), *tag, body.clone()));
            }
            rules.push((
                hook.as_str(),
                "ratelimit",
                format!("jump {CHAIN_RATELIMIT}"),
            ));
        }
        for (tag, body) in drops {
            rules.push((CHAIN_PREROUTING, tag, body));
        }
        rules
    }

    /// The script creating the table, sets and chains; `add` is a no-op for what exists already.
    pub fn skeleton_script(&self) -> String {
        let t = self.spec();
        let mut s = format!("add table {t}\n");
        s += &format!("add set {t} {SET_V4} {{ type ipv4_addr; flags timeout; }}\n");
        s += &format!("add set {t} {SET_V6} {{ type ipv6_addr; flags timeout; }}\n");
        s += &format!("add set {t} {SET_NET_V4} {{ type ipv4_addr; flags interval, timeout; }}\n");
        s += &format!("add set {t} {SET_NET_V6} {{ type ipv6_addr; flags interval, timeout; }}\n");
        s += &format!("add chain {t} {CHAIN_RATELIMIT}\n");
        for hook in &self.hooks {
            let h = hook.as_str();
            s += &format!(
                "add chain {t} {h} {{ type filter hook {h} priority -10; policy accept; }}\n"
            );
        }
        s += &format!(
            "add chain {t} {CHAIN_PREROUTING} {{ type filter hook prerouting priority -150; policy accept; }}\n"
        );
        s += &format!(
            "add chain {t} {CHAIN_HONEYPOT} {{ type nat hook prerouting priority -110; policy accept; }}\n"
        );
        s
    }

    /// [`NftTable::ensure`], skipped when it already succeeded and nothing has been reported missing since.
    pub async fn ensure_cached(&self) -> Result<(), NftError> {
        if self.ensured.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        self.ensure().await
    }

    /// Forgets that the table was ensured (after nft reported part of it missing).
    pub fn invalidate(&self) {
        self.ensured
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Runs `script` after making sure the table exists; if nft says part of it vanished (deleted behind
    /// Sentinel's back), rebuilds the table once and runs the script again.
    pub async fn run_ensured(&self, script: &str) -> Result<(), NftError> {
        self.ensure_cached().await?;
        match self.run(script).await {
            Err(e) if e.is_absent() => {
                self.invalidate();
                self.ensure().await?;
                self.run(script).await
            }
            other => other,
        }
    }

    /// Creates the table, sets, chains and fixed rules that are missing; safe to call any number of times.
    pub async fn ensure(&self) -> Result<(), NftError> {
        let _one_at_a_time = self.ensuring.lock().await;
        self.run(&self.skeleton_script()).await?;
        let mut missing = String::new();
        let mut chains: Vec<&str> = self.base_rules().iter().map(|r| r.0).collect();
        chains.dedup();
        for chain in chains {
            let present: Vec<String> = self
                .list_rules(chain)
                .await?
                .into_iter()
                .filter_map(|r| r.comment)
                .collect();
            for (c, tag, body) in self.base_rules() {
                let comment = format!("{COMMENT_PREFIX}base:{tag}");
                if c == chain && !present.contains(&comment) {
                    missing += &format!(
                        "add rule {} {c} {body} comment \"{comment}\"\n",
                        self.spec()
                    );
                }
            }
        }
        if !missing.is_empty() {
            self.run(&missing).await?;
        }
        self.ensured
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Deletes the whole table (everything Sentinel put in nftables). Absent is fine.
    pub async fn remove(&self) -> Result<(), NftError> {
        self.invalidate();
        match self.run(&format!("delete table {}\n", self.spec())).await {
            Err(e) if e.is_absent() => Ok(()),
            other => other,
        }
    }

    fn program(&self) -> NftProgram {
        match &self.netns {
            Some(ns) => NftProgram {
                program: "ip".into(),
                prefix: vec!["netns".into(), "exec".into(), ns.clone(), self.nft.clone()],
            },
            None => NftProgram {
                program: self.nft.clone(),
                prefix: Vec::new(),
            },
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.program().command(args)
    }

    /// How many times the resident `nft -i` session died and was started again.
    pub fn session_restarts(&self) -> u64 {
        self.session.restarts()
    }

    /// How many times the resident session was replaced by a fresh one after reaching its budget of
    /// bytes and transactions (its history grows with every line; not a failure).
    pub fn session_recycles(&self) -> u64 {
        self.session.recycled()
    }

    /// The process id of the resident `nft -i` session, while one runs.
    pub async fn session_pid(&self) -> Option<u32> {
        self.session.pid().await
    }

    /// Runs `script` as one atomic transaction: through the resident session, or a fresh `nft -f -`
    /// when it is longer than [`SESSION_MAX_SCRIPT`].
    pub async fn run(&self, script: &str) -> Result<(), NftError> {
        if !self.resident || script.len() > SESSION_MAX_SCRIPT {
            return self.run_spawned(script).await;
        }
        match one_line(script) {
            Some(line) => self.session.run_line(&line).await,
            None => Ok(()),
        }
    }

    /// Runs `script` as one atomic `nft -f -` transaction in a process of its own.
    pub async fn run_spawned(&self, script: &str) -> Result<(), NftError> {
        let mut child = self
            .command(&["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).await?;
            stdin.shutdown().await?;
        }
        let out = child.wait_with_output().await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::Nft(first_error(&String::from_utf8_lossy(
                &out.stderr,
            ))))
        }
    }

    /// Runs `nft -j <args>` and returns the `nftables` array. A plain listing (`list …`, or `-a list
    /// …`: the session runs `nft -j -a`) goes through the resident session; other flags spawn `nft`.
    pub async fn list_json(&self, args: &[&str]) -> Result<Vec<Value>, NftError> {
        let words: Vec<&str> = match args {
            ["-a", rest @ ..] => rest.to_vec(),
            rest => rest.to_vec(),
        };
        let stdout = if self.resident
            && words.first() == Some(&"list")
            && words.iter().all(|w| !w.starts_with('-'))
        {
            self.session.query(&words.join(" ")).await?.into_bytes()
        } else {
            let mut full = vec!["-j"];
            full.extend_from_slice(args);
            let out = self.command(&full).stdin(Stdio::null()).output().await?;
            if !out.status.success() {
                return Err(NftError::Nft(first_error(&String::from_utf8_lossy(
                    &out.stderr,
                ))));
            }
            out.stdout
        };
        let v: Value = serde_json::from_slice(&stdout)
            .map_err(|e| NftError::Output(format!("nft -j {}: {e}", args.join(" "))))?;
        match v.get("nftables") {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(NftError::Output("no `nftables` array".into())),
        }
    }

    /// The rules of one of Sentinel's chains, with handles. A missing chain or table is an empty list.
    pub async fn list_rules(&self, chain: &str) -> Result<Vec<NftRule>, NftError> {
        let items = match self
            // A chain's listing holds no set elements, so `-t` (terse) would change nothing.
            .list_json(&["-a", "list", "chain", "inet", &self.name, chain])
            .await
        {
            Ok(items) => items,
            Err(e) if e.is_absent() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(items
            .iter()
            .filter_map(|i| i.get("rule"))
            .filter_map(NftRule::from_json)
            .collect())
    }
}

/// One rule as `nft -j -a` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct NftRule {
    /// Its handle.
    pub handle: u64,
    /// Its comment, if any.
    pub comment: Option<String>,
    /// Its expressions, as nft's JSON.
    pub expr: Vec<Value>,
}

impl NftRule {
    fn from_json(v: &Value) -> Option<NftRule> {
        Some(NftRule {
            handle: v.get("handle")?.as_u64()?,
            comment: v.get("comment").and_then(Value::as_str).map(str::to_string),
            expr: v.get("expr")?.as_array()?.clone(),
        })
    }

    /// The address a `ip saddr X` / `ip6 saddr X` match compares with, if the rule has one.
    pub fn saddr(&self) -> Option<std::net::IpAddr> {
        self.expr.iter().find_map(|e| {
            let m = e.get("match")?;
            let field = m.get("left")?.get("payload")?.get("field")?.as_str()?;
            if field != "saddr" {
                return None;
            }
            m.get("right")?.as_str()?.parse().ok()
        })
    }
}

/// The useful part of nft's stderr: its `Error:` lines, without the echoed script.
fn first_error(stderr: &str) -> String {
    let errs: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.find("Error:").map(|i| &l[i..]))
        .take(3)
        .collect();
    if errs.is_empty() {
        stderr.trim().chars().take(500).collect()
    } else {
        errs.join("; ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(NftTable::new("sentinel").is_ok());
        assert!(NftTable::new("x; flush ruleset").is_err());
        assert!(NftTable::new("").is_err());
        assert!(NftTable::default().in_netns("snl-a-1-2").is_ok());
        assert!(NftTable::default().in_netns("../x").is_err());
    }

    #[test]
    fn errors_map_to_act_errors() {
        let e: ActError = NftError::Invalid("x".into()).into();
        assert!(matches!(e, ActError::Refused(_)));
        let e: ActError = NftError::Token("x".into()).into();
        assert!(matches!(e, ActError::BadToken(_)));
        assert!(
            NftError::Nft("Error: Could not process rule: No such file or directory".into())
                .is_absent()
        );
        assert!(!NftError::Nft("Error: syntax error".into()).is_absent());
    }

    #[test]
    fn stderr_is_reduced_to_its_errors() {
        let s = "/dev/stdin:1:43-54: Error: element does not exist\ndelete element …\n   ^^^\n";
        assert_eq!(first_error(s), "Error: element does not exist");
    }

    #[test]
    fn skeleton_covers_hooks_and_docker_prerouting() {
        let t = NftTable::default()
            .with_hooks(&[FilterHook::Forward])
            .unwrap();
        let s = t.skeleton_script();
        assert!(
            s.contains("add chain inet sentinel forward { type filter hook forward priority -10;")
        );
        assert!(!s.contains("hook input"));
        assert!(s.contains("hook prerouting priority -150"));
        assert!(s.contains("type nat hook prerouting priority -110"));
    }
}
