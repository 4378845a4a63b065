//! HTTP server logs: access logs in the common and combined formats ([`AccessLog`], nginx and apache alike)
//! and the error logs of nginx and apache ([`ErrorLog`]) for basic-auth failures and `limit_req` refusals.
//! Reads what the server wrote; judging requests is left to detection.

mod access;
mod error;

pub use access::AccessLog;
pub use error::{ErrorLog, ErrorLogFlavor};

/// `GET /path HTTP/1.1` → method and target; anything else (TLS bytes sent to a plain port, garbage) →
/// `None`.
fn request_line(request: &str) -> Option<(&str, &str)> {
    let mut parts = request.splitn(3, ' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let ok_method = !method.is_empty()
        && method.len() <= 24
        && method
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_');
    let ok_version = parts.next().is_none_or(|v| v.starts_with("HTTP/"));
    (ok_method && !target.is_empty() && ok_version).then_some((method, target))
}
