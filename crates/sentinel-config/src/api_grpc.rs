//! `api.grpc_listen`: where the gRPC API listens (`null`, the default: no gRPC API).

use crate::reader::{Node, Reader};
use std::net::SocketAddr;

/// Reads `api.grpc_listen`: `null` (off) or a socket address (`127.0.0.1:50051`; port 0 picks one).
pub(crate) fn grpc_listen(r: &mut Reader, s: Option<&Node<'_>>) -> Option<Option<SocketAddr>> {
    let n = r.get(s, "grpc_listen")?;
    match r.optional_string(&n)? {
        None => Some(None),
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(a) => Some(Some(a)),
            Err(_) => {
                r.fail(
                    &n.path,
                    "expected null or a socket address such as 127.0.0.1:50051",
                );
                None
            }
        },
    }
}
