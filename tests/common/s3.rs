//! An S3-compatible server for tests: moto's server mode (from PyPI), which implements
//! the S3 API (signed requests, multipart uploads, ranged GETs) in a local process.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    child: Child,
}

impl S3Server {
    /// Starts moto on a free port. The port is picked, then handed to moto, so another
    /// process may take it in between: then moto exits and another port is tried.
    pub async fn start() -> Self {
        for _ in 0..5 {
            if let Some(server) = Self::try_start().await {
                return server;
            }
        }
        panic!("moto did not start on any of five free ports");
    }

    async fn try_start() -> Option<Self> {
        let port = super::smtp::free_port();
        let python = std::env::var("S3_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = format!(
            "wp-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let child = Command::new(python)
            .args(["-m", "moto.server", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (pip install 'moto[server]')");
        // Owned from here on: the process is killed even if start-up fails.
        let mut server = Self {
            endpoint,
            bucket,
            child,
        };
        let client = reqwest::Client::new();
        let url = format!("{}/{}", server.endpoint, server.bucket);
        for _ in 0..200 {
            if matches!(server.child.try_wait(), Ok(Some(_))) {
                // It could not listen there (the port was taken meanwhile).
                return None;
            }
            if let Ok(r) = client.put(&url).send().await
                && r.status().is_success()
            {
                // Ours, not another moto that took the port meanwhile: ours is alive.
                if matches!(server.child.try_wait(), Ok(Some(_))) {
                    return None;
                }
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto did not start on port {port}");
    }

    /// Names of the objects in the bucket.
    pub async fn keys(&self) -> Vec<String> {
        let body = reqwest::get(format!("{}/{}?list-type=2", self.endpoint, self.bucket))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
