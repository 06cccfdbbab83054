//! A real SMTP server for tests: aiosmtpd (Debian's python3-aiosmtpd, or from PyPI)
//! writing every message it accepts into a Maildir that the test reads.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct SmtpServer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

fn python() -> String {
    if let Ok(p) = std::env::var("SMTP_TEST_PYTHON") {
        return p;
    }
    // Debian's interpreter carries python3-aiosmtpd; a pyenv `python3` may not.
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!("no python3 with aiosmtpd: apt-get install python3-aiosmtpd (or pip install aiosmtpd)");
}

/// Whether a server on `port` answers with an SMTP greeting (`220`).
async fn smtp_greets(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut banner = [0u8; 3];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut banner)).await,
        Ok(Ok(_))
    ) && &banner == b"220"
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl SmtpServer {
    /// Starts the server on a free port. The port is picked, then handed to aiosmtpd, so
    /// another process may take it in between: then aiosmtpd exits and another port is
    /// tried.
    pub async fn start() -> Self {
        for _ in 0..5 {
            if let Some(server) = Self::try_start_on(free_port()).await {
                return server;
            }
        }
        panic!("aiosmtpd did not start on any of five free ports");
    }

    /// Starts the server on `port` (one a worker was already told to use).
    pub async fn start_on(port: u16) -> Self {
        Self::try_start_on(port)
            .await
            .unwrap_or_else(|| panic!("aiosmtpd did not start on port {port}"))
    }

    async fn try_start_on(port: u16) -> Option<Self> {
        let dir =
            std::env::temp_dir().join(format!("wp-test-smtp-{}", uuid::Uuid::new_v4().simple()));
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.join(sub)).expect("maildir");
        }
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut server = Self { port, dir, child };
        for _ in 0..200 {
            // Exited: the port was taken (dropping `server` cleans up).
            if !matches!(server.child.try_wait(), Ok(None)) {
                return None;
            }
            // Ready when something greets as SMTP on the port and our server still
            // runs (it exits at once when it cannot bind).
            if smtp_greets(port).await && matches!(server.child.try_wait(), Ok(None)) {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A stand-in SMTP server on a free port, for the failures a real one cannot be made
/// to show on demand. Stops when dropped, freeing its port.
pub struct FakeSmtp {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSmtp {
    /// Refuses every command with `451` (up, but not taking mail now: transient).
    pub async fn busy() -> Self {
        Self::serve(|sock| async move {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
            let (r, mut w) = sock.into_split();
            let _ = w.write_all(b"220 busy.example ESMTP\r\n").await;
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                if w.write_all(b"451 4.3.2 try again later\r\n").await.is_err() {
                    break;
                }
            }
        })
        .await
    }

    /// Accepts connections and never speaks: a send hangs.
    pub async fn blackhole() -> Self {
        Self::serve(|sock| async move {
            let _held = sock;
            std::future::pending::<()>().await;
        })
        .await
    }

    async fn serve<F, Fut>(conn: F) -> Self
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((sock, _)) = listener.accept().await {
                conns.spawn(conn(sock));
            }
        });
        Self { port, task }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
