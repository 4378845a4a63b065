//! `tracing`: OpenTelemetry export of each trace (OTLP/HTTP with protobuf bodies), off unless a
//! collector is named. Every value is range-checked here, with an error naming its key.

use crate::reader::{Node, Reader};
use crate::validate::http_url;
use serde::Serialize;

/// The longest service name (OTel's `service.name` resource attribute).
const MAX_SERVICE_NAME: usize = 128;
/// The most spans waiting for export (each is a few hundred bytes).
const MAX_QUEUE: u64 = 1_000_000;

/// `tracing`: where each trace's spans are sent, if anywhere.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`; `/v1/traces` is appended unless
    /// the path already ends with it); `None`: no export (the default). Credentials in it
    /// (`https://user:password@collector`, basic auth) are masked when the configuration is shown.
    #[serde(serialize_with = "masked_endpoint")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans are reported under.
    pub service_name: String,
    /// The share of traces exported, 0.0..=1.0 (decided by the trace id, so every span of a trace
    /// agrees).
    pub sample: f64,
    /// The most spans waiting for export; beyond it spans are dropped (counted), never waited for.
    pub queue: usize,
}

/// What a shown configuration puts in place of the credentials of an endpoint URL.
const MASK: &str = "***";

/// The credentials (`user:password@`, or a token alone before the `@`) of `url`'s authority, if any.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..end].rfind('@')?;
    Some((start, start + at))
}

/// `url` with its credentials replaced by `***` (the whole of them: a token given as the user name
/// is as secret as a password), as `config show` and the exporter's log show it.
///
/// A password given as a query parameter (`?password=…`, which PostgreSQL and sqlx take in a
/// connection URL) is masked as well.
pub fn mask_url(url: &str) -> String {
    let url = match userinfo(url) {
        Some((start, at)) => format!("{}{MASK}{}", &url[..start], &url[at..]),
        None => url.to_owned(),
    };
    let Some(q) = url.find('?') else {
        return url;
    };
    let (head, rest) = url.split_at(q + 1);
    let (query, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if secret_param(k) => format!("{k}={MASK}"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{head}{}{fragment}", query.join("&"))
}

/// Whether a query parameter's name (percent-decoded, in any case) names a password.
fn secret_param(key: &str) -> bool {
    let mut name = Vec::with_capacity(key.len());
    let mut bytes = key.bytes();
    while let Some(b) = bytes.next() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match b {
            b'%' => {
                let (hi, lo) = (bytes.next(), bytes.next());
                match (hi.and_then(hex), lo.and_then(hex)) {
                    (Some(h), Some(l)) => name.push(u8::try_from(h * 16 + l).unwrap_or(b'?')),
                    _ => name.extend([b'%'].into_iter().chain(hi).chain(lo)),
                }
            }
            b'+' => name.push(b' '),
            _ => name.push(b),
        }
    }
    String::from_utf8_lossy(&name)
        .to_ascii_lowercase()
        .contains("password")
}

/// Whether a query parameter of `url` that names a password holds the mask.
fn has_masked_query_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once('?') else {
        return false;
    };
    let query = rest.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| secret_param(k) && v == MASK)
}

/// Serializes an optional URL with its credentials masked ([`mask_url`]).
pub(crate) fn masked_url<S: serde::Serializer>(
    v: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    masked_endpoint(v, s)
}

/// Whether `url` carries the mask in place of its credentials: a shown configuration pasted back.
pub(crate) fn has_masked_credentials(url: &str) -> bool {
    userinfo(url).is_some_and(|(s, at)| url[s..at].split(':').any(|p| p == MASK))
        || has_masked_query_password(url)
}

fn masked_endpoint<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(url) => s.serialize_some(&mask_url(url)),
        None => s.serialize_none(),
    }
}

/// Reads and checks the `tracing` section.
pub(crate) fn tracing(r: &mut Reader, s: Option<&Node<'_>>) -> Option<TracingConfig> {
    let otlp_endpoint = r.get(s, "otlp_endpoint").and_then(|n| {
        let url = r.optional_string(&n)?;
        match url {
            Some(u) if http_url(u).is_none() => {
                r.fail(
                    &n.path,
                    "must be an http:// or https:// URL with a host (the collector's OTLP/HTTP address)",
                );
                None
            }
            // A shown configuration pasted back: `***` would go to the collector as credentials.
            Some(u) if userinfo(u).is_some_and(|(s, at)| u[s..at].split(':').any(|p| p == MASK)) => {
                r.fail(
                    &n.path,
                    format!(
                        "`{MASK}` in the URL is the mask a shown configuration puts in place of the \
                         credentials, not credentials: write the real ones"
                    ),
                );
                None
            }
            u => Some(u.map(str::to_owned)),
        }
    });
    let service_name = r.get(s, "service_name").and_then(|n| {
        let name = r.string(&n)?;
        let ok = !name.is_empty()
            && name.len() <= MAX_SERVICE_NAME
            && name.chars().all(|c| !c.is_control());
        if !ok {
            r.fail(
                &n.path,
                format!(
                    "must be 1 to {MAX_SERVICE_NAME} characters, none of them control characters"
                ),
            );
            return None;
        }
        Some(name.to_owned())
    });
    let sample = r.get(s, "sample").and_then(|n| {
        let f = r.float(&n)?;
        if !(0.0..=1.0).contains(&f) {
            r.fail(&n.path, format!("must be between 0.0 and 1.0, got {f}"));
            return None;
        }
        Some(f)
    });
    let queue = r.get(s, "queue").and_then(|n| r.int(&n, 1, MAX_QUEUE));
    Some(TracingConfig {
        otlp_endpoint: otlp_endpoint?,
        service_name: service_name?,
        sample: sample?,
        queue: queue?,
    })
}

#[cfg(test)]
mod tests {
    fn load(yaml: &str) -> Result<crate::ValidatedConfig, crate::ConfigErrors> {
        crate::load_str(yaml, None, &[])
    }

    #[test]
    fn off_by_default() {
        let c = load("{}").unwrap();
        assert_eq!(c.tracing.otlp_endpoint, None);
        assert_eq!(c.tracing.service_name, "sentinel");
        assert!((c.tracing.sample - 1.0).abs() < f64::EPSILON);
        assert_eq!(c.tracing.queue, 2048);
    }

    #[test]
    fn a_collector_is_taken() {
        let c = load("tracing: { otlp_endpoint: http://127.0.0.1:4318, sample: 0.25, queue: 10 }")
            .unwrap();
        assert_eq!(
            c.tracing.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert!((c.tracing.sample - 0.25).abs() < f64::EPSILON);
        assert_eq!(c.tracing.queue, 10);
    }

    #[test]
    fn credentials_in_the_endpoint_are_masked_when_shown() {
        for (url, shown) in [
            (
                "https://otel:s3cr3t-Pa55@collector.example:4318",
                "https://***@collector.example:4318",
            ),
            (
                "http://tok3n-only@127.0.0.1:4318/base?x=1",
                "http://***@127.0.0.1:4318/base?x=1",
            ),
            ("http://127.0.0.1:4318/a@b", "http://127.0.0.1:4318/a@b"),
        ] {
            let c = load(&format!("tracing: {{ otlp_endpoint: '{url}' }}")).unwrap();
            // The daemon still exports with the real credentials...
            assert_eq!(c.tracing.otlp_endpoint.as_deref(), Some(url));
            // ...but a shown configuration never has them.
            let yaml = c.effective_yaml();
            assert!(
                yaml.contains(&format!("otlp_endpoint: {shown}")),
                "{url}: {yaml}"
            );
            assert!(
                !yaml.contains("s3cr3t") && !yaml.contains("tok3n"),
                "{yaml}"
            );
        }
        // The shown form pasted back is refused, naming the key.
        let e = load("tracing: { otlp_endpoint: 'https://***@collector.example:4318' }")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tracing.otlp_endpoint") && e.contains("mask"),
            "{e}"
        );
        let e = load("tracing: { otlp_endpoint: 'https://otel:***@collector.example:4318' }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tracing.otlp_endpoint"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (yaml, key) in [
            (
                "tracing: { otlp_endpoint: 'ftp://x' }",
                "tracing.otlp_endpoint",
            ),
            ("tracing: { otlp_endpoint: '' }", "tracing.otlp_endpoint"),
            ("tracing: { sample: 1.5 }", "tracing.sample"),
            ("tracing: { sample: -0.1 }", "tracing.sample"),
            ("tracing: { service_name: '' }", "tracing.service_name"),
            ("tracing: { queue: 0 }", "tracing.queue"),
            ("tracing: { nope: 1 }", "tracing.nope"),
        ] {
            let e = load(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }
}
