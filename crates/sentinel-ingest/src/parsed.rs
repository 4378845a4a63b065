//! The result of parsing one log line, and the parser seam.

use sentinel_core::{Event, EventId, EventKind, Observed, Redactor, Timestamp, TraceId};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// What a log line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogKind {
    /// A failed password, publickey or other authentication attempt for an existing user.
    AuthFailure,
    /// An attempt for a user that does not exist.
    InvalidUser,
    /// A successful login.
    AuthSuccess,
    /// A connection closed or reset before authentication (`[preauth]`).
    PreauthDisconnect,
    /// "Too many authentication failures" / "maximum authentication attempts exceeded".
    TooManyAuthFailures,
    /// A protocol-level probe: bad banner, no identification string, kex negotiation failure (fail2ban's `ddos` mode).
    ProtocolProbe,
    /// An HTTP request (access log).
    HttpRequest,
    /// An HTTP authentication failure (error log).
    HttpAuthFailure,
    /// A request refused by rate limiting (nginx `limit_req`).
    HttpRateLimited,
    /// A mail (SMTP/IMAP/POP3) authentication failure.
    MailAuthFailure,
    /// A line matched by a user rule (fail2ban filter) as a failure.
    RuleMatch,
    /// A runtime security alert (a Falco rule fired on a container or the host).
    RuntimeAlert,
    /// Anything else worth keeping.
    Other,
}

impl LogKind {
    /// The snake_case name, used as the event kind.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::AuthFailure => "auth_failure",
            LogKind::InvalidUser => "invalid_user",
            LogKind::AuthSuccess => "auth_success",
            LogKind::PreauthDisconnect => "preauth_disconnect",
            LogKind::TooManyAuthFailures => "too_many_auth_failures",
            LogKind::ProtocolProbe => "protocol_probe",
            LogKind::HttpRequest => "http_request",
            LogKind::HttpAuthFailure => "http_auth_failure",
            LogKind::HttpRateLimited => "http_rate_limited",
            LogKind::MailAuthFailure => "mail_auth_failure",
            LogKind::RuleMatch => "rule_match",
            LogKind::RuntimeAlert => "runtime_alert",
            LogKind::Other => "other",
        }
    }
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The line's own time, if it carries one.
    pub ts: Option<Timestamp>,
    /// Which service reported it (`sshd`, `nginx`, …, or the filter's name).
    pub service: Cow<'static, str>,
    /// What it reports.
    pub kind: LogKind,
    /// The remote address.
    pub src_ip: Option<IpAddr>,
    /// Further fields: `user`, `method`, `path`, `status`, `user_agent`, `port`, `rule`, ….
    pub fields: Vec<(&'static str, String)>,
    /// Fields named by a fail2ban filter's own `<F-NAME>` tags (lower-cased `name`), after [`Parsed::fields`].
    /// The names are shared with the filter that defines them, not kept for the life of the process.
    pub extra: Vec<(Arc<str>, String)>,
}

impl Parsed {
    /// A field's value ([`Parsed::fields`] first, then [`Parsed::extra`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all_fields().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Every field, [`Parsed::fields`] then [`Parsed::extra`], as (name, value).
    pub fn all_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(self.extra.iter().map(|(k, v)| (k.as_ref(), v.as_str())))
    }

    /// Turns the parsed line into a pipeline event (fields become attributes, secrets masked).
    pub fn to_event(
        &self,
        source: &str,
        raw: &str,
        fallback_ts: Timestamp,
        redactor: &Redactor,
    ) -> Event {
        self.to_event_counted(source, raw, fallback_ts, redactor).0
    }

    /// [`Parsed::to_event`], with how many secrets the redactor masked.
    pub fn to_event_counted(
        &self,
        source: &str,
        raw: &str,
        fallback_ts: Timestamp,
        redactor: &Redactor,
    ) -> (Event, usize) {
        let mut attrs = serde_json::Map::new();
        attrs.insert("service".into(), self.service.as_ref().into());
        for (k, v) in self.all_fields() {
            attrs.insert(k.into(), v.into());
        }
        attrs.insert("line".into(), raw.into());
        let masked = redactor.redact_map(&mut attrs);
        let event = Event {
            id: EventId::new(),
            kind: EventKind(self.kind.as_str().into()),
            ts: self.ts.unwrap_or(fallback_ts),
            source: source.into(),
            src_ip: self.src_ip,
            target: None,
            attrs,
            trace_id: TraceId::new(),
        };
        (event, masked)
    }
}

impl Observed for Parsed {
    fn ts(&self) -> Timestamp {
        self.ts.unwrap_or_default()
    }
    fn kind(&self) -> &str {
        self.kind.as_str()
    }
    fn service(&self) -> &str {
        &self.service
    }
    fn src_ip(&self) -> Option<IpAddr> {
        self.src_ip
    }
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(Cow::Borrowed)
    }
}

/// Why a line was not parsed; each reason is counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unparsed {
    /// The line is of this format but says nothing Sentinel looks at (counted, not an error).
    Ignored,
    /// No rule of the parser matched.
    NoMatch,
    /// The line looked like the format but a part was malformed; the text names the part.
    Malformed(&'static str),
}

impl Unparsed {
    /// A stable label for metrics and summaries.
    pub fn reason(self) -> &'static str {
        match self {
            Unparsed::Ignored => "ignored",
            Unparsed::NoMatch => "no_match",
            Unparsed::Malformed(what) => what,
        }
    }
}

/// Context a parser needs beyond the line: the reference time for year inference and the zone of
/// timestamps that carry none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseCtx {
    /// Lines without a year are placed in the year that puts them closest before this time
    /// (a file's mtime on replay, the wall clock when tailing).
    pub reference: Timestamp,
    /// Offset from UTC, in seconds, for timestamps without a zone.
    pub utc_offset_secs: i32,
}

impl Default for ParseCtx {
    fn default() -> Self {
        Self {
            reference: Timestamp::now(),
            utc_offset_secs: 0,
        }
    }
}

/// Turns lines of one format into [`Parsed`]. Must never panic, whatever the input.
pub trait LineParser: Send + Sync {
    /// The format's name (`sshd`, `nginx`, …).
    fn name(&self) -> &str;
    /// Parses one line (without its newline).
    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed>;
}
