//! The actuator compliance suite (the harness is `compliance/mod.rs`) run on every actuator against
//! the real thing: the three nftables actuators (block as an address and as a range) in a network
//! namespace each test creates, container isolation against the machine's Docker Engine, file
//! quarantine on real files. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compliance;
mod nft_common;

use async_trait::async_trait;
use compliance::{check, Fixture};
use nft_common::{spec, table};
use sentinel_core::{ActionKind, ActionParams, ActionSpec, Actuator, Subject};
use sentinel_respond::actuators::docker::{DockerConfig, IsolateContainer};
use sentinel_respond::actuators::nft::{NftBlockIp, NftHoneypotRedirect, NftRateLimit, NftTable};
use sentinel_respond::actuators::quarantine::{QuarantineConfig, QuarantineFile};
use sentinel_testkit::netns::Netns;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---- nftables -------------------------------------------------------------------------------------

/// An nftables actuator in a namespace of its own; the kernel is read with `nft -j` in that namespace.
struct Nft {
    ns: Netns,
    make: fn(NftTable) -> Box<dyn Actuator>,
    spec: ActionSpec,
    /// The set or chain the action lands in.
    list: [&'static str; 2],
    /// The value (an address, a range) that shows the action is in place there.
    probe: Value,
}

/// Whether `v` holds `needle` anywhere in its tree.
fn contains(v: &Value, needle: &Value) -> bool {
    v == needle
        || match v {
            Value::Array(a) => a.iter().any(|x| contains(x, needle)),
            Value::Object(m) => m.values().any(|x| contains(x, needle)),
            _ => false,
        }
}

#[async_trait]
impl Fixture for Nft {
    async fn build(&self) -> Box<dyn Actuator> {
        (self.make)(table(&self.ns))
    }

    fn spec(&self) -> ActionSpec {
        self.spec.clone()
    }

    async fn world(&self) -> String {
        self.ns.nft_ruleset().unwrap()
    }

    async fn in_effect(&self) -> bool {
        let [what, name] = self.list;
        let Ok(out) = self
            .ns
            .exec("nft", &["-j", "list", what, "inet", "sentinel", name])
        else {
            return false;
        };
        if !out.status.success() {
            // No table (or set, or chain) yet: nothing is in effect.
            return false;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        contains(&v, &self.probe)
    }
}

fn nft_fixture(
    hint: &str,
    make: fn(NftTable) -> Box<dyn Actuator>,
    spec: ActionSpec,
    list: [&'static str; 2],
    probe: Value,
) -> Nft {
    Nft {
        ns: Netns::new(hint).unwrap(),
        make,
        spec,
        list,
        probe,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn nft_block_single_address_complies() {
    check(&nft_fixture(
        "cmpblk4",
        |t| Box::new(NftBlockIp::new(t)),
        spec(ActionKind::BlockIp, ip("203.0.113.7"), 600, Value::Null),
        ["set", "blocked_v4"],
        json!("203.0.113.7"),
    ))
    .await;
}

#[tokio::test]
async fn nft_block_range_complies() {
    check(&nft_fixture(
        "cmpblk6",
        |t| Box::new(NftBlockIp::new(t)),
        spec(
            ActionKind::BlockIp,
            ip("2001:db8:7:1::9"),
            600,
            json!({"cidr": "2001:db8:7:1::/64"}),
        ),
        ["set", "blocked_net_v6"],
        json!({"prefix": {"addr": "2001:db8:7:1::", "len": 64}}),
    ))
    .await;
}

#[tokio::test]
async fn nft_ratelimit_complies() {
    check(&nft_fixture(
        "cmprate",
        |t| Box::new(NftRateLimit::new(t)),
        spec(
            ActionKind::RateLimit,
            ip("198.51.100.18"),
            600,
            json!({"rate_per_sec": 20, "burst": 10}),
        ),
        ["chain", "ratelimit"],
        json!("198.51.100.18"),
    ))
    .await;
}

#[tokio::test]
async fn nft_honeypot_redirect_complies() {
    check(&nft_fixture(
        "cmphpot",
        |t| Box::new(NftHoneypotRedirect::new(t)),
        spec(
            ActionKind::RedirectToHoneypot,
            ip("2001:db8:7::18"),
            600,
            json!({"honeypot": "[2001:db8:7::30]:2222", "ports": [22]}),
        ),
        ["chain", "honeypot"],
        json!("2001:db8:7::18"),
    ))
    .await;
}

// ---- quarantine -----------------------------------------------------------------------------------

/// A file under a root of its own, and a quarantine directory beside it.
struct Quarantine {
    _root: tempfile::TempDir,
    _qparent: tempfile::TempDir,
    cfg: QuarantineConfig,
    file: PathBuf,
}

/// Every file under `dir` with its length and first bytes, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            let body = std::fs::read(&p).unwrap_or_default();
            out.push(format!(
                "{} {} {:?}",
                p.display(),
                body.len(),
                &body[..body.len().min(16)]
            ));
        }
    }
    out.sort();
    out
}

#[async_trait]
impl Fixture for Quarantine {
    async fn build(&self) -> Box<dyn Actuator> {
        Box::new(QuarantineFile::new(self.cfg.clone()).unwrap())
    }

    fn spec(&self) -> ActionSpec {
        ActionSpec {
            kind: ActionKind::QuarantineFile,
            subject: Subject::File(self.file.display().to_string()),
            ttl_secs: 600,
            params: ActionParams::QuarantineFile,
        }
    }

    async fn world(&self) -> String {
        let mut t = tree(&self.cfg.roots[0]);
        t.extend(tree(&self.cfg.dir));
        t.join("\n")
    }

    async fn in_effect(&self) -> bool {
        let moved = !self.file.exists();
        if !moved {
            assert_eq!(
                std::fs::read(&self.file).unwrap(),
                b"<?php eval($_POST['x']); ?>\n"
            );
        }
        moved
    }
}

#[tokio::test]
async fn quarantine_complies() {
    let root = tempfile::tempdir().unwrap();
    let qparent = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(root.path()).unwrap();
    std::fs::create_dir(base.join("www")).unwrap();
    let file = base.join("www").join("upload.php");
    std::fs::write(&file, b"<?php eval($_POST['x']); ?>\n").unwrap();
    let cfg = QuarantineConfig {
        dir: qparent.path().join("q"),
        roots: vec![base],
    };
    check(&Quarantine {
        _root: root,
        _qparent: qparent,
        cfg,
        file,
    })
    .await;
}

// ---- Docker ---------------------------------------------------------------------------------------

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A busybox container on a bridge of its own, and the quarantine network isolation moves it to; all
/// removed on drop, even when the test panics.
struct Docker {
    image: String,
    network: String,
    qnet: String,
    container: String,
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.container]);
        let _ = docker(&["network", "rm", &self.network]);
        let _ = docker(&["network", "rm", &self.qnet]);
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

impl Docker {
    fn config(&self) -> DockerConfig {
        DockerConfig {
            quarantine_network: Some(self.qnet.clone()),
            ..DockerConfig::default()
        }
    }

    fn networks(&self) -> Value {
        let s = docker_ok(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks}}",
            &self.container,
        ]);
        serde_json::from_str(&s).unwrap()
    }
}

#[async_trait]
impl Fixture for Docker {
    async fn build(&self) -> Box<dyn Actuator> {
        Box::new(IsolateContainer::connect(self.config()).await.unwrap())
    }

    fn spec(&self) -> ActionSpec {
        ActionSpec {
            kind: ActionKind::IsolateContainer,
            subject: Subject::Container(self.container.clone()),
            ttl_secs: 600,
            params: ActionParams::parse(ActionKind::IsolateContainer, &Value::Null).unwrap(),
        }
    }

    async fn world(&self) -> String {
        let nets = docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
        format!("{}\n{nets}", self.networks())
    }

    async fn in_effect(&self) -> bool {
        let nets = self.networks();
        let on_own = nets.get(&self.network).is_some();
        let on_q = nets.get(&self.qnet).is_some();
        assert!(on_own != on_q, "on both or neither network: {nets}");
        on_q
    }
}

#[tokio::test]
async fn docker_isolate_complies() {
    // One install at a time is enough here: this binary has one Docker test.
    if !Path::new("/bin/busybox").exists() {
        let st = Command::new("apt-get")
            .args(["install", "-y", "busybox-static"])
            .status()
            .unwrap();
        assert!(st.success(), "could not install busybox-static");
    }
    let prefix = format!("snl-compliance-{}", std::process::id());
    let fx = Docker {
        image: format!("{prefix}-img"),
        network: prefix.clone(),
        qnet: format!("{prefix}-quarantine"),
        container: format!("{prefix}-a"),
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n",
    )
    .unwrap();
    docker_ok(&["build", "-q", "-t", &fx.image, ctx.path().to_str().unwrap()]);
    // A documentation range (`docker_isolate` uses the /24 around it: cargo runs one test binary at a
    // time, so the two never exist at once).
    docker_ok(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        "198.51.100.192/26",
        &fx.network,
    ]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &fx.container,
        "--network",
        &fx.network,
        &fx.image,
    ]);
    check(&fx).await;
}
