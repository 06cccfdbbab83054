//! A real PgBouncer in front of the test PostgreSQL server, as production runs one.
//!
//! The binary is `PGBOUNCER_BIN`, else Debian's `/usr/sbin/pgbouncer`. Transaction
//! mode needs PgBouncer 1.21 or later (`max_prepared_statements`: sqlx prepares named
//! statements and runs them in a later round trip, which an older pooler may hand to
//! another server connection). With an older binary the pooler runs in session mode,
//! and [`PgBouncer::mode`] says so.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct PgBouncer {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    /// `transaction` or `session`.
    pub mode: &'static str,
    pub version: (u32, u32),
    /// Server connections per database (`default_pool_size`).
    pub pool_size: u32,
}

fn binary() -> String {
    std::env::var("PGBOUNCER_BIN").unwrap_or_else(|_| "/usr/sbin/pgbouncer".to_owned())
}

/// `PgBouncer 1.25.2` → (1, 25).
fn version(bin: &str) -> (u32, u32) {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e} (apt-get install pgbouncer, or set PGBOUNCER_BIN)"));
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{bin} --version said {text:?}"));
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// `ini` with its `[databases]` replaced by `database`, and each `[pgbouncer]` setting
/// in `overrides` set (`Some(value)`, appended when absent) or removed (`None`).
fn adapt(ini: &str, database: &str, overrides: &[(&str, Option<String>)]) -> String {
    let mut out = Vec::new();
    let mut section = "";
    let mut seen = Vec::new();
    for line in ini.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = if t == "[databases]" {
                "databases"
            } else {
                "pgbouncer"
            };
            out.push(line.to_owned());
            if section == "databases" {
                out.push(database.to_owned());
            }
            continue;
        }
        if t.is_empty() || t.starts_with(';') {
            out.push(line.to_owned());
            continue;
        }
        if section == "databases" {
            continue;
        }
        let key = t.split('=').next().unwrap_or_default().trim();
        match overrides.iter().find(|(k, _)| *k == key) {
            Some((k, Some(v))) => {
                out.push(format!("{k} = {v}"));
                seen.push(*k);
            }
            Some((_, None)) => {}
            None => out.push(line.to_owned()),
        }
    }
    for (k, v) in overrides {
        if let Some(v) = v.as_ref().filter(|_| !seen.contains(k)) {
            out.push(format!("{k} = {v}"));
        }
    }
    out.join("\n") + "\n"
}

impl PgBouncer {
    /// Starts PgBouncer on a free port, forwarding every database to `target_port`
    /// on 127.0.0.1, with `pool_size` server connections per database and user.
    pub async fn start(target_port: u16, pool_size: u32) -> Self {
        let bin = binary();
        let version = version(&bin);
        let mode = if version >= (1, 21) {
            "transaction"
        } else {
            "session"
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("wp-pgbouncer-{port}"));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        // PgBouncer refuses to run as root; it drops to `postgres`, which must be able
        // to write its log and pid file here.
        Command::new("chmod")
            .args(["0777", &dir.display().to_string()])
            .status()
            .expect("chmod");
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").expect("users.txt");
        // deploy/k8s/base/pgbouncer.ini as production runs it, with this machine's
        // address, trust authentication and the pool size asked for.
        let pool = pool_size.to_string();
        let (port_s, dir_s) = (port.to_string(), dir.display().to_string());
        let mut overrides: Vec<(&str, Option<String>)> = vec![
            ("listen_addr", Some("127.0.0.1".into())),
            ("listen_port", Some(port_s)),
            ("unix_socket_dir", Some(String::new())),
            ("auth_type", Some("trust".into())),
            ("auth_file", Some(format!("{dir_s}/users.txt"))),
            ("admin_users", Some("postgres".into())),
            ("stats_users", Some("postgres".into())),
            ("pool_mode", Some(mode.into())),
            ("default_pool_size", Some(pool.clone())),
            ("max_db_connections", Some(pool)),
            ("logfile", Some(format!("{dir_s}/pgbouncer.log"))),
            ("pidfile", Some(format!("{dir_s}/pgbouncer.pid"))),
        ];
        if version < (1, 21) {
            // Unknown before 1.21.
            overrides.push(("max_prepared_statements", None));
        }
        let ini = adapt(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/k8s/base/pgbouncer.ini"
            ))
            .expect("deploy/k8s/base/pgbouncer.ini"),
            &format!("* = host=127.0.0.1 port={target_port}"),
            &overrides,
        );
        let conf = dir.join("pgbouncer.ini");
        std::fs::write(&conf, ini).expect("pgbouncer.ini");
        let mut cmd = Command::new(&bin);
        cmd.arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
        // PgBouncer refuses to run as root (as CI runs): it is told to become `postgres`.
        let root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        if root {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let mut me = Self {
            child,
            dir,
            port,
            mode,
            version,
            pool_size,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("pgbouncer exited ({status}): {}", me.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pgbouncer not listening after 10 s: {}",
                me.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        me
    }

    /// `postgres://postgres@127.0.0.1:PORT`, a base URL like `pg_base()`.
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// An admin console command (`SHOW POOLS`, ...): its rows as maps of column to
    /// value. The console speaks only the simple query protocol, so this asks psql.
    pub fn show(&self, what: &str) -> Vec<std::collections::HashMap<String, String>> {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "pgbouncer",
                "--csv",
                "-c",
                &format!("SHOW {what}"),
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "SHOW {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        lines
            .map(|l| {
                header
                    .iter()
                    .cloned()
                    .zip(l.split(',').map(str::to_owned))
                    .collect()
            })
            .collect()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
