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
