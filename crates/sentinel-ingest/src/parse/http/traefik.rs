//! Traefik access logs: the JSON format (`accessLog.format: json`, field names as Traefik writes them:
//! `ClientHost`, `RequestMethod`, `RequestPath`, `DownstreamStatus`, `request_User-Agent`, …) and its
//! CLF format, in their own file or inside syslog. Only the fields returned are copied out of the line.

use super::{access, bare_or_in_syslog, Server};
use crate::parse::{clock, scan};
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use serde::Deserialize;
use std::borrow::Cow;

/// The Traefik access-log parser (format name `traefik`).
///
/// A JSON line gives [`LogKind::HttpRequest`] with `method`, `path` (`RequestPath`: the target as sent,
/// query included), `status` (`DownstreamStatus`), `bytes` (`DownstreamContentSize`), and when Traefik
/// wrote them `vhost` (`RequestHost`), `user` (`ClientUsername`), `user_agent` (`request_User-Agent`),
/// `referer` (`request_Referer`), `router` (`RouterName`). The address is `ClientHost`, else
/// `ClientAddr`; the time `StartUTC`, else `time`. A JSON line without `RequestMethod` (Traefik's own
/// application log) is [`Unparsed::Ignored`]. A CLF line is read as [`super::AccessLog`] reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traefik;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "ClientHost", borrow)]
    client_host: Option<Cow<'a, str>>,
    #[serde(rename = "ClientAddr", borrow)]
    client_addr: Option<Cow<'a, str>>,
    #[serde(rename = "ClientUsername", borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(rename = "RequestMethod", borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(rename = "RequestPath", borrow)]
    path: Option<Cow<'a, str>>,
    #[serde(rename = "RequestHost", borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(rename = "DownstreamStatus")]
    status: Option<u64>,
    #[serde(rename = "DownstreamContentSize")]
    bytes: Option<u64>,
    #[serde(rename = "request_User-Agent", borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "request_Referer", borrow)]
    referer: Option<Cow<'a, str>>,
    #[serde(rename = "RouterName", borrow)]
    router: Option<Cow<'a, str>>,
    #[serde(rename = "StartUTC", borrow)]
    start_utc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
}

impl Traefik {
    /// Reads a JSON or CLF line as Traefik writes it (no syslog header).
    pub fn parse_message(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let trimmed = line.trim();
        if trimmed.starts_with('{') {
            json(trimmed, ctx)
        } else {
            access::clf(line, "traefik")
        }
    }
}

impl LineParser for Traefik {
    fn name(&self) -> &str {
        "traefik"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        bare_or_in_syslog(line, ctx, Server::Traefik, |m, c| self.parse_message(m, c))
    }
}

/// Whether a line looks like a Traefik JSON access line (cheap test for `auto`).
pub(crate) fn looks_like_json_access(line: &str) -> bool {
    line.starts_with('{') && memchr::memmem::find(line.as_bytes(), b"\"RequestMethod\"").is_some()
}

fn json(line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
    let l: Line<'_> = serde_json::from_str(line).map_err(|_| Unparsed::Malformed("bad_json"))?;
    let method = l.method.ok_or(Unparsed::Ignored)?;
    let ip = match (&l.client_host, &l.client_addr) {
        (Some(host), _) if !host.is_empty() => scan::ip_with_port(host).map(|(ip, _)| ip),
        (_, Some(addr)) => scan::ip_with_port(addr).map(|(ip, _)| ip),
        _ => None,
    }
    .ok_or(Unparsed::Malformed("bad_address"))?;
    let ts = match l.start_utc.as_deref().or(l.time.as_deref()) {
        Some(t) => {
            Some(clock::iso(t, ctx.utc_offset_secs).ok_or(Unparsed::Malformed("bad_timestamp"))?)
        }
        None => None,
    };
    let mut fields = Vec::with_capacity(9);
    fields.push(("method", method.into_owned()));
    fields.push(("path", l.path.map(Cow::into_owned).unwrap_or_default()));
    if let Some(status) = l.status {
        fields.push(("status", status.to_string()));
    }
    if let Some(bytes) = l.bytes {
        fields.push(("bytes", bytes.to_string()));
    }
    let known = |v: &Option<Cow<'_, str>>| v.as_deref().is_some_and(|v| !v.is_empty() && v != "-");
    for (name, value) in [
        ("vhost", &l.host),
        ("user", &l.user),
        ("user_agent", &l.user_agent),
        ("referer", &l.referer),
        ("router", &l.router),
    ] {
        if known(value) {
            fields.push((name, value.as_deref().unwrap_or_default().to_owned()));
        }
    }
    Ok(Parsed {
        ts,
        service: Cow::Borrowed("traefik"),
        kind: LogKind::HttpRequest,
        src_ip: Some(ip),
        fields,
        extra: Vec::new(),
    })
}
