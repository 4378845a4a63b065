//! Where the authentication bypass (`api.allow_insecure_no_auth`, `SENTINEL_ALLOW_INSECURE_NO_AUTH`)
//! may come from and where it may apply.
//!
//! Two rules, both errors rather than warnings, because a warning in a log nobody reads is how an
//! open API ends up on a network:
//! - the bypass is refused on any listen address that is not loopback (`0.0.0.0`, `::`, a LAN
//!   address): without keys, the API must not be reachable from another host;
//! - a `.env` file may not set it: `.env` files are read from the working directory and travel with
//!   checkouts and images, so whoever can drop one where the daemon starts could turn authentication
//!   off. Only the real environment (or the configuration file) may.

use crate::error::ConfigError;
use crate::layers::{ALLOW_INSECURE_VAR, ENV_PREFIX};
use std::net::SocketAddr;

/// The two spellings of the bypass in variables: the plain one and the nested-key one.
fn is_bypass_var(name: &str) -> bool {
    let nested = format!("{ENV_PREFIX}API__ALLOW_INSECURE_NO_AUTH");
    name == ALLOW_INSECURE_VAR || name.eq_ignore_ascii_case(&nested)
}

/// Removes the bypass from variables read from the `.env` file `file`, with an error for each.
pub(crate) fn refuse_in_dotenv(
    file: &str,
    vars: Vec<(String, String)>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(name, _)| {
            let refused = is_bypass_var(name);
            if refused {
                errors.push(ConfigError::new(
                    name.as_str(),
                    format!(
                        "refused in {file}: a .env file may not turn authentication off; only the \
                         real environment may set {ALLOW_INSECURE_VAR} (and only for a loopback \
                         api.listen)"
                    ),
                ));
            }
            !refused
        })
        .collect()
}

/// The bypass's value in a layered tree (compared before and after the `.env` layer).
pub(crate) fn value_in(tree: &serde_json::Value) -> Option<serde_json::Value> {
    tree.get("api")?.get("allow_insecure_no_auth").cloned()
}

/// Undoes, with an error, a change the `.env` layer made to the bypass through a variable other than
/// its own names: `SENTINEL__API={allow_insecure_no_auth: true}` sets the whole `api` mapping, and
/// would otherwise carry the bypass past [`refuse_in_dotenv`]. Compared on the merged tree, so no
/// spelling of a variable can get around it.
pub(crate) fn undo_dotenv_change(
    file: &str,
    before: Option<serde_json::Value>,
    tree: &mut serde_json::Value,
    errors: &mut Vec<ConfigError>,
) {
    if value_in(tree) == before {
        return;
    }
    errors.push(ConfigError::new(
        "api.allow_insecure_no_auth",
        format!(
            "refused in {file} (set through a mapping): a .env file may not turn authentication \
             off; only the real environment may set {ALLOW_INSECURE_VAR} (and only for a loopback \
             api.listen)"
        ),
    ));
    if let Some(api) = tree
        .get_mut("api")
        .and_then(serde_json::Value::as_object_mut)
    {
        match before {
            Some(v) => {
                api.insert("allow_insecure_no_auth".into(), v);
            }
            None => {
                api.remove("allow_insecure_no_auth");
            }
        }
    }
}

/// The problem with the bypass and a gRPC API on `grpc`, if any: the gRPC API authenticates with the
/// same registry, so the bypass opens it too; it is allowed only when gRPC listens on loopback.
pub(crate) fn grpc_problem(allow: bool, grpc: SocketAddr) -> Option<ConfigError> {
    (allow && !grpc.ip().is_loopback()).then(|| {
        ConfigError::new(
            "api.allow_insecure_no_auth",
            format!(
                "the gRPC API would accept calls without a key on {grpc} (api.grpc_listen), which is \
                 not a loopback address: the bypass ({ALLOW_INSECURE_VAR}) is allowed only with \
                 every API address on loopback; turn it off, or set api.grpc_listen to loopback or null"
            ),
        )
    })
}

/// The problem with the bypass on `listen`, if any: it is allowed on loopback addresses only.
pub(crate) fn listen_problem(allow: bool, listen: SocketAddr) -> Option<ConfigError> {
    (allow && !listen.ip().is_loopback()).then(|| {
        ConfigError::new(
            "api.allow_insecure_no_auth",
            format!(
                "the API would accept requests without a key on {listen}, which is not a loopback \
                 address: the bypass ({ALLOW_INSECURE_VAR}) is allowed only with api.listen on \
                 127.0.0.1 or ::1; turn it off or listen on loopback"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bypass_is_refused_off_loopback_only() {
        let on = |a: &str| listen_problem(true, a.parse().unwrap_or_else(|e| panic!("{a}: {e}")));
        assert!(on("127.0.0.1:8000").is_none());
        assert!(on("[::1]:8000").is_none());
        for a in [
            "0.0.0.0:8000",
            "[::]:8000",
            "192.0.2.10:8000",
            "[2001:db8::1]:80",
        ] {
            let e = on(a).unwrap_or_else(|| panic!("{a} accepted"));
            assert_eq!(e.path, "api.allow_insecure_no_auth");
            assert!(e.message.contains("not a loopback"), "{}", e.message);
        }
        assert!(listen_problem(
            false,
            "0.0.0.0:8000".parse().unwrap_or_else(|e| panic!("{e}"))
        )
        .is_none());
    }

    #[test]
    fn a_dotenv_file_may_not_set_the_bypass() {
        let mut errors = Vec::new();
        let kept = refuse_in_dotenv(
            ".env",
            vec![
                ("SENTINEL_ALLOW_INSECURE_NO_AUTH".into(), "true".into()),
                (
                    "sentinel__api__allow_insecure_no_auth".into(),
                    "true".into(),
                ),
                ("SENTINEL__API__LISTEN".into(), "127.0.0.1:1".into()),
            ],
            &mut errors,
        );
        assert_eq!(
            kept,
            vec![("SENTINEL__API__LISTEN".to_owned(), "127.0.0.1:1".to_owned())]
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors
            .iter()
            .all(|e| e.message.contains("only the real environment")));
    }
}
