//! The remote threat-intelligence providers: real HTTPS clients of AbuseIPDB v2, VirusTotal v3 and
//! AlienVault OTX, each a [`Provider`](crate::Provider) that makes one attempt per call.
//!
//! Each client maps its provider's answer to a verdict and a 0–100 score (the mapping is documented on
//! each type), and every failure to a [`ProviderError`](crate::ProviderError) that never carries the
//! key. They do no caching, waiting or retrying: the resilience layer around them does.

mod abuseipdb;
mod http;
mod otx;
mod proxy;
mod virustotal;

pub use abuseipdb::AbuseIpDb;
pub use otx::Otx;
pub use proxy::EnvProxy;
pub use virustotal::VirusTotal;

use std::net::IpAddr;

/// The HTTP client every provider shares: rustls with the bundled Mozilla roots, redirects not
/// followed (a provider API does not redirect; following one could carry the key header elsewhere),
/// `User-Agent: sentinel/<version>`, and the environment's proxy for https ([`EnvProxy`]: `HTTPS_PROXY`
/// as curl reads it, `NO_PROXY` honoured; a plain-http loopback `base_url` always goes direct).
pub fn http_client() -> Result<reqwest::Client, String> {
    http_client_via(EnvProxy::from_env()?.as_ref())
}

/// [`http_client`] with the proxy given here instead of the environment's (`None`: direct).
pub fn http_client_via(proxy: Option<&EnvProxy>) -> Result<reqwest::Client, String> {
    // `no_proxy()` first: reqwest would otherwise also take HTTP_PROXY (for http) on its own.
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sentinel/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .pool_idle_timeout(std::time::Duration::from_secs(60));
    if let Some(p) = proxy {
        builder = builder.proxy(p.to_reqwest()?);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is the IPv4 address: providers know it only
/// in that form.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}
