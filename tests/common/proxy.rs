//! A TCP proxy between the code under test and a real server, to cut the connection
//! the way a network or a restarting server does: `down()` resets every open
//! connection and refuses new ones until `up()`. [`Proxy::delayed`] also holds every
//! byte for a fixed time each way, as a long network path does; [`Proxy::holding`]
//! holds what the client sends until [`Proxy::release`], so a test decides when a
//! request reaches the server instead of racing a timer.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

pub struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    /// Bumped on every `down()`: connections opened before it are cut.
    cut: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    /// False while what clients send is held back ([`Proxy::holding`]).
    open: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Proxies a free local port to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        Self::delayed(target, std::time::Duration::ZERO).await
    }

    /// Proxies to `target`, delivering every byte `one_way` after it arrived, in each
    /// direction (a round trip of twice that).
    pub async fn delayed(target: &str, one_way: std::time::Duration) -> Self {
        Self::spawn(target, one_way, true).await
    }

    /// Proxies to `target`, holding every byte a client sends (its connections are
    /// made, its requests are not delivered) until [`Proxy::release`]; what is held is
    /// delivered then, even for a client that has died meanwhile, as a network
    /// delivers what a dead process had already sent.
    pub async fn holding(target: &str) -> Self {
        Self::spawn(target, std::time::Duration::ZERO, false).await
    }

    /// Delivers what was held and stops holding.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    async fn spawn(target: &str, one_way: std::time::Duration, open: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let accepted = Arc::new(AtomicU64::new(0));
        let (open, _) = watch::channel(open);
        let target = target.to_owned();
        let task = tokio::spawn({
            let up = up.clone();
            let cut = cut.clone();
            let accepted = accepted.clone();
            let open = open.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Refused: closed at once, as a stopped server's port would.
                        drop(client);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut cut_rx = cut.subscribe();
                    let open = open.subscribe();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let mut client = client;
                        tokio::select! {
                            _ = relay(&mut client, &mut server, one_way, open) => {}
                            _ = cut_rx.changed() => {
                                // Reset rather than close: the peer sees ECONNRESET.
                                let _ = client.set_zero_linger();
                                let _ = server.set_zero_linger();
                            }
                        }
                    });
                }
            }
        });
        Self {
            port,
            up,
            cut,
            accepted,
            open,
            task,
        }
    }

    /// Proxies to the Redis server of `config`.
    pub async fn to_redis(config: &wp_shared::Config) -> Self {
        // redis://host[:port][/db]
        let rest = config.redis_url.trim_start_matches("redis://");
        let hostport = rest.split('/').next().unwrap_or(rest);
        if hostport.contains(':') {
            Self::start(hostport).await
        } else {
            Self::start(&format!("{hostport}:6379")).await
        }
    }

    /// The URL of this proxy as a Redis server.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted while up, since the start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways until either side closes, each byte held `delay`, and what the
/// client sends held until `open` is true.
async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    delay: std::time::Duration,
    open: watch::Receiver<bool>,
) {
    if delay.is_zero() && *open.borrow() {
        let _ = tokio::io::copy_bidirectional(client, server).await;
        return;
    }
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let (_always_open, always) = watch::channel(true);
    tokio::select! {
        () = delayed_copy(cr, sw, delay, open) => {}
        () = delayed_copy(sr, cw, delay, always) => {}
    }
}

async fn delayed_copy(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    delay: std::time::Duration,
    mut open: watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if open.wait_for(|open| *open).await.is_err() {
                return;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    // The writer drains what the reader took before the close.
    tokio::join!(reader, writer);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
        self.task.abort();
    }
}
