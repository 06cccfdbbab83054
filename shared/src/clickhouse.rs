//! ClickHouse: the client and a versioned migration runner for `clickhouse/*.sql`.
//!
//! The SQL must run on the Debian 18.16 server used here and on current releases
//! (see docs/design-notes.md): no `DateTime64`, no `SimpleAggregateFunction`, no `LowCardinality`
//! unless the server profile enables it. Rows bind by position (validation is off for
//! 18.16), so struct field order must match column order.

use chrono::{DateTime, Utc};
use clickhouse::Client;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;

/// One migration: a version, a name and its statements (separated by `;`).
#[derive(Debug, Clone, Copy)]
pub struct ChMigration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations in `clickhouse/`, in order. Applied migrations are never edited.
pub const MIGRATIONS: &[ChMigration] = &[
    ChMigration {
        version: 1,
        name: "events",
        sql: include_str!("../../clickhouse/0001_events.sql"),
    },
    ChMigration {
        version: 2,
        name: "video_rollups",
        sql: include_str!("../../clickhouse/0002_video_rollups.sql"),
    },
    ChMigration {
        version: 3,
        name: "user_rollups",
        sql: include_str!("../../clickhouse/0003_user_rollups.sql"),
    },
    ChMigration {
        version: 4,
        name: "retention_viewers",
        sql: include_str!("../../clickhouse/0004_retention_viewers.sql"),
    },
    ChMigration {
        version: 5,
        name: "retention_shifts",
        sql: include_str!("../../clickhouse/0005_retention_shifts.sql"),
    },
];

/// A client bound to the configured database.
pub fn client(config: &Config) -> Client {
    base_client(config).with_database(&config.clickhouse_database)
}

fn base_client(config: &Config) -> Client {
    Client::default()
        .with_url(&config.clickhouse_url)
        .with_user(&config.clickhouse_user)
        .with_password(&config.clickhouse_password)
        .with_validation(false)
}

/// Answers whether the server is reachable (`SELECT 1`).
pub async fn ping(client: &Client) -> Result<(), clickhouse::error::Error> {
    client.query("SELECT 1").fetch_one::<u8>().await.map(|_| ())
}

/// A row of `events` (the columns after `event_date`, which defaults from
/// `occurred_at`). Field order is column order.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub occurred_at: DateTime<Utc>,
    pub event_type: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// `Uuid::nil()` when not applicable.
    #[serde(with = "clickhouse::serde::uuid")]
    pub user_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub party_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub video_id: Uuid,
    /// A JSON object.
    pub properties: String,
}

/// Writes a batch of events in one INSERT.
pub async fn insert_events(client: &Client, events: &[Event]) -> clickhouse::error::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<Event>("events").await?;
    for e in events {
        insert.write(e).await?;
    }
    insert.end().await
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Applied {
    version: u32,
}

/// Creates the database if needed and applies the migrations not yet recorded in
/// `schema_migrations`. Callers serialise concurrent runs (the `migrate` command holds a
/// PostgreSQL advisory lock while it runs this).
pub async fn migrate(config: &Config) -> anyhow::Result<Vec<u32>> {
    base_client(config)
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            config.clickhouse_database
        ))
        .execute()
        .await?;
    let client = client(config);
    client
        .query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version UInt32,
                name String,
                applied_at DateTime
            ) ENGINE = MergeTree() ORDER BY version",
        )
        .execute()
        .await?;
    let applied: Vec<u32> = client
        .query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all::<Applied>()
        .await?
        .into_iter()
        .map(|a| a.version)
        .collect();
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying ClickHouse migration"
        );
        for stmt in statements(m.sql) {
            client.query(&stmt).execute().await.map_err(|e| {
                anyhow::anyhow!(
                    "ClickHouse migration {} ({}) failed: {e}",
                    m.version,
                    m.name
                )
            })?;
        }
        client
            .query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
            .bind(m.version)
            .bind(m.name)
            .execute()
            .await?;
        done.push(m.version);
    }
    Ok(done)
}

/// Splits a migration file into statements: `--` comment lines are dropped first,
/// then `;` ends a statement. (Migrations must not put `;` inside string literals.)
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_skips_comment_only_parts() {
        let s = statements(
            "-- head; with a semicolon\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n-- only a comment\n;\nSELECT 1;\n",
        );
        assert_eq!(s.len(), 2);
        assert!(s[0].contains("CREATE TABLE a"));
        assert_eq!(s[1], "SELECT 1");
    }

    #[test]
    fn versions_are_increasing_and_unique() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].version < w[1].version);
        }
    }
}
