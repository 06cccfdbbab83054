use super::*;
use std::collections::HashMap;

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_work_without_any_variable() {
    let c = load(&[]).expect("defaults");
    assert_eq!(c.redis_prefix, "wp");
    assert_eq!(c.bind_addr.port(), 8000);
    assert_eq!(c.ops_bind_addr, None);
    assert_eq!(c.database_max_connections, None, "each role's own default");
    assert_eq!(
        c.database_direct_url, None,
        "sessions go through DATABASE_URL"
    );
    assert_eq!(c.database_session_url(), c.database_url);
    assert_eq!(c.email, EmailTransport::File(PathBuf::from("var/mail")));
}

#[test]
fn a_bad_value_names_its_variable() {
    let err = load(&[("DATABASE_MAX_CONNECTIONS", "many")]).unwrap_err();
    assert_eq!(err.var, "DATABASE_MAX_CONNECTIONS");
    let err = load(&[("DATABASE_MAX_CONNECTIONS", "0")]).unwrap_err();
    assert_eq!(err.var, "DATABASE_MAX_CONNECTIONS");
    let err = load(&[("OPS_BIND_ADDR", "localhost")]).unwrap_err();
    assert_eq!(err.var, "OPS_BIND_ADDR");
    let err = load(&[("REDIS_URL", "http://x")]).unwrap_err();
    assert_eq!(err.var, "REDIS_URL");
    let err = load(&[("DATABASE_DIRECT_URL", "redis://db")]).unwrap_err();
    assert_eq!(err.var, "DATABASE_DIRECT_URL");
    let err = load(&[("BIND_ADDR", "nowhere")]).unwrap_err();
    assert_eq!(err.var, "BIND_ADDR");
    let err = load(&[("WORKER_HEARTBEAT_SECS", "0")]).unwrap_err();
    assert_eq!(err.var, "WORKER_HEARTBEAT_SECS");
    let err = load(&[("LOG_FORMAT", "xml")]).unwrap_err();
    assert_eq!(err.var, "LOG_FORMAT");
    let err = load(&[
        ("MOBILE_IOS_MIN_VERSION", "3.0"),
        ("MOBILE_IOS_LATEST_VERSION", "2.9.9"),
    ])
    .unwrap_err();
    assert_eq!(err.var, "MOBILE_IOS_MIN_VERSION");
    let err = load(&[("MOBILE_ANDROID_LATEST_VERSION", "two")]).unwrap_err();
    assert_eq!(err.var, "MOBILE_ANDROID_LATEST_VERSION");
    let err = load(&[("REALTIME_PUBLIC_URL", "https://rt.example")]).unwrap_err();
    assert_eq!(err.var, "REALTIME_PUBLIC_URL");
    let c = load(&[("PUBLIC_URL", "https://api.example/")]).unwrap();
    assert_eq!(c.realtime_public_url, "wss://api.example");
    let err = load(&[("OPS_TOKEN", "short")]).unwrap_err();
    assert_eq!(err.var, "OPS_TOKEN");
    let err = load(&[("JWT_SECRET", "short")]).unwrap_err();
    assert_eq!(err.var, "JWT_SECRET");
    let err = load(&[("JWT_PREVIOUS_KEYS", "nokey")]).unwrap_err();
    assert_eq!(err.var, "JWT_PREVIOUS_KEYS");
    let err = load(&[("STORAGE_BACKEND", "s3")]).unwrap_err();
    assert_eq!(err.var, "S3_BUCKET");
}

#[test]
fn secrets_are_not_printed() {
    let c = load(&[
        ("DATABASE_URL", "postgres://u:hunter2@db/x"),
        ("SMTP_URL", "smtp://mail:s3cret@smtp.example.com:587"),
        ("CLICKHOUSE_PASSWORD", "chpass"),
        ("JWT_SECRET", "jwt-secret-that-is-long-enough-0123456789"),
        (
            "JWT_PREVIOUS_KEYS",
            "old:previous-secret-that-is-long-enough-0123",
        ),
        ("STORAGE_BACKEND", "s3"),
        ("S3_BUCKET", "videos"),
        ("S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("S3_SECRET_ACCESS_KEY", "s3-very-secret"),
        ("OPS_TOKEN", "ops-token-that-is-long-enough"),
    ])
    .expect("valid");
    // The secrets are in the configuration, so their absence below means something.
    assert_eq!(
        c.jwt_key.secret,
        b"jwt-secret-that-is-long-enough-0123456789"
    );
    assert!(
        matches!(&c.storage, StorageBackend::S3(s3) if s3.secret_access_key == "s3-very-secret")
    );
    assert_eq!(c.clickhouse_password, "chpass");
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("chpass"), "{shown}");
    assert!(!shown.contains("jwt-secret"), "{shown}");
    assert!(!shown.contains("previous-secret"), "{shown}");
    assert!(!shown.contains("s3-very-secret"), "{shown}");
    assert!(!shown.contains("ops-token"), "{shown}");
}
