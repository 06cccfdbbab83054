//! The answers every route can give for the same reasons, added to the OpenAPI document
//! once instead of on each route (a route that names one itself keeps its own text):
//! 401 where a token is read (missing, expired, revoked), 400 / 413 / 415 where a body
//! is read (malformed, too large, not JSON or not multipart), 404 where a path holds an
//! id (a malformed one is "no such thing" before the handler runs), 400 where a query
//! string is read (a value of the wrong type), 503 everywhere (a dependency is down;
//! `Retry-After` where the server sheds load).

use utoipa::openapi::{
    AllOfBuilder, ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema,
    Type,
    path::{Operation, ParameterIn},
    schema::AnyOfBuilder,
};

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error(description));
}

fn complete(op: &mut Operation, path: &str) {
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add(
            op,
            "401",
            "`not_authenticated`, `token_expired`, `invalid_token` or `session_revoked`: \
             no valid access token",
        );
    }
    let multipart = op
        .request_body
        .as_ref()
        .map(|body| body.content.keys().any(|k| k.starts_with("multipart/")));
    if let Some(multipart) = multipart {
        add(
            op,
            "400",
            "`validation_error` naming the fields, or `invalid_json` / `invalid_multipart`",
        );
        add(op, "413", "`payload_too_large`: the body is over the limit");
        add(
            op,
            "415",
            if multipart {
                "`unsupported_media_type`: not `multipart/form-data`"
            } else {
                "`unsupported_media_type`: no body, or not `application/json`"
            },
        );
    }
    if path.contains('{') {
        add(op, "404", "`not_found`: no such object, or a malformed id");
    }
    let reads_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    if reads_query {
        add(
            op,
            "400",
            "`validation_error` naming the query parameter that is wrong",
        );
    }
    add(
        op,
        "503",
        "`service_unavailable` (a dependency is down) or `server_busy` (with `Retry-After`)",
    );
}

/// Adds the shared answers to every operation of `doc`.
pub fn complete_responses(doc: &mut OpenApi) {
    for (path, item) in &mut doc.paths.paths {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete(op, path);
        }
    }
}

/// Says of the schema `name` that at least one of `fields` is given, not blank (a rule
/// serde's optional fields cannot express): the schema becomes
/// `allOf: [itself, anyOf: [{required: [field], field: non-blank string}, ...]]`.
pub fn require_one_of(doc: &mut OpenApi, name: &str, fields: &[&str]) {
    let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let Some(original) = schemas.remove(name) else {
        return;
    };
    let any = fields.iter().fold(AnyOfBuilder::new(), |any, field| {
        any.item(
            ObjectBuilder::new()
                .property(
                    *field,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .pattern(Some("\\S")),
                )
                .required(*field),
        )
    });
    let all = AllOfBuilder::new().item(original).item(any).build();
    schemas.insert(name.to_owned(), RefOr::T(Schema::AllOf(all)));
}
