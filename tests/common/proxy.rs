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
    /// Bytes clients sent while held, and how many of them the server has taken and
    /// answered (see [`Proxy::held`]).
    held: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
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

    /// Proxies to `target`, holding every byte a client sends until
    /// [`Proxy::release`]: clients connect, nothing reaches the server (the connection
    /// to it is made only then). What is held is delivered then, even for a client that
    /// has died meanwhile, as a network delivers what a dead process had already sent.
    pub async fn holding(target: &str) -> Self {
        Self::spawn(target, std::time::Duration::ZERO, false).await
    }

    /// Delivers what was held and stops holding.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Bytes held from clients so far, and how many of them the server has taken: for a
    /// client still connected, once written to the server; for one that has gone, once
    /// the server has answered them and closed (its answer read and dropped).
    pub fn held(&self) -> (u64, u64) {
        (
            self.held.load(Ordering::SeqCst),
            self.delivered.load(Ordering::SeqCst),
        )
    }

    async fn spawn(target: &str, one_way: std::time::Duration, open: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let accepted = Arc::new(AtomicU64::new(0));
        let (open, _) = watch::channel(open);
        let held = Arc::new(AtomicU64::new(0));
        let delivered = Arc::new(AtomicU64::new(0));
        let target = target.to_owned();
        let task = tokio::spawn({
            let up = up.clone();
            let cut = cut.clone();
            let accepted = accepted.clone();
            let open = open.clone();
            let (held, delivered) = (held.clone(), delivered.clone());
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
                    let (held, delivered) = (held.clone(), delivered.clone());
                    tokio::spawn(async move {
                        let mut client = client;
                        let mut holding = Holding::default();
                        let held_back = !*open.borrow();
                        if held_back && !holding.hold(&mut client, open, &held).await {
                            return;
                        }
                        let Ok(mut server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        if !holding.deliver(&mut server, &delivered).await {
                            return;
                        }
                        tokio::select! {
                            _ = relay(&mut client, &mut server, one_way) => {}
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
            held,
            delivered,
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

/// What a holding proxy took from one client before [`Proxy::release`].
#[derive(Default)]
struct Holding {
    bytes: Vec<u8>,
    /// The client closed (or died) while held.
    gone: bool,
}

impl Holding {
    /// Reads what the client sends until the proxy opens. False when the proxy went
    /// away first.
    async fn hold(
        &mut self,
        client: &mut TcpStream,
        mut open: watch::Receiver<bool>,
        held: &AtomicU64,
    ) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                biased;
                opened = open.wait_for(|open| *open) => return opened.is_ok(),
                read = client.read(&mut chunk), if !self.gone => match read {
                    Ok(0) | Err(_) => self.gone = true,
                    Ok(n) => {
                        self.bytes.extend_from_slice(&chunk[..n]);
                        held.fetch_add(n as u64, Ordering::SeqCst);
                    }
                },
            }
        }
    }

    /// Writes what was held to the server. For a client that has gone, also waits for
    /// the server's answer (read and dropped) and its close, then says false: there is
    /// no one to relay to.
    async fn deliver(&mut self, server: &mut TcpStream, delivered: &AtomicU64) -> bool {
        use tokio::io::AsyncWriteExt;
        if self.bytes.is_empty() && !self.gone {
            return true;
        }
        if server.write_all(&self.bytes).await.is_err() {
            return false;
        }
        if !self.gone {
            delivered.fetch_add(self.bytes.len() as u64, Ordering::SeqCst);
            return true;
        }
        // Nothing more will come: the server answers what it has and closes.
        let _ = server.shutdown().await;
        let answered = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            tokio::io::copy(server, &mut tokio::io::sink()),
        )
        .await;
        if matches!(answered, Ok(Ok(_))) {
            delivered.fetch_add(self.bytes.len() as u64, Ordering::SeqCst);
        }
        false
    }
}

/// Copies both ways until either side closes, each byte held `delay`.
async fn relay(client: &mut TcpStream, server: &mut TcpStream, delay: std::time::Duration) {
    if delay.is_zero() {
        let _ = tokio::io::copy_bidirectional(client, server).await;
        return;
    }
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    tokio::select! {
        () = delayed_copy(cr, sw, delay) => {}
        () = delayed_copy(sr, cw, delay) => {}
    }
}

async fn delayed_copy(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    delay: std::time::Duration,
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
