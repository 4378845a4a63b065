//! The outgoing proxy of the provider clients, taken from the environment as curl takes it for an
//! `https://` URL: `https_proxy` or `HTTPS_PROXY`, else `all_proxy` or `ALL_PROXY` (the lower-case
//! name first; an empty value is unset), and hosts matching `no_proxy` or `NO_PROXY` go direct.
//!
//! Only https requests go through it, as a `CONNECT` tunnel: the proxy learns the provider's host and
//! port, never the key, which travels inside TLS to the provider. A plain-http `base_url` (allowed to
//! a loopback host only) never goes through a proxy, so `HTTP_PROXY` is not read: forwarding such a
//! request would hand the key to the proxy in clear. A value that cannot be used (not a URL, no port,
//! a SOCKS scheme this build cannot speak) is an error, never silently ignored.

use reqwest::Url;

/// The variables read for the proxy, in order (curl's order for an https URL).
const PROXY_VARS: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
/// The variables read for the hosts that bypass it.
const NO_PROXY_VARS: [&str; 2] = ["no_proxy", "NO_PROXY"];

/// A proxy the provider clients tunnel through. `Debug` shows [`EnvProxy::shown`] (no credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct EnvProxy {
    url: Url,
    var: &'static str,
    no_proxy: Option<String>,
}

impl EnvProxy {
    /// The proxy of this process's environment, if one is set.
    pub fn from_env() -> Result<Option<EnvProxy>, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The proxy given by `get` (a variable's value by name), if one is set.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<EnvProxy>, String> {
        let first = |names: &[&'static str]| {
            names.iter().find_map(|&n| {
                get(n)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .map(|v| (n, v))
            })
        };
        let Some((var, value)) = first(&PROXY_VARS) else {
            return Ok(None);
        };
        let url = parse(&value).map_err(|why| format!("{var}: {why}"))?;
        Ok(Some(EnvProxy {
            url,
            var,
            no_proxy: first(&NO_PROXY_VARS).map(|(_, v)| v),
        }))
    }

    /// `scheme://host:port (VAR[, no_proxy: LIST])`: what a log line shows (no credentials).
    pub fn shown(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let mut s = format!("{}://{host}{port} ({})", self.url.scheme(), self.var);
        if let Some(n) = &self.no_proxy {
            s.push_str(&format!(", no_proxy: {n}"));
        }
        s
    }

    /// The reqwest proxy: https requests only, the `no_proxy` hosts excepted.
    pub(crate) fn to_reqwest(&self) -> Result<reqwest::Proxy, String> {
        let proxy = reqwest::Proxy::https(self.url.as_str())
            .map_err(|e| format!("{}: cannot use the proxy: {e}", self.var))?;
        Ok(proxy.no_proxy(
            self.no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string),
        ))
    }
}

impl std::fmt::Debug for EnvProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EnvProxy").field(&self.shown()).finish()
    }
}

/// A proxy URL as curl reads one (no scheme: `http://`), checked: http or https, a host, a port.
fn parse(value: &str) -> Result<Url, String> {
    let text = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let url = Url::parse(&text).map_err(|e| format!("not a proxy URL ({e})"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "proxy scheme {other:?} is not supported (http:// or https://)"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the proxy URL has no host".into());
    }
    if url.port().is_none() {
        return Err("give the proxy's port (e.g. http://proxy:3128)".into());
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err("a proxy URL is scheme://host:port, without a path".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Option<EnvProxy>, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EnvProxy::from_vars(|n| map.get(n).cloned())
    }

    #[test]
    fn none_set_or_empty_is_no_proxy() {
        assert_eq!(from(&[]).unwrap(), None);
        assert_eq!(from(&[("HTTPS_PROXY", "  ")]).unwrap(), None);
        // Plain-http requests never go through a proxy: HTTP_PROXY is not read.
        assert_eq!(
            from(&[("HTTP_PROXY", "http://192.0.2.1:3128")]).unwrap(),
            None
        );
        assert_eq!(
            from(&[("http_proxy", "http://192.0.2.1:3128")]).unwrap(),
            None
        );
    }

    #[test]
    fn curl_order_lower_case_first_then_all_proxy() {
        let p = from(&[
            ("HTTPS_PROXY", "http://192.0.2.2:3128"),
            ("https_proxy", "http://192.0.2.1:3128"),
            ("ALL_PROXY", "http://192.0.2.3:3128"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.shown(), "http://192.0.2.1:3128 (https_proxy)");
        let p = from(&[("HTTPS_PROXY", "http://192.0.2.2:3128")])
            .unwrap()
            .unwrap();
        assert_eq!(p.shown(), "http://192.0.2.2:3128 (HTTPS_PROXY)");
        let p = from(&[
            ("ALL_PROXY", "192.0.2.3:8080"),
            ("NO_PROXY", "localhost,.internal"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            p.shown(),
            "http://192.0.2.3:8080 (ALL_PROXY), no_proxy: localhost,.internal"
        );
        assert!(p.to_reqwest().is_ok());
    }

    #[test]
    fn credentials_never_show() {
        let p = from(&[("HTTPS_PROXY", "http://user:s3cret@192.0.2.1:3128")])
            .unwrap()
            .unwrap();
        assert_eq!(p.shown(), "http://192.0.2.1:3128 (HTTPS_PROXY)");
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(p.to_reqwest().is_ok());
    }

    #[test]
    fn unusable_values_are_errors_naming_the_variable() {
        for (value, why) in [
            ("socks5://192.0.2.1:1080", "not supported"),
            ("http://192.0.2.1", "port"),
            ("http://192.0.2.1:3128/path", "without a path"),
            ("http://:3128", "proxy"),
            ("http://[::1", "not a proxy URL"),
        ] {
            let e = from(&[("HTTPS_PROXY", value)]).unwrap_err();
            assert!(e.starts_with("HTTPS_PROXY: "), "{value}: {e}");
            assert!(e.contains(why), "{value}: {e}");
        }
    }
}
