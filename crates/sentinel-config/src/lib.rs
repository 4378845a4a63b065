//! Sentinel's configuration: layered loading, a pure all-problems-at-once validation, and what the
//! operator is shown about the result.
//!
//! Layers, lowest first: the embedded defaults ([`DEFAULT_YAML`]), `sentinel.yml`, a `.env` file, and
//! the process environment. Variables `SENTINEL__SECTION__KEY` set `section.key` (segments lower-cased);
//! `SENTINEL_ALLOW_INSECURE_NO_AUTH` sets `api.allow_insecure_no_auth`; `REDACT_KEYS` appends to
//! `logging.redact_keys`. Other variables (such as `SENTINEL_API_KEY`) are not configuration and are
//! ignored. The flow is parse/merge ([`RawConfig`]) → [`validate`] (pure, reports every problem) →
//! [`ValidatedConfig`]. This crate reads the two files it is pointed at, and the API key files
//! `intel.<provider>.key_file` names, and the certificate and key `api.tls` names (parsed and matched, so a bad one is
//! found by `sentinel config check`), and nothing else: it never reads the process environment itself
//! (callers pass it in). The secrets it holds (API keys, a Redis password, the witness secret) never
//! show in errors or in the rendered configuration.
//!
//! The same reader serves the supervisor: `notify:` (channels, routes, retries, the digest:
//! [`NotifyConfig`]) and the optional `supervise:` section ([`SuperviseConfig`]) of `sentinel.yml`, and
//! a standalone `supervise.yml` through [`load_supervise`] ([`SuperviseFile`]). Their secrets (webhook
//! secrets, SMTP passwords, Matrix tokens, Slack URLs) may come from `<key>_file` files, read while
//! validating, and are masked like the others.
//!
//! Values come out typed: enums for closed choices (log formats, nft hooks, bands, modes), `Option` where
//! a value may be absent (written `null`; an empty string is an error, never "none"), globs parsed. The component
//! crates own those types and the `build()` that turns them into running parts (the ingest crate's
//! [`sentinel_ingest::config`], the response crate's [`sentinel_respond::config`], the investigation's
//! [`sentinel_intel::IntelConfig`]); this crate composes
//! them (the closed [`SourceConfig`] enum) and validates once, so the binary never re-checks a value.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod api_edge;
mod api_grpc;
mod api_jwt;
mod api_stream;
mod api_tls;
mod api_ui;
mod bypass;
mod channels;
mod defaults;
mod error;
mod fleet;
mod intel;
mod layers;
mod model;
mod notify;
mod otlp;
mod policy;
mod ratehook;
mod reader;
mod render;
mod respond;
mod schema;
mod sources;
mod supervise;
mod validate;

pub use api_edge::EdgeConfig;
pub use api_jwt::JwtConfig;
pub use api_stream::StreamConfig;
pub use api_tls::{
    certified_key, read_tls_files, TlsConfig, TlsFile, TlsFileError, TlsFiles, TlsVersion,
};
pub use api_ui::UiConfig;
pub use defaults::DEFAULT_YAML;
pub use error::{ConfigError, ConfigErrors};
pub use fleet::{BusSetting, FleetConfig, DEFAULT_REDIS_BUS};
pub use layers::{
    RawConfig, Text, ALLOW_INSECURE_VAR, BUS_VAR, ENV_PREFIX, REDACT_KEYS_VAR, SUPERVISE_ENV_PREFIX,
};
pub use model::{
    ActionRule, ApiConfig, AuditConfig, Band, ConfidenceBands, DetectConfig, FalcoConfig,
    HeuristicConfig, LogLevel, LoggingConfig, PipelineConfig, PolicyConfig, RiskBands, Rule,
    StoreConfig, StoreSync, ValidatedConfig, WitnessConfig,
};
pub use otlp::{mask_url, TracingConfig};
pub use ratehook::{RateLimit, RateLimitConfig, WebhooksConfig};
pub use respond::{ActuatorConfig, RespondConfig};
pub use sentinel_ingest::config::{
    Fail2banFilterConfig, FileSourceConfig, Glob, JournaldSourceConfig, LineFormat, LogFormat,
    SyslogSourceConfig,
};
pub use sentinel_intel::IntelConfig;
pub use sentinel_notify::NotifyConfig;
pub use sentinel_respond::actuators::nft::FilterHook;
pub use sentinel_respond::config::{DockerSettings, NftSettings, QuarantineSettings};
pub use sentinel_supervise::SuperviseConfig;
pub use sources::{ScenarioConfig, SourceConfig, FORMATS};
pub use supervise::{SuperviseFile, SUPERVISE_DATA_DIR};
pub use validate::validate;

use std::path::Path;

/// Where the configuration comes from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// `sentinel.yml`; when given it must exist.
    pub yaml_path: Option<&'a Path>,
    /// A `.env` file; when given but missing it is skipped.
    pub dotenv_path: Option<&'a Path>,
    /// The process environment (callers pass `std::env::vars().collect()`).
    pub env: &'a [(String, String)],
}

/// Reads the files, merges every layer, and validates the result.
pub fn load(src: &Sources) -> Result<ValidatedConfig, ConfigErrors> {
    load_read(src).map(|(cfg, _)| cfg)
}

/// The text of the files [`load_read`] read (`None`: not given, or a `.env` that does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadText {
    /// The configuration file's text.
    pub yaml: Option<String>,
    /// The `.env` file's text.
    pub dotenv: Option<String>,
}

/// Like [`load`], and hands back the text read from each file, exactly as loaded (for its hash).
pub fn load_read(src: &Sources) -> Result<(ValidatedConfig, ReadText), ConfigErrors> {
    let mut read_errors = Vec::new();
    let yaml_name = src.yaml_path.map(|p| p.display().to_string());
    let yaml_body = src
        .yaml_path
        .and_then(|p| match std::fs::read_to_string(p) {
            Ok(body) => Some(body),
            Err(e) => {
                read_errors.push(ConfigError::new(
                    p.display().to_string(),
                    format!("cannot read: {e}"),
                ));
                None
            }
        });
    let dotenv_name = src.dotenv_path.map(|p| p.display().to_string());
    let dotenv_body = src
        .dotenv_path
        .and_then(|p| match std::fs::read_to_string(p) {
            Ok(body) => Some(body),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                read_errors.push(ConfigError::new(
                    p.display().to_string(),
                    format!("cannot read: {e}"),
                ));
                None
            }
        });
    let yaml = yaml_name
        .as_deref()
        .zip(yaml_body.as_deref())
        .map(|(name, body)| Text { name, body });
    let dotenv = dotenv_name
        .as_deref()
        .zip(dotenv_body.as_deref())
        .map(|(name, body)| Text { name, body });
    let mut raw = RawConfig::from_layers(yaml, dotenv, src.env);
    read_errors.append(&mut raw.layer_errors);
    raw.layer_errors = read_errors;
    let cfg = validate(&raw)?;
    Ok((
        cfg,
        ReadText {
            yaml: yaml_body,
            dotenv: dotenv_body,
        },
    ))
}

/// Like [`load`], from text instead of files (the YAML is named `sentinel.yml`, the `.env` text `.env`).
pub fn load_str(
    yaml: &str,
    dotenv: Option<&str>,
    env: &[(String, String)],
) -> Result<ValidatedConfig, ConfigErrors> {
    let yaml = Text {
        name: "sentinel.yml",
        body: yaml,
    };
    let dotenv = dotenv.map(|body| Text { name: ".env", body });
    validate(&RawConfig::from_layers(Some(yaml), dotenv, env))
}

/// Reads and validates a standalone `supervise.yml` (the supervisor's children, its own `data_dir`
/// and `notify`), with `SENTINEL_SUPERVISE__SECTION__KEY` variables from `env` on top
/// ([`SUPERVISE_ENV_PREFIX`]). Every problem is reported at once; secrets are never shown. Besides
/// the file it reads only the secret files `notify.channels.<name>.<secret>_file` name.
pub fn load_supervise(
    path: &Path,
    env: &[(String, String)],
) -> Result<SuperviseFile, ConfigErrors> {
    let name = path.display().to_string();
    let body = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            name.as_str(),
            format!("cannot read: {e}"),
        )])
    })?;
    supervise_text(
        Text {
            name: &name,
            body: &body,
        },
        env,
    )
}

/// Like [`load_supervise`], from text (named `supervise.yml` in messages).
pub fn load_supervise_str(
    yaml: &str,
    env: &[(String, String)],
) -> Result<SuperviseFile, ConfigErrors> {
    supervise_text(
        Text {
            name: "supervise.yml",
            body: yaml,
        },
        env,
    )
}

fn supervise_text(text: Text<'_>, env: &[(String, String)]) -> Result<SuperviseFile, ConfigErrors> {
    let (tree, mut errors) = layers::supervise_tree(text, env);
    let mut reader = reader::Reader::default();
    let root = reader::Node::root(&tree);
    let built = if tree.is_object() {
        supervise::supervise_file(&mut reader, &root)
    } else {
        None
    };
    errors.extend(reader.errors);
    let mut errors = error::dedup(errors);
    match built {
        Some(file) if errors.is_empty() => Ok(file),
        _ => {
            if errors.is_empty() {
                errors.push(ConfigError::new(text.name, "invalid configuration"));
            }
            Err(ConfigErrors(errors))
        }
    }
}
