//! Listening sockets.

use tokio::net::{TcpListener, TcpStream};

/// The listener with `TCP_NODELAY` on every accepted connection: small responses and
/// socket frames leave at once instead of waiting on Nagle's algorithm. Used by the
/// API and the realtime nodes alike.
pub fn nodelay(listener: TcpListener) -> axum::serve::TapIo<TcpListener, fn(&mut TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    }
    listener.tap_io(set as fn(&mut TcpStream))
}

/// Whether a client's `X-Request-Id` is sane enough to keep (and log): 1–128 characters
/// of letters, digits and `-_.:`.
pub fn acceptable_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}
