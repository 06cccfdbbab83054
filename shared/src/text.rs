//! Text the database cannot store: PostgreSQL's `text` refuses the NUL character
//! (U+0000), so a client that sends one gets a 400 (or an error frame) naming the
//! field, never a server error from the insert.

use serde_json::Value;

/// The message every adapter gives for it.
pub const NUL_MESSAGE: &str = "Text may not contain the NUL character (\\u0000).";

/// Where a parsed JSON document holds a NUL character (in a string or a key), as a path
/// (`description`, `options[2].text`, `.` for the top level), or `None`.
pub fn nul_in(value: &Value) -> Option<String> {
    find(value, String::new())
}

fn find(v: &Value, path: String) -> Option<String> {
    let here = || {
        if path.is_empty() {
            ".".to_owned()
        } else {
            path.clone()
        }
    };
    match v {
        Value::String(s) => s.contains('\0').then(here),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(p)
            } else {
                find(item, p)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nul_in_json(text: &str) -> Option<String> {
        nul_in(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn the_field_holding_a_nul_is_named() {
        assert_eq!(nul_in_json(r#"{"a": "fine"}"#), None);
        assert_eq!(nul_in_json(r#"{"a": "not \\u0000 one"}"#), None);
        assert_eq!(nul_in_json(r#"{"a": "x\u0000"}"#).as_deref(), Some("a"));
        assert_eq!(
            nul_in_json(r#"{"a": {"b": ["ok", "\u0000"]}}"#).as_deref(),
            Some("a.b[1]")
        );
        assert_eq!(nul_in_json(r#""\u0000""#).as_deref(), Some("."));
        assert_eq!(nul_in_json(r#"{"k\u0000": 1}"#).as_deref(), Some("k\0"));
    }
}
