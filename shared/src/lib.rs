//! Common code of every Watch Party role: configuration, database and Redis access,
//! job payloads and queues, the transactional outbox, ClickHouse migrations.

pub mod clickhouse;
pub mod config;
pub mod db;
pub mod email;
pub mod frame;
pub mod jobs;
pub mod net;
pub mod outbox;
pub mod query;
pub mod redis_conn;
pub mod storage;
pub mod telemetry;

pub use config::Config;
