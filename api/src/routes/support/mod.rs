//! The help desk over REST, under `/api/support/` (seed item 7): tickets with replies,
//! staff notes, attachments, assignment and merges; the FAQ and feedback ([`faq`]).
//! The rules are `wp_core::support`: a ticket is its owner's and staff's; anyone else
//! gets 404.

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, OriginalUri, State},
    http::header,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::{
    files::{safe_filename, sniff_document},
    support::{
        self, ATTACHMENT_MAX_BYTES, Assignee, Attachment, ListFilter, NewReply, NewTicket,
        StoredFile, Ticket, TicketCategory, TicketDetail, TicketMessage, TicketOrdering,
        TicketPatch, TicketPriority, TicketStatus,
    },
};

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult, ErrorBody},
    extract::{Ids, JsonBody, MultipartForm, Query, listed, multipart_error},
    ratelimit::{self, Limit},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    state::AppState,
};

pub mod faq;

/// New tickets per user.
pub const TICKETS_PER_USER: Limit = Limit {
    name: "support-ticket",
    limit: 5,
    window: std::time::Duration::from_secs(3600),
};
/// Replies and uploads per user (staff included: a runaway script is stopped too).
pub const REPLIES_PER_USER: Limit = Limit {
    name: "support-reply",
    limit: 60,
    window: std::time::Duration::from_secs(600),
};

/// `?status=&priority=&category=&assigned_to=&user=&min_age_hours=&breached=&search=&ordering=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketListParams {
    /// Comma-separated: `open,pending,resolved,closed`.
    pub status: Option<String>,
    /// Comma-separated (staff): `low,normal,high,urgent`.
    pub priority: Option<String>,
    /// Comma-separated (staff).
    pub category: Option<String>,
    /// Staff: a user id, `me` or `none` (unassigned).
    pub assigned_to: Option<String>,
    /// Staff: one user's tickets.
    pub user: Option<Uuid>,
    /// Staff: opened at least this many hours ago.
    #[param(minimum = 0)]
    pub min_age_hours: Option<i64>,
    /// Staff: past their response time (`true`) or not.
    pub breached: Option<bool>,
    /// Words of the subject or description.
    pub search: Option<String>,
    /// `newest`, `oldest`, `due` (staff default), `priority`, `updated` (users' default).
    pub ordering: Option<String>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

impl TicketListParams {
    fn filter(self, me: &AuthUser) -> AppResult<ListFilter> {
        let staff_only = [
            ("priority", self.priority.is_some()),
            ("category", self.category.is_some()),
            ("assigned_to", self.assigned_to.is_some()),
            ("user", self.user.is_some()),
            ("min_age_hours", self.min_age_hours.is_some()),
            ("breached", self.breached.is_some()),
        ];
        if !me.is_staff()
            && let Some((field, _)) = staff_only.iter().find(|(_, set)| *set)
        {
            return Err(AppError::field(*field, "A filter for support staff."));
        }
        if self
            .min_age_hours
            .is_some_and(|h| !(0..=24 * 3650).contains(&h))
        {
            return Err(AppError::field("min_age_hours", "0 to 87600."));
        }
        let assignee = match self.assigned_to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("me") => Some(Assignee::User(me.id)),
            Some(v) => Some(
                v.parse::<Assignee>()
                    .map_err(|m| AppError::field("assigned_to", m))?,
            ),
        };
        let ordering = self
            .ordering
            .as_deref()
            .map(|o| {
                o.parse::<TicketOrdering>().map_err(|_| {
                    AppError::field(
                        "ordering",
                        "One of: newest, oldest, due, priority, updated.",
                    )
                })
            })
            .transpose()?;
        Ok(ListFilter {
            status: listed("status", self.status.as_deref(), TicketStatus::ALL, |s| {
                s.as_str()
            })?,
            priority: listed(
                "priority",
                self.priority.as_deref(),
                TicketPriority::ALL,
                |s| s.as_str(),
            )?,
            category: listed(
                "category",
                self.category.as_deref(),
                TicketCategory::ALL,
                |s| s.as_str(),
            )?,
            assignee,
            user: self.user,
            min_age_hours: self.min_age_hours,
            breached: self.breached,
            search: self.search,
            ordering,
        })
    }
}

/// The caller's tickets (staff: everyone's, with the filters), most recently changed
/// first (staff: soonest due first).
#[utoipa::path(get, path = "/support/tickets/", tag = "support", security(("bearer" = [])), params(TicketListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Ticket>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<TicketListParams>,
) -> AppResult<ApiResponse<Paginated<Ticket>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let filter = q.filter(&me)?;
    let mut conn = state.db.acquire().await?;
    let (results, count) = support::list(
        &mut conn,
        &me,
        &filter,
        Utc::now(),
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Opens a ticket (it waits for staff; its response time follows its priority).
/// 429 past 5 an hour; 409 `too_many_open_tickets` with 10 waiting.
#[utoipa::path(post, path = "/support/tickets/", tag = "support", security(("bearer" = [])), request_body = NewTicket,
    responses((status = 201, body = inline(Envelope<Ticket>)), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<Ticket>> {
    let new = body.parse::<NewTicket>()?.checked(&me)?;
    ratelimit::hit(&state, &TICKETS_PER_USER, &me.id.to_string()).await?;
    Ok(ApiResponse::created(
        support::create(&state.db, &me, &new, Utc::now()).await?,
    ))
}

/// A ticket with its conversation (staff also see internal notes) and attachments.
#[utoipa::path(get, path = "/support/tickets/{id}/", tag = "support", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<TicketDetail>)), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn detail(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<TicketDetail>> {
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(support::detail(&mut conn, &me, id).await?))
}

/// Changes a ticket. Staff: `status` (any move but into `pending`), `priority`,
/// `category`, `assigned_to` (a staff member, told; null unassigns). The owner:
/// `status` `resolved` or `closed` only.
#[utoipa::path(patch, path = "/support/tickets/{id}/", tag = "support", security(("bearer" = [])), request_body = TicketPatch,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Ticket>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Ticket>> {
    support::may(&state.db, &me, id, false).await?;
    let patch = body.parse::<TicketPatch>()?;
    let done = support::update(&state.db, &me, id, &patch, Utc::now()).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &done.outbox).await;
    Ok(ApiResponse::ok(done.ticket))
}

/// Replies on a ticket, or (staff, `internal`) adds a note the user never sees. A staff
/// reply moves the ticket to `pending` and sends the owner the text (in-app, email,
/// push); the owner's reply reopens it (`open`) and tells the assignee. 409
/// `ticket_closed` on a closed ticket.
#[utoipa::path(post, path = "/support/tickets/{id}/reply/", tag = "support", security(("bearer" = [])), request_body = NewReply,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = inline(Envelope<TicketMessage>)), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reply(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<TicketMessage>> {
    support::may(&state.db, &me, id, false).await?;
    let r = body.parse::<NewReply>()?.checked(&me)?;
    ratelimit::hit(&state, &REPLIES_PER_USER, &me.id.to_string()).await?;
    let done = support::reply(&state.db, &me, id, &r, Utc::now()).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &done.outbox).await;
    Ok(ApiResponse::created(done.message))
}

/// Which ticket a duplicate goes into.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The ticket to keep (the same user's, not closed).
    pub into: Uuid,
}

/// Merges this ticket into another of the same user (staff): its conversation and
/// files move there, it is closed pointing at it. Answers the kept ticket.
#[utoipa::path(post, path = "/support/tickets/{id}/merge/", tag = "support", security(("bearer" = [])), request_body = MergeBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Ticket>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn merge(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Ticket>> {
    support::may(&state.db, &me, id, true).await?;
    let b = body.parse::<MergeBody>()?;
    Ok(ApiResponse::ok(
        support::merge(&state.db, &me, id, b.into, Utc::now()).await?,
    ))
}

/// The attachment upload's form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the multipart form for the OpenAPI document.
pub struct AttachmentForm {
    /// An image (PNG, JPEG, GIF, WebP), a PDF or a plain-text log, at most 10 MiB; the
    /// type is read from the bytes.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Attaches a file to a ticket (owner or staff): the multipart field `file`. At most 10
/// per ticket (409 `too_many_attachments`); 400 naming `file` for anything but an
/// image, a PDF or plain text.
#[utoipa::path(post, path = "/support/tickets/{id}/attachments/", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content_type = "multipart/form-data", content = AttachmentForm),
    responses((status = 201, body = inline(Envelope<Attachment>)), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn upload_attachment(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    MultipartForm(mut form): MultipartForm,
) -> AppResult<ApiResponse<Attachment>> {
    support::may_attach(&state.db, &me, id).await?;
    ratelimit::hit(&state, &REPLIES_PER_USER, &me.id.to_string()).await?;
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().map(str::to_owned);
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if buf.len() + chunk.len() > ATTACHMENT_MAX_BYTES {
                return Err(AppError::PayloadTooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        file = Some((name, buf));
        break;
    }
    let (name, bytes) = file.ok_or_else(|| AppError::field("file", "Attach a file."))?;
    let (content_type, ext) = sniff_document(&bytes).ok_or_else(|| {
        AppError::field(
            "file",
            "An image (PNG, JPEG, GIF, WebP), a PDF or a plain-text log (read from the bytes).",
        )
    })?;
    let aid = Uuid::now_v7();
    let stored = StoredFile {
        id: aid,
        filename: safe_filename(name.as_deref(), ext),
        content_type: content_type.to_owned(),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        key: support::attachment_key(id, aid, ext),
    };
    state
        .storage
        .put(&stored.key, bytes)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    match support::attach(&state.db, &me, id, &stored, Utc::now()).await {
        Ok(a) => Ok(ApiResponse::created(a)),
        Err(e) => {
            // Nothing records the file: it goes.
            if let Err(err) = state.storage.delete(&stored.key).await {
                tracing::warn!(error = %err, key = %stored.key, "an unrecorded attachment was left in storage");
            }
            Err(e.into())
        }
    }
}

/// Downloads an attachment (owner or staff), as an attachment with its type.
#[utoipa::path(get, path = "/support/tickets/{id}/attachments/{attachment_id}/", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("attachment_id" = Uuid, Path)),
    responses((status = 200, description = "The file, with the type read from its bytes when it was uploaded",
        content((String = "image/*"), (String = "application/pdf"), (String = "text/plain"))), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn download_attachment(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, aid)): Ids<(Uuid, Uuid)>,
) -> AppResult<Response> {
    let (a, key) = {
        let mut conn = state.db.acquire().await?;
        support::attachment(&mut conn, &me, id, aid).await?
    };
    let len = state
        .storage
        .len(&key)
        .await
        .map_err(|_| AppError::not_found())?;
    let stream = state
        .storage
        .stream(&key, 0, len)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", a.filename),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail, update))
        .routes(routes!(reply))
        .routes(routes!(merge))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload_attachment))
                .layer(DefaultBodyLimit::max(ATTACHMENT_MAX_BYTES + 64 * 1024)),
        )
        .routes(routes!(download_attachment))
        .merge(faq::router())
}
