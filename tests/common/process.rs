//! The `watch-party` binary as a child process, listening on ports it picked itself.
//!
//! A port picked free by the test and handed to the child can be taken by another
//! process in between; instead the child binds port 0 (`BIND_ADDR`, `OPS_BIND_ADDR`)
//! and the test reads the addresses it bound from its `… listening` log lines. Its
//! stdout (JSON logs) is read all along, so a chatty child never blocks on a full pipe,
//! and kept for the test.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::watch,
};

/// What a child says when it listens, and the address field of that line.
pub const API: &str = "API listening";
pub const REALTIME: &str = "realtime node listening";
pub const OPS: &str = "ops endpoints listening";

pub struct Spawned {
    pub child: Child,
    ports: HashMap<&'static str, u16>,
    logs: Arc<Mutex<String>>,
    ended: watch::Receiver<bool>,
}

impl Spawned {
    /// Starts `cmd` (the binary, or a wrapper such as `faketime` around it, with its
    /// environment set) on port 0 for `BIND_ADDR` and `OPS_BIND_ADDR`, with JSON logs
    /// on stdout at `log` (a `RUST_LOG` filter; the listening lines are always
    /// included), and waits up to 30 s until it has logged each line of `expect`.
    pub async fn start(mut cmd: Command, log: &str, expect: &[&'static str]) -> Self {
        cmd.env("BIND_ADDR", "127.0.0.1:0")
            .env("OPS_BIND_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            // `watch_party` is a prefix of every workspace crate's target: the
            // listening lines of the api, realtime and ops servers all pass.
            .env("RUST_LOG", format!("{log},watch_party=info"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("the binary starts");
        let stdout = child.stdout.take().expect("piped");
        let logs = Arc::new(Mutex::new(String::new()));
        let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel::<(String, u16)>();
        let (ended_tx, ended) = watch::channel(false);
        tokio::spawn({
            let logs = logs.clone();
            async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && let (Some(msg), Some(addr)) = (
                            v["message"].as_str(),
                            v["addr"]
                                .as_str()
                                .and_then(|a| a.parse::<std::net::SocketAddr>().ok()),
                        )
                    {
                        let _ = heard_tx.send((msg.to_owned(), addr.port()));
                    }
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
                let _ = ended_tx.send(true);
            }
        });
        let mut ports = HashMap::new();
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while !expect.iter().all(|e| ports.contains_key(e)) {
                let Some((msg, port)) = heard.recv().await else {
                    return false;
                };
                if let Some(e) = expect.iter().find(|e| **e == msg) {
                    ports.insert(*e, port);
                }
            }
            true
        })
        .await;
        if !matches!(waited, Ok(true)) {
            let _ = child.start_kill();
            panic!(
                "the child did not log {expect:?} within 30 s ({}):\n{}",
                if waited.is_err() {
                    "timed out"
                } else {
                    "it exited"
                },
                logs.lock().unwrap()
            );
        }
        Self {
            child,
            ports,
            logs,
            ended,
        }
    }

    /// The port the child bound for `what` (one of [`API`], [`REALTIME`], [`OPS`]).
    pub fn port(&self, what: &str) -> u16 {
        *self
            .ports
            .get(what)
            .unwrap_or_else(|| panic!("no `{what}` line awaited"))
    }

    /// What the child has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("kill");
        assert!(sent.success());
    }

    /// Sends SIGTERM and waits up to `within` for the exit; returns its status and
    /// everything the child logged.
    pub async fn stop_with_sigterm(
        mut self,
        within: Duration,
    ) -> (std::process::ExitStatus, String) {
        self.terminate();
        let exit = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within {within:?} of SIGTERM"))
            .expect("wait");
        // The reader has seen the end of stdout once the process is gone.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ended.wait_for(|e| *e)).await;
        (exit, self.logs())
    }
}

/// The binary with the environment of `env`, running `args`.
pub fn binary(env: &super::TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_watch-party"));
    cmd.args(args).envs(env.env_vars());
    cmd
}
