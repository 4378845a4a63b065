//! Caddy's JSON access log (`log { output file … }`, the `http.log.access` logger's `handled request`
//! entries), in its own file or inside syslog. Only the fields returned are copied out of the line.

use super::{bare_or_in_syslog, Server};
use crate::parse::{clock, scan};
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use sentinel_core::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;

/// The Caddy access-log parser (format name `caddy`).
///
/// Gives [`LogKind::HttpRequest`] with `method`, `path` (`request.uri`: the target as sent, query
/// included), `status`, `bytes` (`size`), and when present `vhost` (`request.host`), `user` (`user_id`),
/// `user_agent` and `referer` (first `User-Agent` / `Referer` header). The address is
/// `request.client_ip` (Caddy's view after trusted proxies), else `remote_ip`, else `remote_addr`; the
/// time `ts` (epoch seconds, or RFC 3339 text with a custom `time_format`). Caddy's other JSON lines
/// (other loggers, errors) are [`Unparsed::Ignored`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Caddy;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    logger: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<Request<'a>>,
    ts: Option<serde_json::Value>,
    status: Option<u64>,
    size: Option<u64>,
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    client_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    remote_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    remote_addr: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow)]
    headers: Option<Headers<'a>>,
}

#[derive(Deserialize)]
struct Headers<'a> {
    #[serde(rename = "User-Agent", borrow, default)]
    user_agent: Vec<Cow<'a, str>>,
    #[serde(rename = "Referer", borrow, default)]
    referer: Vec<Cow<'a, str>>,
}

impl Caddy {
    /// Reads a JSON line as Caddy writes it (no syslog header).
    pub fn parse_message(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let line = line.trim();
        if !line.starts_with('{') {
            return Err(Unparsed::NoMatch);
        }
        json(line, ctx)
    }
}

impl LineParser for Caddy {
    fn name(&self) -> &str {
        "caddy"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        bare_or_in_syslog(line, ctx, Server::Caddy, |m, c| self.parse_message(m, c))
    }
}

/// Whether a line looks like a Caddy JSON access line (cheap test for `auto`).
pub(crate) fn looks_like_json_access(line: &str) -> bool {
    line.starts_with('{') && memchr::memmem::find(line.as_bytes(), b"\"http.log.access").is_some()
}

fn json(line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
    let l: Line<'_> = serde_json::from_str(line).map_err(|_| Unparsed::Malformed("bad_json"))?;
    if !l
        .logger
        .as_deref()
        .is_some_and(|g| g.starts_with("http.log.access"))
    {
        return Err(Unparsed::Ignored);
    }
    let r = l.request.ok_or(Unparsed::Malformed("no_request"))?;
    let ip = [&r.client_ip, &r.remote_ip, &r.remote_addr]
        .into_iter()
        .find_map(|v| v.as_deref().filter(|v| !v.is_empty()))
        .and_then(scan::ip_with_port)
        .map(|(ip, _)| ip)
        .ok_or(Unparsed::Malformed("bad_address"))?;
    let ts = match &l.ts {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(timestamp(v, ctx).ok_or(Unparsed::Malformed("bad_timestamp"))?),
    };
    let mut fields = Vec::with_capacity(8);
    fields.push(("method", r.method.map(Cow::into_owned).unwrap_or_default()));
    fields.push(("path", r.uri.map(Cow::into_owned).unwrap_or_default()));
    if let Some(status) = l.status {
        fields.push(("status", status.to_string()));
    }
    if let Some(size) = l.size {
        fields.push(("bytes", size.to_string()));
    }
    if let Some(host) = r.host.filter(|h| !h.is_empty()) {
        fields.push(("vhost", host.into_owned()));
    }
    if let Some(user) = l.user_id.filter(|u| !u.is_empty()) {
        fields.push(("user", user.into_owned()));
    }
    if let Some(h) = r.headers {
        if let Some(ua) = h.user_agent.into_iter().next() {
            fields.push(("user_agent", ua.into_owned()));
        }
        if let Some(referer) = h.referer.into_iter().next() {
            fields.push(("referer", referer.into_owned()));
        }
    }
    Ok(Parsed {
        ts,
        service: Cow::Borrowed("caddy"),
        kind: LogKind::HttpRequest,
        src_ip: Some(ip),
        fields,
        extra: Vec::new(),
    })
}

/// Epoch seconds as a number (Caddy's default), or RFC 3339 text.
fn timestamp(v: &serde_json::Value, ctx: &ParseCtx) -> Option<Timestamp> {
    match v {
        serde_json::Value::Number(n) => {
            let secs = n.as_f64()?;
            (secs.is_finite() && secs.abs() < 1e11)
                .then(|| Timestamp::from_millis((secs * 1000.0).round() as i64))
        }
        serde_json::Value::String(s) => clock::iso(s, ctx.utc_offset_secs),
        _ => None,
    }
}
