//! Log-line parsers: syslog headers, sshd, HTTP servers (nginx/apache access and error logs, virtual-host
//! prefixed access logs, Traefik, Caddy, HAProxy, each also inside syslog), postfix/dovecot, JSON
//! lines and Falco's JSON alerts, plus `auto` detection and the by-name registry. Each implements [`crate::LineParser`]: one line
//! in, a [`crate::Parsed`] or an [`crate::Unparsed`] reason out, never a panic. Hot paths match by hand
//! (`memchr`, `strip_prefix`) rather than by regex and allocate only the fields they return. Parsers
//! report what a line says; deciding whether it is an attack is detection's job.

pub mod auto;
pub mod falco;
pub mod http;
pub mod json;
pub mod mail;
pub mod sshd;
pub mod syslog;

mod clock;
mod scan;

pub use auto::{by_name, Auto, FORMATS};
