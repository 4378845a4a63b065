//! One request head from a proxy client: read up to [`MAX_HEAD`] bytes until the blank line, then
//! parsed (httparse) into what the proxy does with it. It reads nothing past the head's buffer and
//! decides nothing: the policy does.

use super::policy::Destination;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest request head accepted (request line and headers), in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 64;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `CONNECT host:port`: a tunnel.
    Connect(Destination),
    /// `GET /ready`: the health check.
    Ready,
    /// Anything else (its method; `GET http://…` is one: no plain-HTTP forwarding).
    Other(String),
}

/// Why no request came.
#[derive(Debug)]
pub enum HeadError {
    /// The head did not end within [`MAX_HEAD`] bytes.
    TooLarge,
    /// Not an HTTP/1.x request head, or a CONNECT target that is not `host:port`.
    Malformed(String),
    /// The client closed the connection before the head was complete.
    Closed,
    /// Reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::TooLarge => write!(f, "request head over {MAX_HEAD} bytes"),
            HeadError::Malformed(why) => write!(f, "malformed request: {why}"),
            HeadError::Closed => write!(f, "closed before a complete request head"),
            HeadError::Io(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// Reads one head into `buf` (cleared first) and parses it. Returns the request and the head's
/// length; bytes after it in `buf` are the start of what the client sent next.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(Request, usize), HeadError> {
    buf.clear();
    let mut chunk = [0u8; 2048];
    loop {
        let room = MAX_HEAD.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let n = r.read(&mut chunk[..room]).await.map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(done) = parse(buf)? {
            return Ok(done);
        }
    }
}

/// Parses a head from the start of `bytes`: `Ok(None)` while it is incomplete (and under
/// [`MAX_HEAD`]); the request and the head's length once complete.
pub fn parse(bytes: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_HEAD => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Malformed(format!(
                "more than {MAX_HEADERS} header lines"
            )))
        }
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(HeadError::Malformed("no request line".into()));
    };
    let request = match method {
        "CONNECT" => Request::Connect(
            target
                .parse()
                .map_err(|e| HeadError::Malformed(format!("CONNECT target: {e}")))?,
        ),
        "GET" if target == "/ready" => Request::Ready,
        other => Request::Other(other.to_owned()),
    };
    Ok(Some((request, len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_are_told_apart() {
        // What follows the head (a TLS record sent early) is not part of it.
        let bytes =
            b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n\x16\x03";
        let (r, len) = parse(bytes).unwrap().unwrap();
        assert_eq!(r, Request::Connect("api.example.com:443".parse().unwrap()));
        assert_eq!(len, bytes.len() - 2);
        let ready = parse(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(ready.0, Request::Ready);
        let get = parse(b"GET http://example.com/ HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(get.0, Request::Other("GET".into()));
        assert!(parse(b"CONNECT api.example.com:443 HTTP/1.1\r\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_heads_are_refused() {
        for bad in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            b"CONNECT api.example.com HTTP/1.1\r\n\r\n",
            b"CONNECT api.example.com:99999 HTTP/1.1\r\n\r\n",
            b"CONNECT  HTTP/1.1\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        let head = format!("CONNECT a.example:443 HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(head.as_bytes()),
            Err(HeadError::Malformed(_))
        ));
        let long = format!(
            "CONNECT a.example:443 HTTP/1.1\r\nX: {}",
            "y".repeat(MAX_HEAD)
        );
        assert!(matches!(parse(long.as_bytes()), Err(HeadError::TooLarge)));
    }

    #[tokio::test]
    async fn reading_stops_at_the_limit() {
        let mut endless = tokio::io::repeat(b'a');
        let mut buf = Vec::new();
        assert!(matches!(
            read(&mut endless, &mut buf).await,
            Err(HeadError::TooLarge)
        ));
        assert!(buf.len() <= MAX_HEAD);
        let mut short: &[u8] = b"CONNECT a.example:443 HTTP/1.1\r\n";
        assert!(matches!(
            read(&mut short, &mut buf).await,
            Err(HeadError::Closed)
        ));
    }

    proptest! {
        #[test]
        fn any_bytes_give_an_answer_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..10_000)) {
            match parse(&bytes) {
                Ok(Some((_, len))) => prop_assert!(len <= bytes.len() && len <= MAX_HEAD),
                Ok(None) => prop_assert!(bytes.len() < MAX_HEAD),
                Err(_) => {}
            }
        }
    }
}
