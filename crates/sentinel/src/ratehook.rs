//! The configuration of the API's rate limits and webhook routes, mapped to the router's settings.

use sentinel_api::ratelimit::{Limit, RateSettings};
use sentinel_api::webhook::{WebhookSettings, ENABLE_TEST_ENV};
use sentinel_config::{RateLimit, RateLimitConfig, WebhooksConfig};

/// `api.rate_limit` as the router's [`RateSettings`].
pub fn rate_settings(c: &RateLimitConfig) -> RateSettings {
    let limit = |l: &RateLimit| Limit {
        count: l.count,
        per: l.per,
        burst: l.burst,
    };
    RateSettings {
        per_ip: c.per_ip.as_ref().map(limit),
        per_key: c.per_key.as_ref().map(limit),
        exempt: c.exempt.clone(),
        max_tracked: c.max_tracked,
    }
}

/// `api.webhooks` as the router's [`WebhookSettings`]; `/webhook/test` is mounted only when the real
/// environment has `SENTINEL_ENABLE_WEBHOOK_TEST=true` (the router logs a WARNING when it mounts it).
pub fn webhook_settings(c: &WebhooksConfig) -> WebhookSettings {
    WebhookSettings {
        github: c.github.clone(),
        gitea: c.gitea.clone(),
        generic: c.generic.clone(),
        replay_window: c.replay_window,
        max_deliveries: c.max_deliveries,
        enable_test: test_route_enabled(std::env::var(ENABLE_TEST_ENV).ok().as_deref()),
    }
}

/// Only the exact word `true` (any case) turns the unsigned test route on.
fn test_route_enabled(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_true_enables_the_test_route() {
        assert!(test_route_enabled(Some("true")));
        assert!(test_route_enabled(Some("TRUE")));
        assert!(!test_route_enabled(Some("1")));
        assert!(!test_route_enabled(Some("")));
        assert!(!test_route_enabled(None));
    }

    #[test]
    fn the_default_configuration_limits_and_mounts_no_webhook() {
        let cfg = sentinel_config::validate(&sentinel_config::RawConfig::defaults())
            .expect("the defaults are valid");
        let r = rate_settings(&cfg.api.rate_limit);
        assert_eq!(r.per_ip.map(|l| (l.count, l.burst)), Some((50, 100)));
        assert!(r.per_key.is_some());
        assert!(r
            .exempt
            .iter()
            .any(|n| n.contains(&std::net::IpAddr::from([127, 0, 0, 1]))));
        let w = webhook_settings(&cfg.api.webhooks);
        assert!(w.github.is_none() && w.gitea.is_none() && w.generic.is_none());
    }
}
