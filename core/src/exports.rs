//! CSV exports for staff (issue 15): the user directory (with the directory's filters),
//! support tickets, feedback and moderation reports. An export is a row in
//! `table_exports` and a job on the `export` queue; the worker streams the rows with
//! PostgreSQL's `COPY … TO STDOUT (FORMAT csv)` (RFC 4180 quoting) into object storage
//! in constant memory, counting rows as they pass. Text a spreadsheet could run as a
//! formula is neutralised in SQL (`csv_safe`), instants are RFC 3339 UTC (`csv_time`).
//!
//! **Who**: the user directory is for admins (it holds every address); tickets,
//! feedback and reports for staff. An export is its requester's; admins see everyone's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::account::{AccountStatus, Actor, Role, staff::UserFilter};

/// How long a finished export's file stays downloadable.
pub const KEEP_DAYS: i64 = 7;

crate::text_enum! {
    /// What an export holds.
    pub enum ExportKind as "export kind" {
        Users = "users",
        Tickets = "tickets",
        Feedback = "feedback",
        Reports = "reports",
        /// The analytics events (ClickHouse).
        Analytics = "analytics",
    }
}

crate::text_enum! {
    /// Where an export is.
    pub enum ExportStatus as "export status" {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

/// A column: its name in the file and its SQL.
type Column = (&'static str, &'static str);

const USER_COLUMNS: &[Column] = &[
    ("id", "u.id"),
    ("username", "csv_safe(u.username)"),
    ("display_name", "csv_safe(u.display_name)"),
    ("email", "csv_safe(u.email)"),
    ("email_verified", "u.email_verified_at IS NOT NULL"),
    ("role", "u.role"),
    ("status", "u.status"),
    ("suspended_reason", "csv_safe(u.suspended_reason)"),
    ("suspended_until", "csv_time(u.suspended_until)"),
    ("has_2fa", "u.totp_enabled_at IS NOT NULL"),
    ("locale", "csv_safe(u.locale)"),
    (
        "country",
        "NULLIF(upper(split_part(replace(u.locale, '_', '-'), '-', 2)), '')",
    ),
    ("timezone", "csv_safe(u.timezone)"),
    ("created_at", "csv_time(u.created_at)"),
    ("last_login_at", "csv_time(u.last_login_at)"),
];

const TICKET_COLUMNS: &[Column] = &[
    ("id", "t.id"),
    ("number", "t.number"),
    ("subject", "csv_safe(t.subject)"),
    ("description", "csv_safe(t.description)"),
    ("status", "t.status"),
    ("priority", "t.priority"),
    ("category", "t.category"),
    ("user", "csv_safe(u.username)"),
    ("user_email", "csv_safe(u.email)"),
    ("assigned_to", "csv_safe(a.username)"),
    ("sla_breached", "t.sla_breached_at IS NOT NULL"),
    ("created_at", "csv_time(t.created_at)"),
    ("updated_at", "csv_time(t.updated_at)"),
    ("first_response_at", "csv_time(t.first_response_at)"),
    ("resolved_at", "csv_time(t.resolved_at)"),
    ("closed_at", "csv_time(t.closed_at)"),
];

const FEEDBACK_COLUMNS: &[Column] = &[
    ("id", "t.id"),
    ("rating", "t.rating"),
    ("text", "csv_safe(t.text)"),
    ("page", "csv_safe(t.page)"),
    ("app_version", "csv_safe(t.app_version)"),
    ("platform", "csv_safe(t.platform)"),
    ("user", "csv_safe(u.username)"),
    ("created_at", "csv_time(t.created_at)"),
];

const REPORT_COLUMNS: &[Column] = &[
    ("id", "t.id"),
    ("target_type", "t.target_type"),
    ("target_id", "t.target_id"),
    ("reason", "t.reason"),
    ("details", "csv_safe(t.details)"),
    ("status", "t.status"),
    ("action", "t.action"),
    ("reporter", "csv_safe(u.username)"),
    ("target_owner", "csv_safe(o.username)"),
    ("resolved_by", "csv_safe(a.username)"),
    ("resolution_note", "csv_safe(t.resolution_note)"),
    ("created_at", "csv_time(t.created_at)"),
    ("resolved_at", "csv_time(t.resolved_at)"),
];

/// The analytics columns, in ClickHouse SQL: ids that mean "none" (the zero UUID) are
/// empty cells, text a spreadsheet could run is neutralised as in PostgreSQL.
const ANALYTICS_COLUMNS: &[Column] = &[
    (
        "occurred_at",
        "formatDateTime(at_, '%Y-%m-%dT%H:%M:%SZ', 'UTC')",
    ),
    (
        "event_type",
        "if(match(type_, '^[-=+@\\t\\r]'), concat('\\'', type_), type_)",
    ),
    ("event_id", "toString(id_)"),
    (
        "user_id",
        "if(user_ = toUUID('00000000-0000-0000-0000-000000000000'), '', toString(user_))",
    ),
    (
        "party_id",
        "if(party_ = toUUID('00000000-0000-0000-0000-000000000000'), '', toString(party_))",
    ),
    (
        "video_id",
        "if(video_ = toUUID('00000000-0000-0000-0000-000000000000'), '', toString(video_))",
    ),
    (
        "properties",
        "if(match(props_, '^[-=+@\\t\\r]'), concat('\\'', props_), props_)",
    ),
];

/// What a run of an analytics export asks ClickHouse (the `?` are bound by the client:
/// `created_after`, `created_before` as Unix seconds, then each event type).
#[derive(Debug, Clone)]
pub struct ClickHouseSql {
    pub count: String,
    pub rows: String,
    pub after: i64,
    pub before: i64,
    pub event_types: Vec<String>,
}

/// The statements of an analytics export with `columns` and `filters` (as stored).
pub fn clickhouse_statements(
    columns: &[String],
    filters: &serde_json::Value,
) -> ExportResult<ClickHouseSql> {
    let f: ExportFilters =
        serde_json::from_value(filters.clone()).map_err(|e| invalid("filters", e.to_string()))?;
    let select: Vec<String> = columns
        .iter()
        .map(|c| {
            ANALYTICS_COLUMNS
                .iter()
                .find(|(n, _)| n == c)
                .map(|(n, sql)| format!("{sql} AS {n}"))
                .ok_or_else(|| invalid("columns", format!("{c:?} is not an analytics column.")))
        })
        .collect::<ExportResult<_>>()?;
    let types = if f.event_type.is_empty() {
        String::new()
    } else {
        format!(
            " AND event_type IN ({})",
            vec!["?"; f.event_type.len()].join(", ")
        )
    };
    let cond = format!("occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?){types}");
    Ok(ClickHouseSql {
        count: format!("SELECT count() FROM (SELECT event_id FROM events FINAL WHERE {cond})"),
        // The inner names differ from the columns': an output column named like a
        // source column would stand for it in the WHERE (ClickHouse resolves aliases).
        rows: format!(
            "SELECT {} FROM (SELECT occurred_at AS at_, event_type AS type_, event_id AS id_,
                    user_id AS user_, party_id AS party_, video_id AS video_, properties AS props_
               FROM events FINAL WHERE {cond}) ORDER BY at_, id_",
            select.join(", ")
        ),
        after: f.created_after.map_or(0, |t| t.timestamp()),
        before: f.created_before.map_or(4_102_444_800, |t| t.timestamp()), // 2100-01-01
        event_types: f.event_type,
    })
}

impl ExportKind {
    /// Every column this kind can export, in file order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            ExportKind::Users => USER_COLUMNS,
            ExportKind::Tickets => TICKET_COLUMNS,
            ExportKind::Feedback => FEEDBACK_COLUMNS,
            ExportKind::Reports => REPORT_COLUMNS,
            ExportKind::Analytics => ANALYTICS_COLUMNS,
        }
    }

    /// The rows' `FROM` (aliases the columns use) and their order (a stable one, so a
    /// file is the same however often it is made).
    fn from(self) -> (&'static str, &'static str) {
        match self {
            ExportKind::Users => ("users u", "u.id"),
            ExportKind::Tickets => (
                "support_tickets t JOIN users u ON u.id = t.user_id LEFT JOIN users a ON a.id = t.assigned_to",
                "t.number",
            ),
            ExportKind::Feedback => (
                "support_feedback t LEFT JOIN users u ON u.id = t.user_id",
                "t.created_at, t.id",
            ),
            ExportKind::Reports => (
                "content_reports t LEFT JOIN users u ON u.id = t.reporter_id
                 LEFT JOIN users o ON o.id = t.target_owner_id LEFT JOIN users a ON a.id = t.resolved_by",
                "t.created_at, t.id",
            ),
            // Read from ClickHouse (`clickhouse_statements`), not PostgreSQL.
            ExportKind::Analytics => ("", ""),
        }
    }

    /// Who may export this kind.
    pub fn needs(self) -> Role {
        match self {
            ExportKind::Users | ExportKind::Analytics => Role::Admin,
            _ => Role::Moderator,
        }
    }

    /// The statuses a filter may name (none: the kind has no status).
    fn statuses(self) -> Vec<&'static str> {
        use crate::{moderation::ReportStatus, support::TicketStatus};
        match self {
            ExportKind::Users => AccountStatus::ALL.iter().map(|s| s.as_str()).collect(),
            ExportKind::Tickets => TicketStatus::ALL.iter().map(|s| s.as_str()).collect(),
            ExportKind::Reports => ReportStatus::ALL.iter().map(|s| s.as_str()).collect(),
            ExportKind::Feedback | ExportKind::Analytics => Vec::new(),
        }
    }
}

/// The filters of an export. For `users`: every filter of the user directory
/// (`GET /api/admin/users/`). For the others: `status`, `created_after`,
/// `created_before`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportFilters {
    /// Users: part of the username, display name or email.
    #[schema(max_length = 100)]
    pub search: Option<String>,
    /// Users.
    #[serde(default)]
    pub role: Vec<Role>,
    /// Users, tickets, reports: the statuses to keep.
    #[serde(default)]
    pub status: Vec<String>,
    /// Users.
    pub verified: Option<bool>,
    /// Users.
    pub has_2fa: Option<bool>,
    /// Users: a two-letter region code.
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub country: Option<String>,
    /// Users (joined), tickets, feedback and reports (created) from this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Users: last signed in from this instant.
    pub active_after: Option<DateTime<Utc>>,
    /// Users: last signed in before this instant.
    pub active_before: Option<DateTime<Utc>>,
    /// Analytics: only these event types (`video.view_start`, ...).
    #[serde(default)]
    pub event_type: Vec<String>,
}

/// A new export.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExport {
    pub kind: ExportKind,
    /// The columns, in this order (default: all of the kind's, in their order; see
    /// docs/exports.md for each kind's list).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub filters: ExportFilters,
}

/// Why an export is refused.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("Not found.")]
    NotFound,
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type ExportResult<T> = Result<T, ExportError>;

fn invalid(field: &'static str, message: impl Into<String>) -> ExportError {
    ExportError::Invalid {
        field,
        message: message.into(),
    }
}

impl NewExport {
    /// The columns checked against the kind's list, and the filters against the kind.
    pub fn checked(self) -> ExportResult<(ExportKind, Vec<String>, ExportFilters)> {
        let all = self.kind.columns();
        let columns = match self.columns {
            None => all.iter().map(|(n, _)| (*n).to_owned()).collect(),
            Some(cols) => {
                if cols.is_empty() {
                    return Err(invalid("columns", "At least one column."));
                }
                let mut seen = std::collections::HashSet::new();
                for c in &cols {
                    if !all.iter().any(|(n, _)| n == c) {
                        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
                        return Err(invalid(
                            "columns",
                            format!(
                                "{c:?} is not a column of {}: {}.",
                                self.kind,
                                names.join(", ")
                            ),
                        ));
                    }
                    if !seen.insert(c.as_str()) {
                        return Err(invalid("columns", format!("{c:?} is named twice.")));
                    }
                }
                cols
            }
        };
        let mut f = self.filters;
        let users_only = [
            ("search", f.search.is_some()),
            ("role", !f.role.is_empty()),
            ("verified", f.verified.is_some()),
            ("has_2fa", f.has_2fa.is_some()),
            ("country", f.country.is_some()),
            ("active_after", f.active_after.is_some()),
            ("active_before", f.active_before.is_some()),
        ];
        if self.kind != ExportKind::Users
            && let Some((field, _)) = users_only.iter().find(|(_, set)| *set)
        {
            return Err(invalid(field, format!("Not a filter of {}.", self.kind)));
        }
        if self.kind != ExportKind::Analytics && !f.event_type.is_empty() {
            return Err(invalid(
                "event_type",
                format!("Not a filter of {}.", self.kind),
            ));
        }
        if f.event_type.len() > 50
            || f.event_type
                .iter()
                .any(|t| t.is_empty() || t.chars().count() > 100)
        {
            return Err(invalid(
                "event_type",
                "At most 50 types of 1 to 100 characters.",
            ));
        }
        let statuses = self.kind.statuses();
        if let Some(s) = f.status.iter().find(|s| !statuses.contains(&s.as_str())) {
            return Err(invalid(
                "status",
                if statuses.is_empty() {
                    format!("{} has no status.", self.kind)
                } else {
                    format!("{s:?} is not one of {}.", statuses.join(", "))
                },
            ));
        }
        if f.search.as_ref().is_some_and(|s| s.chars().count() > 100) {
            return Err(invalid("search", "At most 100 characters."));
        }
        if let Some(c) = &f.country {
            if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                return Err(invalid("country", "A two-letter region code (GB, BR)."));
            }
            f.country = Some(c.to_ascii_uppercase());
        }
        for (field, a, b) in [
            ("created_before", f.created_after, f.created_before),
            ("active_before", f.active_after, f.active_before),
        ] {
            if let (Some(a), Some(b)) = (a, b)
                && a >= b
            {
                return Err(invalid(field, "Must be after the start."));
            }
        }
        Ok((self.kind, columns, f))
    }
}

/// An export as its requester sees it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct TableExport {
    pub id: Uuid,
    pub kind: ExportKind,
    pub columns: Vec<String>,
    #[schema(value_type = Object)]
    pub filters: serde_json::Value,
    pub status: ExportStatus,
    pub requested_by: Option<Uuid>,
    /// Rows written so far (the run in progress, or the file).
    pub rows_done: i64,
    /// Rows the export will hold (known once the run has counted them).
    pub rows_total: Option<i64>,
    pub size_bytes: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Runs so far (more than one: a run was interrupted and the export made again).
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the file is removed.
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub file_key: Option<String>,
}

const SELECT: &str =
    "SELECT id, kind, columns, filters, status, requested_by, rows_done, rows_total,
        size_bytes, error, attempts, created_at, started_at, finished_at, expires_at, file_key
   FROM table_exports";

/// Records export `kind` for `me` and the job that makes it (the outbox row's id is
/// returned with it, to relay after commit). Audited.
pub async fn create(
    db: &PgPool,
    me: &Actor,
    kind: ExportKind,
    columns: &[String],
    filters: &ExportFilters,
) -> ExportResult<(TableExport, i64)> {
    if me.role < kind.needs() {
        return Err(ExportError::PermissionDenied(match kind.needs() {
            Role::Admin => "Only admins export this.",
            _ => "Only staff export this.",
        }));
    }
    let id = Uuid::now_v7();
    let filters = serde_json::to_value(filters).map_err(|e| invalid("filters", e.to_string()))?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO table_exports (id, requested_by, kind, columns, filters) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(me.id)
    .bind(kind)
    .bind(columns)
    .bind(&filters)
    .execute(&mut *tx)
    .await?;
    let outbox = wp_shared::outbox::record(
        &mut tx,
        &wp_shared::jobs::ExportTable {
            table_export_id: id,
        },
    )
    .await?;
    crate::audit::record(
        &mut tx,
        me,
        "export.create",
        "export",
        Some(id),
        serde_json::json!({ "kind": kind, "columns": columns, "filters": filters }),
    )
    .await?;
    let e = load(&mut tx, id).await?.ok_or(ExportError::NotFound)?;
    tx.commit().await?;
    Ok((e, outbox))
}

async fn load(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TableExport>> {
    sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// Export `id` if `me` may see it (its requester; admins: any).
pub async fn get(conn: &mut PgConnection, me: &Actor, id: Uuid) -> ExportResult<TableExport> {
    match load(conn, id).await? {
        Some(e) if e.requested_by == Some(me.id) || me.role >= Role::Admin => Ok(e),
        _ => Err(ExportError::NotFound),
    }
}

/// The exports `me` may see, newest first.
pub async fn list(
    conn: &mut PgConnection,
    me: &Actor,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<TableExport>, i64)> {
    let all = me.role >= Role::Admin;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM table_exports WHERE $2 OR requested_by = $1")
            .bind(me.id)
            .bind(all)
            .fetch_one(&mut *conn)
            .await?;
    let rows = sqlx::query_as(&format!(
        "{SELECT} WHERE $2 OR requested_by = $1 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(me.id)
    .bind(all)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, count))
}

/// `sql` with its `$1`..`$n` placeholders as `format()` literals (`%1$L`..).
fn as_format(sql: &str, n: usize) -> String {
    let mut s = sql.to_owned();
    for i in (1..=n).rev() {
        s = s.replace(&format!("${i}"), &format!("%{i}$L"));
    }
    s
}

/// What a run executes: the count and the `COPY`, with the filters inlined as literals
/// quoted by PostgreSQL itself (`format('%L')`: `COPY` takes no parameters).
#[derive(Debug, Clone)]
pub struct ExportSql {
    pub count: String,
    pub copy: String,
}

/// The statements of an export of `kind` with `columns` and `filters` (as stored).
pub async fn statements(
    conn: &mut PgConnection,
    kind: ExportKind,
    columns: &[String],
    filters: &serde_json::Value,
) -> ExportResult<ExportSql> {
    let f: ExportFilters =
        serde_json::from_value(filters.clone()).map_err(|e| invalid("filters", e.to_string()))?;
    let all = kind.columns();
    let select: Vec<String> = columns
        .iter()
        .map(|c| {
            all.iter()
                .find(|(n, _)| n == c)
                .map(|(n, sql)| format!("{sql} AS \"{n}\""))
                .ok_or_else(|| invalid("columns", format!("{c:?} is not a column of {kind}.")))
        })
        .collect::<ExportResult<_>>()?;
    let (from, order) = kind.from();
    let cond: String = match kind {
        ExportKind::Users => {
            let uf = UserFilter {
                search: f.search.clone(),
                role: f.role.clone(),
                status: f
                    .status
                    .iter()
                    .filter_map(|s| s.parse::<AccountStatus>().ok())
                    .collect(),
                verified: f.verified,
                has_2fa: f.has_2fa,
                country: f.country.clone(),
                joined_after: f.created_after,
                joined_before: f.created_before,
                active_after: f.active_after,
                active_before: f.active_before,
                ordering: None,
            };
            let (cond,): (String,) = uf
                .bind(
                    sqlx::query_as("SELECT format($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                        .bind(as_format(UserFilter::WHERE, 10)),
                )
                .fetch_one(&mut *conn)
                .await?;
            cond
        }
        _ => {
            let template = "(cardinality($1::text[]) = 0 OR t.status::text = ANY($1::text[]))
                AND ($2::timestamptz IS NULL OR t.created_at >= $2::timestamptz)
                AND ($3::timestamptz IS NULL OR t.created_at < $3::timestamptz)";
            let template = if kind == ExportKind::Feedback {
                template.replace("t.status::text", "NULL::text")
            } else {
                template.to_owned()
            };
            sqlx::query_scalar("SELECT format($1, $2, $3, $4)")
                .bind(as_format(&template, 3))
                .bind(&f.status)
                .bind(f.created_after)
                .bind(f.created_before)
                .fetch_one(&mut *conn)
                .await?
        }
    };
    Ok(ExportSql {
        count: format!("SELECT count(*) FROM {from} WHERE {cond}"),
        copy: format!(
            "COPY (SELECT {} FROM {from} WHERE {cond} ORDER BY {order}) TO STDOUT WITH (FORMAT csv, HEADER true)",
            select.join(", ")
        ),
    })
}

/// Counts the CSV records ending in `chunk`, carrying the quoting state across chunks
/// (a newline inside a quoted cell is not a record's end).
#[derive(Debug, Default)]
pub struct RecordCounter {
    in_quotes: bool,
    pub records: u64,
}

impl RecordCounter {
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.records += 1,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_across_chunks_and_quoted_newlines() {
        let mut c = RecordCounter::default();
        let csv = b"id,text\n1,\"a\nb\"\n2,\"say \"\"hi\"\"\"\n3,plain\n";
        for part in csv.chunks(3) {
            c.feed(part);
        }
        assert_eq!(c.records, 4, "a header and three records");
    }

    #[test]
    fn placeholders_become_format_literals_highest_first() {
        assert_eq!(as_format("$1 = $10 AND $2", 10), "%1$L = %10$L AND %2$L");
    }

    #[test]
    fn columns_and_filters_are_checked_against_the_kind() {
        let new = |kind, columns: Option<Vec<&str>>, filters: serde_json::Value| NewExport {
            kind,
            columns: columns.map(|c| c.into_iter().map(str::to_owned).collect()),
            filters: serde_json::from_value(filters).unwrap(),
        };
        let field = |n: NewExport| match n.checked() {
            Err(ExportError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let (_, cols, _) = new(ExportKind::Users, None, serde_json::json!({}))
            .checked()
            .unwrap();
        assert_eq!(cols.len(), USER_COLUMNS.len());
        assert_eq!(
            field(new(
                ExportKind::Users,
                Some(vec!["password_hash"]),
                serde_json::json!({})
            )),
            "columns"
        );
        assert_eq!(
            field(new(
                ExportKind::Users,
                Some(vec!["id", "id"]),
                serde_json::json!({})
            )),
            "columns"
        );
        assert_eq!(
            field(new(
                ExportKind::Tickets,
                None,
                serde_json::json!({"role": ["admin"]})
            )),
            "role"
        );
        assert_eq!(
            field(new(
                ExportKind::Tickets,
                None,
                serde_json::json!({"status": ["active"]})
            )),
            "status"
        );
        assert_eq!(
            field(new(
                ExportKind::Feedback,
                None,
                serde_json::json!({"status": ["open"]})
            )),
            "status"
        );
        assert_eq!(
            field(new(
                ExportKind::Users,
                None,
                serde_json::json!({"country": "GBR"})
            )),
            "country"
        );
        let (_, _, f) = new(
            ExportKind::Users,
            None,
            serde_json::json!({"country": "br"}),
        )
        .checked()
        .unwrap();
        assert_eq!(f.country.as_deref(), Some("BR"));
    }
}
