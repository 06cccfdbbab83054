//! The answers every route can give for the same reasons, added to the OpenAPI document
//! once instead of on each route (a route that names one itself keeps its own text):
//! 401 where a token is read (missing, expired, revoked), 400 / 413 / 415 where a body
//! is read (malformed, too large, not JSON or not multipart), 404 where a path holds an
//! id (a malformed one is "no such thing" before the handler runs), 400 where a query
//! string is read (a value of the wrong type), 503 everywhere (a dependency is down;
//! `Retry-After` where the server sheds load).

use serde_json::{Value, json};
use utoipa::openapi::{
    ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder,
    path::{Operation, ParameterIn},
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

/// The document as served: with the rules a derive cannot state written into it as JSON
/// (utoipa's model has no `not` or `const`): ids are UUIDs
/// (a pattern, which generators honour where `format: uuid` is only a hint); "email or
/// username" at login, "ids or all" on bulk notification actions; a party is created
/// with a title, its group at creation only, its video changed on the socket and not by
/// `PATCH`; notification types are the
/// closed set of `wp_core::notify::KINDS`.
pub fn state_rules(doc: &OpenApi) -> Value {
    let mut v = serde_json::to_value(doc).expect("the OpenAPI document serialises");
    uuid_patterns(&mut v);
    // Every JSON body refuses text with a NUL in it (`extract::parse_json`): say so in
    // every schema a JSON request body is made of (not in the answers' schemas, nor in
    // uploads).
    let mut bodies: Vec<&mut Value> = v["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
        .filter_map(Value::as_object_mut)
        .filter_map(|op| op.get_mut("requestBody"))
        .filter_map(|b| b.pointer_mut("/content/application~1json/schema"))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for body in &bodies {
        schema_refs(body, &mut names);
    }
    bodies.iter_mut().for_each(|b| no_nul(b));
    let mut queue: Vec<String> = names.iter().cloned().collect();
    while let Some(name) = queue.pop() {
        let mut more = std::collections::BTreeSet::new();
        schema_refs(&v["components"]["schemas"][&name], &mut more);
        for m in more {
            if names.insert(m.clone()) {
                queue.push(m);
            }
        }
    }
    for name in &names {
        no_nul(&mut v["components"]["schemas"][name]);
    }
    let schemas = &mut v["components"]["schemas"];
    one_of_required(
        schemas,
        "LoginRequest",
        &[
            (
                "email",
                json!({"type": "string", "minLength": 1, "pattern": "\\S"}),
            ),
            (
                "username",
                json!({"type": "string", "minLength": 1, "pattern": "\\S"}),
            ),
        ],
    );
    one_of_required(
        schemas,
        "Selection",
        &[
            (
                "ids",
                json!({"type": "array", "minItems": 1, "maxItems": 500}),
            ),
            ("all", json!({"const": true})),
        ],
    );
    let kinds: Vec<&str> = wp_core::notify::KINDS.iter().map(|k| k.name).collect();
    schemas["PreferenceUpdate"]["properties"]["kind"]["enum"] = json!(kinds);
    if let Some(fields) = schemas.get("PartyFields").cloned() {
        let mut create = fields.clone();
        create["required"] = json!(["title"]);
        create["properties"]["title"]["type"] = json!("string");
        // A library video or an external URL, not both.
        create["not"] = json!({"required": ["video_id", "external_url"], "properties": {
            "video_id": {"type": "string"}, "external_url": {"type": "string"}}});
        // The group is set at creation; the video is changed on the party socket.
        let mut update = fields;
        if let Some(props) = update["properties"].as_object_mut() {
            for field in ["group_id", "video_id", "external_url"] {
                props.remove(field);
            }
        }
        schemas["PartyCreate"] = create;
        schemas["PartyUpdate"] = update;
        let body = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
        let paths = &mut v["paths"];
        paths["/api/parties/"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
            body("PartyCreate");
        paths["/api/parties/{id}/"]["patch"]["requestBody"]["content"]["application/json"]["schema"] =
            body("PartyUpdate");
    }
    for param in v["paths"]["/api/notifications/"]["get"]["parameters"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if param["name"] == "kind" {
            param["schema"]["enum"] = json!(kinds);
        }
    }
    v
}

/// `name` becomes `allOf: [itself, anyOf: [{required: [field], properties: {field:
/// schema}}, ...]]`: at least one of the fields, each as its schema says.
fn one_of_required(schemas: &mut Value, name: &str, fields: &[(&str, Value)]) {
    let Some(original) = schemas.get(name).cloned() else {
        return;
    };
    let any: Vec<Value> = fields
        .iter()
        .map(|(f, schema)| json!({"type": "object", "required": [f], "properties": {*f: schema}}))
        .collect();
    schemas[name] = json!({"allOf": [original, {"anyOf": any}]});
}

/// The component schemas `v` refers to (`#/components/schemas/{name}`).
fn schema_refs(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.insert(name.to_owned());
            }
            map.values().for_each(|x| schema_refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| schema_refs(x, out)),
        _ => {}
    }
}

/// Adds `not: {pattern: NUL}` to every free string schema (no format, enum or const).
fn no_nul(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                _ => false,
            };
            if string
                && !["format", "enum", "const", "not"]
                    .iter()
                    .any(|k| map.contains_key(*k))
            {
                map.insert("not".into(), json!({"pattern": "\\u0000"}));
            }
            map.values_mut().for_each(no_nul);
        }
        Value::Array(items) => items.iter_mut().for_each(no_nul),
        _ => {}
    }
}

/// Adds the UUID pattern to every string schema of `format: uuid`.
fn uuid_patterns(v: &mut Value) {
    const UUID: &str =
        "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
    match v {
        Value::Object(map) => {
            if map.get("format").and_then(Value::as_str) == Some("uuid")
                && !map.contains_key("pattern")
            {
                map.insert("pattern".into(), Value::from(UUID));
            }
            map.values_mut().for_each(uuid_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(uuid_patterns),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|x| refs(x, out));
            }
            Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_the_rules_are_written() {
        let doc = crate::openapi();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["LoginRequest"]["allOf"].is_array());
        assert_eq!(schemas["PartyCreate"]["required"][0], "title");
        assert!(
            schemas["PartyUpdate"]["properties"]
                .get("group_id")
                .is_none()
        );
        assert!(schemas["PreferenceUpdate"]["properties"]["kind"]["enum"].is_array());
        let login = &doc["paths"]["/api/auth/login/"]["post"]["responses"];
        assert!(login.get("415").is_some() && login.get("413").is_some());
    }
}
