//! Party sockets for tests: a node (the API and the sockets on one listener, as
//! `watch-party all` serves them) and a WebSocket client that speaks frames.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use super::{TestApp, TestEnv};

impl TestEnv {
    /// Starts a node: the REST API and the party sockets on one port. Several nodes of
    /// one env share parties through Redis, as separate processes would.
    pub async fn spawn_node(&self) -> TestApp {
        self.spawn_node_with(wp_realtime::Settings {
            heartbeat: Duration::from_millis(1000),
            ..Default::default()
        })
        .await
    }

    pub async fn spawn_node_with(&self, settings: wp_realtime::Settings) -> TestApp {
        self.spawn_node_on(self.config.clone(), settings).await
    }

    /// A node with its own configuration (say, Redis through a proxy).
    pub async fn spawn_node_on(
        &self,
        config: wp_shared::Config,
        settings: wp_realtime::Settings,
    ) -> TestApp {
        let state =
            wp_api::AppState::from(wp_api::App::new(config.clone()).await.expect("app state"));
        let ctx = wp_realtime::Ctx::new(config)
            .await
            .expect("realtime context");
        let rt = wp_realtime::Realtime::start(ctx, settings)
            .await
            .expect("realtime node");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle: JoinHandle<()> = tokio::spawn(async move {
            let extra = wp_realtime::router(rt.clone());
            wp_api::serve_with(state, extra, listener, async move {
                let _ = rx.await;
                rt.shutdown();
            })
            .await
            .expect("serve");
        });
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .no_gzip()
                .build()
                .expect("client"),
            _stop: tx,
            _handle: handle,
        }
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Answers to a refused upgrade: the HTTP status and the JSON error body.
pub async fn refused(app: &TestApp, path: &str) -> (u16, Value) {
    let url = format!("{}{path}", app.base.replace("http://", "ws://"));
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => panic!("the upgrade to {path} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let status = res.status().as_u16();
            let body = res
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (status, body)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// A frame the server sent, parsed; with `WP_RECORD_FRAMES=<dir>` (deploy/dev/test.sh
/// sets it) also appended to `<dir>/frames-<pid>.jsonl`, which
/// `deploy/dev/check-frames.py` checks against docs/asyncapi.yaml after the run.
fn received(text: &str) -> Value {
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};
    static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    let frame: Value = serde_json::from_str(text).expect("a server frame is JSON");
    let file = FILE.get_or_init(|| {
        let dir = std::env::var_os("WP_RECORD_FRAMES")?;
        let path = std::path::Path::new(&dir).join(format!("frames-{}.jsonl", std::process::id()));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new)
    });
    if let Some(f) = file {
        let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(f, "{}", frame);
    }
    frame
}

impl Ws {
    /// Connects to a party; returns the socket and its `party_state` snapshot.
    pub async fn connect(app: &TestApp, party: &str, token: &str) -> (Ws, Value) {
        Self::connect_query(app, party, &format!("token={token}")).await
    }

    pub async fn connect_query(app: &TestApp, party: &str, query: &str) -> (Ws, Value) {
        Self::connect_at(&app.base, party, query).await
    }

    /// Connects to a party at `base` (`http://host:port`: a node, or a proxy in front
    /// of one).
    pub async fn connect_at(base: &str, party: &str, query: &str) -> (Ws, Value) {
        let url = format!(
            "{}/ws/party/{party}/?{query}",
            base.replace("http://", "ws://")
        );
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("socket connects");
        let mut ws = Ws { stream };
        let snapshot = ws.expect("party_state").await;
        (ws, snapshot)
    }

    /// Connects to a party over a TCP socket whose receive buffer is `bytes` (a phone on
    /// a slow link: the server can push little before it must wait for the reader).
    /// Reads nothing, not even the snapshot.
    pub async fn connect_small_window(app: &TestApp, party: &str, token: &str, bytes: u32) -> Ws {
        let addr: std::net::SocketAddr = app
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("node address");
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let tcp = sock.connect(addr).await.expect("TCP connects");
        let url = format!("ws://{addr}/ws/party/{party}/?token={token}");
        let (stream, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("socket connects");
        Ws { stream }
    }

    /// Connects to any socket path (with its query); no first frame is read.
    pub async fn open(app: &TestApp, path_and_query: &str) -> Ws {
        let url = format!("{}{path_and_query}", app.base.replace("http://", "ws://"));
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("socket connects");
        Ws { stream }
    }

    pub async fn send(&mut self, kind: &str, data: Value) {
        self.send_raw(
            &json!({ "type": kind, "timestamp": chrono::Utc::now().timestamp_millis(), "data": data })
                .to_string(),
        )
        .await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("send frame");
    }

    /// The next frame (5 s at most). Panics if the socket closed.
    pub async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("a frame within 5 s")
    }

    /// The next frame within `d`, None if none came (or the socket closed).
    pub async fn next_within(&mut self, d: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(d, self.stream.next()).await.ok()??;
            match msg.ok()? {
                Message::Text(t) => return Some(received(t.as_str())),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Reads until a frame of `kind` (skipping others); panics after 5 s.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(f) = self.next_within(left).await else {
                panic!("no `{kind}` frame within 5 s (socket closed or silent)");
            };
            if f["type"] == kind {
                return f;
            }
        }
    }

    /// Reads until a frame of `kind` for which `pred` holds (skipping others).
    pub async fn expect_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let f = self.expect(kind).await;
            if pred(&f) {
                return f;
            }
        }
    }

    /// Reads until an `error` frame and returns its `data.code`.
    pub async fn expect_error(&mut self) -> String {
        self.expect("error").await["data"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Asserts no frame of `kind` arrives within `d`.
    pub async fn expect_none(&mut self, kind: &str, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            // Silence until the deadline passes; a closed socket does not: it would
            // see no frame of any kind.
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let f = received(t.as_str());
                    if f["type"] == kind {
                        panic!("unexpected `{kind}` frame: {f}");
                    }
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    panic!("the socket closed ({c:?}) while waiting to see no `{kind}`")
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("socket error while waiting to see no `{kind}`: {e}"),
                Ok(None) => panic!("the socket ended while waiting to see no `{kind}`"),
            }
        }
    }

    /// Reads until the server closes the socket; returns the close code and reason,
    /// and the `error` frame's code sent before it.
    pub async fn expect_closed(&mut self) -> (Option<u16>, Option<String>) {
        let mut last_error = None;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
                .await
                .expect("closed within 5 s");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v = received(t.as_str());
                    if v["type"] == "error" {
                        last_error = v["data"]["code"].as_str().map(str::to_owned);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return (frame.map(|f| u16::from(f.code)), last_error);
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return (None, last_error),
            }
        }
    }
}
